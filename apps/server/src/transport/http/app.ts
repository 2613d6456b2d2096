import { timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import type {
  Clock,
  HttpEffects,
  HttpRoute,
  Logger,
  PublicHttpRoute,
  RoutePrincipal,
} from '../../kernel/index.ts';
import {
  AppError,
  checkRateLimits,
  createMemoryRateLimiter,
  HttpResult,
  systemClock,
  type RateLimiter,
} from '../../kernel/index.ts';
import type { PolicyService, Principal } from '../../modules/policy/index.ts';
import type { IamService } from '../../modules/iam/index.ts';
import type { AuditService } from '../../modules/audit/index.ts';
import { errorHandler, problem, sendProblem } from './errors.ts';
import { problemSchema, certificateSummarySchema } from './schemas.ts';

/** Console session cookie: `__Host-` pins it to this origin, path / and Secure (RFC 6265bis §4.1.3.2). */
export const SESSION_COOKIE = '__Host-bulwark_session';
/** Binds an SSO sign-in to the browser that started it (Lax: it must come back on the IdP's redirect). */
export const SSO_COOKIE = '__Host-bulwark_sso';
const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** Failed authentications per source address before it is slowed down. */
const AUTH_FAILURES = { burst: 30, perMinute: 30 };
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
  /** Sign-in, password setup and SSO endpoints: no principal, always rate limited. */
  publicRoutes?: readonly PublicHttpRoute[];
  clock?: Clock;
  /** The rate-limit buckets (the platform passes the SQL limiter shared by every node); in memory when absent. */
  rateLimiter?: RateLimiter;
  /**
   * Fleet of the device a resource name `bulwark:<tenant>:device/<id>` points at. Every route acting on
   * one device then tells fleet-scoped principals where it is, without each route having to say so.
   */
  deviceFleet?(tenant: string, deviceId: string): Promise<string | undefined>;
}

const DEVICE_RESOURCE = /^bulwark:([a-z0-9][a-z0-9-]{0,62}):device\/([A-Za-z0-9][A-Za-z0-9._:-]{0,127})$/;

declare module 'fastify' {
  interface FastifyRequest {
    principal?: RoutePrincipal;
  }
}

export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  if (!header || header.length > 8192) return out;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (name && !(name in out)) out[name] = value;
  }
  return out;
}

function cookie(name: string, value: string, maxAgeSeconds: number, sameSite: 'Strict' | 'Lax'): string {
  return `${name}=${value}; Path=/; Secure; HttpOnly; SameSite=${sameSite}; Max-Age=${maxAgeSeconds}`;
}

/** `GET /devices/:id/disable` -> `getDevicesByIdDisable`: stable names for the generated API client. */
export function operationId(method: string, url: string): string {
  const parts = url
    .split('/')
    .filter(Boolean)
    .map((seg) => (seg.startsWith(':') ? `By-${seg.slice(1)}` : seg))
    .flatMap((seg) => seg.split(/[-_.]/))
    .filter(Boolean)
    .map((w) => w[0]?.toUpperCase() + w.slice(1));
  return method.toLowerCase() + parts.join('');
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
  const limiter = deps.rateLimiter ?? createMemoryRateLimiter({ clock: deps.clock ?? systemClock });
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

  // Binary uploads (release artifacts) reach the handler as the request stream, after authentication
  // and authorization: the handler streams and size-limits them itself, nothing is buffered here.
  app.addContentTypeParser('application/octet-stream', (_req, payload, done) => done(null, payload));
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

  // Token use is audited (batched): which token called what, with which outcome.
  app.addHook('onResponse', async (req, reply) => {
    const p = req.principal;
    if (!p?.tokenId) return;
    audit.recordLater({
      tenant: p.tenant,
      actor: { type: p.type, id: p.id },
      action: 'token.use',
      target: { type: 'token', id: p.tokenId },
      outcome: reply.statusCode < 400 ? 'success' : reply.statusCode === 403 ? 'denied' : 'failure',
      source: req.ip,
      details: { method: req.method, path: req.url.split('?')[0], status: reply.statusCode },
    });
  });

  const originOf = (req: FastifyRequest) => `https://${req.headers.host ?? 'localhost'}`;
  const applyEffects = (reply: FastifyReply, effects: HttpEffects) => {
    const cookies: string[] = [];
    if (effects.session === 'clear') cookies.push(cookie(SESSION_COOKIE, '', 0, 'Strict'));
    else if (effects.session)
      cookies.push(cookie(SESSION_COOKIE, effects.session.value, effects.session.maxAgeSeconds, 'Strict'));
    if (effects.ssoBinding === 'clear') cookies.push(cookie(SSO_COOKIE, '', 0, 'Lax'));
    else if (effects.ssoBinding)
      cookies.push(cookie(SSO_COOKIE, effects.ssoBinding.value, effects.ssoBinding.maxAgeSeconds, 'Lax'));
    if (cookies.length > 0) reply.header('set-cookie', cookies);
  };
  const send = async (reply: FastifyReply, status: number, result: unknown) => {
    if (result instanceof HttpResult) {
      applyEffects(reply, result.effects);
      if (result.effects.redirect)
        return reply.status(302).header('location', result.effects.redirect).send();
      if (result.effects.html !== undefined)
        return reply.status(200).header('content-type', 'text/html; charset=utf-8').send(result.effects.html);
      result = result.body;
    }
    reply.status(status);
    if (status === 204) return reply.send();
    return result;
  };
  const limit = async (
    route: { method: string; url: string; rateLimit?: HttpRoute['rateLimit'] },
    req: FastifyRequest,
  ) => {
    const spec = route.rateLimit;
    if (!spec) return;
    const name = `${route.method} ${route.url}`;
    // One bucket per (route, source, account), and a wider one per (route, source) against spraying.
    const account = spec.account?.({ body: req.body, params: (req.params ?? {}) as Record<string, string> });
    if (account !== undefined) await checkRateLimits(limiter, [`${name}|${req.ip}|${account}`], spec);
    await checkRateLimits(limiter, [`${name}|${req.ip}`], {
      burst: spec.burst * 5,
      perMinute: spec.perMinute * 5,
    });
  };

  /** Bearer token, else the session cookie (with CSRF on state-changing requests). */
  const authenticate = async (req: FastifyRequest): Promise<RoutePrincipal> => {
    const failed = async (err: unknown, how: string): Promise<never> => {
      audit.recordLater({
        tenant: null,
        actor: { type: 'anonymous', id: 'unknown' },
        action: 'api.authenticate',
        outcome: 'denied',
        reason: `invalid ${how}`,
        source: req.ip,
        details: { method: req.method, path: req.url.split('?')[0] },
      });
      if (!(await limiter.take(`auth-failures|${req.ip}`, AUTH_FAILURES)).ok) {
        throw new AppError('ERR_RATE_LIMITED', undefined, { retryAfterSeconds: 2 });
      }
      throw err;
    };
    const secret = bearer(req);
    if (secret !== undefined) return iam.authenticate(secret).catch((err: unknown) => failed(err, 'token'));
    const session = parseCookies(req.headers.cookie)[SESSION_COOKIE];
    if (session === undefined) throw new AppError('ERR_AUTH_MISSING');
    const principal = await iam.authenticateSession(session).catch((err: unknown) => failed(err, 'session'));
    // Synchronizer token: a cross-site page can make the browser send the cookie, never this header.
    if (UNSAFE_METHODS.has(req.method)) {
      const sent = req.headers['x-csrf-token'];
      const want = Buffer.from(principal.csrfToken);
      const got = Buffer.from(typeof sent === 'string' ? sent : '');
      if (got.length !== want.length || !timingSafeEqual(got, want)) {
        audit.recordLater({
          tenant: principal.tenant,
          actor: { type: principal.type, id: principal.id },
          action: 'api.csrf',
          outcome: 'denied',
          reason: 'missing or wrong x-csrf-token',
          source: req.ip,
          details: { method: req.method, path: req.url.split('?')[0] },
        });
        throw new AppError('ERR_AUTH_CSRF');
      }
    }
    return principal;
  };

  for (const route of deps.routes) {
    app.route({
      method: route.method,
      url: `/api/v1${route.url}`,
      schema: {
        operationId: operationId(route.method, route.url),
        summary: route.summary,
        tags: [...route.tags],
        description: `Requires \`${route.action}\`.`,
        'x-bulwark-action': route.action,
        ...(route.schema?.params ? { params: route.schema.params } : {}),
        ...(route.schema?.querystring ? { querystring: route.schema.querystring } : {}),
        ...(route.schema?.body ? { body: route.schema.body } : {}),
        response: {
          ...(route.schema?.response ?? {}),
          400: { $ref: 'Problem#' },
          401: { $ref: 'Problem#' },
          403: { $ref: 'Problem#' },
          429: { $ref: 'Problem#' },
        },
      },
      config: { action: route.action },
      // Authentication first, before the body is even read.
      onRequest: async (req) => {
        req.principal = await authenticate(req);
      },
      // The one authorization decision, before validation (a refused caller learns nothing about the
      // schema) and before any handler runs.
      preValidation: async (req) => {
        const principal = req.principal;
        if (!principal) throw new AppError('ERR_AUTH_MISSING');
        await limit(route, req);
        const ctx = contextOf(req);
        const resource = route.resource(ctx);
        // Where the object sits matters only to a principal limited to a fleet subtree.
        const fleetScoped = principal.boundaries?.some((b) => b.fleet !== undefined) === true;
        const device = fleetScoped && !route.resourceFleet ? DEVICE_RESOURCE.exec(resource) : null;
        const resourceFleet = !fleetScoped
          ? undefined
          : route.resourceFleet
            ? await route.resourceFleet(ctx)
            : device?.[1] && device[2] && deps.deviceFleet
              ? await deps.deviceFleet(device[1], device[2])
              : undefined;
        const decision = policy.authorize(principal as Principal, route.action, resource, {
          sourceIp: req.ip,
          mfa: principal.mfa === true,
          ...(resourceFleet !== undefined ? { resourceFleet } : {}),
        });
        if (!decision.allowed) {
          audit.recordLater({
            tenant: principal.tenant,
            actor: { type: principal.type, id: principal.id },
            action: 'api.authorize',
            target: { type: 'resource', id: resource },
            outcome: 'denied',
            reason: `${route.action} not allowed`,
            source: req.ip,
            details: {
              method: req.method,
              path: req.url.split('?')[0],
              ...(principal.tokenId ? { token: principal.tokenId } : {}),
              decidedBy: decision.matched.map((m) => m.policy),
            },
          });
          throw new AppError('ERR_POLICY_DENIED', `${route.action} on ${resource} is not allowed`);
        }
      },
      handler: async (req, reply) => send(reply, route.status ?? 200, await route.handler(contextOf(req))),
    });
  }

  for (const route of deps.publicRoutes ?? []) {
    app.route({
      method: route.method,
      url: route.browser ? route.url : `/api/v1${route.url}`,
      schema: {
        ...(route.browser ? { hide: true } : { operationId: operationId(route.method, route.url) }),
        summary: route.summary,
        tags: [...route.tags],
        description: 'Public: no authentication; rate limited per source address and account.',
        security: [],
        ...(route.schema?.params ? { params: route.schema.params } : {}),
        ...(route.schema?.body ? { body: route.schema.body } : {}),
        ...(route.browser
          ? {}
          : {
              response: {
                ...(route.schema?.response ?? {}),
                400: { $ref: 'Problem#' },
                401: { $ref: 'Problem#' },
                429: { $ref: 'Problem#' },
              },
            }),
      },
      preValidation: async (req) => limit(route, req),
      handler: async (req, reply) =>
        send(reply, route.status ?? 200, await route.handler(publicContextOf(req, originOf(req)))),
    });
  }

  if (deps.extra) await deps.extra(app);
  return app;
}

function contextOf(req: FastifyRequest) {
  if (!req.principal) throw new AppError('ERR_AUTH_MISSING');
  const ua = req.headers['user-agent'];
  return {
    principal: req.principal,
    params: (req.params ?? {}) as Record<string, string>,
    query: (req.query ?? {}) as Record<string, unknown>,
    body: req.body,
    sourceIp: req.ip,
    requestId: req.id,
    ...(typeof ua === 'string' ? { userAgent: ua } : {}),
  };
}

function publicContextOf(req: FastifyRequest, origin: string) {
  const ua = req.headers['user-agent'];
  return {
    params: (req.params ?? {}) as Record<string, string>,
    query: (req.query ?? {}) as Record<string, unknown>,
    body: req.body,
    sourceIp: req.ip,
    requestId: req.id,
    cookies: parseCookies(req.headers.cookie),
    origin,
    url: req.url,
    ...(typeof ua === 'string' ? { userAgent: ua } : {}),
  };
}
