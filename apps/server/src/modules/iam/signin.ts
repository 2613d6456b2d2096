// Local accounts and console sessions: passwords (scrypt), TOTP with recovery codes, lockout with
// backoff, password setup/reset tokens, MFA enforcement per tenant and role, sessions with idle and
// absolute timeouts and a CSRF token derived from the session secret.
import { createHmac } from 'node:crypto';
import { AppError } from '../../kernel/index.ts';
import type { Boundary } from '../policy/index.ts';
import type { Account, SecuritySettings, SessionRecord } from './model.ts';
import { checkPasswordPolicy, hashPassword, verifyPassword } from './password.ts';
import { otpauthUri, verifyTotp } from './totp.ts';
import { hashToken, sameHash, type Actor, type AuthPrincipal, type IamCore } from './service.ts';

const SESSION_PREFIX = 'bws_';
const SESSION_SHAPE = /^bws_[A-Za-z0-9_-]{43}$/;
const PASSWORD_TOKEN_SHAPE = /^bwp_[A-Za-z0-9_-]{43}$/;
const RECOVERY_CODES = 10;

/** While a person who must use MFA has none, their session may only enroll it. */
export const MFA_ENROLLMENT_BOUNDARY: Boundary = {
  kind: 'mfa-enrollment',
  selfOnly: true,
  actions: ['accounts:read', 'tokens:read', 'credentials:write', 'sessions:read', 'sessions:write'],
};

export interface LoginInput {
  tenant: string;
  username: string;
  password: string;
  code?: string;
  recoveryCode?: string;
  source: string;
  userAgent?: string;
}

export interface NewSession {
  /** Cookie value; exists in clear only in this answer. */
  secret: string;
  csrfToken: string;
  session: SessionRecord;
  account: Account;
  maxAgeSeconds: number;
}

export interface SessionView {
  account: { id: string; name: string; role: string; fleet: string | null; kind: string };
  authMethod: string;
  mfa: boolean;
  mfaRequired: boolean;
  createdAt: string;
  expiresAt: string;
  idleExpiresAt: string;
  csrfToken?: string;
}

export type SignIn = ReturnType<typeof createSignIn>;

/** CSRF synchronizer token bound to the session: only the holder of the cookie value can compute it. */
export function csrfFor(sessionSecret: string): string {
  return createHmac('sha256', sessionSecret).update('bulwark-csrf-v1').digest('base64url');
}

const normaliseRecovery = (code: string) => code.replace(/[\s-]/g, '').toLowerCase();

export function createSignIn(core: IamCore) {
  const { store, clock, ids, audit, options, sealer } = core;
  // Unknown user names cost the same scrypt work as known ones (no timing oracle for account existence).
  let dummyHash: Promise<string> | undefined;
  const dummy = () => (dummyHash ??= hashPassword('bulwark-dummy-password-0', options.scrypt));

  const settingsOf = async (tenant: string): Promise<SecuritySettings> =>
    (await store.getSettings(tenant)) ?? { tenant, mfaRequired: false, mfaRequiredRoles: [] };

  const mfaRequiredFor = (s: SecuritySettings, a: Account) =>
    a.kind === 'user' && (s.mfaRequired || s.mfaRequiredRoles.includes(a.role));

  const randomBytes = (n: number) => Buffer.from(ids.token(n), 'base64url');

  const fail = async (
    a: Account | undefined,
    input: { tenant: string; username: string; source: string },
    reason: string,
    code: 'ERR_AUTH_INVALID_CREDENTIALS' | 'ERR_AUTH_MFA_INVALID',
  ): Promise<never> => {
    let retryAfter: number | undefined;
    if (a) {
      const c = await store.getCredentials(a.id);
      const failures = (c?.failedLogins ?? 0) + 1;
      const over = failures - options.lockoutThreshold;
      const lockedUntil =
        over >= 0 ? clock.now() + Math.min(options.lockoutBaseMs * 2 ** over, options.lockoutMaxMs) : null;
      await store.updateCredentials(a.id, { failedLogins: failures, lockedUntil });
      if (lockedUntil !== null) retryAfter = Math.ceil((lockedUntil - clock.now()) / 1000);
    }
    await audit.record({
      tenant: a?.tenant ?? input.tenant,
      actor: a ? { type: 'user', id: a.id } : { type: 'anonymous', id: input.username.slice(0, 128) },
      action: 'auth.login',
      outcome: 'denied',
      reason: retryAfter !== undefined ? `${reason}; account locked for ${retryAfter} s` : reason,
      source: input.source,
      details: { method: 'password' },
    });
    throw new AppError(code);
  };

  const createSession = async (
    a: Account,
    method: 'session' | 'oidc',
    mfa: boolean,
    meta: { source: string; userAgent?: string | undefined },
  ): Promise<NewSession> => {
    const secret = `${SESSION_PREFIX}${ids.token(32)}`;
    const now = clock.now();
    const session: SessionRecord = {
      id: hashToken(secret),
      tenant: a.tenant,
      accountId: a.id,
      authMethod: method,
      mfa,
      createdAt: now,
      lastSeenAt: now,
      expiresAt: now + options.sessionAbsoluteMs,
      revokedAt: null,
      source: meta.source,
      userAgent: meta.userAgent?.slice(0, 256) ?? null,
    };
    await store.insertSession(session);
    return {
      secret,
      csrfToken: csrfFor(secret),
      session,
      account: a,
      maxAgeSeconds: Math.floor(options.sessionAbsoluteMs / 1000),
    };
  };

  const sessionView = (s: SessionRecord, a: Account, mfaRequired: boolean, csrf?: string): SessionView => ({
    account: { id: a.id, name: a.name, role: a.role, fleet: a.roleFleet, kind: a.kind },
    authMethod: s.authMethod,
    mfa: s.mfa,
    mfaRequired,
    createdAt: new Date(s.createdAt).toISOString(),
    expiresAt: new Date(s.expiresAt).toISOString(),
    idleExpiresAt: new Date(Math.min(s.lastSeenAt + options.sessionIdleMs, s.expiresAt)).toISOString(),
    ...(csrf !== undefined ? { csrfToken: csrf } : {}),
  });

  const checkSecondFactor = async (
    a: Account,
    totpSealed: string,
    lastStep: number | null,
    input: LoginInput,
  ) => {
    if (input.code !== undefined) {
      const secret = await sealer.open(totpSealed);
      const step = verifyTotp(secret, input.code, clock.now(), lastStep);
      if (step === undefined) return false;
      await store.updateCredentials(a.id, { totpLastStep: step });
      return true;
    }
    if (input.recoveryCode !== undefined) {
      const hash = hashToken(`recovery:${normaliseRecovery(input.recoveryCode)}`);
      return store.useRecoveryCode(a.id, hash, clock.now());
    }
    return false;
  };

  const endSessions = async (
    a: Account,
    reason: string,
    actor: { type: 'user' | 'service' | 'system'; id: string },
    exceptId?: string,
  ) => {
    const n = await store.revokeSessionsOf(a.id, clock.now(), exceptId);
    await audit.record({
      tenant: a.tenant,
      actor,
      action: 'session.revoke-all',
      target: { type: 'account', id: a.id },
      outcome: 'success',
      reason,
      details: { sessions: n },
    });
    return n;
  };

  return {
    csrfFor,
    createSession,

    /** The tenant requires this person to sign in with a second factor (everyone, or their role). */
    async mfaRequired(a: Account): Promise<boolean> {
      return mfaRequiredFor(await settingsOf(a.tenant), a);
    },

    async issuePasswordToken(a: Account, purpose: 'setup' | 'reset'): Promise<string> {
      const secret = `bwp_${ids.token(32)}`;
      const now = clock.now();
      await store.insertPasswordToken({
        hash: hashToken(secret),
        tenant: a.tenant,
        accountId: a.id,
        purpose,
        createdAt: now,
        expiresAt: now + (purpose === 'setup' ? options.setupTokenMs : options.resetTokenMs),
        usedAt: null,
      });
      return secret;
    },

    /** Sets a password with a setup or reset token; every session of the account ends. */
    async completePasswordToken(secret: string, password: string, source: string) {
      const bad = () => new AppError('ERR_AUTH_RESET_TOKEN');
      if (!PASSWORD_TOKEN_SHAPE.test(secret)) throw bad();
      const hash = hashToken(secret);
      const now = clock.now();
      // Check the password before spending the token, so a weak choice can be corrected.
      const peek = await store.peekPasswordToken(hash);
      const owner = peek ? await store.getAccount(peek.accountId) : undefined;
      if (peek && owner) checkPasswordPolicy(password, owner.name);
      const t = await store.usePasswordToken(hash, now);
      if (!t || t.expiresAt <= now) {
        await audit.record({
          tenant: t?.tenant ?? null,
          actor: { type: 'anonymous', id: 'password-token' },
          action: 'password.set',
          outcome: 'denied',
          reason: t ? 'token expired' : 'unknown or used token',
          source,
        });
        throw bad();
      }
      const a = await store.getAccount(t.accountId);
      if (!a) throw bad();
      await store.updateCredentials(a.id, {
        passwordHash: await hashPassword(password, options.scrypt),
        passwordChangedAt: now,
        failedLogins: 0,
        lockedUntil: null,
      });
      await endSessions(a, `password ${t.purpose}`, { type: 'system', id: 'password' });
      await audit.record({
        tenant: a.tenant,
        actor: { type: 'user', id: a.id },
        action: t.purpose === 'setup' ? 'password.setup' : 'password.reset',
        target: { type: 'account', id: a.id },
        outcome: 'success',
        source,
      });
      return { accountId: a.id, name: a.name };
    },

    async changePassword(actor: Actor, current: string, next: string, source: string) {
      const a = await core.getAccountIn(actor.tenant, actor.id);
      const c = await store.getCredentials(a.id);
      if (!c?.passwordHash || !(await verifyPassword(current, c.passwordHash))) {
        await audit.record({
          tenant: a.tenant,
          actor: { type: a.kind, id: a.id },
          action: 'password.change',
          outcome: 'denied',
          reason: 'current password wrong',
          source,
        });
        throw new AppError('ERR_AUTH_INVALID_CREDENTIALS');
      }
      checkPasswordPolicy(next, a.name);
      await store.updateCredentials(a.id, {
        passwordHash: await hashPassword(next, options.scrypt),
        passwordChangedAt: clock.now(),
      });
      // Other sessions end; this one (if any) goes on.
      await endSessions(a, 'password changed', { type: a.kind, id: a.id }, actor.sessionId);
      await audit.record({
        tenant: a.tenant,
        actor: { type: a.kind, id: a.id },
        action: 'password.change',
        target: { type: 'account', id: a.id },
        outcome: 'success',
        source,
      });
    },

    /** Local sign-in. Throws a stable code for every refusal; failures count toward the lockout. */
    async login(input: LoginInput): Promise<NewSession> {
      const a = await store.findAccountByName(input.tenant, input.username);
      const c = a && a.kind === 'user' ? await store.getCredentials(a.id) : undefined;
      const now = clock.now();
      if (a && c?.lockedUntil != null && c.lockedUntil > now) {
        const retryAfterSeconds = Math.ceil((c.lockedUntil - now) / 1000);
        await audit.record({
          tenant: a.tenant,
          actor: { type: 'user', id: a.id },
          action: 'auth.login',
          outcome: 'denied',
          reason: 'account locked',
          source: input.source,
        });
        throw new AppError('ERR_AUTH_LOCKED', undefined, { retryAfterSeconds });
      }
      const stored = c?.passwordHash ?? (await dummy());
      const ok = await verifyPassword(input.password, stored);
      if (!a || a.kind !== 'user' || !c?.passwordHash || !ok)
        return fail(
          a?.kind === 'user' ? a : undefined,
          input,
          'wrong user name or password',
          'ERR_AUTH_INVALID_CREDENTIALS',
        );
      if (a.status !== 'active') {
        await audit.record({
          tenant: a.tenant,
          actor: { type: 'user', id: a.id },
          action: 'auth.login',
          outcome: 'denied',
          reason: 'account disabled',
          source: input.source,
        });
        throw new AppError('ERR_AUTH_ACCOUNT_DISABLED');
      }
      let mfa = false;
      if (c.totpSecret) {
        if (input.code === undefined && input.recoveryCode === undefined)
          throw new AppError('ERR_AUTH_MFA_REQUIRED');
        if (!(await checkSecondFactor(a, c.totpSecret, c.totpLastStep, input)))
          return fail(a, input, 'wrong second factor', 'ERR_AUTH_MFA_INVALID');
        mfa = true;
      }
      await store.updateCredentials(a.id, { failedLogins: 0, lockedUntil: null });
      const s = await createSession(a, 'session', mfa, input);
      await audit.record({
        tenant: a.tenant,
        actor: { type: 'user', id: a.id },
        action: 'auth.login',
        target: { type: 'session', id: s.session.id.slice(0, 16) },
        outcome: 'success',
        source: input.source,
        details: {
          method: 'password',
          mfa,
          ...(input.recoveryCode !== undefined ? { recoveryCodeUsed: true } : {}),
        },
      });
      return s;
    },

    /** Resolves a session cookie, or throws ERR_AUTH_SESSION_INVALID. Refreshes the idle timer. */
    async authenticateSession(secret: string): Promise<AuthPrincipal & { csrfToken: string }> {
      const invalid = () => new AppError('ERR_AUTH_SESSION_INVALID');
      if (!SESSION_SHAPE.test(secret)) throw invalid();
      const id = hashToken(secret);
      const s = await store.getSession(id);
      const now = clock.now();
      if (!s || !sameHash(s.id, id) || s.revokedAt !== null || now >= s.expiresAt) throw invalid();
      if (now - s.lastSeenAt >= options.sessionIdleMs) {
        await store.revokeSession(s.id, now);
        throw invalid();
      }
      const a = await store.getAccount(s.accountId);
      if (!a || a.status !== 'active') throw invalid();
      if (now - s.lastSeenAt >= 15_000) await store.touchSession(s.id, now);
      const settings = await settingsOf(a.tenant);
      const enrolling = mfaRequiredFor(settings, a) && !s.mfa;
      return {
        type: a.kind,
        id: a.id,
        tenant: a.tenant,
        role: a.role,
        name: a.name,
        sessionId: s.id,
        mfa: s.mfa,
        authMethod: s.authMethod,
        boundaries: [...core.accountBoundaries(a), ...(enrolling ? [MFA_ENROLLMENT_BOUNDARY] : [])],
        csrfToken: csrfFor(secret),
      };
    },

    async sessionInfo(actor: Actor, csrf?: string): Promise<SessionView> {
      if (!actor.sessionId) throw new AppError('ERR_AUTH_NOT_SESSION');
      const s = await store.getSession(actor.sessionId);
      const a = await core.getAccountIn(actor.tenant, actor.id);
      if (!s) throw new AppError('ERR_AUTH_SESSION_INVALID');
      return sessionView(s, a, mfaRequiredFor(await settingsOf(a.tenant), a), csrf);
    },

    async logout(actor: Actor, source: string) {
      if (!actor.sessionId) throw new AppError('ERR_AUTH_NOT_SESSION');
      await store.revokeSession(actor.sessionId, clock.now());
      await audit.record({
        tenant: actor.tenant,
        actor: core.actorOf(actor),
        action: 'auth.logout',
        target: { type: 'session', id: actor.sessionId.slice(0, 16) },
        outcome: 'success',
        source,
      });
    },

    async listSessions(actor: Actor, accountId: string) {
      const a = await core.getAccountIn(actor.tenant, accountId);
      return (await store.listSessions(a.id, clock.now())).map((s) => ({
        id: s.id.slice(0, 16),
        authMethod: s.authMethod,
        mfa: s.mfa,
        current: s.id === actor.sessionId,
        createdAt: new Date(s.createdAt).toISOString(),
        lastSeenAt: new Date(s.lastSeenAt).toISOString(),
        expiresAt: new Date(s.expiresAt).toISOString(),
        source: s.source,
        userAgent: s.userAgent,
      }));
    },

    /** Sign out everywhere: every session of the account ends, the caller's too. */
    async revokeSessions(actor: Actor, accountId: string) {
      const a = await core.getAccountIn(actor.tenant, accountId);
      return { revoked: await endSessions(a, 'sign out everywhere', core.actorOf(actor)) };
    },

    // ---- MFA ----------------------------------------------------------------------------------------

    async beginTotp(actor: Actor) {
      const a = await core.getAccountIn(actor.tenant, actor.id);
      if (a.kind !== 'user' || a.idpIssuer !== null)
        throw new AppError(
          'ERR_IAM_MFA_STATE',
          'Only local accounts enroll TOTP here (SSO users use their IdP)',
        );
      const c = await store.getCredentials(a.id);
      if (c?.totpSecret) throw new AppError('ERR_IAM_MFA_STATE', 'TOTP is already enabled');
      const secret = randomBytes(20);
      await store.updateCredentials(a.id, { totpPending: await sealer.seal(secret) });
      const uri = otpauthUri(secret, `${a.tenant}/${a.name}`, options.totpIssuer);
      return { secret: new URL(uri).searchParams.get('secret') ?? '', otpauthUri: uri };
    },

    async confirmTotp(actor: Actor, code: string, source: string) {
      const a = await core.getAccountIn(actor.tenant, actor.id);
      const c = await store.getCredentials(a.id);
      if (!c?.totpPending || c.totpSecret)
        throw new AppError('ERR_IAM_MFA_STATE', 'No TOTP enrollment is pending');
      const step = verifyTotp(await sealer.open(c.totpPending), code, clock.now(), null);
      if (step === undefined) {
        await audit.record({
          tenant: a.tenant,
          actor: { type: a.kind, id: a.id },
          action: 'mfa.enable',
          outcome: 'denied',
          reason: 'wrong code',
          source,
        });
        throw new AppError('ERR_AUTH_MFA_INVALID');
      }
      const codes = Array.from({ length: RECOVERY_CODES }, () => {
        const raw = randomBytes(10).toString('hex');
        return `${raw.slice(0, 5)}-${raw.slice(5, 10)}-${raw.slice(10, 15)}-${raw.slice(15, 20)}`;
      });
      await store.replaceRecoveryCodes(
        a.id,
        codes.map((r) => hashToken(`recovery:${normaliseRecovery(r)}`)),
      );
      await store.updateCredentials(a.id, {
        totpSecret: c.totpPending,
        totpPending: null,
        totpLastStep: step,
      });
      await audit.record({
        tenant: a.tenant,
        actor: { type: a.kind, id: a.id },
        action: 'mfa.enable',
        target: { type: 'account', id: a.id },
        outcome: 'success',
        source,
      });
      return { recoveryCodes: codes };
    },

    async disableTotp(actor: Actor, code: string, source: string) {
      const a = await core.getAccountIn(actor.tenant, actor.id);
      const c = await store.getCredentials(a.id);
      if (!c?.totpSecret) throw new AppError('ERR_IAM_MFA_STATE', 'TOTP is not enabled');
      const step = verifyTotp(await sealer.open(c.totpSecret), code, clock.now(), c.totpLastStep);
      if (step === undefined) throw new AppError('ERR_AUTH_MFA_INVALID');
      await store.updateCredentials(a.id, { totpSecret: null, totpPending: null, totpLastStep: null });
      await store.replaceRecoveryCodes(a.id, []);
      await audit.record({
        tenant: a.tenant,
        actor: { type: a.kind, id: a.id },
        action: 'mfa.disable',
        target: { type: 'account', id: a.id },
        outcome: 'success',
        source,
      });
    },

    getSecuritySettings: settingsOf,

    async putSecuritySettings(actor: Actor, input: { mfaRequired: boolean; mfaRequiredRoles: string[] }) {
      for (const r of input.mfaRequiredRoles)
        if (!core.roleExists(actor.tenant, r)) throw new AppError('ERR_IAM_ROLE_NOT_FOUND', `No role '${r}'`);
      const s: SecuritySettings = { tenant: actor.tenant, ...input };
      await store.putSettings(s, clock.now());
      await audit.record({
        tenant: actor.tenant,
        actor: core.actorOf(actor),
        action: 'settings.security',
        outcome: 'success',
        details: { ...input },
      });
      return s;
    },
  };
}
