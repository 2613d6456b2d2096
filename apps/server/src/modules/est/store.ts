import { isUniqueViolation, type Db } from '../../kernel/index.ts';
import type {
  EnrollmentCode,
  EnrollMethod,
  EstRequest,
  EstRequestStatus,
  EstStore,
  Superseded,
} from './model.ts';

type Num = number | string;

interface CodeRow {
  id: string;
  tenant_id: string;
  hash: string;
  device_id: string | null;
  fleet: string;
  quota: Num;
  used: Num;
  approval: Num;
  expires_at: Num;
  revoked_at: Num | null;
  created_by: string;
  created_at: Num;
}

interface RequestRow {
  id: string;
  tenant_id: string;
  device_id: string;
  method: string;
  source_id: string;
  fleet: string;
  key_type: string;
  source: string | null;
  status: string;
  created_at: Num;
  decided_at: Num | null;
  decided_by: string | null;
}

const CODE_COLUMNS =
  'id, tenant_id, hash, device_id, fleet, quota, used, approval, expires_at, revoked_at, created_by, created_at';
const REQUEST_COLUMNS =
  'id, tenant_id, device_id, method, source_id, fleet, key_type, source, status, created_at, decided_at, decided_by';

const toCode = (r: CodeRow): EnrollmentCode => ({
  id: r.id,
  tenantId: r.tenant_id,
  hash: r.hash,
  deviceId: r.device_id,
  fleet: r.fleet,
  quota: Number(r.quota),
  used: Number(r.used),
  approval: Number(r.approval) === 1,
  expiresAt: Number(r.expires_at),
  revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
  createdBy: r.created_by,
  createdAt: Number(r.created_at),
});

const toRequest = (r: RequestRow): EstRequest => ({
  id: r.id,
  tenantId: r.tenant_id,
  deviceId: r.device_id,
  method: r.method as EnrollMethod,
  sourceId: r.source_id,
  fleet: r.fleet,
  keyType: r.key_type,
  source: r.source,
  status: r.status as EstRequestStatus,
  createdAt: Number(r.created_at),
  decidedAt: r.decided_at === null ? null : Number(r.decided_at),
  decidedBy: r.decided_by,
});

const toSuperseded = (r: {
  tenant_id: string;
  serial: string;
  device_id: string;
  replaced_by: string;
  revoke_at: Num;
}): Superseded => ({
  tenantId: r.tenant_id,
  serial: r.serial,
  deviceId: r.device_id,
  replacedBy: r.replaced_by,
  revokeAt: Number(r.revoke_at),
});

/** EstStore over the shared Db port: the same SQL for SQLite and PostgreSQL. */
export function createEstStore(db: Db): EstStore {
  return {
    async tenantExists(tenantId) {
      return (await db.get('SELECT id FROM tenants WHERE id = ?', [tenantId])) !== undefined;
    },

    async insertCode(c) {
      await db.run(
        `INSERT INTO enrollment_codes (${CODE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [
          c.id,
          c.tenantId,
          c.hash,
          c.deviceId,
          c.fleet,
          c.quota,
          c.used,
          c.approval ? 1 : 0,
          c.expiresAt,
          c.revokedAt,
          c.createdBy,
          c.createdAt,
        ],
      );
    },

    async findCodeByHash(hash) {
      const row = await db.get<CodeRow>(`SELECT ${CODE_COLUMNS} FROM enrollment_codes WHERE hash = ?`, [
        hash,
      ]);
      return row ? toCode(row) : undefined;
    },

    async getCode(tenantId, id) {
      const row = await db.get<CodeRow>(
        `SELECT ${CODE_COLUMNS} FROM enrollment_codes WHERE tenant_id = ? AND id = ?`,
        [tenantId, id],
      );
      return row ? toCode(row) : undefined;
    },

    async listCodes(tenantId, limit) {
      const rows = await db.all<CodeRow>(
        `SELECT ${CODE_COLUMNS} FROM enrollment_codes WHERE tenant_id = ? ORDER BY created_at DESC, id DESC LIMIT ?`,
        [tenantId, limit],
      );
      return rows.map(toCode);
    },

    async useCode(id, now) {
      // One statement: concurrent enrollments cannot both take the last use.
      const { changes } = await db.run(
        'UPDATE enrollment_codes SET used = used + 1 WHERE id = ? AND used < quota AND revoked_at IS NULL AND expires_at > ?',
        [id, now],
      );
      return changes > 0;
    },

    async releaseCode(id) {
      await db.run('UPDATE enrollment_codes SET used = used - 1 WHERE id = ? AND used > 0', [id]);
    },

    async revokeCode(tenantId, id, at) {
      const { changes } = await db.run(
        'UPDATE enrollment_codes SET revoked_at = ? WHERE tenant_id = ? AND id = ? AND revoked_at IS NULL',
        [at, tenantId, id],
      );
      return changes > 0;
    },

    async getEstDevice(tenantId, deviceId) {
      const row = await db.get<{
        tenant_id: string;
        device_id: string;
        fleet: string;
        method: string;
        source_id: string;
        created_at: Num;
      }>(
        'SELECT tenant_id, device_id, fleet, method, source_id, created_at FROM est_devices WHERE tenant_id = ? AND device_id = ?',
        [tenantId, deviceId],
      );
      return row
        ? {
            tenantId: row.tenant_id,
            deviceId: row.device_id,
            fleet: row.fleet,
            method: row.method as EnrollMethod,
            sourceId: row.source_id,
            createdAt: Number(row.created_at),
          }
        : undefined;
    },

    async recordEstDevice(d) {
      try {
        await db.run(
          'INSERT INTO est_devices (tenant_id, device_id, fleet, method, source_id, created_at) VALUES (?, ?, ?, ?, ?, ?)',
          [d.tenantId, d.deviceId, d.fleet, d.method, d.sourceId, d.createdAt],
        );
      } catch (err) {
        if (!isUniqueViolation(err)) throw err;
      }
    },

    async getRequest(tenantId, deviceId, sourceId) {
      const row = await db.get<RequestRow>(
        `SELECT ${REQUEST_COLUMNS} FROM est_requests WHERE tenant_id = ? AND device_id = ? AND source_id = ?`,
        [tenantId, deviceId, sourceId],
      );
      return row ? toRequest(row) : undefined;
    },

    async getRequestById(tenantId, id) {
      const row = await db.get<RequestRow>(
        `SELECT ${REQUEST_COLUMNS} FROM est_requests WHERE tenant_id = ? AND id = ?`,
        [tenantId, id],
      );
      return row ? toRequest(row) : undefined;
    },

    async insertRequest(r) {
      try {
        await db.run(
          `INSERT INTO est_requests (${REQUEST_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          [
            r.id,
            r.tenantId,
            r.deviceId,
            r.method,
            r.sourceId,
            r.fleet,
            r.keyType,
            r.source,
            r.status,
            r.createdAt,
            r.decidedAt,
            r.decidedBy,
          ],
        );
        return true;
      } catch (err) {
        if (isUniqueViolation(err)) return false;
        throw err;
      }
    },

    async listRequests(tenantId, status, limit) {
      const rows =
        status === undefined
          ? await db.all<RequestRow>(
              `SELECT ${REQUEST_COLUMNS} FROM est_requests WHERE tenant_id = ? ORDER BY created_at, id LIMIT ?`,
              [tenantId, limit],
            )
          : await db.all<RequestRow>(
              `SELECT ${REQUEST_COLUMNS} FROM est_requests WHERE tenant_id = ? AND status = ? ORDER BY created_at, id LIMIT ?`,
              [tenantId, status, limit],
            );
      return rows.map(toRequest);
    },

    async decideRequest(tenantId, id, from, to, at, by) {
      const { changes } = await db.run(
        'UPDATE est_requests SET status = ?, decided_at = COALESCE(decided_at, ?), decided_by = COALESCE(decided_by, ?) WHERE tenant_id = ? AND id = ? AND status = ?',
        [to, at, by, tenantId, id, from],
      );
      return changes > 0;
    },

    async listFleetSettings(tenantId) {
      const rows = await db.all<{ fleet: string; cert_days: Num; grace_seconds: Num; updated_at: Num }>(
        'SELECT fleet, cert_days, grace_seconds, updated_at FROM est_fleet_settings WHERE tenant_id = ? ORDER BY fleet',
        [tenantId],
      );
      return rows.map((r) => ({
        fleet: r.fleet,
        certDays: Number(r.cert_days),
        graceSeconds: Number(r.grace_seconds),
        updatedAt: Number(r.updated_at),
      }));
    },

    async putFleetSettings(tenantId, s) {
      await db.transaction(async (tx) => {
        await tx.run('DELETE FROM est_fleet_settings WHERE tenant_id = ? AND fleet = ?', [tenantId, s.fleet]);
        await tx.run(
          'INSERT INTO est_fleet_settings (tenant_id, fleet, cert_days, grace_seconds, updated_at) VALUES (?, ?, ?, ?, ?)',
          [tenantId, s.fleet, s.certDays, s.graceSeconds, s.updatedAt],
        );
      });
    },

    async deleteFleetSettings(tenantId, fleet) {
      const { changes } = await db.run('DELETE FROM est_fleet_settings WHERE tenant_id = ? AND fleet = ?', [
        tenantId,
        fleet,
      ]);
      return changes > 0;
    },

    async insertSuperseded(s) {
      try {
        await db.run(
          'INSERT INTO est_superseded (tenant_id, serial, device_id, replaced_by, revoke_at) VALUES (?, ?, ?, ?, ?)',
          [s.tenantId, s.serial, s.deviceId, s.replacedBy, s.revokeAt],
        );
        return true;
      } catch (err) {
        if (isUniqueViolation(err)) return false;
        throw err;
      }
    },

    async getSuperseded(tenantId, serial) {
      const row = await db.get<{
        tenant_id: string;
        serial: string;
        device_id: string;
        replaced_by: string;
        revoke_at: Num;
      }>(
        'SELECT tenant_id, serial, device_id, replaced_by, revoke_at FROM est_superseded WHERE tenant_id = ? AND serial = ?',
        [tenantId, serial],
      );
      return row ? toSuperseded(row) : undefined;
    },

    async setSupersededBy(tenantId, serial, replacedBy) {
      await db.run('UPDATE est_superseded SET replaced_by = ? WHERE tenant_id = ? AND serial = ?', [
        replacedBy,
        tenantId,
        serial,
      ]);
    },

    async deleteSuperseded(tenantId, serial) {
      await db.run('DELETE FROM est_superseded WHERE tenant_id = ? AND serial = ?', [tenantId, serial]);
    },

    async listDueSuperseded(now, limit) {
      const rows = await db.all<{
        tenant_id: string;
        serial: string;
        device_id: string;
        replaced_by: string;
        revoke_at: Num;
      }>(
        "SELECT tenant_id, serial, device_id, replaced_by, revoke_at FROM est_superseded WHERE revoke_at <= ? AND replaced_by <> '' ORDER BY revoke_at LIMIT ?",
        [now, limit],
      );
      return rows.map(toSuperseded);
    },
  };
}
