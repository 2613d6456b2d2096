import type { HttpRoute } from '../../kernel/index.ts';
import { resourceName } from '../policy/index.ts';

export function iamRoutes(): HttpRoute[] {
  return [
    {
      method: 'GET',
      url: '/whoami',
      summary: 'Who the bearer token belongs to',
      tags: ['iam'],
      action: 'tokens:read',
      resource: (ctx) => resourceName(ctx.principal.tenant, 'account', ctx.principal.id),
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
            },
            required: ['id', 'tenant', 'role', 'kind'],
          },
        },
      },
      async handler(ctx) {
        const p = ctx.principal;
        return { id: p.id, name: p.name ?? p.id, tenant: p.tenant, role: p.role, kind: p.type };
      },
    },
  ];
}
