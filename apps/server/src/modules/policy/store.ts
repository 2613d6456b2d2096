import { AppError, isUniqueViolation, type Db } from '../../kernel/index.ts';
import type {
  Attachment,
  AttachmentTargetType,
  ChangeScope,
  PolicyChangeRecord,
  PolicyDocument,
  PolicyStore,
  StoredPolicy,
} from './model.ts';

interface PolicyRow {
  tenant_id: string;
  id: string;
  version: number;
  document: string;
  created_at: number;
  updated_at: number;
  updated_by: string;
}

const toPolicy = (r: PolicyRow): StoredPolicy => ({
  tenant: r.tenant_id,
  id: r.id,
  version: Number(r.version),
  document: JSON.parse(r.document) as PolicyDocument,
  createdAt: Number(r.created_at),
  updatedAt: Number(r.updated_at),
  updatedBy: r.updated_by,
});

/** Policies, their history, attachments and the change feed, on SQLite and PostgreSQL. */
export function createPolicyStore(db: Db): PolicyStore {
  const version = (tx: Db, p: StoredPolicy, document: PolicyDocument | null, at: number, by: string) =>
    tx.run(
      'INSERT INTO policy_versions (tenant_id, id, version, document, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)',
      [p.tenant, p.id, p.version, document === null ? null : JSON.stringify(document), at, by],
    );
  return {
    async loadAll() {
      const policies = (await db.all<PolicyRow>('SELECT * FROM policies ORDER BY tenant_id, id')).map(
        toPolicy,
      );
      const attachments = (
        await db.all<{
          tenant_id: string;
          policy_id: string;
          target_type: AttachmentTargetType;
          target_id: string;
          created_at: number;
        }>('SELECT * FROM policy_attachments ORDER BY tenant_id, policy_id, target_type, target_id')
      ).map((r): Attachment => ({
        tenant: r.tenant_id,
        policyId: r.policy_id,
        targetType: r.target_type,
        targetId: r.target_id,
        createdAt: Number(r.created_at),
      }));
      return { policies, attachments };
    },
    async insert(p) {
      try {
        return await db.transaction(async (tx) => {
          // A deleted policy's id may be reused; its history continues after the deletion.
          const last = await tx.get<{ v: number | null }>(
            'SELECT MAX(version) AS v FROM policy_versions WHERE tenant_id = ? AND id = ?',
            [p.tenant, p.id],
          );
          const next = { ...p, version: Number(last?.v ?? 0) + 1 };
          await tx.run(
            'INSERT INTO policies (tenant_id, id, version, document, created_at, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?, ?)',
            [p.tenant, p.id, next.version, JSON.stringify(p.document), p.createdAt, p.updatedAt, p.updatedBy],
          );
          await version(tx, next, p.document, p.createdAt, p.updatedBy);
          return next.version;
        });
      } catch (err) {
        if (isUniqueViolation(err)) throw new AppError('ERR_POLICY_EXISTS', `Policy ${p.id} already exists`);
        throw err;
      }
    },
    async update(p, expectedVersion) {
      return db.transaction(async (tx) => {
        const r = await tx.run(
          'UPDATE policies SET version = ?, document = ?, updated_at = ?, updated_by = ? WHERE tenant_id = ? AND id = ? AND version = ?',
          [p.version, JSON.stringify(p.document), p.updatedAt, p.updatedBy, p.tenant, p.id, expectedVersion],
        );
        if (r.changes === 0) return false;
        await version(tx, p, p.document, p.updatedAt, p.updatedBy);
        return true;
      });
    },
    async delete(tenant, id, by, now, nextVersion) {
      return db.transaction(async (tx) => {
        const r = await tx.run('DELETE FROM policies WHERE tenant_id = ? AND id = ?', [tenant, id]);
        if (r.changes === 0) return false;
        await tx.run(
          'INSERT INTO policy_versions (tenant_id, id, version, document, created_at, created_by) VALUES (?, ?, ?, NULL, ?, ?)',
          [tenant, id, nextVersion, now, by],
        );
        return true;
      });
    },
    async versions(tenant, id) {
      const rows = await db.all<{
        tenant_id: string;
        id: string;
        version: number;
        document: string | null;
        created_at: number;
        created_by: string;
      }>('SELECT * FROM policy_versions WHERE tenant_id = ? AND id = ? ORDER BY version DESC', [tenant, id]);
      return rows.map((r) => ({
        tenant: r.tenant_id,
        id: r.id,
        version: Number(r.version),
        document: r.document === null ? null : (JSON.parse(r.document) as PolicyDocument),
        createdAt: Number(r.created_at),
        createdBy: r.created_by,
      }));
    },
    async attach(a) {
      try {
        await db.run(
          'INSERT INTO policy_attachments (tenant_id, policy_id, target_type, target_id, created_at) VALUES (?, ?, ?, ?, ?)',
          [a.tenant, a.policyId, a.targetType, a.targetId, a.createdAt],
        );
        return true;
      } catch (err) {
        if (isUniqueViolation(err)) return false;
        throw err;
      }
    },
    async detach(tenant, policyId, targetType, targetId) {
      const r = await db.run(
        'DELETE FROM policy_attachments WHERE tenant_id = ? AND policy_id = ? AND target_type = ? AND target_id = ?',
        [tenant, policyId, targetType, targetId],
      );
      return r.changes > 0;
    },
    async appendChange(c: PolicyChangeRecord) {
      const row = await db.get<{ seq: number }>(
        'INSERT INTO policy_changes (tenant_id, scope, reason, reload, placement_changed, origin, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING seq',
        [c.tenant, JSON.stringify(c.scope), c.reason, c.reload, c.placementChanged, c.origin, Date.now()],
      );
      return Number(row?.seq ?? 0);
    },
    async changesSince(seq, limit) {
      const rows = await db.all<{
        seq: number;
        tenant_id: string | null;
        scope: string;
        reason: string;
        reload: number;
        placement_changed: number;
        origin: string;
      }>('SELECT * FROM policy_changes WHERE seq > ? ORDER BY seq LIMIT ?', [seq, limit]);
      return rows.map((r) => ({
        seq: Number(r.seq),
        tenant: r.tenant_id,
        scope: JSON.parse(r.scope) as ChangeScope,
        reason: r.reason,
        reload: Number(r.reload) === 1,
        placementChanged: Number(r.placement_changed) === 1,
        origin: r.origin,
      }));
    },
    async lastChangeSeq() {
      const r = await db.get<{ s: number | null }>('SELECT MAX(seq) AS s FROM policy_changes');
      return Number(r?.s ?? 0);
    },
  };
}
