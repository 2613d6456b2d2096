import { createHash, timingSafeEqual } from 'node:crypto';
import { AppError, type Clock, type Ids } from '../../kernel/index.ts';
import type { Principal } from '../policy/index.ts';
import type { Account, IamStore } from './model.ts';

export const TOKEN_PREFIX = 'bwk_';
const TOKEN_SHAPE = /^bwk_[A-Za-z0-9_-]{43}$/;

export interface IamService {
  /** Creates the tenant if missing. */
  ensureTenant(tenant: string): Promise<boolean>;
  /**
   * On a tenant with no accounts: creates its owner and a first API token, and returns the token's
   * secret (the only time it exists in clear). Otherwise returns undefined.
   */
  bootstrapOwner(tenant: string): Promise<{ account: Account; token: string } | undefined>;
  createToken(account: Account, name: string, opts?: { expiresAt?: number }): Promise<string>;
  /** Resolves a bearer token to its principal, or throws ERR_AUTH_INVALID_TOKEN. */
  authenticate(secret: string): Promise<Principal & { type: 'user' | 'service'; tokenId: string }>;
}

export function hashToken(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export function createIamService(deps: { store: IamStore; clock: Clock; ids: Ids }): IamService {
  const { store, clock, ids } = deps;
  const touched = new Map<string, number>();
  const createToken = async (account: Account, name: string, opts: { expiresAt?: number } = {}) => {
    const secret = `${TOKEN_PREFIX}${ids.token(32)}`;
    await store.insertToken({
      id: ids.uuid(),
      tenant: account.tenant,
      accountId: account.id,
      name,
      hash: hashToken(secret),
      createdAt: clock.now(),
      expiresAt: opts.expiresAt ?? null,
      lastUsedAt: null,
      revokedAt: null,
    });
    return secret;
  };
  return {
    ensureTenant: (tenant) => store.ensureTenant(tenant, tenant, clock.now()),
    async bootstrapOwner(tenant) {
      if ((await store.countAccounts(tenant)) > 0) return undefined;
      const account: Account = {
        id: ids.uuid(),
        tenant,
        name: 'owner',
        kind: 'user',
        role: 'owner',
        createdAt: clock.now(),
      };
      await store.insertAccount(account);
      return { account, token: await createToken(account, 'initial-admin-token') };
    },
    createToken,
    async authenticate(secret) {
      const invalid = () => new AppError('ERR_AUTH_INVALID_TOKEN');
      if (!TOKEN_SHAPE.test(secret)) throw invalid();
      const hash = hashToken(secret);
      const rec = await store.findTokenByHash(hash);
      // The lookup is by hash; compare again in constant time so timing says nothing about near misses.
      if (!rec || !timingSafeEqual(Buffer.from(rec.hash, 'hex'), Buffer.from(hash, 'hex'))) throw invalid();
      const now = clock.now();
      if (rec.revokedAt !== null || (rec.expiresAt !== null && rec.expiresAt <= now)) throw invalid();
      const account = await store.getAccount(rec.accountId);
      if (!account) throw invalid();
      // last-used time, written at most once a minute per token
      if ((touched.get(rec.id) ?? 0) + 60_000 <= now) {
        touched.set(rec.id, now);
        await store.touchToken(rec.id, now);
      }
      return {
        type: account.kind,
        id: account.id,
        tenant: account.tenant,
        role: account.role,
        name: account.name,
        tokenId: rec.id,
      };
    },
  };
}
