import { createHash, timingSafeEqual } from 'node:crypto';
import { AppError, type Clock, type Ids, type RoutePrincipal } from '../../kernel/index.ts';
import type { AuditService } from '../audit/index.ts';
import {
  coversPermissions,
  FLEET_PATH,
  rolePolicies,
  validatePolicyDocument,
  type Boundary,
  type PolicyDocument,
  type PolicyService,
  type Principal,
} from '../policy/index.ts';
import type {
  Account,
  AccountKind,
  CustomRole,
  IamStore,
  RoleVersion,
  OidcRelyingParty,
  Sealer,
  TokenRecord,
  TokenScope,
} from './model.ts';
import { createSignIn, type SignIn } from './signin.ts';
import { createSso, type Sso } from './sso.ts';
import type { ScryptParams } from './password.ts';

export const TOKEN_PREFIX = 'bwk_';
const TOKEN_SHAPE = /^bwk_[A-Za-z0-9_-]{43}$/;
const ACCOUNT_NAME = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$/;
const ROLE_NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;
const DAY = 86_400_000;

export interface IamOptions {
  /** Console session idle timeout (ms). */
  sessionIdleMs: number;
  /** Console session absolute lifetime (ms). */
  sessionAbsoluteMs: number;
  /** Failed sign-ins before the account locks; each further failure doubles the lock. */
  lockoutThreshold: number;
  lockoutBaseMs: number;
  lockoutMaxMs: number;
  tokenDefaultDays: number;
  tokenMaxDays: number;
  setupTokenMs: number;
  resetTokenMs: number;
  oidcPendingMs: number;
  /** Lifetime of the personal token a CLI single sign-on ends with (`bulwark login --sso`). */
  cliTokenMs: number;
  /** The one-time code a CLI sign-in hands the CLI must be exchanged within this. */
  cliCodeMs: number;
  /** Let IdP issuers be http:// on loopback (tests only). */
  allowInsecureIdp: boolean;
  scrypt?: ScryptParams;
  /** Name shown by authenticator apps. */
  totpIssuer: string;
}

export const DEFAULT_IAM_OPTIONS: IamOptions = {
  sessionIdleMs: 30 * 60_000,
  sessionAbsoluteMs: 12 * 3_600_000,
  lockoutThreshold: 5,
  lockoutBaseMs: 30_000,
  lockoutMaxMs: 15 * 60_000,
  tokenDefaultDays: 90,
  tokenMaxDays: 366,
  setupTokenMs: 7 * DAY,
  resetTokenMs: 3_600_000,
  oidcPendingMs: 10 * 60_000,
  cliTokenMs: 12 * 3_600_000,
  cliCodeMs: 60_000,
  allowInsecureIdp: false,
  totpIssuer: 'Bulwark',
};

/** Who is asking: the authenticated principal of the request (with its boundaries). */
export type Actor = RoutePrincipal;

export interface AuthPrincipal extends RoutePrincipal {
  readonly name: string;
  readonly mfa: boolean;
  readonly authMethod: 'token' | 'session' | 'oidc';
  readonly boundaries: readonly Boundary[];
}

export interface TokenView {
  id: string;
  accountId: string;
  name: string;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
  scope: TokenScope | null;
  status: 'active' | 'expired' | 'revoked';
}

export interface AccountView {
  id: string;
  name: string;
  kind: AccountKind;
  role: string;
  fleet: string | null;
  status: 'active' | 'disabled';
  description: string | null;
  createdAt: string;
  sso: boolean;
  mfa?: boolean;
}

export interface RoleView {
  name: string;
  builtin: boolean;
  description: string | null;
  statements: readonly unknown[];
  /** Custom roles: the current version (1 when created, +1 with every change). */
  version?: number;
  updatedAt?: string | null;
}

export interface RoleVersionView {
  version: number;
  deleted: boolean;
  description: string | null;
  statements: readonly unknown[];
  createdAt: string;
  createdBy: string;
}

export interface IamDeps {
  store: IamStore;
  clock: Clock;
  ids: Ids;
  policy: PolicyService;
  audit: AuditService;
  sealer: Sealer;
  oidc?: OidcRelyingParty;
  options?: Partial<IamOptions>;
}

export function hashToken(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

/** Shared by the pieces of the iam service (accounts and tokens here, sign-in, SSO). */
export interface IamCore {
  readonly store: IamStore;
  readonly clock: Clock;
  readonly ids: Ids;
  readonly policy: PolicyService;
  readonly audit: AuditService;
  readonly sealer: Sealer;
  readonly options: IamOptions;
  readonly oidc: OidcRelyingParty | undefined;
  roleExists(tenant: string, role: string): boolean;
  accountBoundaries(a: Account): Boundary[];
  principalOf(a: Account, extra?: { boundaries?: Boundary[] }): Principal;
  /** Throws ERR_IAM_ESCALATION unless the actor holds every permission of `requested`. */
  requireCovers(actor: Actor, requested: Principal, what: string): void;
  actorOf(actor: Actor): { type: 'user' | 'service'; id: string };
  getAccountIn(tenant: string, id: string): Promise<Account>;
  accountView(a: Account, mfa?: boolean): AccountView;
  /** Stores a new token of the account; returns its secret (the only time it exists in clear). */
  insertToken(
    account: Account,
    name: string,
    opts: { expiresAt: number | null; scope: TokenScope | null; createdBy: string | null; mfa?: boolean },
  ): Promise<{ secret: string; record: TokenRecord }>;
  tokenView(t: TokenRecord): TokenView;
}

export type IamService = ReturnType<typeof createIamService>;

export function createIamService(deps: IamDeps) {
  const { store, clock, ids, policy, audit } = deps;
  const options: IamOptions = { ...DEFAULT_IAM_OPTIONS, ...deps.options };
  const touched = new Map<string, number>();

  // Custom roles, in memory for the synchronous decision path; `refreshRoles` reloads (other nodes).
  let customRoles = new Map<string, { role: CustomRole; document: PolicyDocument }>();
  let revision = 0;
  const roleKey = (tenant: string, name: string) => `${tenant}\u0000${name}`;
  const documentOf = (r: CustomRole): PolicyDocument => ({
    id: `role:${r.name}`,
    ...(r.description ? { description: r.description } : {}),
    statements: r.statements as PolicyDocument['statements'],
  });
  const refreshRoles = async () => {
    const all = await store.listRoles();
    const next = new Map(all.map((r) => [roleKey(r.tenant, r.name), { role: r, document: documentOf(r) }]));
    const sig = (m: typeof next) =>
      JSON.stringify([...m.entries()].map(([k, v]) => [k, v.role.statements, v.role.version]));
    if (sig(next) !== sig(customRoles)) revision++;
    customRoles = next;
  };
  // Told when this node changed a custom role (app.ts tells the other nodes, which then refresh).
  const roleListeners = new Set<() => void>();
  const rolesChanged = async () => {
    await refreshRoles();
    for (const l of roleListeners) l();
  };

  const isBuiltinRole = (name: string) => Object.hasOwn(rolePolicies, name);
  const roleExists = (tenant: string, name: string) =>
    isBuiltinRole(name) || customRoles.has(roleKey(tenant, name));

  const accountBoundaries = (a: Account): Boundary[] =>
    a.roleFleet ? [{ kind: 'role-scope', fleet: a.roleFleet }] : [];

  const principalOf = (a: Account, extra: { boundaries?: Boundary[] } = {}): Principal => ({
    type: a.kind,
    id: a.id,
    tenant: a.tenant,
    role: a.role,
    name: a.name,
    boundaries: [...accountBoundaries(a), ...(extra.boundaries ?? [])],
  });

  const escalation = (what: string, missing: readonly { action: string; resource: string }[]) =>
    new AppError('ERR_IAM_ESCALATION', `${what} would grant permissions you do not hold`, {
      errors: missing.map((m) => ({ path: m.action, message: `not held on ${m.resource}` })),
    });

  const requireCovers = (actor: Actor, requested: Principal, what: string) => {
    const c = policy.covers(actor as Principal, requested);
    if (!c.covered) throw escalation(what, c.missing);
  };

  /** A custom role's statements as a policy document of the tenant, or ERR_IAM_ROLE_INVALID. */
  const roleDocument = (
    tenant: string,
    name: string,
    description: string | null,
    statements: unknown,
  ): PolicyDocument => {
    try {
      return validatePolicyDocument(
        { id: name, ...(description !== null ? { description } : {}), statements },
        tenant,
      );
    } catch (err) {
      const e = err as AppError;
      throw new AppError('ERR_IAM_ROLE_INVALID', e.message, e.errors ? { errors: e.errors } : {});
    }
  };

  /** Throws ERR_IAM_ESCALATION unless the actor holds everything a holder of `doc` would hold. */
  const requireCoversRole = (actor: Actor, name: string, doc: PolicyDocument, what: string) => {
    const grantor = {
      principal: actor as Principal,
      documents: policy.documentsFor(actor as Principal).map((d) => d.document),
    };
    const requested = {
      principal: { type: 'user', id: '*role-holder*', tenant: actor.tenant, role: name } as Principal,
      documents: [doc],
    };
    const c = coversPermissions(grantor, requested);
    if (!c.covered) throw escalation(what, c.missing);
  };

  const customRoleView = (r: CustomRole): RoleView => ({
    name: r.name,
    builtin: false,
    description: r.description,
    statements: r.statements,
    version: r.version,
    updatedAt: r.updatedAt === null ? null : new Date(r.updatedAt).toISOString(),
  });

  const roleVersionView = (v: RoleVersion): RoleVersionView => ({
    version: v.version,
    deleted: v.deleted,
    description: v.description,
    statements: v.statements,
    createdAt: new Date(v.createdAt).toISOString(),
    createdBy: v.createdBy,
  });

  const actorOf = (actor: Actor) => ({ type: actor.type, id: actor.id });

  const getAccountIn = async (tenant: string, id: string) => {
    const a = await store.getAccount(id);
    if (!a || a.tenant !== tenant) throw new AppError('ERR_IAM_ACCOUNT_NOT_FOUND');
    return a;
  };

  const accountView = (a: Account, mfa?: boolean): AccountView => ({
    id: a.id,
    name: a.name,
    kind: a.kind,
    role: a.role,
    fleet: a.roleFleet,
    status: a.status,
    description: a.description,
    createdAt: new Date(a.createdAt).toISOString(),
    sso: a.idpIssuer !== null,
    ...(mfa !== undefined ? { mfa } : {}),
  });

  const tokenView = (t: TokenRecord): TokenView => {
    const now = clock.now();
    return {
      id: t.id,
      accountId: t.accountId,
      name: t.name,
      createdAt: new Date(t.createdAt).toISOString(),
      expiresAt: t.expiresAt === null ? null : new Date(t.expiresAt).toISOString(),
      lastUsedAt: t.lastUsedAt === null ? null : new Date(t.lastUsedAt).toISOString(),
      revokedAt: t.revokedAt === null ? null : new Date(t.revokedAt).toISOString(),
      scope: t.scope,
      status:
        t.revokedAt !== null ? 'revoked' : t.expiresAt !== null && t.expiresAt <= now ? 'expired' : 'active',
    };
  };

  const core: IamCore = {
    store,
    clock,
    ids,
    policy,
    audit,
    sealer: deps.sealer,
    options,
    oidc: deps.oidc,
    roleExists,
    accountBoundaries,
    principalOf,
    requireCovers,
    actorOf,
    getAccountIn,
    accountView,
    insertToken: (account, name, opts) => insertToken(account, name, opts),
    tokenView: (t) => tokenView(t),
  };

  const checkScope = (scope: TokenScope | undefined): TokenScope | null => {
    if (!scope) return null;
    const bad = (m: string) => new AppError('ERR_IAM_SCOPE_INVALID', m);
    if (scope.actions !== undefined) {
      if (scope.actions.length === 0 || scope.actions.length > 64) throw bad('actions: 1 to 64 patterns');
      for (const a of scope.actions)
        if (!/^(\*|[a-z-]+:(\*|[a-z-]+))$/.test(a)) throw bad(`unknown action pattern '${a}'`);
    }
    if (scope.fleet !== undefined && !FLEET_PATH.test(scope.fleet)) throw bad('fleet: not a fleet path');
    return {
      ...(scope.actions ? { actions: [...scope.actions] } : {}),
      ...(scope.fleet !== undefined ? { fleet: scope.fleet } : {}),
    };
  };

  const checkRoleAssignment = (tenant: string, role: string, fleet: string | null | undefined) => {
    if (!roleExists(tenant, role)) throw new AppError('ERR_IAM_ROLE_NOT_FOUND', `No role '${role}'`);
    if (fleet !== undefined && fleet !== null && !FLEET_PATH.test(fleet))
      throw new AppError('ERR_IAM_SCOPE_INVALID', 'fleet: not a fleet path');
  };

  const insertToken = async (
    account: Account,
    name: string,
    opts: { expiresAt: number | null; scope: TokenScope | null; createdBy: string | null; mfa?: boolean },
  ) => {
    const secret = `${TOKEN_PREFIX}${ids.token(32)}`;
    const rec: TokenRecord = {
      id: ids.uuid(),
      tenant: account.tenant,
      accountId: account.id,
      name,
      hash: hashToken(secret),
      createdAt: clock.now(),
      expiresAt: opts.expiresAt,
      lastUsedAt: null,
      revokedAt: null,
      scope: opts.scope,
      createdBy: opts.createdBy,
      ...(opts.mfa ? { mfa: true } : {}),
    };
    await store.insertToken(rec);
    return { secret, record: rec };
  };

  /** Last owner rule: the tenant keeps at least one active, tenant-wide owner. */
  const keepsAnOwner = async (a: Account) => {
    if (a.role !== 'owner' || a.status !== 'active' || a.roleFleet !== null) return;
    if ((await store.countActiveWithRole(a.tenant, 'owner')) <= 1) throw new AppError('ERR_IAM_LAST_OWNER');
  };

  /** Changing another account: you must hold what it holds now (no demoting your betters) and not be it. */
  const mayManage = (actor: Actor, target: Account, what: string) => {
    if (target.id === actor.id) throw new AppError('ERR_IAM_SELF_CHANGE');
    requireCovers(actor, principalOf(target), what);
  };

  const signIn: SignIn = createSignIn(core);
  const sso: Sso = createSso(core, signIn);

  return {
    ...signIn,
    ...sso,
    options,
    /** Custom role documents for the policy engine. */
    roleDirectory: {
      document: (tenant: string, name: string) => customRoles.get(roleKey(tenant, name))?.document,
      revision: () => revision,
      /** An account's standing permission boundaries (a fleet-scoped role), for explain. */
      boundaries: accountBoundaries,
    },
    async load() {
      await refreshRoles();
    },
    refreshRoles,
    ensureTenant: (tenant: string) => store.ensureTenant(tenant, tenant, clock.now()),

    /**
     * On a tenant with no accounts: creates its owner and a first API token, and returns the token's
     * secret (the only time it exists in clear). Otherwise returns undefined.
     */
    async bootstrapOwner(tenant: string): Promise<{ account: Account; token: string } | undefined> {
      if ((await store.countAccounts(tenant)) > 0) return undefined;
      const account: Account = {
        id: ids.uuid(),
        tenant,
        name: 'owner',
        kind: 'user',
        role: 'owner',
        roleFleet: null,
        status: 'active',
        description: null,
        createdAt: clock.now(),
        createdBy: null,
        idpIssuer: null,
        idpSubject: null,
      };
      await store.insertAccount(account);
      const { secret } = await insertToken(account, 'initial-admin-token', {
        expiresAt: null,
        scope: null,
        createdBy: null,
      });
      return { account, token: secret };
    },

    /** Resolves a bearer token to its principal, or throws ERR_AUTH_INVALID_TOKEN. */
    async authenticate(secret: string): Promise<AuthPrincipal> {
      const invalid = () => new AppError('ERR_AUTH_INVALID_TOKEN');
      if (!TOKEN_SHAPE.test(secret)) throw invalid();
      const hash = hashToken(secret);
      const rec = await store.findTokenByHash(hash);
      // The lookup is by hash; compare again in constant time so timing says nothing about near misses.
      if (!rec || !sameHash(rec.hash, hash)) throw invalid();
      const now = clock.now();
      if (rec.revokedAt !== null || (rec.expiresAt !== null && rec.expiresAt <= now)) throw invalid();
      const account = await store.getAccount(rec.accountId);
      if (!account || account.status !== 'active') throw invalid();
      // last-used time, written at most once a minute per token
      if ((touched.get(rec.id) ?? 0) + 60_000 <= now) {
        touched.set(rec.id, now);
        if (touched.size > 100_000) touched.clear();
        await store.touchToken(rec.id, now);
      }
      return {
        type: account.kind,
        id: account.id,
        tenant: account.tenant,
        role: account.role,
        name: account.name,
        tokenId: rec.id,
        // Only a token minted by an SSO sign-in with a second factor carries one (bulwark login --sso).
        mfa: rec.mfa === true,
        authMethod: 'token',
        boundaries: [
          ...accountBoundaries(account),
          ...(rec.scope ? [{ kind: 'token', ...rec.scope } satisfies Boundary] : []),
        ],
      };
    },

    // ---- tokens -------------------------------------------------------------------------------------

    async listTokens(actor: Actor, accountId: string) {
      const a = await getAccountIn(actor.tenant, accountId);
      return (await store.listTokens(a.id)).map(tokenView);
    },

    /** A personal access token for yourself, or a token for a service account; shown once. */
    async issueToken(
      actor: Actor,
      accountId: string,
      input: { name: string; expiresInDays?: number; scope?: TokenScope },
    ): Promise<{ token: TokenView; secret: string }> {
      const a = await getAccountIn(actor.tenant, accountId);
      if (a.id !== actor.id && a.kind !== 'service') throw new AppError('ERR_IAM_TOKEN_OWNER');
      if (a.status !== 'active') throw new AppError('ERR_AUTH_ACCOUNT_DISABLED');
      const days = input.expiresInDays ?? options.tokenDefaultDays;
      if (!Number.isInteger(days) || days < 1 || days > options.tokenMaxDays)
        throw new AppError('ERR_IAM_TOKEN_LIFETIME');
      const scope = checkScope(input.scope);
      const requested = principalOf(a, { boundaries: scope ? [{ kind: 'token', ...scope }] : [] });
      requireCovers(actor, requested, 'This token');
      const { secret, record } = await insertToken(a, input.name, {
        expiresAt: clock.now() + days * DAY,
        scope,
        createdBy: actor.id,
      });
      await audit.record({
        tenant: a.tenant,
        actor: actorOf(actor),
        action: 'token.create',
        target: { type: 'token', id: record.id },
        outcome: 'success',
        details: { account: a.id, name: input.name, scope, expiresAt: record.expiresAt },
      });
      return { token: tokenView(record), secret };
    },

    async revokeToken(actor: Actor, accountId: string, tokenId: string) {
      const a = await getAccountIn(actor.tenant, accountId);
      const t = await store.getToken(tokenId);
      if (!t || t.accountId !== a.id) throw new AppError('ERR_IAM_TOKEN_NOT_FOUND');
      await store.revokeToken(t.id, clock.now());
      await audit.record({
        tenant: a.tenant,
        actor: actorOf(actor),
        action: 'token.revoke',
        target: { type: 'token', id: t.id },
        outcome: 'success',
        details: { account: a.id },
      });
      return tokenView((await store.getToken(t.id)) ?? t);
    },

    // ---- accounts -----------------------------------------------------------------------------------

    async listAccounts(tenant: string, kind: AccountKind) {
      const all = await store.listAccounts(tenant, kind);
      const out: AccountView[] = [];
      for (const a of all) {
        const c = kind === 'user' ? await store.getCredentials(a.id) : undefined;
        out.push(accountView(a, kind === 'user' ? c?.totpSecret != null : undefined));
      }
      return out;
    },

    async getAccount(tenant: string, id: string) {
      const a = await getAccountIn(tenant, id);
      const c = await store.getCredentials(a.id);
      return accountView(a, a.kind === 'user' ? c?.totpSecret != null : undefined);
    },

    /** Creates a person; returns a one-time setup token with which they choose their own password. */
    async createAccount(
      actor: Actor,
      kind: AccountKind,
      input: { name: string; role: string; fleet?: string; description?: string },
    ): Promise<{ account: AccountView; setupToken?: string }> {
      if (!ACCOUNT_NAME.test(input.name))
        throw new AppError('ERR_VALIDATION', 'name: 1-128 letters, digits, `.`, `_`, `@`, `+`, `-`');
      checkRoleAssignment(actor.tenant, input.role, input.fleet);
      const account: Account = {
        id: ids.uuid(),
        tenant: actor.tenant,
        name: input.name,
        kind,
        role: input.role,
        roleFleet: input.fleet ?? null,
        status: 'active',
        description: input.description ?? null,
        createdAt: clock.now(),
        createdBy: actor.id,
        idpIssuer: null,
        idpSubject: null,
      };
      requireCovers(actor, principalOf(account), kind === 'user' ? 'This user' : 'This service account');
      if (await store.findAccountByName(actor.tenant, input.name))
        throw new AppError('ERR_IAM_ACCOUNT_EXISTS');
      await store.insertAccount(account);
      await audit.record({
        tenant: actor.tenant,
        actor: actorOf(actor),
        action: kind === 'user' ? 'account.create' : 'service-account.create',
        target: { type: 'account', id: account.id },
        outcome: 'success',
        details: { name: account.name, role: account.role, fleet: account.roleFleet },
      });
      if (kind === 'service') return { account: accountView(account) };
      const setupToken = await signIn.issuePasswordToken(account, 'setup');
      return { account: accountView(account, false), setupToken };
    },

    async setRole(actor: Actor, id: string, role: string, fleet: string | null) {
      const a = await getAccountIn(actor.tenant, id);
      mayManage(actor, a, 'Changing this account');
      checkRoleAssignment(actor.tenant, role, fleet);
      const next: Account = { ...a, role, roleFleet: fleet };
      requireCovers(actor, principalOf(next), 'This role');
      if (a.role === 'owner' && (role !== 'owner' || fleet !== null)) await keepsAnOwner(a);
      await store.updateAccount(a.id, { role, roleFleet: fleet });
      await audit.record({
        tenant: a.tenant,
        actor: actorOf(actor),
        action: 'account.set-role',
        target: { type: 'account', id: a.id },
        outcome: 'success',
        details: { from: { role: a.role, fleet: a.roleFleet }, to: { role, fleet } },
      });
      return accountView(next);
    },

    async setStatus(actor: Actor, id: string, status: 'active' | 'disabled') {
      const a = await getAccountIn(actor.tenant, id);
      mayManage(actor, a, 'Changing this account');
      if (status === 'disabled') await keepsAnOwner(a);
      await store.updateAccount(a.id, { status });
      if (status === 'disabled') await store.revokeSessionsOf(a.id, clock.now());
      await audit.record({
        tenant: a.tenant,
        actor: actorOf(actor),
        action: status === 'disabled' ? 'account.disable' : 'account.enable',
        target: { type: 'account', id: a.id },
        outcome: 'success',
      });
      return accountView({ ...a, status });
    },

    /** Deletes a service account: its tokens stop working at once. */
    async deleteServiceAccount(actor: Actor, id: string) {
      const a = await getAccountIn(actor.tenant, id);
      if (a.kind !== 'service') throw new AppError('ERR_IAM_ACCOUNT_NOT_FOUND');
      mayManage(actor, a, 'Deleting this service account');
      await store.revokeTokensOf(a.id, clock.now());
      await store.deleteAccount(a.id);
      await audit.record({
        tenant: a.tenant,
        actor: actorOf(actor),
        action: 'service-account.delete',
        target: { type: 'account', id: a.id },
        outcome: 'success',
        details: { name: a.name },
      });
    },

    /** Admin-initiated reset: a one-time token; the person's sessions end when it is used. */
    async startPasswordReset(actor: Actor, id: string) {
      const a = await getAccountIn(actor.tenant, id);
      if (a.kind !== 'user') throw new AppError('ERR_IAM_ACCOUNT_NOT_FOUND');
      mayManage(actor, a, 'Resetting this password');
      const token = await signIn.issuePasswordToken(a, 'reset');
      await audit.record({
        tenant: a.tenant,
        actor: actorOf(actor),
        action: 'password.reset-start',
        target: { type: 'account', id: a.id },
        outcome: 'success',
      });
      return token;
    },

    async resetMfa(actor: Actor, id: string) {
      const a = await getAccountIn(actor.tenant, id);
      mayManage(actor, a, 'Resetting MFA');
      await store.updateCredentials(a.id, { totpSecret: null, totpPending: null, totpLastStep: null });
      await store.replaceRecoveryCodes(a.id, []);
      await store.revokeSessionsOf(a.id, clock.now());
      await audit.record({
        tenant: a.tenant,
        actor: actorOf(actor),
        action: 'mfa.reset',
        target: { type: 'account', id: a.id },
        outcome: 'success',
      });
    },

    /** The principal of an active service account of the tenant (webhook owners), or undefined. */
    async servicePrincipal(tenant: string, id: string): Promise<Principal | undefined> {
      const a = await store.getAccount(id);
      if (!a || a.tenant !== tenant || a.kind !== 'service' || a.status !== 'active') return undefined;
      return principalOf(a);
    },

    /** Throws ERR_IAM_ESCALATION unless the actor holds everything the account holds. */
    async requireCoversAccount(actor: Actor, id: string, what: string) {
      const a = await getAccountIn(actor.tenant, id);
      requireCovers(actor, principalOf(a), what);
    },

    // ---- roles --------------------------------------------------------------------------------------

    listRoles(tenant: string): RoleView[] {
      const builtin = Object.entries(rolePolicies).map(([name, d]) => ({
        name,
        builtin: true,
        description: d.description ?? null,
        statements: d.statements,
      }));
      const custom = [...customRoles.values()]
        .filter((r) => r.role.tenant === tenant)
        .map(({ role: r }) => customRoleView(r));
      return [...builtin, ...custom];
    },

    async createRole(actor: Actor, input: { name: string; description?: string; statements: unknown }) {
      if (!ROLE_NAME.test(input.name)) throw new AppError('ERR_IAM_ROLE_INVALID', 'Invalid role name');
      if (roleExists(actor.tenant, input.name)) throw new AppError('ERR_IAM_ROLE_EXISTS');
      const doc = roleDocument(actor.tenant, input.name, input.description ?? null, input.statements);
      // The role's holders would get what it says: the creator must hold all of it.
      requireCoversRole(actor, input.name, doc, 'This role');
      const role = await store.insertRole({
        tenant: actor.tenant,
        name: input.name,
        description: input.description ?? null,
        statements: doc.statements,
        createdAt: clock.now(),
        createdBy: actor.id,
      });
      await rolesChanged();
      await audit.record({
        tenant: actor.tenant,
        actor: actorOf(actor),
        action: 'role.create',
        target: { type: 'role', id: role.name },
        outcome: 'success',
        details: { version: role.version, statements: role.statements },
      });
      return customRoleView(role);
    },

    /**
     * Replaces a custom role's statements (and description, when given). Only with permissions the
     * caller holds, both those the role grants now and those it will grant; never a role the caller
     * holds itself; never a built-in role. Holders get the new permissions on their next request.
     */
    async updateRole(
      actor: Actor,
      name: string,
      input: { description?: string | null; statements: unknown; expectedVersion?: number },
    ) {
      if (isBuiltinRole(name)) throw new AppError('ERR_IAM_ROLE_INVALID', 'Built-in roles cannot be changed');
      await refreshRoles(); // another node may have changed it a moment ago
      const current = customRoles.get(roleKey(actor.tenant, name));
      if (!current) throw new AppError('ERR_IAM_ROLE_NOT_FOUND');
      if (actor.role === name)
        throw new AppError('ERR_IAM_SELF_CHANGE', 'You cannot change a role you hold yourself');
      if (input.expectedVersion !== undefined && input.expectedVersion !== current.role.version)
        throw new AppError('ERR_IAM_ROLE_CONFLICT', undefined, {
          detail: `expected version ${input.expectedVersion}, the role is at ${current.role.version}`,
        });
      const description = input.description === undefined ? current.role.description : input.description;
      const doc = roleDocument(actor.tenant, name, description, input.statements);
      // Changing what holders may do is granting (the new statements) and taking away (the old ones):
      // the caller must hold both, like changing an account's role needs holding what it holds.
      requireCoversRole(actor, name, current.document, 'Changing this role');
      requireCoversRole(actor, name, doc, 'This role');
      const updated = await store.updateRole(actor.tenant, name, current.role.version, {
        description,
        statements: doc.statements,
        at: clock.now(),
        by: actor.id,
      });
      if (!updated) throw new AppError('ERR_IAM_ROLE_CONFLICT', undefined, { detail: 'changed meanwhile' });
      await rolesChanged();
      await audit.record({
        tenant: actor.tenant,
        actor: actorOf(actor),
        action: 'role.update',
        target: { type: 'role', id: name },
        outcome: 'success',
        details: {
          version: updated.version,
          from: { version: current.role.version, statements: current.role.statements },
          statements: updated.statements,
        },
      });
      return customRoleView(updated);
    },

    async roleVersions(tenant: string, name: string): Promise<RoleVersionView[]> {
      if (isBuiltinRole(name)) throw new AppError('ERR_IAM_ROLE_INVALID', 'Built-in roles have no versions');
      const versions = await store.listRoleVersions(tenant, name);
      if (versions.length === 0) throw new AppError('ERR_IAM_ROLE_NOT_FOUND');
      return versions.map(roleVersionView);
    },

    /** Called when this node changed a custom role; app.ts tells the other nodes. */
    onRolesChanged(listener: () => void): () => void {
      roleListeners.add(listener);
      return () => roleListeners.delete(listener);
    },

    async deleteRole(actor: Actor, name: string) {
      if (isBuiltinRole(name)) throw new AppError('ERR_IAM_ROLE_INVALID', 'Built-in roles cannot be deleted');
      if (!customRoles.has(roleKey(actor.tenant, name))) throw new AppError('ERR_IAM_ROLE_NOT_FOUND');
      const idp = await store.getIdp(actor.tenant);
      if (
        (await store.countWithRole(actor.tenant, name)) > 0 ||
        idp?.defaultRole === name ||
        idp?.roleMappings.some((m) => m.role === name)
      )
        throw new AppError('ERR_IAM_ROLE_IN_USE');
      await store.deleteRole(actor.tenant, name, clock.now(), actor.id);
      await rolesChanged();
      await audit.record({
        tenant: actor.tenant,
        actor: actorOf(actor),
        action: 'role.delete',
        target: { type: 'role', id: name },
        outcome: 'success',
      });
    },
  };
}
