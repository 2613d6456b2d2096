import type { HttpRoute, RouteContext } from '../../kernel/index.ts';
import { resourceName } from '../policy/index.ts';
import { EVENT_TYPES } from './model.ts';
import type { WebhookService } from './service.ts';

const idParam = {
  type: 'object',
  properties: { id: { type: 'string', pattern: '^[0-9a-fA-F-]{36}$' } },
  required: ['id'],
} as const;
const subscriptionSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    serviceAccountId: { type: 'string' },
    url: { type: 'string' },
    events: { type: 'array', items: { type: 'string' } },
    filter: {
      type: 'object',
      properties: {
        devices: { type: 'array', items: { type: 'string' } },
        streams: { type: 'array', items: { type: 'string' } },
      },
    },
    description: { type: ['string', 'null'] },
    status: { type: 'string' },
    createdAt: { type: 'string', format: 'date-time' },
  },
  required: ['id', 'serviceAccountId', 'url', 'events', 'status', 'createdAt'],
} as const;

export function webhookRoutes(deps: { webhooks: WebhookService }): HttpRoute[] {
  const { webhooks } = deps;
  const res = (ctx: RouteContext, id: string) => resourceName(ctx.principal.tenant, 'webhook', id);
  return [
    {
      method: 'GET',
      url: '/webhooks',
      summary: 'Event subscriptions of the tenant',
      tags: ['webhooks'],
      action: 'webhooks:read',
      resource: (ctx) => res(ctx, '*'),
      schema: {
        response: {
          200: { type: 'object', properties: { items: { type: 'array', items: subscriptionSchema } } },
        },
      },
      async handler(ctx) {
        return { items: await webhooks.list(ctx.principal.tenant) };
      },
    },
    {
      method: 'POST',
      url: '/webhooks',
      summary:
        'Subscribe a service account to events; deliveries are signed (Standard Webhooks) and filtered by what the account may read. The secret is shown once.',
      tags: ['webhooks'],
      action: 'webhooks:write',
      resource: (ctx) => res(ctx, '*'),
      rateLimit: { burst: 20, perMinute: 20 },
      schema: {
        body: {
          type: 'object',
          properties: {
            serviceAccountId: {
              type: 'string',
              pattern: '^[0-9a-fA-F-]{36}$',
              examples: ['00000000-0000-4000-8000-000000000000'],
            },
            url: {
              type: 'string',
              minLength: 8,
              maxLength: 2048,
              examples: ['https://hooks.example.com/bulwark'],
            },
            events: {
              type: 'array',
              minItems: 1,
              maxItems: 32,
              items: { type: 'string', maxLength: 64 },
              examples: [['device.*']],
              description: `Event types or patterns: ${EVENT_TYPES.join(', ')}`,
            },
            filter: {
              type: 'object',
              properties: {
                devices: { type: 'array', items: { type: 'string', maxLength: 128 }, maxItems: 100 },
                streams: { type: 'array', items: { type: 'string', maxLength: 64 }, maxItems: 100 },
              },
              additionalProperties: false,
            },
            description: { type: 'string', maxLength: 1024 },
          },
          required: ['serviceAccountId', 'url', 'events'],
          additionalProperties: false,
        },
        response: {
          201: {
            type: 'object',
            properties: { subscription: subscriptionSchema, secret: { type: 'string' } },
            required: ['subscription', 'secret'],
          },
        },
      },
      status: 201,
      async handler(ctx) {
        return webhooks.create(ctx.principal, ctx.body as Parameters<WebhookService['create']>[1]);
      },
    },
    {
      method: 'GET',
      url: '/webhooks/:id',
      summary: 'One event subscription',
      tags: ['webhooks'],
      action: 'webhooks:read',
      resource: (ctx) => res(ctx, ctx.params.id ?? ''),
      schema: { params: idParam, response: { 200: subscriptionSchema } },
      async handler(ctx) {
        return webhooks.get(ctx.principal.tenant, ctx.params.id ?? '');
      },
    },
    {
      method: 'DELETE',
      url: '/webhooks/:id',
      summary: 'Remove an event subscription (pending deliveries are dropped)',
      tags: ['webhooks'],
      action: 'webhooks:write',
      resource: (ctx) => res(ctx, ctx.params.id ?? ''),
      schema: { params: idParam },
      status: 204,
      async handler(ctx) {
        await webhooks.remove(ctx.principal, ctx.params.id ?? '');
      },
    },
    {
      method: 'GET',
      url: '/webhooks/:id/deliveries',
      summary: 'Delivery attempts, newest first (status, duration, error)',
      tags: ['webhooks'],
      action: 'webhooks:read',
      resource: (ctx) => res(ctx, ctx.params.id ?? ''),
      schema: {
        params: idParam,
        querystring: {
          type: 'object',
          properties: { limit: { type: 'integer', minimum: 1, maximum: 1000 } },
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
                    messageId: { type: 'string' },
                    eventType: { type: 'string' },
                    attempt: { type: 'integer' },
                    at: { type: 'string', format: 'date-time' },
                    statusCode: { type: ['integer', 'null'] },
                    ok: { type: 'boolean' },
                    durationMs: { type: 'integer' },
                    error: { type: ['string', 'null'] },
                  },
                  required: [
                    'messageId',
                    'eventType',
                    'attempt',
                    'at',
                    'statusCode',
                    'ok',
                    'durationMs',
                    'error',
                  ],
                },
              },
            },
            required: ['items'],
          },
        },
      },
      async handler(ctx) {
        const limit = (ctx.query as { limit?: number }).limit;
        return { items: await webhooks.deliveries(ctx.principal.tenant, ctx.params.id ?? '', limit) };
      },
    },
    {
      method: 'POST',
      url: '/webhooks/:id/ping',
      summary: 'Queue a `webhook.ping` event to check the endpoint and its signature verification',
      tags: ['webhooks'],
      action: 'webhooks:write',
      resource: (ctx) => res(ctx, ctx.params.id ?? ''),
      schema: { params: idParam },
      status: 202,
      async handler(ctx) {
        return webhooks.ping(ctx.principal, ctx.params.id ?? '');
      },
    },
  ];
}
