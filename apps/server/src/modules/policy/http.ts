import { AppError, type HttpRoute, type RouteContext } from '../../kernel/index.ts';
import { recordRouteAction, type AuditService } from '../audit/index.ts';
import { ACTIONS, ATTACHMENT_TARGET_TYPES, resourceName, type AttachmentTargetType } from './model.ts';
import type { DiffProposal, PolicyService, PolicyView } from './service.ts';

export interface PolicyRouteDeps {
  policy: PolicyService;
  audit: AuditService;
}

const idParam = {
  type: 'object',
  properties: { id: { type: 'string', minLength: 1, maxLength: 64 } },
  required: ['id'],
};
// The document is checked by validatePolicyDocument, which reports every problem with its own code.
const documentBody = {
  type: 'object',
  properties: {
    description: { type: 'string', maxLength: 1024 },
    statements: { type: 'array', maxItems: 100 },
  },
  required: ['statements'],
};
const targetBody = {
  type: 'object',
  properties: {
    targetType: { type: 'string', enum: [...ATTACHMENT_TARGET_TYPES] },
    targetId: { type: 'string', maxLength: 512 },
  },
  required: ['targetType'],
  additionalProperties: false,
};
const targetOf = (ctx: RouteContext) => {
  const b = ctx.body as { targetType: AttachmentTargetType; targetId?: string };
  const id =
    b.targetType === 'tenant' ? ctx.principal.tenant : b.targetType === 'platform' ? '*' : b.targetId;
  if (id === undefined || id === '')
    throw new AppError('ERR_VALIDATION', `targetId is required for a ${b.targetType} attachment`);
  return { type: b.targetType, id };
};

export const policyJson = (p: PolicyView) => ({
  id: p.id,
  builtin: p.builtin,
  version: p.version,
  description: p.document.description ?? '',
  statements: p.document.statements,
  attachments: p.attachments,
  createdAt: p.createdAt === null ? null : new Date(p.createdAt).toISOString(),
  updatedAt: p.updatedAt === null ? null : new Date(p.updatedAt).toISOString(),
  updatedBy: p.updatedBy,
});

/** Resource name of an attachment target, for the second authorization of attach/detach. */
function targetResource(tenant: string, t: { type: AttachmentTargetType; id: string }): string {
  // The platform is named inside the caller's tenant; the service lets only the platform tenant attach there.
  return t.type === 'platform'
    ? resourceName(tenant, 'platform', '*')
    : t.type === 'tenant'
      ? resourceName(tenant, 'tenant', tenant)
      : resourceName(tenant, t.type, t.id);
}

export function policyRoutes(deps: PolicyRouteDeps): HttpRoute[] {
  const { policy, audit } = deps;
  const res = (ctx: RouteContext) => resourceName(ctx.principal.tenant, 'policy', ctx.params.id ?? '*');
  const actor = (ctx: RouteContext) => ({ tenant: ctx.principal.tenant, id: ctx.principal.id });
  const record = (ctx: RouteContext, action: string, id: string, details: Record<string, unknown>) =>
    recordRouteAction(audit, ctx, action, { type: 'policy', id }, details);
  // Attaching changes what the target's devices may do: the caller needs policies:write on the target too.
  const authorizeTarget = (ctx: RouteContext, target: { type: AttachmentTargetType; id: string }) => {
    const r = targetResource(ctx.principal.tenant, target);
    const d = policy.authorize({ ...ctx.principal }, 'policies:write', r, { sourceIp: ctx.sourceIp });
    if (!d.allowed) throw new AppError('ERR_POLICY_DENIED', `policies:write on ${r} is not allowed`);
  };
  return [
    {
      method: 'GET',
      url: '/policies',
      summary: 'List policies: built-in ones and the tenant\u2019s own',
      tags: ['policies'],
      action: 'policies:read',
      resource: res,
      async handler(ctx) {
        return { items: policy.list(ctx.principal.tenant).map(policyJson) };
      },
    },
    {
      method: 'POST',
      url: '/policies',
      summary: 'Create a policy (validated; not attached anywhere yet)',
      tags: ['policies'],
      action: 'policies:write',
      resource: (ctx) =>
        resourceName(ctx.principal.tenant, 'policy', String((ctx.body as { id?: unknown })?.id ?? '')),
      schema: {
        body: {
          ...documentBody,
          properties: { ...documentBody.properties, id: { type: 'string', maxLength: 64 } },
          required: ['id', 'statements'],
        },
      },
      status: 201,
      async handler(ctx) {
        const p = await policy.create(actor(ctx), ctx.body);
        await record(ctx, 'policy.create', p.id, { version: p.version, document: p.document });
        return policyJson(p);
      },
    },
    {
      method: 'GET',
      url: '/policies/:id',
      summary: 'Get a policy with its attachments',
      tags: ['policies'],
      action: 'policies:read',
      resource: res,
      schema: { params: idParam },
      async handler(ctx) {
        return policyJson(policy.get(ctx.principal.tenant, ctx.params.id ?? ''));
      },
    },
    {
      method: 'PUT',
      url: '/policies/:id',
      summary: 'Replace a policy\u2019s statements (new version; live sessions follow within a second)',
      tags: ['policies'],
      action: 'policies:write',
      resource: res,
      schema: {
        params: idParam,
        body: {
          ...documentBody,
          properties: { ...documentBody.properties, expectedVersion: { type: 'integer', minimum: 1 } },
        },
      },
      async handler(ctx) {
        const { expectedVersion, ...doc } = ctx.body as { expectedVersion?: number };
        const before = policy.get(ctx.principal.tenant, ctx.params.id ?? '');
        const p = await policy.update(actor(ctx), ctx.params.id ?? '', doc, expectedVersion);
        await record(ctx, 'policy.update', p.id, {
          from: before.version,
          version: p.version,
          document: p.document,
        });
        return policyJson(p);
      },
    },
    {
      method: 'DELETE',
      url: '/policies/:id',
      summary: 'Delete a policy (it must be detached everywhere first)',
      tags: ['policies'],
      action: 'policies:write',
      resource: res,
      schema: { params: idParam },
      status: 204,
      async handler(ctx) {
        await policy.remove(actor(ctx), ctx.params.id ?? '');
        await record(ctx, 'policy.delete', ctx.params.id ?? '', {});
        return undefined;
      },
    },
    {
      method: 'GET',
      url: '/policies/:id/versions',
      summary: 'Version history of a policy, newest first',
      tags: ['policies'],
      action: 'policies:read',
      resource: res,
      schema: { params: idParam },
      async handler(ctx) {
        const versions = await policy.versions(ctx.principal.tenant, ctx.params.id ?? '');
        return {
          items: versions.map((v) => ({
            version: v.version,
            deleted: v.document === null,
            document: v.document,
            createdAt: new Date(v.createdAt).toISOString(),
            createdBy: v.createdBy,
          })),
        };
      },
    },
    ...(['attach', 'detach'] as const).map((verb): HttpRoute => ({
      method: 'POST',
      url: `/policies/:id/${verb}`,
      summary:
        verb === 'attach'
          ? 'Attach a policy at the platform, the tenant, a fleet (and below), a group or a device'
          : 'Detach a policy from a target',
      tags: ['policies'],
      action: 'policies:write',
      resource: res,
      schema: { params: idParam, body: targetBody },
      async handler(ctx) {
        const target = targetOf(ctx);
        authorizeTarget(ctx, target);
        const id = ctx.params.id ?? '';
        if (verb === 'attach') await policy.attach(actor(ctx), id, target);
        else await policy.detach(actor(ctx), id, target);
        await record(ctx, `policy.${verb}`, id, { targetType: target.type, targetId: target.id });
        return policyJson(policy.get(ctx.principal.tenant, id));
      },
    })),
    {
      method: 'GET',
      url: '/policy-attachments',
      summary: 'Attachments of the tenant, optionally at one target',
      tags: ['policies'],
      action: 'policies:read',
      resource: res,
      schema: {
        querystring: {
          type: 'object',
          properties: {
            targetType: { type: 'string', enum: [...ATTACHMENT_TARGET_TYPES] },
            targetId: { type: 'string', maxLength: 512 },
          },
          additionalProperties: false,
        },
      },
      async handler(ctx) {
        const q = ctx.query as { targetType?: AttachmentTargetType; targetId?: string };
        const items = policy.attachments(
          ctx.principal.tenant,
          q.targetType
            ? {
                type: q.targetType,
                id: q.targetType === 'tenant' ? ctx.principal.tenant : (q.targetId ?? ''),
              }
            : undefined,
        );
        return {
          items: items.map((a) => ({
            policy: a.policyId,
            targetType: a.targetType,
            targetId: a.targetId,
            createdAt: new Date(a.createdAt).toISOString(),
          })),
        };
      },
    },
    {
      method: 'POST',
      url: '/policies/explain',
      summary: 'May X do A on R? The decision, and the statements and attachment points that produced it',
      tags: ['policies'],
      action: 'policies:read',
      resource: (ctx) => resourceName(ctx.principal.tenant, 'policy', '*'),
      schema: {
        body: {
          type: 'object',
          properties: {
            principal: {
              type: 'object',
              properties: {
                type: { type: 'string', enum: ['device', 'user', 'service'] },
                id: { type: 'string', minLength: 1, maxLength: 128 },
              },
              required: ['type', 'id'],
              additionalProperties: false,
            },
            action: { type: 'string', minLength: 1, maxLength: 64 },
            resource: { type: 'string', minLength: 1, maxLength: 1024 },
            context: {
              type: 'object',
              properties: {
                sourceIp: { type: 'string', maxLength: 64 },
                mfa: { type: 'boolean' },
                time: { type: 'string', format: 'date-time' },
                cert: { type: 'object', additionalProperties: { type: 'string', maxLength: 256 } },
              },
              additionalProperties: false,
            },
          },
          required: ['principal', 'action', 'resource'],
          additionalProperties: false,
        },
      },
      async handler(ctx) {
        const b = ctx.body as {
          principal: { type: 'device' | 'user' | 'service'; id: string };
          action: string;
          resource: string;
          context?: { sourceIp?: string; mfa?: boolean; time?: string; cert?: Record<string, string> };
        };
        if (!(ACTIONS as readonly string[]).includes(b.action))
          throw new AppError('ERR_POLICY_UNKNOWN_ACTION', `unknown action '${b.action}'`);
        const c = b.context ?? {};
        const context = {
          ...(c.sourceIp !== undefined ? { sourceIp: c.sourceIp } : {}),
          ...(c.mfa !== undefined ? { mfa: c.mfa } : {}),
          ...(c.cert !== undefined ? { cert: c.cert } : {}),
          ...(c.time !== undefined ? { now: Date.parse(c.time) } : {}),
        };
        const e = await policy.explain(ctx.principal.tenant, {
          principal: b.principal,
          action: b.action,
          resource: b.resource,
          context,
        });
        return e;
      },
    },
    {
      method: 'POST',
      url: '/policies/lint',
      summary: 'Lint a policy document: overly permissive statements',
      tags: ['policies'],
      action: 'policies:read',
      resource: (ctx) => resourceName(ctx.principal.tenant, 'policy', '*'),
      schema: {
        body: {
          ...documentBody,
          properties: { ...documentBody.properties, id: { type: 'string', maxLength: 64 } },
        },
      },
      async handler(ctx) {
        const body = ctx.body as { id?: string };
        return { findings: policy.lint(ctx.principal.tenant, { id: 'linted', ...body }) };
      },
    },
    {
      method: 'GET',
      url: '/policies/:id/lint',
      summary: 'Lint a stored policy',
      tags: ['policies'],
      action: 'policies:read',
      resource: res,
      schema: { params: idParam },
      async handler(ctx) {
        const p = policy.get(ctx.principal.tenant, ctx.params.id ?? '');
        return {
          findings: policy.lint(ctx.principal.tenant, { ...p.document, id: p.builtin ? 'builtin' : p.id }),
        };
      },
    },
    {
      method: 'POST',
      url: '/policies/:id/diff',
      summary: 'Dry run: which devices would gain or lose which permissions with this change',
      tags: ['policies'],
      action: 'policies:read',
      resource: res,
      schema: {
        params: idParam,
        body: {
          type: 'object',
          properties: {
            document: documentBody,
            delete: { type: 'boolean', const: true },
            attach: targetBody,
            detach: targetBody,
            maxDevices: { type: 'integer', minimum: 1, maximum: 100000 },
          },
          additionalProperties: false,
        },
      },
      async handler(ctx) {
        const b = ctx.body as {
          document?: unknown;
          delete?: true;
          attach?: { targetType: AttachmentTargetType; targetId?: string };
          detach?: { targetType: AttachmentTargetType; targetId?: string };
          maxDevices?: number;
        };
        const policyId = ctx.params.id ?? '';
        const given = [b.document, b.delete, b.attach, b.detach].filter((x) => x !== undefined).length;
        if (given !== 1)
          throw new AppError('ERR_VALIDATION', 'Give exactly one of document, delete, attach or detach');
        const t = (x: { targetType: AttachmentTargetType; targetId?: string }) =>
          targetOf({ ...ctx, body: x });
        const proposal: DiffProposal =
          b.document !== undefined
            ? { policyId, document: b.document }
            : b.delete
              ? { policyId, delete: true }
              : b.attach
                ? { policyId, attach: t(b.attach) }
                : { policyId, detach: t(b.detach as { targetType: AttachmentTargetType }) };
        return policy.diff(
          ctx.principal.tenant,
          proposal,
          b.maxDevices !== undefined ? { maxDevices: b.maxDevices } : {},
        );
      },
    },
  ];
}
