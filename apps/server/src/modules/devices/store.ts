import { isUniqueViolation, AppError, type Db } from '../../kernel/index.ts';
import type { Device, DeviceStatus, DeviceStore } from './model.ts';

interface Row {
  tenant_id: string;
  id: string;
  status: DeviceStatus;
  attributes: string;
  created_at: number;
  updated_at: number;
}

const toDevice = (r: Row): Device => ({
  tenant: r.tenant_id,
  id: r.id,
  status: r.status,
  attributes: JSON.parse(r.attributes) as Record<string, string>,
  createdAt: Number(r.created_at),
  updatedAt: Number(r.updated_at),
});

export function createDeviceStore(db: Db): DeviceStore {
  return {
    async insert(d) {
      try {
        await db.run(
          'INSERT INTO devices (tenant_id, id, status, attributes, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)',
          [d.tenant, d.id, d.status, JSON.stringify(d.attributes), d.createdAt, d.updatedAt],
        );
      } catch (err) {
        if (isUniqueViolation(err)) throw new AppError('ERR_DEVICE_EXISTS', `Device ${d.id} already exists`);
        throw err;
      }
    },
    async get(tenant, id) {
      const r = await db.get<Row>('SELECT * FROM devices WHERE tenant_id = ? AND id = ?', [tenant, id]);
      return r && toDevice(r);
    },
    async list(tenant, { limit, after }) {
      const rows = after
        ? await db.all<Row>(
            'SELECT * FROM devices WHERE tenant_id = ? AND (created_at > ? OR (created_at = ? AND id > ?)) ORDER BY created_at, id LIMIT ?',
            [tenant, after.createdAt, after.createdAt, after.id, limit],
          )
        : await db.all<Row>('SELECT * FROM devices WHERE tenant_id = ? ORDER BY created_at, id LIMIT ?', [
            tenant,
            limit,
          ]);
      return rows.map(toDevice);
    },
    async setStatus(tenant, id, status, now) {
      const r = await db.run('UPDATE devices SET status = ?, updated_at = ? WHERE tenant_id = ? AND id = ?', [
        status,
        now,
        tenant,
        id,
      ]);
      return r.changes > 0;
    },
    async delete(tenant, id) {
      return (await db.run('DELETE FROM devices WHERE tenant_id = ? AND id = ?', [tenant, id])).changes > 0;
    },
  };
}
