import type { HttpRoute } from '../../kernel/index.ts';
import { resourceName } from '../policy/index.ts';
import type { AuditService } from './service.ts';

export function auditRoutes(deps: { audit: AuditService }): HttpRoute[] {
  return [
    {
      method: 'GET',
      url: '/audit',
      summary: 'Read the audit log, newest first (paged)',
      tags: ['audit'],
      action: 'audit:read',
      resource: (ctx) => resourceName(ctx.principal.tenant, 'audit', '*'),
      schema: {
        querystring: {
          type: 'object',
          properties: {
            limit: { type: 'integer', minimum: 1, maximum: 1000 },
            cursor: { type: 'string', maxLength: 512 },
            action: { type: 'string', maxLength: 64 },
          },
          additionalProperties: false,
        },
      },
      async handler(ctx) {
        const q = ctx.query as { limit?: number; cursor?: string; action?: string };
        const page = await deps.audit.list(ctx.principal.tenant, q);
        return {
          items: page.items.map((r) => ({ ...r, ts: new Date(r.ts).toISOString() })),
          nextCursor: page.nextCursor,
        };
      },
    },
  ];
}
