// Single sign-on with the organisation's OpenID Connect provider, configured per tenant: authorization
// code flow with PKCE (S256), state and nonce, state bound to the browser by a cookie and usable once;
// the provider's groups claim maps to Bulwark roles; people are created just in time.
import { createHash, timingSafeEqual } from 'node:crypto';
import { AppError } from '../../kernel/index.ts';
import type { Principal } from '../policy/index.ts';
import type { Account, CliSsoRequest, IdpConfig, OidcPending, RoleMapping } from './model.ts';
import { hashToken, sameHash, type Actor, type IamCore, type TokenView } from './service.ts';
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

/** How an SSO callback ends: a console session, or a redirect to the CLI that started the sign-in. */
export type OidcOutcome = { kind: 'session'; session: NewSession } | { kind: 'cli'; redirect: string };

export interface CliStartInput {
  tenant: string;
  /** The CLI's loopback listener: http://127.0.0.1:<port>/<path> or http://[::1]:<port>/<path>. */
  redirectUri: string;
  /** base64url(SHA-256(verifier)) of a verifier only the CLI knows (RFC 7636 S256). */
  codeChallenge: string;
  /** Given back to the CLI on the redirect. */
  state: string;
  /** Scheme, host and port the platform was addressed at: the browser link is built on it. */
  origin: string;
}

export interface CliToken {
  token: TokenView;
  secret: string;
  account: { id: string; name: string; tenant: string; role: string; fleet: string | null };
  mfa: boolean;
}

const CLI_CODE_PREFIX = 'bwc_';
const CLI_CODE_SHAPE = /^bwc_[A-Za-z0-9_-]{43}$/;
const CLI_HANDLE_SHAPE = /^[A-Za-z0-9_-]{43}$/;
/** RFC 7636 §4.2: BASE64URL(SHA256(verifier)) is 43 characters. */
const CHALLENGE_SHAPE = /^[A-Za-z0-9_-]{43}$/;
/** RFC 7636 §4.1: 43-128 unreserved characters. */
const VERIFIER_SHAPE = /^[A-Za-z0-9._~-]{43,128}$/;
const CLI_STATE_SHAPE = /^[A-Za-z0-9._~-]{16,128}$/;

/**
 * RFC 8252 §7.3: loopback IP literals only, over http (nothing else can listen there for the CLI), any
 * port (§7.3: ephemeral, chosen at the time of the request), no user info, query or fragment.
 * `localhost` is refused (§8.3: it may resolve elsewhere, and it is not required to be loopback).
 */
export function checkCliRedirect(raw: string): URL {
  const bad = (why: string) => new AppError('ERR_AUTH_CLI_REDIRECT', undefined, { detail: why });
  if (raw.length > 512) throw bad('too long');
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw bad('not a URL');
  }
  if (u.protocol !== 'http:') throw bad('scheme must be http');
  if (u.hostname !== '127.0.0.1' && u.hostname !== '[::1]') throw bad(`host ${u.hostname} is not loopback`);
  // The URL parser normalises many spellings (127.1, 0x7f.0.0.1, 2130706433) to 127.0.0.1: only the
  // canonical one, as sent, is accepted, so what the platform checks is what the browser will use.
  const authority = raw.slice(raw.indexOf('//') + 2).split(/[/?#]/)[0] ?? '';
  if (authority !== u.host) throw bad('host must be written 127.0.0.1 or [::1] with a port');
  if (u.port === '') throw bad('port missing');
  if (u.username || u.password) throw bad('user info');
  if (u.search || u.hash || raw.includes('?') || raw.includes('#')) throw bad('query or fragment');
  return u;
}

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

  type CallbackInput = {
    currentUrl: string;
    origin: string;
    binding: string | undefined;
    source: string;
    userAgent?: string;
  };

  /**
   * Everything after the state check: the provider's answer, the ID token, the role the groups map to,
   * the account (created just in time, its role following the groups). Throws on every refusal, audited.
   */
  const signedIn = async (
    c: IdpConfig,
    tenant: string,
    url: URL,
    state: string,
    pending: OidcPending,
    input: CallbackInput,
    now: number,
  ): Promise<{ account: Account; mfa: boolean; groups: string[] }> => {
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
    const amr = Array.isArray(claims.amr) ? claims.amr.filter((v): v is string => typeof v === 'string') : [];
    return { account, mfa: amr.some((v) => MFA_AMR.has(v)), groups };
  };

  /** The CLI's loopback address with the given parameters (its `state` always among them). */
  const toCli = (r: CliSsoRequest, params: Record<string, string>) => {
    const u = new URL(r.redirectUri);
    for (const [k, v] of Object.entries({ ...params, state: r.cliState })) u.searchParams.set(k, v);
    return u.toString();
  };

  const cliDenied = (tenant: string | null, reason: string, source: string) =>
    audit.record({
      tenant,
      actor: { type: 'anonymous', id: 'sso-cli' },
      action: 'auth.sso-cli',
      outcome: 'denied',
      reason,
      source,
    });

  const api = {
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

    /**
     * Starts a sign-in: where to send the browser, and the value of the cookie binding it. For a CLI
     * sign-in, `cliRequest` is the handle hash of the request the browser link named.
     */
    async oidcStart(
      tenant: string,
      origin: string,
      cliRequest?: string,
    ): Promise<{ redirect: string; binding: string }> {
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
        cliRequest: cliRequest ?? null,
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

    /**
     * Completes a sign-in from the provider's redirect: a new console session, or for a CLI sign-in, the
     * redirect that hands the CLI its one-time code (or the reason it was refused).
     */
    async oidcCallback(
      tenant: string,
      input: {
        currentUrl: string;
        origin: string;
        binding: string | undefined;
        source: string;
        userAgent?: string;
      },
    ): Promise<OidcOutcome> {
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
      const cli = pending.cliRequest ? await store.getCliRequest(pending.cliRequest) : undefined;
      if (pending.cliRequest && (!cli || cli.tenant !== tenant)) {
        await denied(tenant, 'CLI sign-in request gone', input.source);
        throw new AppError('ERR_AUTH_CLI_REQUEST');
      }
      let result: { account: Account; mfa: boolean; groups: string[] };
      try {
        result = await signedIn(c, tenant, url, state, pending, input, now);
        // A token cannot be limited to enrolling a second factor the way a session is: refuse instead.
        if (cli && !result.mfa && (await signIn.mfaRequired(result.account))) {
          await denied(tenant, 'second factor required, the provider asserted none', input.source, {
            account: result.account.id,
          });
          throw new AppError('ERR_AUTH_MFA_REQUIRED');
        }
      } catch (err) {
        // The CLI is told why (it waits on its loopback listener), rather than the browser alone.
        if (cli && err instanceof AppError) return { kind: 'cli', redirect: toCli(cli, { error: err.code }) };
        throw err;
      }
      const { account, mfa, groups } = result;
      if (cli) {
        const code = `${CLI_CODE_PREFIX}${ids.token(32)}`;
        const stored = await store.setCliCode(cli.handleHash, {
          codeHash: hashToken(code),
          accountId: account.id,
          mfa,
          codeExpiresAt: now + options.cliCodeMs,
        });
        if (!stored) {
          await denied(tenant, 'CLI sign-in already completed', input.source);
          return { kind: 'cli', redirect: toCli(cli, { error: 'ERR_AUTH_CLI_REQUEST' }) };
        }
        return { kind: 'cli', redirect: toCli(cli, { code }) };
      }
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
      return { kind: 'session', session: s };
    },

    /**
     * `bulwark login --sso`, step 1 (the CLI, unauthenticated): registers a sign-in that will end at the
     * CLI's loopback listener, bound to the CLI's PKCE challenge. Returns the link to open in a browser.
     */
    async cliStart(input: CliStartInput): Promise<{ browserUrl: string; expiresAt: string }> {
      checkCliRedirect(input.redirectUri);
      if (!CHALLENGE_SHAPE.test(input.codeChallenge))
        throw new AppError('ERR_VALIDATION', 'codeChallenge: base64url of a SHA-256 (43 characters)');
      if (!CLI_STATE_SHAPE.test(input.state))
        throw new AppError('ERR_VALIDATION', 'state: 16-128 unreserved characters');
      await enabledIdp(input.tenant);
      const handle = ids.token(32);
      const now = clock.now();
      const expiresAt = now + options.oidcPendingMs;
      await store.insertCliRequest(
        {
          handleHash: hashToken(handle),
          tenant: input.tenant,
          redirectUri: input.redirectUri,
          codeChallenge: input.codeChallenge,
          cliState: input.state,
          createdAt: now,
          expiresAt,
          startedAt: null,
          codeHash: null,
          accountId: null,
          mfa: false,
          codeExpiresAt: null,
          usedAt: null,
        },
        now,
      );
      return {
        browserUrl: `${input.origin}/auth/oidc/${input.tenant}/cli/${handle}`,
        expiresAt: new Date(expiresAt).toISOString(),
      };
    },

    /**
     * Step 2 (the browser): the link is usable once, while it is valid; it binds the browser (cookie) and
     * sends it to the identity provider, like a console sign-in.
     */
    async cliBrowserStart(
      tenant: string,
      handle: string,
      origin: string,
      source: string,
    ): Promise<{ redirect: string; binding: string }> {
      const r = CLI_HANDLE_SHAPE.test(handle)
        ? await store.startCliRequest(hashToken(handle), clock.now())
        : undefined;
      if (!r || r.tenant !== tenant) {
        await cliDenied(tenant, 'unknown, used or expired sign-in link', source);
        throw new AppError('ERR_AUTH_CLI_REQUEST');
      }
      return api.oidcStart(tenant, origin, r.handleHash);
    },

    /**
     * Step 4 (the CLI, unauthenticated): the one-time code and the verifier of the challenge the sign-in
     * started with, for a personal token of `cliTokenMs`. The code is spent by any attempt.
     */
    async cliExchange(input: {
      code: string;
      codeVerifier: string;
      source: string;
      userAgent?: string;
    }): Promise<CliToken> {
      const now = clock.now();
      const r = CLI_CODE_SHAPE.test(input.code)
        ? await store.useCliCode(hashToken(input.code), now)
        : undefined;
      if (!r || r.accountId === null) {
        // A code used a second time is a replay: audited in its tenant. An unknown one has no tenant.
        const known = CLI_CODE_SHAPE.test(input.code)
          ? await store.findCliCode(hashToken(input.code))
          : undefined;
        await cliDenied(known?.tenant ?? null, known ? 'code already used' : 'unknown code', input.source);
        throw new AppError('ERR_AUTH_CLI_CODE_INVALID');
      }
      const deny = async (reason: string, code: 'ERR_AUTH_CLI_CODE_EXPIRED' | 'ERR_AUTH_CLI_VERIFIER') => {
        await cliDenied(r.tenant, reason, input.source);
        throw new AppError(code);
      };
      if (r.codeExpiresAt === null || r.codeExpiresAt <= now)
        await deny('code expired', 'ERR_AUTH_CLI_CODE_EXPIRED');
      const challenge = VERIFIER_SHAPE.test(input.codeVerifier)
        ? createHash('sha256').update(input.codeVerifier).digest('base64url')
        : '';
      const want = Buffer.from(r.codeChallenge);
      const got = Buffer.from(challenge);
      if (got.length !== want.length || !timingSafeEqual(got, want))
        await deny('verifier does not match the challenge', 'ERR_AUTH_CLI_VERIFIER');
      const account = await store.getAccount(r.accountId);
      if (!account || account.tenant !== r.tenant || account.status !== 'active') {
        await cliDenied(r.tenant, 'account disabled', input.source);
        throw new AppError('ERR_AUTH_ACCOUNT_DISABLED');
      }
      const { secret, record } = await core.insertToken(account, 'cli-sso', {
        expiresAt: now + options.cliTokenMs,
        scope: null,
        createdBy: account.id,
        mfa: r.mfa,
      });
      await audit.record({
        tenant: account.tenant,
        actor: { type: 'user', id: account.id },
        action: 'auth.login',
        target: { type: 'token', id: record.id },
        outcome: 'success',
        source: input.source,
        details: { method: 'oidc-cli', mfa: r.mfa, expiresAt: record.expiresAt },
      });
      return {
        token: core.tokenView(record),
        secret,
        account: {
          id: account.id,
          name: account.name,
          tenant: account.tenant,
          role: account.role,
          fleet: account.roleFleet,
        },
        mfa: r.mfa,
      };
    },
  };
  return api;
}
