// The HTTP transport's part of IAM without a platform: bearer or cookie authentication, CSRF, the
// fleet of the object for fleet-scoped principals, public routes, the rate limiter, cookie parsing.
// Real Fastify (inject), the real policy engine; only the identity lookup is a stub.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AppError,
  createMemoryRateLimiter,
  fixedClock,
  HttpResult,
  silentLogger,
  type HttpRoute,
} from '../src/kernel/index.ts';
import { createPolicyService, resourceName } from '../src/modules/policy/index.ts';
import type { AuditService } from '../src/modules/audit/index.ts';
import type { IamService } from '../src/modules/iam/index.ts';
import { buildHttpApp, parseCookies } from '../src/transport/http/index.ts';

const clock = fixedClock(Date.parse('2026-05-01T00:00:00Z'));
const audited: { action: string; outcome: string }[] = [];
const audit = {
  recordLater: (e: { action: string; outcome: string }) => void audited.push(e),
  record: async (e: { action: string; outcome: string }) => void audited.push(e),
} as unknown as AuditService;

const principals: Record<string, object> = {
  [`bwk_${'a'.repeat(43)}`]: { type: 'service', id: 'sa-1', tenant: 't1', role: 'admin', boundaries: [] },
  [`bwk_${'f'.repeat(43)}`]: {
    type: 'service',
    id: 'sa-2',
    tenant: 't1',
    role: 'admin',
    boundaries: [{ kind: 'role-scope', fleet: 'plant-a' }],
  },
};
const iam = {
  async authenticate(secret: string) {
    const p = principals[secret];
    if (!p) throw new AppError('ERR_AUTH_INVALID_TOKEN');
    return { ...p, mfa: false, authMethod: 'token', tokenId: 'tok' };
  },
  async authenticateSession(secret: string) {
    if (secret !== `bws_${'s'.repeat(43)}`) throw new AppError('ERR_AUTH_SESSION_INVALID');
    return {
      type: 'user',
      id: 'u-1',
      tenant: 't1',
      role: 'admin',
      mfa: true,
      authMethod: 'session',
      sessionId: 'x',
      csrfToken: 'the-csrf-token',
      boundaries: [],
    };
  },
} as unknown as IamService;

const fleetOf: Record<string, string> = { 'in-a': 'plant-a/line-1', 'in-b': 'plant-b' };
const routes: HttpRoute[] = [
  {
    method: 'POST',
    url: '/things/:id',
    summary: 'a device-like object placed in a fleet',
    tags: ['test'],
    action: 'devices:write',
    resource: (ctx) => resourceName(ctx.principal.tenant, 'device', ctx.params.id ?? ''),
    resourceFleet: async (ctx) => fleetOf[ctx.params.id ?? ''],
    schema: { body: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] } },
    async handler(ctx) {
      return { ok: true, id: ctx.params.id };
    },
  },
  {
    method: 'GET',
    url: '/collection',
    summary: 'a tenant-wide collection',
    tags: ['test'],
    action: 'devices:read',
    resource: (ctx) => resourceName(ctx.principal.tenant, 'device', '*'),
    async handler() {
      return { items: [] };
    },
  },
];

async function app() {
  return buildHttpApp({
    routes,
    publicRoutes: [
      {
        public: true,
        method: 'POST',
        url: '/open',
        summary: 'public',
        tags: ['test'],
        rateLimit: { burst: 2, perMinute: 2, account: (c) => (c.body as { who?: string } | undefined)?.who },
        async handler() {
          return new HttpResult({ hello: true }, { session: { value: 'v', maxAgeSeconds: 60 } });
        },
      },
    ],
    iam,
    policy: createPolicyService(),
    audit,
    logger: silentLogger,
    bodyLimit: 65536,
    ready: () => true,
    version: 'test',
    clock,
    rateLimiter: createMemoryRateLimiter({ clock }),
  });
}

const bearer = (c: string) => ({ authorization: `Bearer bwk_${c.repeat(43)}` });

describe('HTTP transport: authentication, CSRF, fleet scope, public routes', () => {
  test('authorization happens before validation: a refused caller learns nothing about the schema', async () => {
    const a = await app();
    const denied = await a.inject({
      method: 'POST',
      url: '/api/v1/things/in-b',
      headers: bearer('f'),
      payload: {},
    });
    assert.equal(denied.statusCode, 403);
    assert.equal(denied.json().code, 'ERR_POLICY_DENIED');
    const invalid = await a.inject({
      method: 'POST',
      url: '/api/v1/things/in-a',
      headers: bearer('a'),
      payload: {},
    });
    assert.equal(invalid.json().code, 'ERR_VALIDATION');
    const none = await a.inject({ method: 'POST', url: '/api/v1/things/in-a', payload: { bad: 1 } });
    assert.equal(none.json().code, 'ERR_AUTH_MISSING');
  });

  test('a fleet-scoped principal reaches objects placed inside its subtree only', async () => {
    const a = await app();
    const call = (id: string) =>
      a.inject({ method: 'POST', url: `/api/v1/things/${id}`, headers: bearer('f'), payload: { n: 1 } });
    assert.equal((await call('in-a')).statusCode, 200);
    assert.equal((await call('in-b')).json().code, 'ERR_POLICY_DENIED');
    assert.equal((await call('nowhere')).json().code, 'ERR_POLICY_DENIED', 'no fleet: outside');
    const coll = await a.inject({ method: 'GET', url: '/api/v1/collection', headers: bearer('f') });
    assert.equal(coll.json().code, 'ERR_POLICY_DENIED', 'tenant-wide collections are outside a subtree');
    assert.equal(
      (await a.inject({ method: 'GET', url: '/api/v1/collection', headers: bearer('a') })).statusCode,
      200,
    );
  });

  test('session cookie: reads need no CSRF token; writes need the right one', async () => {
    const a = await app();
    const cookie = `other=1; __Host-bulwark_session=bws_${'s'.repeat(43)}`;
    assert.equal(
      (await a.inject({ method: 'GET', url: '/api/v1/collection', headers: { cookie } })).statusCode,
      200,
    );
    const post = (csrf?: string) =>
      a.inject({
        method: 'POST',
        url: '/api/v1/things/in-a',
        headers: { cookie, ...(csrf !== undefined ? { 'x-csrf-token': csrf } : {}) },
        payload: { n: 1 },
      });
    assert.equal((await post()).json().code, 'ERR_AUTH_CSRF');
    assert.equal((await post('the-csrf-token-')).json().code, 'ERR_AUTH_CSRF');
    assert.equal((await post('')).json().code, 'ERR_AUTH_CSRF');
    assert.equal((await post('the-csrf-token')).statusCode, 200);
    const stale = await a.inject({
      method: 'GET',
      url: '/api/v1/collection',
      headers: { cookie: `__Host-bulwark_session=bws_${'x'.repeat(43)}` },
    });
    assert.equal(stale.json().code, 'ERR_AUTH_SESSION_INVALID');
    assert.ok(audited.some((e) => e.action === 'api.csrf' && e.outcome === 'denied'));
  });

  test('public routes: no principal, cookies set as __Host- Secure HttpOnly SameSite=Strict, rate limited', async () => {
    const a = await app();
    const r = await a.inject({ method: 'POST', url: '/api/v1/open', payload: { who: 'x' } });
    assert.equal(r.statusCode, 200);
    assert.deepEqual(r.headers['set-cookie'], [
      '__Host-bulwark_session=v; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=60',
    ]);
    assert.match(String(r.headers['content-security-policy']), /default-src 'none'/);
    await a.inject({ method: 'POST', url: '/api/v1/open', payload: { who: 'x' } });
    const limited = await a.inject({ method: 'POST', url: '/api/v1/open', payload: { who: 'x' } });
    assert.equal(limited.statusCode, 429);
    assert.equal(limited.json().code, 'ERR_RATE_LIMITED');
    assert.equal(limited.headers['retry-after'], '30');
    // Another account from the same address has its own bucket (the per-address one is 5x wider).
    assert.equal(
      (await a.inject({ method: 'POST', url: '/api/v1/open', payload: { who: 'y' } })).statusCode,
      200,
    );
    clock.advance(30_000);
    assert.equal(
      (await a.inject({ method: 'POST', url: '/api/v1/open', payload: { who: 'x' } })).statusCode,
      200,
    );
  });

  test('repeated authentication failures from one address are slowed down', async () => {
    const a = await app();
    let last = 0;
    for (let i = 0; i < 40; i++)
      last = (await a.inject({ method: 'GET', url: '/api/v1/collection', headers: bearer('z') })).statusCode;
    assert.equal(last, 429);
    clock.advance(120_000);
  });
});

describe('cookies', () => {
  test('cookie header parsing: first value wins, no prototype keys, oversized headers ignored', () => {
    assert.deepEqual({ ...parseCookies('a=1; b=2; a=3') }, { a: '1', b: '2' });
    assert.equal(parseCookies('__proto__=x').__proto__, 'x');
    assert.equal(Object.getPrototypeOf(parseCookies('a=1')), null);
    assert.deepEqual({ ...parseCookies(`a=${'x'.repeat(9000)}`) }, {});
    assert.deepEqual({ ...parseCookies(';;=;b') }, {});
    assert.deepEqual({ ...parseCookies(undefined) }, {});
  });
});
