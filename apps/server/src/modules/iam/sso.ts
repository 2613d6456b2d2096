// Single sign-on with the organisation's OpenID Connect provider, configured per tenant: authorization
// code flow with PKCE (S256), state and nonce, state bound to the browser by a cookie and usable once;
// the provider's groups claim maps to Bulwark roles; people are created just in time.
import { createHash } from 'node:crypto';
import { AppError } from '../../kernel/index.ts';
import type { Principal } from '../policy/index.ts';
import type { Account, IdpConfig, RoleMapping } from './model.ts';
import { hashToken, sameHash, type Actor, type IamCore } from './service.ts';
import type { NewSession, SignIn } from './signin.ts';

export interface IdpInput {
  issuer: string;
  clientId: string;
  /** Absent: keep the stored secret. null: public client (PKCE only). */
  clientSecret?: string | null;
  scopes?: string[];
  groupsClaim?: string;
  roleMappings: RoleMapping[];
  defaultRole?: string | null;
  enabled?: boolean;
}

export interface IdpView {
  issuer: string;
  clientId: string;
  hasClientSecret: boolean;
  scopes: readonly string[];
  groupsClaim: string;
  roleMappings: readonly RoleMapping[];
  defaultRole: string | null;
  enabled: boolean;
  redirectPath: string;
  updatedAt: string;
}

/** `amr` values (RFC 8176) that mean a second factor or a phishing-resistant one was used. */
const MFA_AMR = new Set(['mfa', 'otp', 'hwk', 'swk', 'sc', 'fpt', 'face', 'iris', 'retina', 'vbm']);

export type Sso = ReturnType<typeof createSso>;

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '127.0.0.1' || host === '[::1]' || host === '::1';
}

export function createSso(core: IamCore, signIn: SignIn) {
  const { store, clock, ids, audit, options, sealer } = core;

  const view = (c: IdpConfig): IdpView => ({
    issuer: c.issuer,
    clientId: c.clientId,
    hasClientSecret: c.clientSecretSealed !== null,
    scopes: c.scopes,
    groupsClaim: c.groupsClaim,
    roleMappings: c.roleMappings,
    defaultRole: c.defaultRole,
    enabled: c.enabled,
    redirectPath: `/auth/oidc/${c.tenant}/callback`,
    updatedAt: new Date(c.updatedAt).toISOString(),
  });

  const secretOf = async (c: IdpConfig) =>
    c.clientSecretSealed === null
      ? null
      : Buffer.from(await sealer.open(c.clientSecretSealed)).toString('utf8');

  const enabledIdp = async (tenant: string) => {
    const c = await store.getIdp(tenant);
    if (!c || !c.enabled || !core.oidc) throw new AppError('ERR_AUTH_OIDC_NOT_CONFIGURED');
    return c;
  };

  const denied = async (
    tenant: string,
    reason: string,
    source: string,
    details: Record<string, unknown> = {},
  ) =>
    audit.record({
      tenant,
      actor: { type: 'anonymous', id: 'sso' },
      action: 'auth.sso',
      outcome: 'denied',
      reason,
      source,
      details,
    });

  /** The role a set of groups maps to: the first mapping in configuration order wins. */
  const roleFor = (
    c: IdpConfig,
    groups: readonly string[],
  ): { role: string; fleet: string | null } | undefined => {
    for (const m of c.roleMappings)
      if (groups.includes(m.group)) return { role: m.role, fleet: m.fleet ?? null };
    return c.defaultRole ? { role: c.defaultRole, fleet: null } : undefined;
  };

  const uniqueName = async (tenant: string, claims: Record<string, unknown>, subject: string) => {
    const raw = [claims.preferred_username, claims.email, `sso-${subject}`].find(
      (v): v is string => typeof v === 'string' && v.length > 0,
    );
    let name = (raw ?? `sso-${subject}`)
      .replace(/[^A-Za-z0-9._@+-]/g, '-')
      .replace(/^[^A-Za-z0-9]+/, '')
      .slice(0, 100);
    if (!name) name = 'sso-user';
    if (await store.findAccountByName(tenant, name))
      name = `${name}~${createHash('sha256').update(subject).digest('hex').slice(0, 8)}`;
    return name;
  };

  return {
    async getIdp(tenant: string): Promise<IdpView | null> {
      const c = await store.getIdp(tenant);
      return c ? view(c) : null;
    },

    async putIdp(actor: Actor, input: IdpInput): Promise<IdpView> {
      const bad = (m: string) => new AppError('ERR_IAM_IDP_INVALID', m);
      let issuer: URL;
      try {
        issuer = new URL(input.issuer);
      } catch {
        throw bad('issuer: not a URL');
      }
      const insecureOk =
        options.allowInsecureIdp && issuer.protocol === 'http:' && isLoopback(issuer.hostname);
      if (issuer.protocol !== 'https:' && !insecureOk) throw bad('issuer: must be https');
      if (issuer.username || issuer.password || issuer.search || issuer.hash)
        throw bad('issuer: no credentials, query or fragment');
      // Whoever configures sign-in hands out every mapped role: they must hold each of them.
      const assignments = [
        ...input.roleMappings.map((m) => ({ role: m.role, fleet: m.fleet ?? null })),
        ...(input.defaultRole ? [{ role: input.defaultRole, fleet: null }] : []),
      ];
      for (const { role, fleet } of assignments) {
        if (!core.roleExists(actor.tenant, role)) throw bad(`no role '${role}'`);
        const requested: Principal = {
          type: 'user',
          id: '*sso-user*',
          tenant: actor.tenant,
          role,
          boundaries: fleet ? [{ kind: 'role-scope', fleet }] : [],
        };
        core.requireCovers(actor, requested, `Mapping to role '${role}'`);
      }
      const existing = await store.getIdp(actor.tenant);
      const clientSecretSealed =
        input.clientSecret === undefined
          ? (existing?.clientSecretSealed ?? null)
          : input.clientSecret === null
            ? null
            : await sealer.seal(Buffer.from(input.clientSecret, 'utf8'));
      const scopes = input.scopes ?? ['openid', 'profile', 'email', 'groups'];
      if (!scopes.includes('openid')) throw bad('scopes: must include openid');
      const c: IdpConfig = {
        tenant: actor.tenant,
        issuer: input.issuer.replace(/\/$/, '') === input.issuer ? input.issuer : input.issuer,
        clientId: input.clientId,
        clientSecretSealed,
        scopes,
        groupsClaim: input.groupsClaim ?? 'groups',
        roleMappings: input.roleMappings,
        defaultRole: input.defaultRole ?? null,
        enabled: input.enabled ?? true,
        updatedAt: clock.now(),
        updatedBy: actor.id,
      };
      await store.putIdp(c);
      await audit.record({
        tenant: actor.tenant,
        actor: core.actorOf(actor),
        action: 'idp.configure',
        target: { type: 'idp', id: 'oidc' },
        outcome: 'success',
        details: {
          issuer: c.issuer,
          clientId: c.clientId,
          roleMappings: c.roleMappings,
          defaultRole: c.defaultRole,
          enabled: c.enabled,
        },
      });
      return view(c);
    },

    async deleteIdp(actor: Actor) {
      if (!(await store.deleteIdp(actor.tenant))) throw new AppError('ERR_AUTH_OIDC_NOT_CONFIGURED');
      await audit.record({
        tenant: actor.tenant,
        actor: core.actorOf(actor),
        action: 'idp.delete',
        target: { type: 'idp', id: 'oidc' },
        outcome: 'success',
      });
    },

    /** Starts a sign-in: where to send the browser, and the value of the cookie binding it. */
    async oidcStart(tenant: string, origin: string): Promise<{ redirect: string; binding: string }> {
      const c = await enabledIdp(tenant);
      const state = ids.token(32);
      const nonce = ids.token(32);
      const codeVerifier = ids.token(32); // 43 characters of base64url: RFC 7636 §4.1
      const binding = ids.token(32);
      const now = clock.now();
      await store.insertOidcPending({
        stateHash: hashToken(state),
        tenant,
        bindingHash: hashToken(binding),
        codeVerifier,
        nonce,
        createdAt: now,
        expiresAt: now + options.oidcPendingMs,
      });
      const codeChallenge = createHash('sha256').update(codeVerifier).digest('base64url');
      try {
        const redirect = await core.oidc!.authorizationUrl(c, await secretOf(c), {
          redirectUri: `${origin}/auth/oidc/${tenant}/callback`,
          state,
          nonce,
          codeChallenge,
        });
        return { redirect, binding };
      } catch (err) {
        if (err instanceof AppError) throw err;
        throw new AppError('ERR_AUTH_OIDC_DISCOVERY', undefined, { detail: String(err), cause: err });
      }
    },

    /** Completes a sign-in from the provider's redirect; returns a new console session. */
    async oidcCallback(
      tenant: string,
      input: {
        currentUrl: string;
        origin: string;
        binding: string | undefined;
        source: string;
        userAgent?: string;
      },
    ): Promise<NewSession> {
      const c = await enabledIdp(tenant);
      const url = new URL(input.currentUrl);
      const state = url.searchParams.get('state');
      const pending = state ? await store.takeOidcPending(hashToken(state)) : undefined;
      const now = clock.now();
      if (
        !state ||
        !pending ||
        pending.tenant !== tenant ||
        pending.expiresAt <= now ||
        !input.binding ||
        !sameHash(pending.bindingHash, hashToken(input.binding))
      ) {
        await denied(
          tenant,
          !pending ? 'unknown, used or expired state' : 'state not bound to this browser',
          input.source,
        );
        throw new AppError('ERR_AUTH_OIDC_STATE');
      }
      if (url.searchParams.has('error')) {
        await denied(tenant, `provider error: ${url.searchParams.get('error')?.slice(0, 64)}`, input.source);
        throw new AppError('ERR_AUTH_OIDC_FAILED');
      }
      let claims: Record<string, unknown>;
      try {
        claims = await core.oidc!.callback(c, await secretOf(c), {
          currentUrl: input.currentUrl,
          redirectUri: `${input.origin}/auth/oidc/${tenant}/callback`,
          state,
          nonce: pending.nonce,
          codeVerifier: pending.codeVerifier,
        });
      } catch (err) {
        const reason = err instanceof Error ? `${err.name}: ${err.message}`.slice(0, 300) : 'rejected';
        await denied(tenant, reason, input.source);
        if (err instanceof AppError) throw err;
        throw new AppError('ERR_AUTH_OIDC_FAILED', undefined, { detail: reason, cause: err });
      }
      const subject = typeof claims.sub === 'string' ? claims.sub : '';
      if (!subject) {
        await denied(tenant, 'no subject', input.source);
        throw new AppError('ERR_AUTH_OIDC_FAILED');
      }
      const rawGroups = claims[c.groupsClaim];
      const groups = Array.isArray(rawGroups)
        ? rawGroups.filter((g): g is string => typeof g === 'string')
        : [];
      const assignment = roleFor(c, groups);
      if (!assignment) {
        await denied(
          tenant,
          rawGroups === undefined ? `no '${c.groupsClaim}' claim` : 'no group maps to a role',
          input.source,
          {
            subject,
            groups,
          },
        );
        throw new AppError('ERR_AUTH_OIDC_NO_ROLE');
      }
      let account: Account | undefined = await store.findAccountByIdp(tenant, c.issuer, subject);
      if (!account) {
        account = {
          id: ids.uuid(),
          tenant,
          name: await uniqueName(tenant, claims, subject),
          kind: 'user',
          role: assignment.role,
          roleFleet: assignment.fleet,
          status: 'active',
          description: null,
          createdAt: now,
          createdBy: null,
          idpIssuer: c.issuer,
          idpSubject: subject,
        };
        await store.insertAccount(account);
        await audit.record({
          tenant,
          actor: { type: 'system', id: 'sso' },
          action: 'account.create-jit',
          target: { type: 'account', id: account.id },
          outcome: 'success',
          details: {
            name: account.name,
            issuer: c.issuer,
            role: assignment.role,
            fleet: assignment.fleet,
            groups,
          },
        });
      } else if (account.role !== assignment.role || account.roleFleet !== assignment.fleet) {
        // The provider's groups are the source of truth for SSO people: their role follows them.
        await store.updateAccount(account.id, { role: assignment.role, roleFleet: assignment.fleet });
        await audit.record({
          tenant,
          actor: { type: 'system', id: 'sso' },
          action: 'account.set-role',
          target: { type: 'account', id: account.id },
          outcome: 'success',
          details: {
            from: { role: account.role, fleet: account.roleFleet },
            to: assignment,
            groups,
          },
        });
        account = { ...account, role: assignment.role, roleFleet: assignment.fleet };
      }
      if (account.status !== 'active') {
        await denied(tenant, 'account disabled', input.source, { account: account.id });
        throw new AppError('ERR_AUTH_ACCOUNT_DISABLED');
      }
      const amr = Array.isArray(claims.amr)
        ? claims.amr.filter((v): v is string => typeof v === 'string')
        : [];
      const mfa = amr.some((v) => MFA_AMR.has(v));
      const s = await signIn.createSession(account, 'oidc', mfa, input);
      await audit.record({
        tenant,
        actor: { type: 'user', id: account.id },
        action: 'auth.login',
        target: { type: 'session', id: s.session.id.slice(0, 16) },
        outcome: 'success',
        source: input.source,
        details: { method: 'oidc', issuer: c.issuer, mfa, groups },
      });
      return s;
    },
  };
}
