import type { HttpRoute } from '../../kernel/index.ts';
import { resourceName } from '../policy/index.ts';
import type { TelemetryService } from './service.ts';

export function telemetryRoutes(deps: {
  telemetry: TelemetryService;
  deviceExists(tenant: string, id: string): Promise<void>;
}): HttpRoute[] {
  return [
    {
      method: 'GET',
      url: '/devices/:id/telemetry',
      summary: "Query a device's telemetry by time range (paged, oldest first unless order=desc)",
      tags: ['telemetry'],
      action: 'telemetry:read',
      resource: (ctx) => resourceName(ctx.principal.tenant, 'device', ctx.params.id ?? ''),
      schema: {
        params: {
          type: 'object',
          properties: { id: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' } },
          required: ['id'],
        },
        querystring: {
          type: 'object',
          properties: {
            from: { type: 'string', maxLength: 40, description: 'ISO 8601, inclusive' },
            to: { type: 'string', maxLength: 40, description: 'ISO 8601, inclusive; default now' },
            stream: { type: 'string', maxLength: 64 },
            limit: { type: 'integer', minimum: 1, maximum: 1000 },
            cursor: { type: 'string', maxLength: 512 },
            order: { type: 'string', enum: ['asc', 'desc'] },
          },
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: {
              items: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    ts: { type: 'string', format: 'date-time' },
                    stream: { type: 'string' },
                    data: { type: 'object', additionalProperties: true },
                  },
                  required: ['ts', 'data'],
                },
              },
              nextCursor: { type: ['string', 'null'] },
            },
            required: ['items', 'nextCursor'],
          },
        },
      },
      async handler(ctx) {
        const id = ctx.params.id ?? '';
        await deps.deviceExists(ctx.principal.tenant, id);
        return deps.telemetry.query(
          ctx.principal.tenant,
          id,
          ctx.query as Parameters<TelemetryService['query']>[2],
        );
      },
    },
  ];
}
