import { type HttpRoute, type RouteContext } from '../../kernel/index.ts';
import { recordRouteAction, type AuditService } from '../audit/index.ts';
import { resourceName } from '../policy/index.ts';
import type { DeviceGroup, Fleet } from './model.ts';
import type { DeviceService, GroupView } from './service.ts';

export interface FleetRouteDeps {
  devices: DeviceService;
  audit: AuditService;
  /** Why the target cannot be deleted (policies attached), or undefined. */
  attachedPolicies(tenant: string, type: 'fleet' | 'group', id: string): string[];
}

// Fleet paths contain '/': clients send them URL-encoded (`plant-a%2Fline-3`) in the path.
const pathParam = {
  type: 'object',
  properties: { path: { type: 'string', minLength: 1, maxLength: 520 } },
  required: ['path'],
};
const nameParam = {
  type: 'object',
  properties: { name: { type: 'string', minLength: 1, maxLength: 64 } },
  required: ['name'],
};
const idsBody = {
  type: 'object',
  properties: {
    deviceIds: {
      type: 'array',
      minItems: 1,
      maxItems: 1000,
      items: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' },
    },
  },
  required: ['deviceIds'],
  additionalProperties: false,
};
const pageQuery = {
  type: 'object',
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 1000 },
    cursor: { type: 'string', maxLength: 512 },
  },
  additionalProperties: false,
};

export const fleetJson = (f: Fleet & { devices?: number; fleets?: number }) => ({
  path: f.path,
  parent: f.parent === '' ? null : f.parent,
  description: f.description,
  ...(f.devices !== undefined ? { devices: f.devices, fleets: f.fleets } : {}),
  createdAt: new Date(f.createdAt).toISOString(),
  updatedAt: new Date(f.updatedAt).toISOString(),
});

export const groupJson = (g: GroupView | DeviceGroup) => ({
  name: g.name,
  kind: g.kind,
  query: g.query,
  description: g.description,
  ...('members' in g ? { builtin: g.builtin, members: g.members } : {}),
  createdAt: g.createdAt === 0 ? null : new Date(g.createdAt).toISOString(),
  updatedAt: g.updatedAt === 0 ? null : new Date(g.updatedAt).toISOString(),
});

export function fleetRoutes(deps: FleetRouteDeps): HttpRoute[] {
  const { devices, audit } = deps;
  const res = (ctx: RouteContext) => resourceName(ctx.principal.tenant, 'fleet', ctx.params.path ?? '*');
  const record = (ctx: RouteContext, action: string, id: string, details: Record<string, unknown> = {}) =>
    recordRouteAction(audit, ctx, action, { type: 'fleet', id }, details);
  return [
    {
      method: 'POST',
      url: '/fleets',
      summary: 'Create a fleet; nested fleets name their parent path (plant-a/line-3)',
      tags: ['fleets'],
      action: 'fleets:write',
      resource: (ctx) =>
        resourceName(ctx.principal.tenant, 'fleet', String((ctx.body as { path?: unknown })?.path ?? '')),
      schema: {
        body: {
          type: 'object',
          properties: {
            path: { type: 'string', minLength: 1, maxLength: 520 },
            description: { type: 'string', maxLength: 1024 },
          },
          required: ['path'],
          additionalProperties: false,
        },
      },
      status: 201,
      async handler(ctx) {
        const b = ctx.body as { path: string; description?: string };
        const f = await devices.createFleet(ctx.principal.tenant, b.path, b.description);
        await record(ctx, 'fleet.create', f.path);
        return fleetJson(f);
      },
    },
    {
      method: 'GET',
      url: '/fleets',
      summary: 'List fleets (optionally one subtree), by path',
      tags: ['fleets'],
      action: 'fleets:read',
      resource: res,
      schema: {
        querystring: {
          ...pageQuery,
          properties: { ...pageQuery.properties, under: { type: 'string', maxLength: 520 } },
        },
      },
      async handler(ctx) {
        const q = ctx.query as { limit?: number; cursor?: string; under?: string };
        const page = await devices.listFleets(ctx.principal.tenant, {
          ...(q.limit !== undefined ? { limit: q.limit } : {}),
          ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
          ...(q.under !== undefined ? { under: q.under } : {}),
        });
        return { items: page.items.map(fleetJson), nextCursor: page.nextCursor };
      },
    },
    {
      method: 'GET',
      url: '/fleets/:path',
      summary: 'Get a fleet with its device and sub-fleet counts',
      tags: ['fleets'],
      action: 'fleets:read',
      resource: res,
      schema: { params: pathParam },
      async handler(ctx) {
        return fleetJson(await devices.getFleet(ctx.principal.tenant, ctx.params.path ?? ''));
      },
    },
    {
      method: 'DELETE',
      url: '/fleets/:path',
      summary: 'Delete an empty fleet (no devices, sub-fleets or attached policies)',
      tags: ['fleets'],
      action: 'fleets:write',
      resource: res,
      schema: { params: pathParam },
      status: 204,
      async handler(ctx) {
        const path = ctx.params.path ?? '';
        await devices.deleteFleet(ctx.principal.tenant, path, async () => {
          const p = deps.attachedPolicies(ctx.principal.tenant, 'fleet', path);
          return p.length > 0 ? `Policies are attached to fleet ${path}: ${p.join(', ')}` : undefined;
        });
        await record(ctx, 'fleet.delete', path);
        return undefined;
      },
    },
  ];
}

export function groupRoutes(deps: FleetRouteDeps): HttpRoute[] {
  const { devices, audit } = deps;
  const res = (ctx: RouteContext) => resourceName(ctx.principal.tenant, 'group', ctx.params.name ?? '*');
  const record = (ctx: RouteContext, action: string, id: string, details: Record<string, unknown> = {}) =>
    recordRouteAction(audit, ctx, action, { type: 'group', id }, details);
  return [
    {
      method: 'POST',
      url: '/groups',
      summary: 'Create a static group, or a dynamic one defined by a query over device attributes',
      tags: ['groups'],
      action: 'groups:write',
      resource: (ctx) =>
        resourceName(ctx.principal.tenant, 'group', String((ctx.body as { name?: unknown })?.name ?? '')),
      schema: {
        body: {
          type: 'object',
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 64 },
            kind: { type: 'string', enum: ['static', 'dynamic'] },
            query: { type: 'string', maxLength: 2048 },
            description: { type: 'string', maxLength: 1024 },
          },
          required: ['name', 'kind'],
          additionalProperties: false,
        },
      },
      status: 201,
      async handler(ctx) {
        const b = ctx.body as {
          name: string;
          kind: 'static' | 'dynamic';
          query?: string;
          description?: string;
        };
        const g = await devices.createGroup(ctx.principal.tenant, b);
        await record(ctx, 'group.create', g.name, { kind: g.kind, query: g.query });
        return groupJson(g);
      },
    },
    {
      method: 'GET',
      url: '/groups',
      summary: 'List groups with their member counts',
      tags: ['groups'],
      action: 'groups:read',
      resource: res,
      async handler(ctx) {
        return { items: (await devices.listGroups(ctx.principal.tenant)).map(groupJson) };
      },
    },
    {
      method: 'GET',
      url: '/groups/:name',
      summary: 'Get a group',
      tags: ['groups'],
      action: 'groups:read',
      resource: res,
      schema: { params: nameParam },
      async handler(ctx) {
        return groupJson(await devices.getGroup(ctx.principal.tenant, ctx.params.name ?? ''));
      },
    },
    {
      method: 'PATCH',
      url: '/groups/:name',
      summary: 'Change a dynamic group\u2019s query (members are recomputed) or a group\u2019s description',
      tags: ['groups'],
      action: 'groups:write',
      resource: res,
      schema: {
        params: nameParam,
        body: {
          type: 'object',
          properties: {
            query: { type: 'string', maxLength: 2048 },
            description: { type: 'string', maxLength: 1024 },
          },
          additionalProperties: false,
        },
      },
      async handler(ctx) {
        const b = ctx.body as { query?: string; description?: string };
        const g = await devices.updateGroup(ctx.principal.tenant, ctx.params.name ?? '', b);
        await record(ctx, 'group.update', g.name, { ...b });
        return groupJson(g);
      },
    },
    {
      method: 'DELETE',
      url: '/groups/:name',
      summary: 'Delete a group (not the built-in quarantine group, not while policies are attached)',
      tags: ['groups'],
      action: 'groups:write',
      resource: res,
      schema: { params: nameParam },
      status: 204,
      async handler(ctx) {
        const name = ctx.params.name ?? '';
        await devices.deleteGroup(ctx.principal.tenant, name, async () => {
          const p = deps.attachedPolicies(ctx.principal.tenant, 'group', name);
          return p.length > 0 ? `Policies are attached to group ${name}: ${p.join(', ')}` : undefined;
        });
        await record(ctx, 'group.delete', name);
        return undefined;
      },
    },
    {
      method: 'GET',
      url: '/groups/:name/members',
      summary: 'Members of a group, by device id',
      tags: ['groups'],
      action: 'groups:read',
      resource: res,
      schema: { params: nameParam, querystring: pageQuery },
      async handler(ctx) {
        const q = ctx.query as { limit?: number; cursor?: string };
        const page = await devices.listMembers(ctx.principal.tenant, ctx.params.name ?? '', {
          ...(q.limit !== undefined ? { limit: q.limit } : {}),
          ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
        });
        return page;
      },
    },
    ...(['add', 'remove'] as const).map((verb): HttpRoute => ({
      method: 'POST',
      url: `/groups/:name/${verb === 'add' ? 'members' : 'members/remove'}`,
      summary:
        verb === 'add'
          ? 'Add devices to a static group (the quarantine group included)'
          : 'Remove devices from a static group',
      tags: ['groups'],
      action: 'groups:write',
      resource: res,
      schema: { params: nameParam, body: idsBody },
      async handler(ctx) {
        const name = ctx.params.name ?? '';
        const ids = (ctx.body as { deviceIds: string[] }).deviceIds;
        const changed =
          verb === 'add'
            ? await devices.addToGroup(ctx.principal.tenant, name, ids)
            : await devices.removeFromGroup(ctx.principal.tenant, name, ids);
        await record(ctx, verb === 'add' ? 'group.add-members' : 'group.remove-members', name, {
          deviceIds: changed,
        });
        return verb === 'add' ? { added: changed } : { removed: changed };
      },
    })),
  ];
}
