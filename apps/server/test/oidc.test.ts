// Single sign-on against a real OpenID Connect provider (node-oidc-provider) started here, reached
// through a small forwarding proxy that can play the man in the middle. The browser is simulated:
// cookies, redirects and the provider's own login and consent forms.
import 'reflect-metadata';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';
import { fixedClock } from '../src/kernel/index.ts';
import { startPlatform, type Platform } from '../../../test/support/platform.ts';
import { call, type Reply } from './support/iam-http.ts';
import { providerConfiguration, throughIdp } from './support/oidc-provider.ts';

const USERS: Record<string, { groups?: string[] }> = {
  alice: { groups: ['bw-operators', 'staff'] },
  bob: { groups: ['bw-auditors'] },
  nogroups: {},
  outsider: { groups: ['marketing'] },
};

interface Problem {
  code: string;
}

const listen = (s: Server) =>
  new Promise<number>((resolve) =>
    s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)),
  );

describe('OIDC single sign-on with a real provider', () => {
  const clock = fixedClock(Date.now());
  let p: Platform;
  let provider: Provider;
  let providerServer: Server;
  let proxy: Server;
  let issuer = '';
  let tamperIdToken = false;

  before(async () => {
    p = await startPlatform({ clock, iam: { allowInsecureIdp: true, scrypt: { logN: 12, r: 8, p: 1 } } });
    // The proxy's address is the issuer; it forwards everything to the provider, Host header included.
    providerServer = createServer();
    const providerPort = await listen(providerServer);
    proxy = createServer((req, res) => {
      const up = httpRequest(
        { host: '127.0.0.1', port: providerPort, method: req.method, path: req.url, headers: req.headers },
        (upRes) => {
          const chunks: Buffer[] = [];
          upRes.on('data', (c: Buffer) => chunks.push(c));
          upRes.on('end', () => {
            let body = Buffer.concat(chunks);
            const headers = { ...upRes.headers };
            if (tamperIdToken && req.url?.startsWith('/token')) {
              const json = JSON.parse(body.toString('utf8')) as { id_token: string };
              const [h, pl, sig] = json.id_token.split('.');
              const flipped = `${sig?.[0] === 'A' ? 'B' : 'A'}${sig?.slice(1)}`;
              json.id_token = `${h}.${pl}.${flipped}`;
              body = Buffer.from(JSON.stringify(json));
              headers['content-length'] = String(body.length);
            }
            res.writeHead(upRes.statusCode ?? 500, headers);
            res.end(body);
          });
        },
      );
      req.pipe(up);
    });
    const proxyPort = await listen(proxy);
    issuer = `http://127.0.0.1:${proxyPort}`;
    provider = new Provider(
      issuer,
      providerConfiguration({
        clientSecret: 'a-client-secret-of-enough-length',
        redirectUris: [`${p.url}/auth/oidc/default/callback`],
        users: USERS,
      }),
    );
    providerServer.on('request', provider.callback());

    const put = await call(p.url, p.ca, 'PUT', '/api/v1/idp/oidc', {
      token: p.token,
      body: {
        issuer,
        clientId: 'bulwark',
        clientSecret: 'a-client-secret-of-enough-length',
        scopes: ['openid', 'profile', 'groups'],
        roleMappings: [
          { group: 'bw-admins', role: 'admin' },
          { group: 'bw-operators', role: 'operator' },
          { group: 'bw-auditors', role: 'auditor' },
        ],
      },
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
  });

  after(async () => {
    await p.close();
    proxy.close();
    providerServer.close();
  });

  /** Follows the sign-in through the provider's forms; returns the callback URL and the browser's binding cookie. */
  async function authorize(user: string): Promise<{ callbackUrl: string; binding: string }> {
    const start = await call(p.url, p.ca, 'GET', '/auth/oidc/default/start');
    assert.equal(start.status, 302, JSON.stringify(start.body));
    const binding = start.cookies['__Host-bulwark_sso'] ?? '';
    assert.match(
      String(start.headers['set-cookie']),
      /__Host-bulwark_sso=[^;]+; Path=\/; Secure; HttpOnly; SameSite=Lax/,
    );
    const auth = new URL(String(start.headers.location));
    assert.equal(auth.searchParams.get('code_challenge_method'), 'S256');
    assert.ok(auth.searchParams.get('state') && auth.searchParams.get('nonce'));
    return { callbackUrl: await throughIdp(auth.toString(), user, p.url), binding };
  }

  const callback = (callbackUrl: string, binding: string | undefined) =>
    call(p.url, p.ca, 'GET', callbackUrl.slice(p.url.length), {
      ...(binding !== undefined ? { cookie: `__Host-bulwark_sso=${binding}` } : {}),
    });
  const expectCode = (r: Reply, status: number, code: string) => {
    assert.equal(r.status, status, JSON.stringify(r.body));
    assert.equal((r.body as Problem).code, code);
  };

  test('sign-in: code flow with PKCE, groups map to a role, the person is created just in time', async () => {
    const { callbackUrl, binding } = await authorize('alice');
    assert.match(callbackUrl, /[?&]code=[^&]+/);
    const done = await callback(callbackUrl, binding);
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assert.match(String(done.headers['content-type']), /text\/html/);
    const session = done.cookies['__Host-bulwark_session'];
    assert.match(session ?? '', /^bws_/);
    const who = await call<{ name: string; role: string; authMethod: string }>(
      p.url,
      p.ca,
      'GET',
      '/api/v1/whoami',
      {
        cookie: `__Host-bulwark_session=${session}`,
      },
    );
    assert.deepEqual([who.body.name, who.body.role, who.body.authMethod], ['alice', 'operator', 'oidc']);
    const users = await call<{ items: { name: string; sso: boolean }[] }>(
      p.url,
      p.ca,
      'GET',
      '/api/v1/users',
      {
        token: p.token,
      },
    );
    assert.ok(users.body.items.some((u) => u.name === 'alice' && u.sso));
    // The client secret is never returned.
    const idp = await call(p.url, p.ca, 'GET', '/api/v1/idp/oidc', { token: p.token });
    assert.ok(!JSON.stringify(idp.body).includes('a-client-secret'));
    assert.equal((idp.body as { hasClientSecret: boolean }).hasClientSecret, true);
  });

  test('the role follows the provider groups at each sign-in', async () => {
    USERS.alice = { groups: ['bw-auditors'] };
    const { callbackUrl, binding } = await authorize('alice');
    const done = await callback(callbackUrl, binding);
    const who = await call<{ role: string }>(p.url, p.ca, 'GET', '/api/v1/whoami', {
      cookie: `__Host-bulwark_session=${done.cookies['__Host-bulwark_session']}`,
    });
    assert.equal(who.body.role, 'auditor');
    USERS.alice = { groups: ['bw-operators', 'staff'] };
  });

  test('missing group claim, or no mapped group: refused', async () => {
    const a = await authorize('nogroups');
    expectCode(await callback(a.callbackUrl, a.binding), 403, 'ERR_AUTH_OIDC_NO_ROLE');
    const b = await authorize('outsider');
    expectCode(await callback(b.callbackUrl, b.binding), 403, 'ERR_AUTH_OIDC_NO_ROLE');
  });

  test('replayed callback and replayed code are refused', async () => {
    const { callbackUrl, binding } = await authorize('bob');
    assert.equal((await callback(callbackUrl, binding)).status, 200);
    expectCode(await callback(callbackUrl, binding), 401, 'ERR_AUTH_OIDC_STATE');
    // The same code injected into a fresh sign-in of the attacker's own browser.
    const code = new URL(callbackUrl).searchParams.get('code') ?? '';
    const fresh = await call(p.url, p.ca, 'GET', '/auth/oidc/default/start');
    const state = new URL(String(fresh.headers.location)).searchParams.get('state') ?? '';
    const injected = new URL(callbackUrl);
    injected.searchParams.set('state', state);
    injected.searchParams.set('code', code);
    expectCode(
      await callback(injected.toString(), fresh.cookies['__Host-bulwark_sso']),
      401,
      'ERR_AUTH_OIDC_FAILED',
    );
  });

  test('a callback from another browser (no or wrong binding cookie) is refused', async () => {
    const a = await authorize('bob');
    expectCode(await callback(a.callbackUrl, undefined), 401, 'ERR_AUTH_OIDC_STATE');
    const b = await authorize('bob');
    expectCode(await callback(b.callbackUrl, 'x'.repeat(43)), 401, 'ERR_AUTH_OIDC_STATE');
  });

  test('wrong issuer: in the authorization response (mix-up) and in discovery', async () => {
    const { callbackUrl, binding } = await authorize('bob');
    const forged = new URL(callbackUrl);
    assert.equal(forged.searchParams.get('iss'), issuer, 'RFC 9207 iss parameter present');
    forged.searchParams.set('iss', 'https://evil.example.com');
    expectCode(await callback(forged.toString(), binding), 401, 'ERR_AUTH_OIDC_FAILED');

    // Configured issuer differs from what the provider's discovery document says.
    const other = issuer.replace('127.0.0.1', 'localhost');
    const put = await call(p.url, p.ca, 'PUT', '/api/v1/idp/oidc', {
      token: p.token,
      body: { issuer: other, clientId: 'bulwark', roleMappings: [{ group: 'bw-auditors', role: 'auditor' }] },
    });
    assert.equal(put.status, 200);
    expectCode(await call(p.url, p.ca, 'GET', '/auth/oidc/default/start'), 503, 'ERR_AUTH_OIDC_DISCOVERY');
    await call(p.url, p.ca, 'PUT', '/api/v1/idp/oidc', {
      token: p.token,
      body: {
        issuer,
        clientId: 'bulwark',
        roleMappings: [
          { group: 'bw-operators', role: 'operator' },
          { group: 'bw-auditors', role: 'auditor' },
        ],
      },
    });
  });

  test('an ID token with a bad signature is refused', async () => {
    const { callbackUrl, binding } = await authorize('bob');
    tamperIdToken = true;
    try {
      expectCode(await callback(callbackUrl, binding), 401, 'ERR_AUTH_OIDC_FAILED');
    } finally {
      tamperIdToken = false;
    }
  });

  test('an expired ID token is refused (platform clock past its exp)', async () => {
    const { callbackUrl, binding } = await authorize('bob');
    clock.advance(9 * 60_000); // the ID token lives 60 s; the sign-in itself may take 10 minutes
    try {
      expectCode(await callback(callbackUrl, binding), 401, 'ERR_AUTH_OIDC_FAILED');
    } finally {
      clock.advance(-9 * 60_000);
    }
  });

  test('mapping a group to a role you do not hold is refused', async () => {
    const sa = await call<{ id: string }>(p.url, p.ca, 'POST', '/api/v1/service-accounts', {
      token: p.token,
      body: { name: 'so-bot', role: 'security-officer' },
    });
    const t = await call<{ secret: string }>(p.url, p.ca, 'POST', `/api/v1/accounts/${sa.body.id}/tokens`, {
      token: p.token,
      body: { name: 'so' },
    });
    const r = await call(p.url, p.ca, 'PUT', '/api/v1/idp/oidc', {
      token: t.body.secret,
      body: { issuer, clientId: 'bulwark', roleMappings: [{ group: 'staff', role: 'admin' }] },
    });
    expectCode(r, 403, 'ERR_IAM_ESCALATION');
  });

  test('SSO events are audited', async () => {
    await p.app.services.audit.flush();
    const items = (
      await call<{ items: { action: string; outcome: string }[] }>(
        p.url,
        p.ca,
        'GET',
        '/api/v1/audit?limit=500',
        {
          token: p.token,
        },
      )
    ).body.items;
    assert.ok(items.some((i) => i.action === 'account.create-jit'));
    assert.ok(items.some((i) => i.action === 'auth.login' && i.outcome === 'success'));
    assert.ok(items.some((i) => i.action === 'auth.sso' && i.outcome === 'denied'));
    assert.ok(items.some((i) => i.action === 'idp.configure'));
  });
});
