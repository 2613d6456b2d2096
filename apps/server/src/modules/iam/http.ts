import {
  AppError,
  HttpResult,
  type HttpRoute,
  type PublicHttpRoute,
  type RouteContext,
} from '../../kernel/index.ts';
import { resourceName } from '../policy/index.ts';
import type { IamService } from './service.ts';

// `me` in an account path names the caller, so everyone can reach their own tokens and sessions.
const accountParam = {
  type: 'object',
  properties: { accountId: { type: 'string', pattern: '^(me|[0-9a-fA-F-]{36})$' } },
  required: ['accountId'],
} as const;
const idParam = {
  type: 'object',
  properties: { id: { type: 'string', pattern: '^[0-9a-fA-F-]{36}$' } },
  required: ['id'],
} as const;
const roleName = { type: 'string', minLength: 1, maxLength: 64, examples: ['viewer'] } as const;
const fleetPath = { type: 'string', minLength: 1, maxLength: 1040, examples: ['plant-a/line-3'] } as const;
const actionPattern = { type: 'string', minLength: 1, maxLength: 64, examples: ['devices:read'] } as const;
const scopeSchema = {
  type: 'object',
  description: "Narrows the token: effective permission = owner's role ∩ scope.",
  properties: {
    actions: { type: 'array', items: actionPattern, minItems: 1, maxItems: 64 },
    fleet: fleetPath,
  },
  additionalProperties: false,
} as const;
const tokenSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    accountId: { type: 'string' },
    name: { type: 'string' },
    createdAt: { type: 'string', format: 'date-time' },
    expiresAt: { type: ['string', 'null'], format: 'date-time' },
    lastUsedAt: { type: ['string', 'null'], format: 'date-time' },
    revokedAt: { type: ['string', 'null'], format: 'date-time' },
    scope: { anyOf: [scopeSchema, { type: 'null' }] },
    status: { type: 'string', enum: ['active', 'expired', 'revoked'] },
  },
  required: [
    'id',
    'accountId',
    'name',
    'createdAt',
    'expiresAt',
    'lastUsedAt',
    'revokedAt',
    'scope',
    'status',
  ],
} as const;
const accountSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    kind: { type: 'string', enum: ['user', 'service'] },
    role: { type: 'string' },
    fleet: { type: ['string', 'null'] },
    status: { type: 'string', enum: ['active', 'disabled'] },
    description: { type: ['string', 'null'] },
    createdAt: { type: 'string', format: 'date-time' },
    sso: { type: 'boolean' },
    mfa: { type: 'boolean' },
  },
  required: ['id', 'name', 'kind', 'role', 'fleet', 'status', 'createdAt', 'sso'],
} as const;
const roleSchema = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    builtin: { type: 'boolean' },
    description: { type: ['string', 'null'] },
    statements: { type: 'array', items: { type: 'object', additionalProperties: true } },
    version: { type: 'integer', description: 'Custom roles: 1 when created, +1 with every change' },
    updatedAt: { type: ['string', 'null'], format: 'date-time' },
  },
  required: ['name', 'builtin', 'statements'],
} as const;
const roleVersionSchema = {
  type: 'object',
  properties: {
    version: { type: 'integer' },
    deleted: { type: 'boolean' },
    description: { type: ['string', 'null'] },
    statements: { type: 'array', items: { type: 'object', additionalProperties: true } },
    createdAt: { type: 'string', format: 'date-time' },
    createdBy: { type: 'string' },
  },
  required: ['version', 'deleted', 'description', 'statements', 'createdAt', 'createdBy'],
} as const;
const statementsSchema = {
  type: 'array',
  minItems: 1,
  maxItems: 100,
  items: { type: 'object' },
  examples: [[{ effect: 'allow', actions: ['devices:read'], resources: ['bulwark:default:*'] }]],
} as const;
const sessionSchema = {
  type: 'object',
  properties: {
    account: {
      type: 'object',
      properties: {
        id: { type: 'string' },
        name: { type: 'string' },
        role: { type: 'string' },
        fleet: { type: ['string', 'null'] },
        kind: { type: 'string' },
      },
    },
    authMethod: { type: 'string' },
    mfa: { type: 'boolean' },
    mfaRequired: { type: 'boolean' },
    createdAt: { type: 'string', format: 'date-time' },
    expiresAt: { type: 'string', format: 'date-time' },
    idleExpiresAt: { type: 'string', format: 'date-time' },
    csrfToken: { type: 'string' },
  },
  required: ['account', 'authMethod', 'mfa', 'expiresAt'],
} as const;
const idpSchema = {
  type: 'object',
  properties: {
    issuer: { type: 'string' },
    clientId: { type: 'string' },
    hasClientSecret: { type: 'boolean' },
    scopes: { type: 'array', items: { type: 'string' } },
    groupsClaim: { type: 'string' },
    roleMappings: {
      type: 'array',
      items: {
        type: 'object',
        properties: { group: { type: 'string' }, role: { type: 'string' }, fleet: { type: 'string' } },
      },
    },
    defaultRole: { type: ['string', 'null'] },
    enabled: { type: 'boolean' },
    redirectPath: { type: 'string' },
    updatedAt: { type: 'string', format: 'date-time' },
  },
} as const;
const codeBody = {
  type: 'object',
  properties: { code: { type: 'string', pattern: '^[0-9]{6}$', examples: ['123456'] } },
  required: ['code'],
  additionalProperties: false,
} as const;

const LOGIN_LIMIT = {
  burst: 10,
  perMinute: 10,
  account: (c: { body: unknown }) => {
    const b = c.body as { username?: unknown; tenant?: unknown } | undefined;
    return typeof b?.username === 'string'
      ? `${String(b.tenant ?? '')}/${b.username}`.slice(0, 200)
      : undefined;
  },
};

export interface IamRouteDeps {
  iam: IamService;
  /** Tenant signed in to when the sign-in names none. */
  platformTenant: string;
}

export function iamRoutes(deps: IamRouteDeps): HttpRoute[] {
  const { iam } = deps;
  const self = (ctx: RouteContext) => ctx.principal.id;
  const accountOf = (ctx: RouteContext) =>
    ctx.params.accountId === 'me' ? ctx.principal.id : (ctx.params.accountId ?? '');
  const res = (ctx: RouteContext, kind: string, id: string) => resourceName(ctx.principal.tenant, kind, id);
  const body = <T>(ctx: RouteContext) => ctx.body as T;

  return [
    {
      method: 'GET',
      url: '/whoami',
      summary: 'Who the caller is (token or session)',
      tags: ['iam'],
      action: 'tokens:read',
      resource: (ctx) => res(ctx, 'account', self(ctx)),
      schema: {
        response: {
          200: {
            type: 'object',
            properties: {
              id: { type: 'string' },
              name: { type: 'string' },
              tenant: { type: 'string' },
              role: { type: 'string' },
              kind: { type: 'string', enum: ['user', 'service'] },
              authMethod: { type: 'string' },
              mfa: { type: 'boolean' },
              boundaries: { type: 'array', items: { type: 'object', additionalProperties: true } },
            },
            required: ['id', 'tenant', 'role', 'kind'],
          },
        },
      },
      async handler(ctx) {
        const p = ctx.principal;
        return {
          id: p.id,
          name: p.name ?? p.id,
          tenant: p.tenant,
          role: p.role,
          kind: p.type,
          authMethod: p.authMethod ?? 'token',
          mfa: p.mfa ?? false,
          boundaries: p.boundaries ?? [],
        };
      },
    },

    // ---- tokens -------------------------------------------------------------------------------------
    {
      method: 'GET',
      url: '/accounts/:accountId/tokens',
      summary: "List an account's API tokens (`me` for your own); secrets are never shown again",
      tags: ['tokens'],
      action: 'tokens:read',
      resource: (ctx) => res(ctx, 'account', `${accountOf(ctx)}/token/*`),
      schema: {
        params: accountParam,
        response: {
          200: { type: 'object', properties: { items: { type: 'array', items: tokenSchema } } },
        },
      },
      async handler(ctx) {
        return { items: await iam.listTokens(ctx.principal, accountOf(ctx)) };
      },
    },
    {
      method: 'POST',
      url: '/accounts/:accountId/tokens',
      summary:
        'Create a token for yourself (`me`) or a service account: scoped, expiring, shown once. It can never do more than its creator holds.',
      tags: ['tokens'],
      action: 'tokens:write',
      resource: (ctx) => res(ctx, 'account', `${accountOf(ctx)}/token/*`),
      rateLimit: { burst: 20, perMinute: 20 },
      schema: {
        params: accountParam,
        body: {
          type: 'object',
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 128, examples: ['ci-deploy'] },
            expiresInDays: { type: 'integer', minimum: 1, maximum: 366, examples: [30] },
            scope: scopeSchema,
          },
          required: ['name'],
          additionalProperties: false,
        },
        response: {
          201: {
            type: 'object',
            properties: { token: tokenSchema, secret: { type: 'string' } },
            required: ['token', 'secret'],
          },
        },
      },
      status: 201,
      async handler(ctx) {
        return iam.issueToken(ctx.principal, accountOf(ctx), body(ctx));
      },
    },
    {
      method: 'DELETE',
      url: '/accounts/:accountId/tokens/:tokenId',
      summary: 'Revoke a token (takes effect on the next request)',
      tags: ['tokens'],
      action: 'tokens:write',
      resource: (ctx) => res(ctx, 'account', `${accountOf(ctx)}/token/${ctx.params.tokenId ?? ''}`),
      schema: {
        params: {
          type: 'object',
          properties: {
            accountId: accountParam.properties.accountId,
            tokenId: { type: 'string', pattern: '^[0-9a-fA-F-]{36}$' },
          },
          required: ['accountId', 'tokenId'],
        },
        response: { 200: tokenSchema },
      },
      async handler(ctx) {
        return iam.revokeToken(ctx.principal, accountOf(ctx), ctx.params.tokenId ?? '');
      },
    },

    // ---- users --------------------------------------------------------------------------------------
    {
      method: 'GET',
      url: '/users',
      summary: 'List people',
      tags: ['users'],
      action: 'accounts:read',
      resource: (ctx) => res(ctx, 'account', '*'),
      schema: {
        response: { 200: { type: 'object', properties: { items: { type: 'array', items: accountSchema } } } },
      },
      async handler(ctx) {
        return { items: await iam.listAccounts(ctx.principal.tenant, 'user') };
      },
    },
    {
      method: 'POST',
      url: '/users',
      summary:
        'Create a local user with a role (optionally limited to a fleet subtree); returns a one-time setup token for them to choose a password',
      tags: ['users'],
      action: 'accounts:write',
      resource: (ctx) => res(ctx, 'account', '*'),
      schema: {
        body: {
          type: 'object',
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 128, examples: ['alice'] },
            role: roleName,
            fleet: fleetPath,
          },
          required: ['name', 'role'],
          additionalProperties: false,
        },
        response: {
          201: {
            type: 'object',
            properties: { account: accountSchema, setupToken: { type: 'string' } },
            required: ['account', 'setupToken'],
          },
        },
      },
      status: 201,
      async handler(ctx) {
        return iam.createAccount(ctx.principal, 'user', body(ctx));
      },
    },
    {
      method: 'GET',
      url: '/users/:id',
      summary: 'A user',
      tags: ['users'],
      action: 'accounts:read',
      resource: (ctx) => res(ctx, 'account', ctx.params.id ?? ''),
      schema: { params: idParam, response: { 200: accountSchema } },
      async handler(ctx) {
        return iam.getAccount(ctx.principal.tenant, ctx.params.id ?? '');
      },
    },
    {
      method: 'PUT',
      url: '/users/:id/role',
      summary: "Set a user's role and fleet scope (only to what you hold; never your own)",
      tags: ['users'],
      action: 'accounts:write',
      resource: (ctx) => res(ctx, 'account', ctx.params.id ?? ''),
      schema: {
        params: idParam,
        body: {
          type: 'object',
          properties: { role: roleName, fleet: { anyOf: [fleetPath, { type: 'null' }] } },
          required: ['role'],
          additionalProperties: false,
        },
        response: { 200: accountSchema },
      },
      async handler(ctx) {
        const b = body<{ role: string; fleet?: string | null }>(ctx);
        return iam.setRole(ctx.principal, ctx.params.id ?? '', b.role, b.fleet ?? null);
      },
    },
    ...(['disable', 'enable'] as const).map((verb): HttpRoute => ({
      method: 'POST',
      url: `/users/:id/${verb}`,
      summary: verb === 'disable' ? 'Disable a user (their sessions end at once)' : 'Enable a user',
      tags: ['users'],
      action: 'accounts:write',
      resource: (ctx) => res(ctx, 'account', ctx.params.id ?? ''),
      schema: { params: idParam, response: { 200: accountSchema } },
      async handler(ctx) {
        return iam.setStatus(ctx.principal, ctx.params.id ?? '', verb === 'disable' ? 'disabled' : 'active');
      },
    })),
    {
      method: 'POST',
      url: '/users/:id/password-reset',
      summary: 'Start a password reset: a one-time token (1 hour); using it ends all their sessions',
      tags: ['users'],
      action: 'accounts:write',
      resource: (ctx) => res(ctx, 'account', ctx.params.id ?? ''),
      schema: {
        params: idParam,
        response: {
          200: { type: 'object', properties: { resetToken: { type: 'string' } }, required: ['resetToken'] },
        },
      },
      async handler(ctx) {
        return { resetToken: await iam.startPasswordReset(ctx.principal, ctx.params.id ?? '') };
      },
    },
    {
      method: 'POST',
      url: '/users/:id/mfa/reset',
      summary: "Remove a user's second factor (lost device); their sessions end",
      tags: ['users'],
      action: 'credentials:write',
      resource: (ctx) => res(ctx, 'account', `${ctx.params.id ?? ''}/credentials`),
      schema: { params: idParam },
      status: 204,
      async handler(ctx) {
        await iam.resetMfa(ctx.principal, ctx.params.id ?? '');
      },
    },

    // ---- sessions -----------------------------------------------------------------------------------
    {
      method: 'GET',
      url: '/accounts/:accountId/sessions',
      summary: "An account's live console sessions (`me` for yours)",
      tags: ['sessions'],
      action: 'sessions:read',
      resource: (ctx) => res(ctx, 'account', `${accountOf(ctx)}/session/*`),
      schema: { params: accountParam },
      async handler(ctx) {
        return { items: await iam.listSessions(ctx.principal, accountOf(ctx)) };
      },
    },
    {
      method: 'POST',
      url: '/accounts/:accountId/sessions/revoke',
      summary: 'Sign out everywhere: ends every console session of the account (`me` for yours)',
      tags: ['sessions'],
      action: 'sessions:write',
      resource: (ctx) => res(ctx, 'account', `${accountOf(ctx)}/session/*`),
      schema: {
        params: accountParam,
        response: { 200: { type: 'object', properties: { revoked: { type: 'integer' } } } },
      },
      async handler(ctx) {
        return iam.revokeSessions(ctx.principal, accountOf(ctx));
      },
    },
    {
      method: 'GET',
      url: '/auth/session',
      summary: 'The current console session, with its CSRF token',
      tags: ['auth'],
      action: 'sessions:read',
      resource: (ctx) => res(ctx, 'account', `${self(ctx)}/session/current`),
      schema: { response: { 200: sessionSchema } },
      async handler(ctx) {
        return iam.sessionInfo(ctx.principal, ctx.principal.csrfToken);
      },
    },
    {
      method: 'POST',
      url: '/auth/logout',
      summary: 'Sign out (ends this console session and clears its cookie)',
      tags: ['auth'],
      action: 'sessions:write',
      resource: (ctx) => res(ctx, 'account', `${self(ctx)}/session/current`),
      status: 204,
      async handler(ctx) {
        await iam.logout(ctx.principal, ctx.sourceIp);
        return new HttpResult(undefined, { session: 'clear' });
      },
    },

    // ---- own credentials ----------------------------------------------------------------------------
    {
      method: 'POST',
      url: '/me/password',
      summary: 'Change your password (your other sessions end)',
      tags: ['auth'],
      action: 'credentials:write',
      resource: (ctx) => res(ctx, 'account', `${self(ctx)}/credentials`),
      rateLimit: { burst: 5, perMinute: 5 },
      schema: {
        body: {
          type: 'object',
          properties: {
            currentPassword: { type: 'string', minLength: 1, maxLength: 1024 },
            newPassword: { type: 'string', minLength: 1, maxLength: 1024 },
          },
          required: ['currentPassword', 'newPassword'],
          additionalProperties: false,
        },
      },
      status: 204,
      async handler(ctx) {
        const b = body<{ currentPassword: string; newPassword: string }>(ctx);
        await iam.changePassword(ctx.principal, b.currentPassword, b.newPassword, ctx.sourceIp);
      },
    },
    {
      method: 'POST',
      url: '/me/mfa/totp',
      summary: 'Start TOTP enrollment: a secret and otpauth:// URI for an authenticator app',
      tags: ['auth'],
      action: 'credentials:write',
      resource: (ctx) => res(ctx, 'account', `${self(ctx)}/credentials`),
      schema: {
        response: {
          200: {
            type: 'object',
            properties: { secret: { type: 'string' }, otpauthUri: { type: 'string' } },
            required: ['secret', 'otpauthUri'],
          },
        },
      },
      async handler(ctx) {
        return iam.beginTotp(ctx.principal);
      },
    },
    {
      method: 'POST',
      url: '/me/mfa/totp/confirm',
      summary: 'Confirm TOTP with a first code; returns 10 one-time recovery codes (shown once)',
      tags: ['auth'],
      action: 'credentials:write',
      resource: (ctx) => res(ctx, 'account', `${self(ctx)}/credentials`),
      rateLimit: { burst: 10, perMinute: 10 },
      schema: {
        body: codeBody,
        response: {
          200: {
            type: 'object',
            properties: { recoveryCodes: { type: 'array', items: { type: 'string' } } },
            required: ['recoveryCodes'],
          },
        },
      },
      async handler(ctx) {
        return iam.confirmTotp(ctx.principal, body<{ code: string }>(ctx).code, ctx.sourceIp);
      },
    },
    {
      method: 'POST',
      url: '/me/mfa/totp/disable',
      summary: 'Turn TOTP off (needs a current code)',
      tags: ['auth'],
      action: 'credentials:write',
      resource: (ctx) => res(ctx, 'account', `${self(ctx)}/credentials`),
      rateLimit: { burst: 10, perMinute: 10 },
      schema: { body: codeBody },
      status: 204,
      async handler(ctx) {
        await iam.disableTotp(ctx.principal, body<{ code: string }>(ctx).code, ctx.sourceIp);
      },
    },

    // ---- service accounts ---------------------------------------------------------------------------
    {
      method: 'GET',
      url: '/service-accounts',
      summary: 'List service accounts (programs: extensions, microservices)',
      tags: ['service-accounts'],
      action: 'accounts:read',
      resource: (ctx) => res(ctx, 'account', '*'),
      schema: {
        response: { 200: { type: 'object', properties: { items: { type: 'array', items: accountSchema } } } },
      },
      async handler(ctx) {
        return { items: await iam.listAccounts(ctx.principal.tenant, 'service') };
      },
    },
    {
      method: 'POST',
      url: '/service-accounts',
      summary: 'Create a service account with a role you hold (optionally limited to a fleet subtree)',
      tags: ['service-accounts'],
      action: 'accounts:write',
      resource: (ctx) => res(ctx, 'account', '*'),
      rateLimit: { burst: 20, perMinute: 20 },
      schema: {
        body: {
          type: 'object',
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 128, examples: ['billing-bridge'] },
            role: roleName,
            fleet: fleetPath,
            description: { type: 'string', maxLength: 1024 },
          },
          required: ['name', 'role'],
          additionalProperties: false,
        },
        response: { 201: accountSchema },
      },
      status: 201,
      async handler(ctx) {
        return (await iam.createAccount(ctx.principal, 'service', body(ctx))).account;
      },
    },
    {
      method: 'DELETE',
      url: '/service-accounts/:id',
      summary: 'Delete a service account; its tokens stop working at once',
      tags: ['service-accounts'],
      action: 'accounts:write',
      resource: (ctx) => res(ctx, 'account', ctx.params.id ?? ''),
      schema: { params: idParam },
      status: 204,
      async handler(ctx) {
        await iam.deleteServiceAccount(ctx.principal, ctx.params.id ?? '');
      },
    },

    // ---- roles --------------------------------------------------------------------------------------
    {
      method: 'GET',
      url: '/roles',
      summary: 'Built-in and custom roles with their statements',
      tags: ['roles'],
      action: 'roles:read',
      resource: (ctx) => res(ctx, 'role', '*'),
      schema: {
        response: { 200: { type: 'object', properties: { items: { type: 'array', items: roleSchema } } } },
      },
      async handler(ctx) {
        return { items: iam.listRoles(ctx.principal.tenant) };
      },
    },
    {
      method: 'POST',
      url: '/roles',
      summary: 'Create a custom role from policy statements (only permissions you hold)',
      tags: ['roles'],
      action: 'roles:write',
      resource: (ctx) => res(ctx, 'role', String((ctx.body as { name?: unknown } | undefined)?.name ?? '')),
      schema: {
        body: {
          type: 'object',
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 64, examples: ['fleet-reader'] },
            description: { type: 'string', maxLength: 1024 },
            statements: statementsSchema,
          },
          required: ['name', 'statements'],
          additionalProperties: false,
        },
        response: { 201: roleSchema },
      },
      status: 201,
      async handler(ctx) {
        return iam.createRole(ctx.principal, body(ctx));
      },
    },
    {
      method: 'PUT',
      url: '/roles/:name',
      summary:
        "Change a custom role's statements (only permissions you hold, now and after; never a role you hold; built-in roles never). Holders get the new permissions on their next request.",
      tags: ['roles'],
      action: 'roles:write',
      resource: (ctx) => res(ctx, 'role', ctx.params.name ?? ''),
      schema: {
        params: { type: 'object', properties: { name: roleName }, required: ['name'] },
        body: {
          type: 'object',
          properties: {
            description: { type: ['string', 'null'], maxLength: 1024 },
            statements: statementsSchema,
            expectedVersion: {
              type: 'integer',
              minimum: 1,
              description: 'Refuse the change (ERR_IAM_ROLE_CONFLICT) unless the role is at this version',
            },
          },
          required: ['statements'],
          additionalProperties: false,
        },
        response: { 200: roleSchema },
      },
      async handler(ctx) {
        return iam.updateRole(ctx.principal, ctx.params.name ?? '', body(ctx));
      },
    },
    {
      method: 'GET',
      url: '/roles/:name/versions',
      summary: 'Every version of a custom role, newest first (a deletion is a version too)',
      tags: ['roles'],
      action: 'roles:read',
      resource: (ctx) => res(ctx, 'role', ctx.params.name ?? ''),
      schema: {
        params: { type: 'object', properties: { name: roleName }, required: ['name'] },
        response: {
          200: { type: 'object', properties: { items: { type: 'array', items: roleVersionSchema } } },
        },
      },
      async handler(ctx) {
        return { items: await iam.roleVersions(ctx.principal.tenant, ctx.params.name ?? '') };
      },
    },
    {
      method: 'DELETE',
      url: '/roles/:name',
      summary: 'Delete a custom role that nobody holds',
      tags: ['roles'],
      action: 'roles:write',
      resource: (ctx) => res(ctx, 'role', ctx.params.name ?? ''),
      schema: {
        params: { type: 'object', properties: { name: roleName }, required: ['name'] },
      },
      status: 204,
      async handler(ctx) {
        await iam.deleteRole(ctx.principal, ctx.params.name ?? '');
      },
    },

    // ---- sign-in configuration ----------------------------------------------------------------------
    {
      method: 'GET',
      url: '/settings/security',
      summary: 'MFA enforcement for the tenant',
      tags: ['sign-in'],
      action: 'idp:read',
      resource: (ctx) => res(ctx, 'idp', 'security'),
      async handler(ctx) {
        const s = await iam.getSecuritySettings(ctx.principal.tenant);
        return { mfaRequired: s.mfaRequired, mfaRequiredRoles: s.mfaRequiredRoles };
      },
    },
    {
      method: 'PUT',
      url: '/settings/security',
      summary: 'Require MFA for everyone, or for some roles',
      tags: ['sign-in'],
      action: 'idp:write',
      resource: (ctx) => res(ctx, 'idp', 'security'),
      schema: {
        body: {
          type: 'object',
          properties: {
            mfaRequired: { type: 'boolean' },
            mfaRequiredRoles: { type: 'array', items: roleName, maxItems: 64 },
          },
          required: ['mfaRequired', 'mfaRequiredRoles'],
          additionalProperties: false,
        },
      },
      async handler(ctx) {
        const s = await iam.putSecuritySettings(ctx.principal, body(ctx));
        return { mfaRequired: s.mfaRequired, mfaRequiredRoles: s.mfaRequiredRoles };
      },
    },
    {
      method: 'GET',
      url: '/idp/oidc',
      summary: "The tenant's OIDC identity provider (the client secret is never returned)",
      tags: ['sign-in'],
      action: 'idp:read',
      resource: (ctx) => res(ctx, 'idp', 'oidc'),
      schema: { response: { 200: { anyOf: [idpSchema, { type: 'null' }] } } },
      async handler(ctx) {
        return iam.getIdp(ctx.principal.tenant);
      },
    },
    {
      method: 'PUT',
      url: '/idp/oidc',
      summary: "Configure single sign-on with the organisation's OIDC provider and map its groups to roles",
      tags: ['sign-in'],
      action: 'idp:write',
      resource: (ctx) => res(ctx, 'idp', 'oidc'),
      schema: {
        body: {
          type: 'object',
          properties: {
            issuer: {
              type: 'string',
              minLength: 8,
              maxLength: 512,
              examples: ['https://login.example.com/realms/acme'],
            },
            clientId: { type: 'string', minLength: 1, maxLength: 256, examples: ['bulwark'] },
            clientSecret: { type: ['string', 'null'], maxLength: 1024 },
            scopes: { type: 'array', items: { type: 'string', maxLength: 64 }, maxItems: 20 },
            groupsClaim: { type: 'string', minLength: 1, maxLength: 128 },
            roleMappings: {
              type: 'array',
              maxItems: 200,
              items: {
                type: 'object',
                properties: {
                  group: { type: 'string', minLength: 1, maxLength: 256 },
                  role: roleName,
                  fleet: fleetPath,
                },
                required: ['group', 'role'],
                additionalProperties: false,
              },
              examples: [[{ group: 'iot-operators', role: 'operator' }]],
            },
            defaultRole: { anyOf: [roleName, { type: 'null' }] },
            enabled: { type: 'boolean' },
          },
          required: ['issuer', 'clientId', 'roleMappings'],
          additionalProperties: false,
        },
        response: { 200: idpSchema },
      },
      async handler(ctx) {
        return iam.putIdp(ctx.principal, body(ctx));
      },
    },
    {
      method: 'DELETE',
      url: '/idp/oidc',
      summary: 'Remove single sign-on (SSO users keep their accounts but cannot sign in)',
      tags: ['sign-in'],
      action: 'idp:write',
      resource: (ctx) => res(ctx, 'idp', 'oidc'),
      status: 204,
      async handler(ctx) {
        await iam.deleteIdp(ctx.principal);
      },
    },
  ];
}

const SSO_DONE_PAGE =
  '<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=/"><title>Signed in</title></head><body>Signed in. <a href="/">Continue</a></body></html>';

/** Sign-in, password setup and the SSO browser endpoints: no principal yet, always rate limited. */
export function iamPublicRoutes(deps: IamRouteDeps): PublicHttpRoute[] {
  const { iam } = deps;
  const tenantParam = {
    type: 'object',
    properties: { tenant: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,62}$' } },
    required: ['tenant'],
  } as const;
  return [
    {
      public: true,
      method: 'POST',
      url: '/auth/login',
      summary:
        'Sign in with a local account (password, then TOTP `code` or a `recoveryCode` when MFA is on); sets the session cookie and returns the CSRF token',
      tags: ['auth'],
      rateLimit: LOGIN_LIMIT,
      schema: {
        body: {
          type: 'object',
          properties: {
            tenant: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,62}$' },
            username: { type: 'string', minLength: 1, maxLength: 128, examples: ['alice'] },
            password: { type: 'string', minLength: 1, maxLength: 1024, examples: ['correct horse battery'] },
            code: { type: 'string', pattern: '^[0-9]{6}$' },
            recoveryCode: { type: 'string', maxLength: 64 },
          },
          required: ['username', 'password'],
          additionalProperties: false,
        },
        response: { 200: sessionSchema },
      },
      async handler(ctx) {
        const b = ctx.body as {
          tenant?: string;
          username: string;
          password: string;
          code?: string;
          recoveryCode?: string;
        };
        const s = await iam.login({
          tenant: b.tenant ?? deps.platformTenant,
          username: b.username,
          password: b.password,
          ...(b.code !== undefined ? { code: b.code } : {}),
          ...(b.recoveryCode !== undefined ? { recoveryCode: b.recoveryCode } : {}),
          source: ctx.sourceIp,
          ...(ctx.userAgent !== undefined ? { userAgent: ctx.userAgent } : {}),
        });
        const view = await iam.sessionInfo(
          {
            type: 'user',
            id: s.account.id,
            tenant: s.account.tenant,
            role: s.account.role,
            sessionId: s.session.id,
          },
          s.csrfToken,
        );
        return new HttpResult(view, { session: { value: s.secret, maxAgeSeconds: s.maxAgeSeconds } });
      },
    },
    {
      public: true,
      method: 'POST',
      url: '/auth/password',
      summary: 'Choose a password with a setup or reset token (every session of the account ends)',
      tags: ['auth'],
      rateLimit: { burst: 5, perMinute: 5 },
      schema: {
        body: {
          type: 'object',
          properties: {
            token: { type: 'string', minLength: 1, maxLength: 128 },
            password: { type: 'string', minLength: 1, maxLength: 1024 },
          },
          required: ['token', 'password'],
          additionalProperties: false,
        },
      },
      async handler(ctx) {
        const b = ctx.body as { token: string; password: string };
        return iam.completePasswordToken(b.token, b.password, ctx.sourceIp);
      },
    },
    {
      public: true,
      browser: true,
      method: 'GET',
      url: '/auth/oidc/:tenant/start',
      summary: "Single sign-on: redirects to the tenant's identity provider",
      tags: ['auth'],
      rateLimit: { burst: 20, perMinute: 20 },
      schema: { params: tenantParam },
      async handler(ctx) {
        const { redirect, binding } = await iam.oidcStart(ctx.params.tenant ?? '', ctx.origin);
        return new HttpResult(undefined, { redirect, ssoBinding: { value: binding, maxAgeSeconds: 600 } });
      },
    },
    {
      public: true,
      browser: true,
      method: 'GET',
      url: '/auth/oidc/:tenant/callback',
      summary: 'Single sign-on: the identity provider returns here',
      tags: ['auth'],
      rateLimit: { burst: 20, perMinute: 20 },
      schema: { params: tenantParam },
      async handler(ctx) {
        const tenant = ctx.params.tenant ?? '';
        const s = await iam.oidcCallback(tenant, {
          currentUrl: `${ctx.origin}${ctx.url}`,
          origin: ctx.origin,
          binding: ctx.cookies['__Host-bulwark_sso'],
          source: ctx.sourceIp,
          ...(ctx.userAgent !== undefined ? { userAgent: ctx.userAgent } : {}),
        });
        if (!s) throw new AppError('ERR_AUTH_OIDC_FAILED');
        // A CLI sign-in: the browser takes the one-time code (or the refusal) to the CLI's loopback.
        if (s.kind === 'cli') return new HttpResult(undefined, { redirect: s.redirect, ssoBinding: 'clear' });
        // A page rather than a redirect: the next navigation is then same-site and carries the
        // SameSite=Strict session cookie.
        return new HttpResult(undefined, {
          session: { value: s.session.secret, maxAgeSeconds: s.session.maxAgeSeconds },
          ssoBinding: 'clear',
          html: SSO_DONE_PAGE,
        });
      },
    },

    // ---- single sign-on from the CLI (bulwark login --sso; RFC 8252 loopback redirect) ---------------
    {
      public: true,
      method: 'POST',
      url: '/auth/cli/start',
      summary:
        "Command-line single sign-on, step 1: register a sign-in that ends at the CLI's loopback listener (http://127.0.0.1:<port>/… or http://[::1]:<port>/…), bound to the CLI's PKCE challenge; returns the link to open in a browser (valid 10 minutes, once)",
      tags: ['auth'],
      rateLimit: { burst: 10, perMinute: 10 },
      schema: {
        body: {
          type: 'object',
          properties: {
            tenant: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,62}$' },
            redirectUri: {
              type: 'string',
              minLength: 1,
              maxLength: 512,
              examples: ['http://127.0.0.1:53682/callback'],
            },
            codeChallenge: {
              type: 'string',
              pattern: '^[A-Za-z0-9_-]{43}$',
              description: 'base64url(SHA-256(codeVerifier)), RFC 7636 S256',
              examples: ['E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM'],
            },
            codeChallengeMethod: { type: 'string', enum: ['S256'] },
            state: {
              type: 'string',
              pattern: '^[A-Za-z0-9._~-]{16,128}$',
              examples: ['k3v9Qp2LwX8rT5yZ1mN4bC7dF0gH6jJ'],
            },
          },
          required: ['redirectUri', 'codeChallenge', 'codeChallengeMethod', 'state'],
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: {
              browserUrl: { type: 'string' },
              expiresAt: { type: 'string', format: 'date-time' },
            },
            required: ['browserUrl', 'expiresAt'],
          },
        },
      },
      async handler(ctx) {
        const b = ctx.body as { tenant?: string; redirectUri: string; codeChallenge: string; state: string };
        return iam.cliStart({
          tenant: b.tenant ?? deps.platformTenant,
          redirectUri: b.redirectUri,
          codeChallenge: b.codeChallenge,
          state: b.state,
          origin: ctx.origin,
        });
      },
    },
    {
      public: true,
      browser: true,
      method: 'GET',
      url: '/auth/oidc/:tenant/cli/:handle',
      summary:
        "Command-line single sign-on, step 2: the link the CLI printed; redirects to the tenant's identity provider",
      tags: ['auth'],
      rateLimit: { burst: 20, perMinute: 20 },
      schema: {
        params: {
          type: 'object',
          properties: {
            tenant: tenantParam.properties.tenant,
            handle: { type: 'string', pattern: '^[A-Za-z0-9_-]{43}$' },
          },
          required: ['tenant', 'handle'],
        },
      },
      async handler(ctx) {
        const { redirect, binding } = await iam.cliBrowserStart(
          ctx.params.tenant ?? '',
          ctx.params.handle ?? '',
          ctx.origin,
          ctx.sourceIp,
        );
        return new HttpResult(undefined, { redirect, ssoBinding: { value: binding, maxAgeSeconds: 600 } });
      },
    },
    {
      public: true,
      method: 'POST',
      url: '/auth/cli/token',
      summary:
        'Command-line single sign-on, last step: exchange the one-time code (60 s, once) and the PKCE verifier for a short-lived personal API token',
      tags: ['auth'],
      rateLimit: { burst: 10, perMinute: 10 },
      schema: {
        body: {
          type: 'object',
          properties: {
            code: { type: 'string', minLength: 1, maxLength: 128 },
            codeVerifier: { type: 'string', minLength: 43, maxLength: 128 },
          },
          required: ['code', 'codeVerifier'],
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: {
              token: tokenSchema,
              secret: { type: 'string' },
              account: {
                type: 'object',
                properties: {
                  id: { type: 'string' },
                  name: { type: 'string' },
                  tenant: { type: 'string' },
                  role: { type: 'string' },
                  fleet: { type: ['string', 'null'] },
                },
                required: ['id', 'name', 'tenant', 'role', 'fleet'],
              },
              mfa: { type: 'boolean' },
            },
            required: ['token', 'secret', 'account', 'mfa'],
          },
        },
      },
      async handler(ctx) {
        const b = ctx.body as { code: string; codeVerifier: string };
        return iam.cliExchange({
          code: b.code,
          codeVerifier: b.codeVerifier,
          source: ctx.sourceIp,
          ...(ctx.userAgent !== undefined ? { userAgent: ctx.userAgent } : {}),
        });
      },
    },
  ];
}
