import type { Db, SqlValue } from '../../kernel/index.ts';
import type { Finding, FindingKind, FindingStatus, PostureStore, Severity } from './model.ts';

type Row = Record<string, unknown>;
const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
const str = (v: unknown) => (v === null || v === undefined ? null : String(v));

const finding = (r: Row): Finding => ({
  id: String(r.id),
  tenant: String(r.tenant_id),
  deviceId: str(r.device_id),
  kind: String(r.kind) as FindingKind,
  severity: String(r.severity) as Severity,
  summary: String(r.summary),
  details: JSON.parse(String(r.details)) as Record<string, unknown>,
  status: String(r.status) as FindingStatus,
  occurrences: Number(r.occurrences),
  firstSeenAt: Number(r.first_seen_at),
  lastSeenAt: Number(r.last_seen_at),
  resolvedAt: num(r.resolved_at),
  resolvedBy: str(r.resolved_by),
  resolution: str(r.resolution),
  source: String(r.source),
  subject: String(r.subject),
});

export function createPostureStore(db: Db): PostureStore {
  return {
    async insert(f) {
      const { changes } = await db.run(
        `INSERT INTO posture_findings (id, tenant_id, device_id, source, subject, kind, severity, summary, details,
           status, occurrences, first_seen_at, last_seen_at, resolved_at, resolved_by, resolution)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (tenant_id, subject) DO NOTHING`,
        [
          f.id,
          f.tenant,
          f.deviceId,
          f.source,
          f.subject,
          f.kind,
          f.severity,
          f.summary,
          JSON.stringify(f.details),
          f.status,
          f.occurrences,
          f.firstSeenAt,
          f.lastSeenAt,
          f.resolvedAt,
          f.resolvedBy,
          f.resolution,
        ],
      );
      return changes === 1;
    },
    async getById(tenant, id) {
      const r = await db.get<Row>('SELECT * FROM posture_findings WHERE tenant_id = ? AND id = ?', [
        tenant,
        id,
      ]);
      return r && finding(r);
    },
    async getBySubject(tenant, subject) {
      const r = await db.get<Row>('SELECT * FROM posture_findings WHERE tenant_id = ? AND subject = ?', [
        tenant,
        subject,
      ]);
      return r && finding(r);
    },
    async observeAgain(tenant, subject, o, now) {
      const refreshed = [o.severity, o.summary, JSON.stringify(o.details), now];
      const reopened = await db.run(
        `UPDATE posture_findings SET status = 'open', severity = ?, summary = ?, details = ?, last_seen_at = ?,
           occurrences = occurrences + 1, resolved_at = NULL, resolved_by = NULL, resolution = NULL
         WHERE tenant_id = ? AND subject = ? AND status = 'resolved'`,
        [...refreshed, tenant, subject],
      );
      if (reopened.changes === 1) return 'reopened';
      const seen = await db.run(
        `UPDATE posture_findings SET severity = ?, summary = ?, details = ?, last_seen_at = ?,
           occurrences = occurrences + 1
         WHERE tenant_id = ? AND subject = ? AND status = 'open'`,
        [...refreshed, tenant, subject],
      );
      return seen.changes === 1 ? 'seen' : undefined;
    },
    async resolveMissing(tenant, source, keep, now, resolution) {
      const params: SqlValue[] = [now, resolution, tenant, source];
      let notIn = '';
      if (keep.length > 0) {
        notIn = ` AND subject NOT IN (${keep.map(() => '?').join(', ')})`;
        params.push(...keep);
      }
      const { changes } = await db.run(
        `UPDATE posture_findings SET status = 'resolved', resolved_at = ?, resolved_by = 'system', resolution = ?
         WHERE tenant_id = ? AND source = ? AND status = 'open'${notIn}`,
        params,
      );
      return changes;
    },
    async resolveDevice(tenant, deviceId, now, resolution) {
      const { changes } = await db.run(
        `UPDATE posture_findings SET status = 'resolved', resolved_at = ?, resolved_by = 'system', resolution = ?
         WHERE tenant_id = ? AND device_id = ? AND status = 'open'`,
        [now, resolution, tenant, deviceId],
      );
      return changes;
    },
    async resolve(tenant, id, now, by, resolution) {
      const { changes } = await db.run(
        `UPDATE posture_findings SET status = 'resolved', resolved_at = ?, resolved_by = ?, resolution = ?
         WHERE tenant_id = ? AND id = ? AND status = 'open'`,
        [now, by, resolution, tenant, id],
      );
      return changes === 1;
    },
    async list(tenant, q) {
      const where = ['tenant_id = ?'];
      const params: SqlValue[] = [tenant];
      if (q.status) {
        where.push('status = ?');
        params.push(q.status);
      }
      if (q.severity) {
        where.push('severity = ?');
        params.push(q.severity);
      }
      if (q.kind) {
        where.push('kind = ?');
        params.push(q.kind);
      }
      if (q.deviceId) {
        where.push('device_id = ?');
        params.push(q.deviceId);
      }
      if (q.before) {
        where.push('(last_seen_at < ? OR (last_seen_at = ? AND id < ?))');
        params.push(q.before.lastSeenAt, q.before.lastSeenAt, q.before.id);
      }
      params.push(q.limit);
      const rows = await db.all<Row>(
        `SELECT * FROM posture_findings WHERE ${where.join(' AND ')} ORDER BY last_seen_at DESC, id DESC LIMIT ?`,
        params,
      );
      return rows.map(finding);
    },
  };
}
