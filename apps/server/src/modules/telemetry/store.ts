import type { Db } from '../../kernel/index.ts';
import type { TelemetryStore } from './model.ts';

const INSERT = 'INSERT INTO telemetry (tenant_id, device_id, stream, ts, data) VALUES (?, ?, ?, ?, ?)';

export function createTelemetryStore(db: Db): TelemetryStore {
  return {
    async insertBatch(records) {
      if (records.length === 0) return;
      await db.transaction(async (tx) => {
        if (tx.dialect === 'postgres') {
          // One multi-row INSERT per chunk: far fewer round trips than one statement per row.
          for (let i = 0; i < records.length; i += 500) {
            const chunk = records.slice(i, i + 500);
            const values: (string | number)[] = [];
            for (const r of chunk) values.push(r.tenant, r.deviceId, r.stream, r.ts, r.json);
            await tx.run(
              `INSERT INTO telemetry (tenant_id, device_id, stream, ts, data) VALUES ${chunk.map(() => '(?, ?, ?, ?, ?)').join(', ')}`,
              values,
            );
          }
        } else {
          for (const r of records) await tx.run(INSERT, [r.tenant, r.deviceId, r.stream, r.ts, r.json]);
        }
      });
    },
    async query(tenant, deviceId, q) {
      const cmp = q.order === 'asc' ? '>' : '<';
      const where = ['tenant_id = ?', 'device_id = ?', 'ts >= ?', 'ts <= ?'];
      const params: (string | number)[] = [tenant, deviceId, q.from, q.to];
      if (q.stream !== undefined) {
        where.push('stream = ?');
        params.push(q.stream);
      }
      if (q.after) {
        // A row value: an index range on (tenant_id, device_id, ts, id), however deep the page.
        where.push(`(ts, id) ${cmp} (?, ?)`);
        params.push(q.after.ts, q.after.id);
      }
      params.push(q.limit);
      const dir = q.order === 'asc' ? 'ASC' : 'DESC';
      return db.all(
        `SELECT id, ts, stream, data AS json FROM telemetry WHERE ${where.join(' AND ')} ORDER BY ts ${dir}, id ${dir} LIMIT ?`,
        params,
      );
    },
  };
}
