import type { HttpRoute, RouteContext } from '../../kernel/index.ts';
import { recordRouteAction, type AuditService } from '../audit/index.ts';
import { resourceName } from '../policy/index.ts';
import { FINDING_KINDS, SEVERITIES } from './model.ts';
import { findingView, type PostureService } from './service.ts';

const findingSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    deviceId: { type: ['string', 'null'] },
    kind: { type: 'string', enum: [...FINDING_KINDS] },
    severity: { type: 'string', enum: [...SEVERITIES] },
    summary: { type: 'string' },
    details: { type: 'object', additionalProperties: true },
    status: { type: 'string', enum: ['open', 'resolved'] },
    occurrences: { type: 'integer' },
    firstSeenAt: { type: 'string', format: 'date-time' },
    lastSeenAt: { type: 'string', format: 'date-time' },
    resolvedAt: { type: ['string', 'null'], format: 'date-time' },
    resolvedBy: { type: ['string', 'null'] },
    resolution: { type: ['string', 'null'] },
  },
  required: [
    'id',
    'deviceId',
    'kind',
    'severity',
    'summary',
    'details',
    'status',
    'occurrences',
    'firstSeenAt',
    'lastSeenAt',
    'resolvedAt',
    'resolvedBy',
    'resolution',
  ],
} as const;
const idParam = {
  type: 'object',
  properties: { id: { type: 'string', pattern: '^[0-9a-fA-F-]{36}$' } },
  required: ['id'],
} as const;

export interface PostureRouteDeps {
  posture: PostureService;
  audit: AuditService;
  /** Fleet of a device, for principals limited to a fleet subtree. */
  deviceFleet(tenant: string, deviceId: string): Promise<string | undefined>;
}

export function postureRoutes(deps: PostureRouteDeps): HttpRoute[] {
  const { posture } = deps;
  const findingResource = (ctx: RouteContext) =>
    resourceName(ctx.principal.tenant, 'posture', ctx.params.id ?? '');
  // A finding about a device sits where the device sits: fleet-scoped principals see their fleet's.
  const findingFleet = async (ctx: RouteContext) => {
    const f = await posture.get(ctx.principal.tenant, ctx.params.id ?? '').catch(() => undefined);
    return f?.deviceId ? deps.deviceFleet(ctx.principal.tenant, f.deviceId) : undefined;
  };
  return [
    {
      method: 'GET',
      url: '/posture/findings',
      summary:
        'Security posture findings, most recently seen first (filter by status, severity, kind, device)',
      tags: ['posture'],
      action: 'posture:read',
      resource: (ctx) => resourceName(ctx.principal.tenant, 'posture', '*'),
      schema: {
        querystring: {
          type: 'object',
          properties: {
            status: { type: 'string', enum: ['open', 'resolved'] },
            severity: { type: 'string', enum: [...SEVERITIES] },
            kind: { type: 'string', enum: [...FINDING_KINDS] },
            deviceId: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' },
            limit: { type: 'integer', minimum: 1, maximum: 1000 },
            cursor: { type: 'string', maxLength: 512 },
          },
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: {
              items: { type: 'array', items: findingSchema },
              nextCursor: { type: ['string', 'null'] },
            },
            required: ['items', 'nextCursor'],
          },
        },
      },
      async handler(ctx) {
        return posture.list(ctx.principal.tenant, ctx.query as Parameters<PostureService['list']>[1]);
      },
    },
    {
      method: 'GET',
      url: '/posture/findings/:id',
      summary: 'One posture finding',
      tags: ['posture'],
      action: 'posture:read',
      resource: findingResource,
      resourceFleet: findingFleet,
      schema: { params: idParam, response: { 200: findingSchema } },
      async handler(ctx) {
        return findingView(await posture.get(ctx.principal.tenant, ctx.params.id ?? ''));
      },
    },
    {
      method: 'POST',
      url: '/posture/findings/:id/resolve',
      summary:
        'Resolve a finding (fixed, accepted, false positive: say which in `note`); it opens again if it is observed again',
      tags: ['posture'],
      action: 'posture:write',
      resource: findingResource,
      resourceFleet: findingFleet,
      schema: {
        params: idParam,
        body: {
          type: 'object',
          properties: {
            note: { type: 'string', maxLength: 1024, examples: ['port closed in firmware 2.1'] },
          },
          additionalProperties: false,
        },
        response: { 200: findingSchema },
      },
      async handler(ctx) {
        const note = (ctx.body as { note?: string } | undefined)?.note;
        const id = ctx.params.id ?? '';
        const { finding, resolved } = await posture.resolve(ctx.principal.tenant, id, ctx.principal.id, note);
        if (resolved)
          await recordRouteAction(
            deps.audit,
            ctx,
            'posture.resolve',
            { type: 'finding', id },
            {
              kind: finding.kind,
              severity: finding.severity,
              ...(finding.deviceId !== null ? { deviceId: finding.deviceId } : {}),
              ...(note !== undefined ? { note } : {}),
            },
          );
        return findingView(finding);
      },
    },
  ];
}
