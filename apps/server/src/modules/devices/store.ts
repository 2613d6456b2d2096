import { isUniqueViolation, AppError, type Db, type SqlValue } from '../../kernel/index.ts';
import type { Device, DeviceGroup, DeviceStatus, DeviceStore, Fleet, GroupKind } from './model.ts';

interface Row {
  tenant_id: string;
  id: string;
  status: DeviceStatus;
  attributes: string;
  fleet: string;
  created_at: number;
  updated_at: number;
}

const toDevice = (r: Row): Device => ({
  tenant: r.tenant_id,
  id: r.id,
  status: r.status,
  attributes: JSON.parse(r.attributes) as Record<string, string>,
  fleet: r.fleet ?? '',
  createdAt: Number(r.created_at),
  updatedAt: Number(r.updated_at),
});

interface FleetRow {
  tenant_id: string;
  path: string;
  parent: string;
  description: string;
  created_at: number;
  updated_at: number;
}

const toFleet = (r: FleetRow): Fleet => ({
  tenant: r.tenant_id,
  path: r.path,
  parent: r.parent,
  description: r.description,
  createdAt: Number(r.created_at),
  updatedAt: Number(r.updated_at),
});

interface GroupRow {
  tenant_id: string;
  name: string;
  kind: GroupKind;
  query: string | null;
  description: string;
  created_at: number;
  updated_at: number;
}

const toGroup = (r: GroupRow): DeviceGroup => ({
  tenant: r.tenant_id,
  name: r.name,
  kind: r.kind,
  query: r.query,
  description: r.description,
  createdAt: Number(r.created_at),
  updatedAt: Number(r.updated_at),
});

// Fleet paths use [a-z0-9_-] and '/', so every path under `p/` sorts in [`p/`, `p0`) ('0' follows '/').
// A range instead of LIKE: `_` in a path would be a LIKE wildcard.
const subtreeRange = (path: string): [string, string] => [`${path}/`, `${path}0`];

const chunks = <T>(xs: readonly T[], n: number): T[][] => {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
};

export function createDeviceStore(db: Db): DeviceStore {
  return {
    async insert(d) {
      try {
        await db.run(
          'INSERT INTO devices (tenant_id, id, status, attributes, fleet, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
          [d.tenant, d.id, d.status, JSON.stringify(d.attributes), d.fleet, d.createdAt, d.updatedAt],
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
    async list(tenant, { limit, after, fleet }) {
      const where = ['tenant_id = ?'];
      const params: SqlValue[] = [tenant];
      if (fleet !== undefined) {
        where.push('fleet = ?');
        params.push(fleet);
      }
      if (after) {
        // A row value, not `a > ? OR (a = ? AND b > ?)`: both databases turn it into an index range, so
        // a page deep into a large fleet does not scan everything before it.
        where.push('(created_at, id) > (?, ?)');
        params.push(after.createdAt, after.id);
      }
      const rows = await db.all<Row>(
        `SELECT * FROM devices WHERE ${where.join(' AND ')} ORDER BY created_at, id LIMIT ?`,
        [...params, limit],
      );
      return rows.map(toDevice);
    },
    async scan(tenant, { limit, afterId, fleet, subtree, group }) {
      const where = ['d.tenant_id = ?'];
      const params: SqlValue[] = [];
      let join = '';
      if (group !== undefined) {
        join =
          'JOIN group_members m ON m.tenant_id = d.tenant_id AND m.device_id = d.id AND m.group_name = ?';
        params.push(group);
      }
      params.push(tenant);
      if (fleet !== undefined) {
        if (subtree) {
          const [lo, hi] = subtreeRange(fleet);
          where.push('(d.fleet = ? OR (d.fleet >= ? AND d.fleet < ?))');
          params.push(fleet, lo, hi);
        } else {
          where.push('d.fleet = ?');
          params.push(fleet);
        }
      }
      if (afterId !== undefined) {
        where.push('d.id > ?');
        params.push(afterId);
      }
      const rows = await db.all<Row>(
        `SELECT d.* FROM devices d ${join} WHERE ${where.join(' AND ')} ORDER BY d.id LIMIT ?`,
        [...params, limit],
      );
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
    async setFleet(tenant, id, fleet, now) {
      const r = await db.run('UPDATE devices SET fleet = ?, updated_at = ? WHERE tenant_id = ? AND id = ?', [
        fleet,
        now,
        tenant,
        id,
      ]);
      return r.changes > 0;
    },
    async setAttributes(tenant, id, attributes, now) {
      const r = await db.run(
        'UPDATE devices SET attributes = ?, updated_at = ? WHERE tenant_id = ? AND id = ?',
        [JSON.stringify(attributes), now, tenant, id],
      );
      return r.changes > 0;
    },
    async delete(tenant, id) {
      return db.transaction(async (tx) => {
        await tx.run('DELETE FROM group_members WHERE tenant_id = ? AND device_id = ?', [tenant, id]);
        return (await tx.run('DELETE FROM devices WHERE tenant_id = ? AND id = ?', [tenant, id])).changes > 0;
      });
    },

    async insertFleet(f) {
      try {
        await db.run(
          'INSERT INTO fleets (tenant_id, path, parent, description, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)',
          [f.tenant, f.path, f.parent, f.description, f.createdAt, f.updatedAt],
        );
      } catch (err) {
        if (isUniqueViolation(err)) throw new AppError('ERR_FLEET_EXISTS', `Fleet ${f.path} already exists`);
        throw err;
      }
    },
    async getFleet(tenant, path) {
      const r = await db.get<FleetRow>('SELECT * FROM fleets WHERE tenant_id = ? AND path = ?', [
        tenant,
        path,
      ]);
      return r && toFleet(r);
    },
    async listFleets(tenant, { under, limit, afterPath }) {
      const where = ['tenant_id = ?'];
      const params: SqlValue[] = [tenant];
      if (under !== undefined) {
        const [lo, hi] = subtreeRange(under);
        where.push('(path = ? OR (path >= ? AND path < ?))');
        params.push(under, lo, hi);
      }
      if (afterPath !== undefined) {
        where.push('path > ?');
        params.push(afterPath);
      }
      const rows = await db.all<FleetRow>(
        `SELECT * FROM fleets WHERE ${where.join(' AND ')} ORDER BY path LIMIT ?`,
        [...params, limit],
      );
      return rows.map(toFleet);
    },
    async fleetUsage(tenant, path) {
      const f = await db.get<{ n: number }>(
        'SELECT COUNT(*) AS n FROM fleets WHERE tenant_id = ? AND parent = ?',
        [tenant, path],
      );
      const d = await db.get<{ n: number }>(
        'SELECT COUNT(*) AS n FROM devices WHERE tenant_id = ? AND fleet = ?',
        [tenant, path],
      );
      return { fleets: Number(f?.n ?? 0), devices: Number(d?.n ?? 0) };
    },
    async deleteFleet(tenant, path) {
      return (
        (await db.run('DELETE FROM fleets WHERE tenant_id = ? AND path = ?', [tenant, path])).changes > 0
      );
    },

    async insertGroup(g) {
      try {
        await db.run(
          'INSERT INTO device_groups (tenant_id, name, kind, query, description, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
          [g.tenant, g.name, g.kind, g.query, g.description, g.createdAt, g.updatedAt],
        );
      } catch (err) {
        if (isUniqueViolation(err)) throw new AppError('ERR_GROUP_EXISTS', `Group ${g.name} already exists`);
        throw err;
      }
    },
    async getGroup(tenant, name) {
      const r = await db.get<GroupRow>('SELECT * FROM device_groups WHERE tenant_id = ? AND name = ?', [
        tenant,
        name,
      ]);
      return r && toGroup(r);
    },
    async listGroups(tenant, opts = {}) {
      const rows = opts.kind
        ? await db.all<GroupRow>(
            'SELECT * FROM device_groups WHERE tenant_id = ? AND kind = ? ORDER BY name',
            [tenant, opts.kind],
          )
        : await db.all<GroupRow>('SELECT * FROM device_groups WHERE tenant_id = ? ORDER BY name', [tenant]);
      return rows.map(toGroup);
    },
    async updateGroup(g) {
      const r = await db.run(
        'UPDATE device_groups SET kind = ?, query = ?, description = ?, updated_at = ? WHERE tenant_id = ? AND name = ?',
        [g.kind, g.query, g.description, g.updatedAt, g.tenant, g.name],
      );
      return r.changes > 0;
    },
    async deleteGroup(tenant, name) {
      return db.transaction(async (tx) => {
        await tx.run('DELETE FROM group_members WHERE tenant_id = ? AND group_name = ?', [tenant, name]);
        return (
          (await tx.run('DELETE FROM device_groups WHERE tenant_id = ? AND name = ?', [tenant, name]))
            .changes > 0
        );
      });
    },
    async groupsOf(tenant, ids) {
      const out = new Map<string, string[]>(ids.map((id) => [id, []]));
      for (const part of chunks(ids, 500)) {
        const rows = await db.all<{ device_id: string; group_name: string }>(
          `SELECT device_id, group_name FROM group_members WHERE tenant_id = ? AND device_id IN (${part.map(() => '?').join(', ')})`,
          [tenant, ...part],
        );
        for (const r of rows) out.get(r.device_id)?.push(r.group_name);
      }
      // Sorted here: an ORDER BY group_name lets SQLite prefer the primary key and scan every member.
      for (const groups of out.values()) groups.sort();
      return out;
    },
    async addMembers(tenant, group, ids, now) {
      return db.transaction(async (tx) => {
        const added: string[] = [];
        for (const id of ids) {
          const r = await tx.run(
            'INSERT INTO group_members (tenant_id, group_name, device_id, added_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING',
            [tenant, group, id, now],
          );
          if (r.changes > 0) added.push(id);
        }
        return added;
      });
    },
    async removeMembers(tenant, group, ids) {
      return db.transaction(async (tx) => {
        const removed: string[] = [];
        for (const id of ids) {
          const r = await tx.run(
            'DELETE FROM group_members WHERE tenant_id = ? AND group_name = ? AND device_id = ?',
            [tenant, group, id],
          );
          if (r.changes > 0) removed.push(id);
        }
        return removed;
      });
    },
    async listMembers(tenant, group, { limit, afterId }) {
      const rows =
        afterId === undefined
          ? await db.all<{ device_id: string }>(
              'SELECT device_id FROM group_members WHERE tenant_id = ? AND group_name = ? ORDER BY device_id LIMIT ?',
              [tenant, group, limit],
            )
          : await db.all<{ device_id: string }>(
              'SELECT device_id FROM group_members WHERE tenant_id = ? AND group_name = ? AND device_id > ? ORDER BY device_id LIMIT ?',
              [tenant, group, afterId, limit],
            );
      return rows.map((r) => r.device_id);
    },
    async countMembers(tenant, group) {
      const r = await db.get<{ n: number }>(
        'SELECT COUNT(*) AS n FROM group_members WHERE tenant_id = ? AND group_name = ?',
        [tenant, group],
      );
      return Number(r?.n ?? 0);
    },
  };
}
