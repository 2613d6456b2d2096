import type { HttpRoute, RouteContext } from '../../kernel/index.ts';
import { recordRouteAction, type AuditService } from '../audit/index.ts';
import { resourceName } from '../policy/index.ts';
import type { CapabilityVersion, Twin } from './model.ts';
import { LIMITS, type CommandsService } from './service.ts';

const idParam = {
  type: 'object',
  properties: {
    id: { type: 'string', minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' },
  },
  required: ['id'],
};
const anyObject = { type: 'object', additionalProperties: true };
const twinSchema = {
  type: 'object',
  properties: {
    desired: {
      type: 'object',
      properties: {
        version: { type: 'integer', description: '0 until a desired state is set' },
        state: anyObject,
        updatedAt: { type: ['string', 'null'], format: 'date-time' },
      },
      required: ['version', 'state', 'updatedAt'],
    },
    reported: {
      type: ['object', 'null'],
      properties: {
        state: anyObject,
        desiredVersion: {
          type: ['integer', 'null'],
          description: 'the desired version the device says it applied',
        },
        updatedAt: { type: 'string', format: 'date-time' },
      },
    },
  },
  required: ['desired', 'reported'],
};
const capabilitySchema = {
  type: 'object',
  properties: {
    version: { type: 'integer' },
    reportedAt: { type: 'string', format: 'date-time' },
    capabilities: anyObject,
  },
  required: ['version', 'reportedAt', 'capabilities'],
};

const iso = (ms: number) => new Date(ms).toISOString();

export const twinJson = (t: Twin) => ({
  desired: {
    version: t.desired.version,
    state: t.desired.state,
    updatedAt: t.desired.updatedAt === null ? null : iso(t.desired.updatedAt),
  },
  reported: t.reported
    ? {
        state: t.reported.state,
        desiredVersion: t.reported.desiredVersion,
        updatedAt: iso(t.reported.updatedAt),
      }
    : null,
});

const capabilityJson = (c: CapabilityVersion) => ({
  version: c.version,
  reportedAt: iso(c.reportedAt),
  capabilities: c.capabilities,
});

export function commandRoutes(deps: { commands: CommandsService; audit: AuditService }): HttpRoute[] {
  const { commands, audit } = deps;
  const device = (ctx: RouteContext) => resourceName(ctx.principal.tenant, 'device', ctx.params.id ?? '');
  const actor = (ctx: RouteContext) => ({ type: ctx.principal.type, id: ctx.principal.id });
  return [
    {
      method: 'POST',
      url: '/devices/:id/commands',
      summary:
        "Send a command over the device's own MQTT connection and wait for its reply (status succeeded, failed or timeout)",
      tags: ['commands'],
      action: 'devices:command',
      resource: device,
      schema: {
        params: idParam,
        body: {
          type: 'object',
          properties: {
            name: {
              type: 'string',
              minLength: 1,
              maxLength: 64,
              pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$',
            },
            payload: { description: 'any JSON value, sent to the device as is' },
            timeoutMs: {
              type: 'integer',
              minimum: LIMITS.minTimeoutMs,
              maximum: LIMITS.maxTimeoutMs,
              description: `how long to wait for the reply (default ${LIMITS.defaultTimeoutMs})`,
            },
          },
          required: ['name'],
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: {
              id: { type: 'string' },
              status: { type: 'string', enum: ['succeeded', 'failed', 'timeout'] },
              result: { description: "the device's result, any JSON value" },
              error: { type: 'string' },
            },
            required: ['id', 'status'],
          },
        },
      },
      async handler(ctx) {
        const tenant = ctx.principal.tenant;
        const id = ctx.params.id ?? '';
        const body = ctx.body as { name: string; payload?: unknown; timeoutMs?: number };
        const outcome = await commands.send(tenant, id, {
          name: body.name,
          ...(body.payload !== undefined ? { payload: body.payload } : {}),
          ...(body.timeoutMs !== undefined ? { timeoutMs: body.timeoutMs } : {}),
        });
        await audit.record({
          tenant,
          actor: actor(ctx),
          action: 'device.command',
          target: { type: 'device', id },
          outcome: outcome.status === 'succeeded' ? 'success' : 'failure',
          source: ctx.sourceIp,
          details: { command: body.name, commandId: outcome.id, status: outcome.status },
        });
        return outcome;
      },
    },
    {
      method: 'GET',
      url: '/devices/:id/twin',
      summary: "The device's twin: desired state (set here) and reported state (from the device)",
      tags: ['twin'],
      action: 'devices:read',
      resource: device,
      schema: { params: idParam, response: { 200: twinSchema } },
      async handler(ctx) {
        return twinJson(await commands.getTwin(ctx.principal.tenant, ctx.params.id ?? ''));
      },
    },
    {
      method: 'PUT',
      url: '/devices/:id/twin',
      summary:
        'Replace the desired state; it is stored, versioned and published retained to devices/{id}/twin/desired',
      tags: ['twin'],
      action: 'devices:write',
      resource: device,
      schema: {
        params: idParam,
        body: {
          type: 'object',
          properties: {
            desired: anyObject,
            version: {
              type: 'integer',
              minimum: 0,
              description:
                'the desired version this change is based on; refused with 409 if it changed since',
            },
          },
          required: ['desired'],
          additionalProperties: false,
        },
        response: { 200: twinSchema },
      },
      async handler(ctx) {
        const tenant = ctx.principal.tenant;
        const id = ctx.params.id ?? '';
        const body = ctx.body as { desired: Record<string, unknown>; version?: number };
        const twin = await commands.setDesired(tenant, id, body.desired, body.version);
        await recordRouteAction(
          audit,
          ctx,
          'device.twin.update',
          { type: 'device', id },
          { version: twin.desired.version },
        );
        return twinJson(twin);
      },
    },
    {
      method: 'GET',
      url: '/devices/:id/capabilities',
      summary:
        'The latest capability report of the device (hardware, firmware, key storage, TLS, listening ports, SBOM)',
      tags: ['capabilities'],
      action: 'devices:read',
      resource: device,
      schema: { params: idParam, response: { 200: capabilitySchema } },
      async handler(ctx) {
        return capabilityJson(await commands.getCapabilities(ctx.principal.tenant, ctx.params.id ?? ''));
      },
    },
    {
      method: 'GET',
      url: '/devices/:id/capabilities/history',
      summary: 'Every distinct capability report of the device, newest first (paged)',
      tags: ['capabilities'],
      action: 'devices:read',
      resource: device,
      schema: {
        params: idParam,
        querystring: {
          type: 'object',
          properties: {
            limit: { type: 'integer', minimum: 1, maximum: 100 },
            cursor: { type: 'string', maxLength: 32 },
          },
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: {
              items: { type: 'array', items: capabilitySchema },
              nextCursor: { type: ['string', 'null'] },
            },
            required: ['items', 'nextCursor'],
          },
        },
      },
      async handler(ctx) {
        const q = ctx.query as { limit?: number; cursor?: string };
        const page = await commands.listCapabilities(ctx.principal.tenant, ctx.params.id ?? '', {
          ...(q.limit !== undefined ? { limit: q.limit } : {}),
          ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
        });
        return { items: page.items.map(capabilityJson), nextCursor: page.nextCursor };
      },
    },
  ];
}
