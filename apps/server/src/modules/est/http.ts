// REST routes for operators: enrollment codes, approval of pending enrollments, per-fleet certificate
// lifetime and renewal grace. The device-facing EST endpoints are in transport/http/est.ts.
import type { HttpRoute, RouteContext } from '../../kernel/index.ts';
import { recordRouteAction, type AuditService } from '../audit/index.ts';
import { resourceName } from '../policy/index.ts';
import type { EnrollmentCode, EstRequest, EstRequestStatus, FleetSettings } from './model.ts';
import type { EstService } from './service.ts';

export interface EstRouteDeps {
  est: EstService;
  audit: AuditService;
  now(): number;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

const codeJson = (c: EnrollmentCode, now: number) => ({
  id: c.id,
  deviceId: c.deviceId,
  fleet: c.fleet,
  quota: c.quota,
  used: c.used,
  approval: c.approval,
  status:
    c.revokedAt !== null ? 'revoked' : c.expiresAt <= now ? 'expired' : c.used >= c.quota ? 'used' : 'active',
  expiresAt: iso(c.expiresAt),
  revokedAt: iso(c.revokedAt),
  createdBy: c.createdBy,
  createdAt: iso(c.createdAt),
});

const requestJson = (r: EstRequest) => ({
  id: r.id,
  deviceId: r.deviceId,
  method: r.method,
  sourceId: r.sourceId,
  fleet: r.fleet,
  keyType: r.keyType,
  source: r.source,
  status: r.status,
  createdAt: iso(r.createdAt),
  decidedAt: iso(r.decidedAt),
  decidedBy: r.decidedBy,
});

const settingsJson = (s: FleetSettings) => ({
  fleet: s.fleet,
  certDays: s.certDays,
  graceSeconds: s.graceSeconds,
  updatedAt: iso(s.updatedAt),
});

const nullableString = { type: ['string', 'null'] };
const codeSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    code: { type: 'string', description: 'The secret; returned once, on creation.' },
    deviceId: nullableString,
    fleet: { type: 'string' },
    quota: { type: 'integer' },
    used: { type: 'integer' },
    approval: { type: 'boolean' },
    status: { type: 'string', enum: ['active', 'used', 'expired', 'revoked'] },
    expiresAt: { type: 'string' },
    revokedAt: nullableString,
    createdBy: { type: 'string' },
    createdAt: { type: 'string' },
  },
  required: ['id', 'fleet', 'quota', 'used', 'status', 'expiresAt'],
};
const requestSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    deviceId: { type: 'string' },
    method: { type: 'string' },
    sourceId: { type: 'string' },
    fleet: { type: 'string' },
    keyType: { type: 'string' },
    source: nullableString,
    status: { type: 'string' },
    createdAt: { type: 'string' },
    decidedAt: nullableString,
    decidedBy: nullableString,
  },
  required: ['id', 'deviceId', 'status'],
};
const settingsSchema = {
  type: 'object',
  properties: {
    fleet: { type: 'string' },
    certDays: { type: 'integer' },
    graceSeconds: { type: 'integer' },
    updatedAt: nullableString,
  },
  required: ['fleet', 'certDays', 'graceSeconds'],
};
const fleetString = { type: 'string', maxLength: 512 };

export function estRoutes(deps: EstRouteDeps): HttpRoute[] {
  const { est, audit } = deps;
  const by = (ctx: RouteContext) => `${ctx.principal.type}:${ctx.principal.id}`;
  const record = (
    ctx: RouteContext,
    action: string,
    target: { type: string; id: string },
    details?: Record<string, unknown>,
  ) => recordRouteAction(audit, ctx, action, target, details);

  return [
    {
      method: 'POST',
      url: '/enrollment-codes',
      summary: 'Create an enrollment code for one device (one-time) or a fleet (quota); shown once',
      tags: ['enrollment'],
      action: 'certs:enroll-codes',
      resource: (ctx) => resourceName(ctx.principal.tenant, 'enrollment-code', '*'),
      schema: {
        body: {
          type: 'object',
          properties: {
            deviceId: { type: 'string', minLength: 1, maxLength: 128 },
            fleet: fleetString,
            quota: { type: 'integer', minimum: 1, maximum: 1000000 },
            ttlSeconds: { type: 'integer', minimum: 60, maximum: 31536000 },
            approval: { type: 'boolean' },
          },
          additionalProperties: false,
        },
        response: { 201: codeSchema },
      },
      status: 201,
      async handler(ctx) {
        const b = ctx.body as {
          deviceId?: string;
          fleet?: string;
          quota?: number;
          ttlSeconds?: number;
          approval?: boolean;
        };
        const { code, record: c } = await est.createCode({
          tenantId: ctx.principal.tenant,
          fleet: b.fleet ?? '',
          createdBy: by(ctx),
          ...(b.deviceId !== undefined ? { deviceId: b.deviceId } : {}),
          ...(b.quota !== undefined ? { quota: b.quota } : {}),
          ...(b.ttlSeconds !== undefined ? { ttlSeconds: b.ttlSeconds } : {}),
          ...(b.approval !== undefined ? { approval: b.approval } : {}),
        });
        await record(
          ctx,
          'est.code-create',
          { type: 'enrollment-code', id: c.id },
          {
            deviceId: c.deviceId,
            fleet: c.fleet,
            quota: c.quota,
            expiresAt: iso(c.expiresAt),
            approval: c.approval,
          },
        );
        return { ...codeJson(c, deps.now()), code };
      },
    },
    {
      method: 'GET',
      url: '/enrollment-codes',
      summary: 'List enrollment codes (never the codes themselves), newest first',
      tags: ['enrollment'],
      action: 'certs:enroll-codes',
      resource: (ctx) => resourceName(ctx.principal.tenant, 'enrollment-code', '*'),
      schema: {
        querystring: {
          type: 'object',
          properties: { limit: { type: 'integer', minimum: 1, maximum: 500 } },
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: { items: { type: 'array', items: codeSchema } },
            required: ['items'],
          },
        },
      },
      async handler(ctx) {
        const q = ctx.query as { limit?: number };
        const items = await est.listCodes(ctx.principal.tenant, q.limit ?? 100);
        const now = deps.now();
        return { items: items.map((c) => codeJson(c, now)) };
      },
    },
    {
      method: 'POST',
      url: '/enrollment-codes/:id/revoke',
      summary: 'Revoke an enrollment code',
      tags: ['enrollment'],
      action: 'certs:enroll-codes',
      resource: (ctx) => resourceName(ctx.principal.tenant, 'enrollment-code', ctx.params.id ?? ''),
      schema: {
        params: {
          type: 'object',
          properties: { id: { type: 'string', pattern: '^enc_[A-Za-z0-9_-]{1,64}$' } },
          required: ['id'],
        },
        response: { 200: codeSchema },
      },
      async handler(ctx) {
        const c = await est.revokeCode(ctx.principal.tenant, ctx.params.id ?? '', by(ctx));
        await record(ctx, 'est.code-revoke', { type: 'enrollment-code', id: c.id });
        return codeJson(c, deps.now());
      },
    },
    {
      method: 'GET',
      url: '/enrollment-requests',
      summary: 'Enrollments awaiting (or after) operator approval',
      tags: ['enrollment'],
      action: 'certs:read',
      resource: (ctx) => resourceName(ctx.principal.tenant, 'enrollment-request', '*'),
      schema: {
        querystring: {
          type: 'object',
          properties: { status: { type: 'string', enum: ['pending', 'approved', 'rejected', 'issued'] } },
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: { items: { type: 'array', items: requestSchema } },
            required: ['items'],
          },
        },
      },
      async handler(ctx) {
        const q = ctx.query as { status?: EstRequestStatus };
        return { items: (await est.listRequests(ctx.principal.tenant, q.status)).map(requestJson) };
      },
    },
    ...(['approve', 'reject'] as const).map((verb): HttpRoute => ({
      method: 'POST',
      url: `/enrollment-requests/:id/${verb}`,
      summary:
        verb === 'approve'
          ? 'Approve a pending enrollment: the device gets its certificate on its next retry'
          : 'Reject a pending enrollment',
      tags: ['enrollment'],
      action: 'certs:issue',
      resource: (ctx) => resourceName(ctx.principal.tenant, 'enrollment-request', ctx.params.id ?? ''),
      schema: {
        params: {
          type: 'object',
          properties: { id: { type: 'string', pattern: '^req_[A-Za-z0-9_-]{1,64}$' } },
          required: ['id'],
        },
        response: { 200: requestSchema },
      },
      async handler(ctx) {
        const r = await est.decide(ctx.principal.tenant, ctx.params.id ?? '', verb, by(ctx));
        await record(ctx, `est.${verb}`, { type: 'device', id: r.deviceId }, { requestId: r.id });
        return requestJson(r);
      },
    })),
    {
      method: 'GET',
      url: '/enrollment-settings',
      summary: "Per-fleet certificate lifetime and renewal grace period ('' is the tenant default)",
      tags: ['enrollment'],
      action: 'certs:read',
      resource: (ctx) => resourceName(ctx.principal.tenant, 'fleet', '*'),
      schema: {
        querystring: { type: 'object', properties: { fleet: fleetString }, additionalProperties: false },
        response: {
          200: {
            type: 'object',
            properties: { items: { type: 'array', items: settingsSchema }, effective: settingsSchema },
            required: ['items'],
          },
        },
      },
      async handler(ctx) {
        const q = ctx.query as { fleet?: string };
        const t = ctx.principal.tenant;
        const items = (await est.listFleetSettings(t)).map(settingsJson);
        return q.fleet === undefined
          ? { items }
          : { items, effective: { ...(await est.fleetSettings(t, q.fleet)), updatedAt: null } };
      },
    },
    {
      method: 'PUT',
      url: '/enrollment-settings',
      summary: 'Set the certificate lifetime and renewal grace period of a fleet and its sub-fleets',
      tags: ['enrollment'],
      action: 'certs:issue',
      resource: (ctx) =>
        resourceName(ctx.principal.tenant, 'fleet', String((ctx.body as { fleet?: unknown })?.fleet ?? '')),
      schema: {
        body: {
          type: 'object',
          properties: {
            fleet: fleetString,
            certDays: { type: 'integer', minimum: 1, maximum: 397 },
            graceSeconds: { type: 'integer', minimum: 0, maximum: 2592000 },
          },
          required: ['fleet', 'certDays', 'graceSeconds'],
          additionalProperties: false,
        },
        response: { 200: settingsSchema },
      },
      async handler(ctx) {
        const b = ctx.body as { fleet: string; certDays: number; graceSeconds: number };
        const s = await est.putFleetSettings(ctx.principal.tenant, b.fleet, b, by(ctx));
        await record(
          ctx,
          'est.settings',
          { type: 'fleet', id: s.fleet },
          {
            certDays: s.certDays,
            graceSeconds: s.graceSeconds,
          },
        );
        return settingsJson(s);
      },
    },
  ];
}
