import { AppError } from '../../kernel/index.ts';
import type { Attachment, PolicyChangeRecord, PolicyStore, PolicyVersion, StoredPolicy } from './model.ts';

/** In-memory PolicyStore: the default when no database is wired (unit tests, benchmarks). */
export function createMemoryPolicyStore(): PolicyStore {
  const policies = new Map<string, StoredPolicy>();
  const versions: PolicyVersion[] = [];
  const attachments = new Map<string, Attachment>();
  const changes: (PolicyChangeRecord & { seq: number })[] = [];
  const key = (tenant: string, id: string) => `${tenant}\u0000${id}`;
  return {
    async loadAll() {
      return { policies: [...policies.values()], attachments: [...attachments.values()] };
    },
    async insert(p) {
      if (policies.has(key(p.tenant, p.id)))
        throw new AppError('ERR_POLICY_EXISTS', `Policy ${p.id} already exists`);
      const last = Math.max(
        0,
        ...versions.filter((v) => v.tenant === p.tenant && v.id === p.id).map((v) => v.version),
      );
      const stored = { ...p, version: last + 1 };
      policies.set(key(p.tenant, p.id), stored);
      versions.push({
        tenant: p.tenant,
        id: p.id,
        version: stored.version,
        document: p.document,
        createdAt: p.createdAt,
        createdBy: p.updatedBy,
      });
      return stored.version;
    },
    async update(p, expected) {
      if (policies.get(key(p.tenant, p.id))?.version !== expected) return false;
      policies.set(key(p.tenant, p.id), p);
      versions.push({
        tenant: p.tenant,
        id: p.id,
        version: p.version,
        document: p.document,
        createdAt: p.updatedAt,
        createdBy: p.updatedBy,
      });
      return true;
    },
    async delete(tenant, id, by, now, version) {
      if (!policies.delete(key(tenant, id))) return false;
      versions.push({ tenant, id, version, document: null, createdAt: now, createdBy: by });
      return true;
    },
    async versions(tenant, id) {
      return versions.filter((v) => v.tenant === tenant && v.id === id).sort((a, b) => b.version - a.version);
    },
    async attach(a) {
      const k = [a.tenant, a.policyId, a.targetType, a.targetId].join('\u0000');
      if (attachments.has(k)) return false;
      attachments.set(k, a);
      return true;
    },
    async detach(tenant, policyId, targetType, targetId) {
      return attachments.delete([tenant, policyId, targetType, targetId].join('\u0000'));
    },
    async appendChange(c) {
      const seq = changes.length + 1;
      changes.push({ ...c, seq });
      return seq;
    },
    async changesSince(seq, limit) {
      return changes.filter((c) => c.seq > seq).slice(0, limit);
    },
    async lastChangeSeq() {
      return changes.length;
    },
  };
}
