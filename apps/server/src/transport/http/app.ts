import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import type { HttpRoute, Logger, RoutePrincipal } from '../../kernel/index.ts';
import { AppError } from '../../kernel/index.ts';
import type { PolicyService } from '../../modules/policy/index.ts';
import type { IamService } from '../../modules/iam/index.ts';
import type { AuditService } from '../../modules/audit/index.ts';
import { errorHandler, problem, sendProblem } from './errors.ts';
import { problemSchema, certificateSummarySchema } from './schemas.ts';

export interface HttpAppDeps {
  routes: readonly HttpRoute[];
  /** Unauthenticated routes outside /api/v1 (health, EST...) registered as-is. */
  extra?: (app: FastifyInstance) => void | Promise<void>;
  iam: IamService;
  policy: PolicyService;
  audit: AuditService;
  logger: Logger;
  bodyLimit: number;
  https?: { key: string; cert: string };
  ready(): boolean;
  version: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal?: RoutePrincipal;
  }
}

const SECURITY_HEADERS: Record<string, string> = {
  'strict-transport-security': 'max-age=63072000; includeSubDomains',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'cross-origin-resource-policy': 'same-origin',
  'cache-control': 'no-store',
};

function bearer(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (!h) return undefined;
  const m = /^Bearer ([^\s]+)$/i.exec(h);
  return m?.[1] ?? '';
}

export async function buildHttpApp(deps: HttpAppDeps): Promise<FastifyInstance> {
  const { iam, policy, audit, logger } = deps;
  const app = Fastify({
    ...(deps.https
      ? {
          https: {
            key: deps.https.key,
            cert: deps.https.cert,
            minVersion: 'TLSv1.2' as const,
            // Client certificates are asked for but not required or verified by TLS: EST
            // (simplereenroll, manufacturer certificates) checks them itself; API routes use bearer tokens.
            requestCert: true,
            rejectUnauthorized: false,
          },
        }
      : {}),
    logger: false,
    bodyLimit: deps.bodyLimit,
    trustProxy: false,
    return503OnClosing: true,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: true } },
    genReqId: () => crypto.randomUUID(),
  }) as unknown as FastifyInstance;

  app.addSchema({ $id: 'Problem', ...problemSchema });
  app.addSchema(certificateSummarySchema);

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Bulwark API',
        version: deps.version,
        description:
          'Secure-by-default IoT device platform. Every error is application/problem+json with a stable `code`.',
      },
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'API token (`bwk_...`)' } },
      },
      security: [{ bearer: [] }],
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
  });

  app.setErrorHandler(errorHandler(logger));
  app.setNotFoundHandler((req, reply) =>
    sendProblem(
      reply,
      problem('ERR_NOT_FOUND', { requestId: req.id, instance: req.url.split('?')[0] ?? '' }),
    ),
  );
  app.addHook('onSend', async (_req, reply, payload) => {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) reply.header(k, v);
    return payload;
  });
  app.addHook('onResponse', async (req, reply) => {
    logger.debug(
      {
        reqId: req.id,
        method: req.method,
        url: req.url,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
      },
      'request',
    );
  });

  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { hide: true } }, async (_req, reply) =>
    deps.ready() ? { status: 'ready' } : reply.status(503).send({ status: 'starting' }),
  );
  app.get('/api/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  for (const route of deps.routes) {
    app.route({
      method: route.method,
      url: `/api/v1${route.url}`,
      schema: {
        summary: route.summary,
        tags: [...route.tags],
        description: `Requires \`${route.action}\`.`,
        ...(route.schema?.params ? { params: route.schema.params } : {}),
        ...(route.schema?.querystring ? { querystring: route.schema.querystring } : {}),
        ...(route.schema?.body ? { body: route.schema.body } : {}),
        response: {
          ...(route.schema?.response ?? {}),
          400: { $ref: 'Problem#' },
          401: { $ref: 'Problem#' },
          403: { $ref: 'Problem#' },
        },
      },
      config: { action: route.action },
      // Authentication, then the one authorization decision, before any handler runs.
      preHandler: async (req) => {
        const secret = bearer(req);
        if (secret === undefined) throw new AppError('ERR_AUTH_MISSING');
        const principal = await iam.authenticate(secret).catch((err: unknown) => {
          audit.recordLater({
            tenant: null,
            actor: { type: 'anonymous', id: 'unknown' },
            action: 'api.authenticate',
            outcome: 'denied',
            reason: 'invalid token',
            source: req.ip,
            details: { method: req.method, path: req.url.split('?')[0] },
          });
          throw err;
        });
        req.principal = principal;
        const ctx = contextOf(req);
        const resource = route.resource(ctx);
        const decision = policy.authorize({ ...principal }, route.action, resource, { sourceIp: req.ip });
        if (!decision.allowed) {
          audit.recordLater({
            tenant: principal.tenant,
            actor: { type: principal.type, id: principal.id },
            action: 'api.authorize',
            target: { type: 'resource', id: resource },
            outcome: 'denied',
            reason: `${route.action} not allowed`,
            source: req.ip,
            details: { method: req.method, path: req.url.split('?')[0] },
          });
          throw new AppError('ERR_POLICY_DENIED', `${route.action} on ${resource} is not allowed`);
        }
      },
      handler: async (req, reply) => {
        const result = await route.handler(contextOf(req));
        (reply as unknown as { status(code: number): unknown }).status(route.status ?? 200);
        if (route.status === 204) return reply.send();
        return result;
      },
    });
  }

  if (deps.extra) await deps.extra(app);
  return app;
}

function contextOf(req: FastifyRequest) {
  if (!req.principal) throw new AppError('ERR_AUTH_MISSING');
  return {
    principal: req.principal,
    params: (req.params ?? {}) as Record<string, string>,
    query: (req.query ?? {}) as Record<string, unknown>,
    body: req.body,
    sourceIp: req.ip,
    requestId: req.id,
  };
}
