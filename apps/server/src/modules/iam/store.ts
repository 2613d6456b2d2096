import type { Db } from '../../kernel/index.ts';
import type { Account, IamStore } from './model.ts';

interface AccountRow {
  id: string;
  tenant_id: string;
  name: string;
  kind: Account['kind'];
  role: string;
  created_at: number;
}
interface TokenRow {
  id: string;
  tenant_id: string;
  account_id: string;
  name: string;
  hash: string;
  created_at: number;
  expires_at: number | null;
  last_used_at: number | null;
  revoked_at: number | null;
}

const num = (v: number | null) => (v === null ? null : Number(v));

export function createIamStore(db: Db): IamStore {
  return {
    async insertAccount(a) {
      await db.run(
        'INSERT INTO accounts (id, tenant_id, name, kind, role, created_at) VALUES (?, ?, ?, ?, ?, ?)',
        [a.id, a.tenant, a.name, a.kind, a.role, a.createdAt],
      );
    },
    async getAccount(id) {
      const r = await db.get<AccountRow>('SELECT * FROM accounts WHERE id = ?', [id]);
      return (
        r && {
          id: r.id,
          tenant: r.tenant_id,
          name: r.name,
          kind: r.kind,
          role: r.role,
          createdAt: Number(r.created_at),
        }
      );
    },
    async countAccounts(tenant) {
      const r = await db.get<{ n: number }>('SELECT COUNT(*) AS n FROM accounts WHERE tenant_id = ?', [
        tenant,
      ]);
      return Number(r?.n ?? 0);
    },
    async insertToken(t) {
      await db.run(
        'INSERT INTO api_tokens (id, tenant_id, account_id, name, hash, created_at, expires_at, last_used_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
        [t.id, t.tenant, t.accountId, t.name, t.hash, t.createdAt, t.expiresAt, t.lastUsedAt, t.revokedAt],
      );
    },
    async findTokenByHash(hash) {
      const r = await db.get<TokenRow>('SELECT * FROM api_tokens WHERE hash = ?', [hash]);
      return (
        r && {
          id: r.id,
          tenant: r.tenant_id,
          accountId: r.account_id,
          name: r.name,
          hash: r.hash,
          createdAt: Number(r.created_at),
          expiresAt: num(r.expires_at),
          lastUsedAt: num(r.last_used_at),
          revokedAt: num(r.revoked_at),
        }
      );
    },
    async touchToken(id, now) {
      await db.run('UPDATE api_tokens SET last_used_at = ? WHERE id = ?', [now, id]);
    },
    async ensureTenant(id, name, now) {
      const existing = await db.get('SELECT id FROM tenants WHERE id = ?', [id]);
      if (existing) return false;
      await db.run('INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)', [id, name, now]);
      return true;
    },
  };
}
