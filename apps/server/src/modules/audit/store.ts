import type { Db } from '../../kernel/index.ts';
import type { AuditEntry, AuditRecord, AuditStore, Outcome } from './model.ts';

interface Row {
  seq: number;
  ts: number;
  tenant_id: string | null;
  actor_type: AuditEntry['actor']['type'];
  actor_id: string;
  action: string;
  target_type: string | null;
  target_id: string | null;
  outcome: Outcome;
  reason: string | null;
  source: string | null;
  details: string;
}

const INSERT =
  'INSERT INTO audit_log (ts, tenant_id, actor_type, actor_id, action, target_type, target_id, outcome, reason, source, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)';

export function createAuditStore(db: Db): AuditStore {
  return {
    async append(entries) {
      await db.transaction(async (tx) => {
        for (const e of entries) {
          await tx.run(INSERT, [
            e.ts,
            e.tenant,
            e.actor.type,
            e.actor.id,
            e.action,
            e.target?.type ?? null,
            e.target?.id ?? null,
            e.outcome,
            e.reason ?? null,
            e.source ?? null,
            JSON.stringify(e.details ?? {}),
          ]);
        }
      });
    },
    async list(tenant, { limit, beforeSeq, action, includePlatform }) {
      const where = [includePlatform ? '(tenant_id = ? OR tenant_id IS NULL)' : 'tenant_id = ?'];
      const params: (string | number)[] = [tenant];
      if (beforeSeq !== undefined) {
        where.push('seq < ?');
        params.push(beforeSeq);
      }
      if (action !== undefined) {
        where.push('action = ?');
        params.push(action);
      }
      params.push(limit);
      const rows = await db.all<Row>(
        `SELECT * FROM audit_log WHERE ${where.join(' AND ')} ORDER BY seq DESC LIMIT ?`,
        params,
      );
      return rows.map((r): AuditRecord => ({
        seq: Number(r.seq),
        ts: Number(r.ts),
        tenant: r.tenant_id,
        actor: { type: r.actor_type, id: r.actor_id },
        action: r.action,
        ...(r.target_type && r.target_id ? { target: { type: r.target_type, id: r.target_id } } : {}),
        outcome: r.outcome,
        ...(r.reason ? { reason: r.reason } : {}),
        ...(r.source ? { source: r.source } : {}),
        details: JSON.parse(r.details) as Record<string, unknown>,
      }));
    },
  };
}
