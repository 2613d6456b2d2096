import type { HttpRoute } from '../../kernel/index.ts';
import { resourceName } from '../policy/index.ts';
import type { AuditService } from './service.ts';

/**
 * `platformTenant` is the tenant created on first start; its members operate the platform and also see
 * entries that belong to no tenant (e.g. TLS handshakes refused before any identity was known).
 */
export function auditRoutes(deps: { audit: AuditService; platformTenant: string }): HttpRoute[] {
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
        const page = await deps.audit.list(ctx.principal.tenant, {
          ...q,
          includePlatform: ctx.principal.tenant === deps.platformTenant,
        });
        return {
          items: page.items.map((r) => ({ ...r, ts: new Date(r.ts).toISOString() })),
          nextCursor: page.nextCursor,
        };
      },
    },
  ];
}
