import { isUniqueViolation, type Db } from '../../kernel/index.ts';
import type { CommandsStore, TwinRow } from './model.ts';

const num = (v: unknown): number => Number(v);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

// PostgreSQL returns BIGINT as strings; every number read here goes through Number().
export function createCommandsStore(db: Db): CommandsStore {
  const retryOnRace = async <T>(fn: () => Promise<T>): Promise<T> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (attempt >= 3 || !isUniqueViolation(err)) throw err;
      }
    }
  };
  return {
    async getTwin(tenant, deviceId) {
      const r = await db.get<Record<string, unknown>>(
        'SELECT desired, desired_version, desired_updated_at, reported, reported_desired_version, reported_updated_at FROM device_twins WHERE tenant_id = ? AND device_id = ?',
        [tenant, deviceId],
      );
      if (!r) return undefined;
      const row: TwinRow = {
        desired: String(r.desired),
        desiredVersion: num(r.desired_version),
        desiredUpdatedAt: numOrNull(r.desired_updated_at),
        reported: r.reported === null || r.reported === undefined ? null : String(r.reported),
        reportedDesiredVersion: numOrNull(r.reported_desired_version),
        reportedUpdatedAt: numOrNull(r.reported_updated_at),
      };
      return row;
    },
    setDesired(tenant, deviceId, json, at, expectedVersion) {
      return retryOnRace(() =>
        db.transaction(async (tx) => {
          for (;;) {
            const cur = await tx.get<{ v: unknown }>(
              'SELECT desired_version AS v FROM device_twins WHERE tenant_id = ? AND device_id = ?',
              [tenant, deviceId],
            );
            const version = cur ? num(cur.v) : 0;
            if (expectedVersion !== undefined && expectedVersion !== version) return undefined;
            if (!cur) {
              await tx.run(
                'INSERT INTO device_twins (tenant_id, device_id, desired, desired_version, desired_updated_at) VALUES (?, ?, ?, 1, ?)',
                [tenant, deviceId, json, at],
              );
              return 1;
            }
            // Compare-and-set on the version: a concurrent writer makes this change nothing.
            const { changes } = await tx.run(
              'UPDATE device_twins SET desired = ?, desired_version = ?, desired_updated_at = ? WHERE tenant_id = ? AND device_id = ? AND desired_version = ?',
              [json, version + 1, at, tenant, deviceId, version],
            );
            if (changes === 1) return version + 1;
            if (expectedVersion !== undefined) return undefined;
          }
        }),
      );
    },
    async setReported(tenant, deviceId, json, desiredVersion, at) {
      await db.run(
        `INSERT INTO device_twins (tenant_id, device_id, desired, desired_version, reported, reported_desired_version, reported_updated_at)
         VALUES (?, ?, '{}', 0, ?, ?, ?)
         ON CONFLICT (tenant_id, device_id) DO UPDATE SET reported = excluded.reported,
           reported_desired_version = excluded.reported_desired_version, reported_updated_at = excluded.reported_updated_at`,
        [tenant, deviceId, json, desiredVersion, at],
      );
    },
    addCapabilities(tenant, deviceId, json, digest, at) {
      return retryOnRace(() =>
        db.transaction(async (tx) => {
          const latest = await tx.get<{ version: unknown; digest: unknown }>(
            'SELECT version, digest FROM device_capabilities WHERE tenant_id = ? AND device_id = ? ORDER BY version DESC LIMIT 1',
            [tenant, deviceId],
          );
          if (latest && latest.digest === digest) return { version: num(latest.version), changed: false };
          const version = latest ? num(latest.version) + 1 : 1;
          await tx.run(
            'INSERT INTO device_capabilities (tenant_id, device_id, version, data, digest, reported_at) VALUES (?, ?, ?, ?, ?, ?)',
            [tenant, deviceId, version, json, digest, at],
          );
          return { version, changed: true };
        }),
      );
    },
    async latestCapabilitiesOf(tenant, deviceIds) {
      const out = new Map<string, string>();
      for (let i = 0; i < deviceIds.length; i += 500) {
        const part = deviceIds.slice(i, i + 500);
        // Newest version per device through the primary key (tenant, device, version), not a join
        // over the whole table.
        const rows = await db.all<{ device_id: unknown; data: unknown }>(
          `SELECT c.device_id, c.data FROM device_capabilities c
           WHERE c.tenant_id = ? AND c.device_id IN (${part.map(() => '?').join(', ')})
             AND c.version = (SELECT MAX(x.version) FROM device_capabilities x
                              WHERE x.tenant_id = c.tenant_id AND x.device_id = c.device_id)`,
          [tenant, ...part],
        );
        for (const r of rows) out.set(String(r.device_id), String(r.data));
      }
      return out;
    },
    async latestCapabilities(tenant, deviceId) {
      const r = await db.get<{ version: unknown; data: unknown; reported_at: unknown }>(
        'SELECT version, data, reported_at FROM device_capabilities WHERE tenant_id = ? AND device_id = ? ORDER BY version DESC LIMIT 1',
        [tenant, deviceId],
      );
      return r
        ? { version: num(r.version), json: String(r.data), reportedAt: num(r.reported_at) }
        : undefined;
    },
    async listCapabilities(tenant, deviceId, opts) {
      const params: (string | number)[] = [tenant, deviceId];
      let where = 'tenant_id = ? AND device_id = ?';
      if (opts.beforeVersion !== undefined) {
        where += ' AND version < ?';
        params.push(opts.beforeVersion);
      }
      params.push(opts.limit);
      const rows = await db.all<{ version: unknown; data: unknown; reported_at: unknown }>(
        `SELECT version, data, reported_at FROM device_capabilities WHERE ${where} ORDER BY version DESC LIMIT ?`,
        params,
      );
      return rows.map((r) => ({
        version: num(r.version),
        json: String(r.data),
        reportedAt: num(r.reported_at),
      }));
    },
    async deleteDevice(tenant, deviceId) {
      await db.transaction(async (tx) => {
        await tx.run('DELETE FROM device_twins WHERE tenant_id = ? AND device_id = ?', [tenant, deviceId]);
        await tx.run('DELETE FROM device_capabilities WHERE tenant_id = ? AND device_id = ?', [
          tenant,
          deviceId,
        ]);
      });
    },
  };
}
