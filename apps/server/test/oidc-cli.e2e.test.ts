// Single sign-on from the command line (bulwark login --sso) against a real OpenID Connect provider: the
// real CLI as a child process listens on loopback, the browser is simulated (cookies, redirects, the
// provider's forms), the CLI exchanges the one-time code with its PKCE verifier and saves a short-lived
// personal token 0600. Every refusal: non-loopback redirects, a replayed or expired code, a wrong
// verifier, a reused or expired browser link, a person without a role or without a required second factor.
import 'reflect-metadata';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { fixedClock } from '../src/kernel/index.ts';
import { createIamStore, hashToken } from '../src/modules/iam/index.ts';
import { startPlatform, type Platform } from '../../../test/support/platform.ts';
import { tempDir } from '../../../test/support/db.ts';
import { cliEnv, runCli, runInProcess } from '../../../packages/cli/test/helpers/run-cli.ts';
import { call, type Reply } from './support/iam-http.ts';
import { startIdp, throughIdp, type TestIdp } from './support/oidc-provider.ts';

interface Problem {
  code: string;
}
interface Exchanged {
  secret: string;
  token: { id: string; expiresAt: string; name: string };
  account: { name: string; role: string; tenant: string };
  mfa: boolean;
}

const SECRET = 'a-client-secret-of-enough-length';

describe('single sign-on from the CLI', () => {
  const clock = fixedClock(Date.now());
  let p: Platform;
  let idp: TestIdp;
  let work: { path: string; cleanup(): void };

  const expectCode = (r: Reply, status: number, code: string) => {
    assert.equal(r.status, status, JSON.stringify(r.body));
    assert.equal((r.body as Problem).code, code);
  };
  const pkce = () => {
    const verifier = randomBytes(32).toString('base64url');
    return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
  };
  const start = (body: Record<string, unknown>) =>
    call<{ browserUrl: string; expiresAt: string } & Problem>(p.url, p.ca, 'POST', '/api/v1/auth/cli/start', {
      body,
    });
  const exchange = (code: string, codeVerifier: string) =>
    call<Exchanged & Problem>(p.url, p.ca, 'POST', '/api/v1/auth/cli/token', {
      body: { code, codeVerifier },
    });

  /**
   * The browser's part: opens the link the CLI printed, signs in at the provider, comes back to the
   * platform's callback, and returns where the platform then sends it (the CLI's loopback address).
   */
  async function browser(browserUrl: string, user: string): Promise<URL> {
    assert.ok(browserUrl.startsWith(`${p.url}/auth/oidc/`), browserUrl);
    const opened = await call(p.url, p.ca, 'GET', browserUrl.slice(p.url.length));
    assert.equal(opened.status, 302, JSON.stringify(opened.body));
    const binding = opened.cookies['__Host-bulwark_sso'] ?? '';
    assert.ok(binding);
    const callbackUrl = await throughIdp(String(opened.headers.location), user, p.url);
    const back = await call(p.url, p.ca, 'GET', callbackUrl.slice(p.url.length), {
      cookie: `__Host-bulwark_sso=${binding}`,
    });
    assert.equal(back.status, 302, JSON.stringify(back.body));
    assert.match(
      String(back.headers['set-cookie']),
      /__Host-bulwark_sso=; /,
      'the binding cookie is cleared',
    );
    assert.equal(back.cookies['__Host-bulwark_session'], undefined, 'no console session for a CLI sign-in');
    return new URL(String(back.headers.location));
  }

  /** A CLI sign-in driven by hand (no listener: the test reads the code off the redirect). */
  async function signIn(user: string, redirectUri = 'http://127.0.0.1:9/callback') {
    const k = pkce();
    const state = randomBytes(16).toString('base64url');
    const s = await start({ redirectUri, codeChallenge: k.challenge, codeChallengeMethod: 'S256', state });
    assert.equal(s.status, 200, JSON.stringify(s.body));
    const back = await browser(s.body.browserUrl, user);
    assert.equal(`${back.origin}${back.pathname}`, redirectUri);
    assert.equal(back.searchParams.get('state'), state);
    return { ...k, back, code: back.searchParams.get('code') ?? '' };
  }

  before(async () => {
    p = await startPlatform({ clock, iam: { allowInsecureIdp: true, scrypt: { logN: 10, r: 8, p: 1 } } });
    idp = await startIdp({
      redirectUris: [`${p.url}/auth/oidc/default/callback`],
      clientSecret: SECRET,
      users: {
        alice: { groups: ['bw-operators'] },
        carol: { groups: ['bw-auditors'] },
        outsider: { groups: ['marketing'] },
      },
    });
    const put = await call(p.url, p.ca, 'PUT', '/api/v1/idp/oidc', {
      token: p.token,
      body: {
        issuer: idp.issuer,
        clientId: 'bulwark',
        clientSecret: SECRET,
        scopes: ['openid', 'profile', 'groups'],
        roleMappings: [
          { group: 'bw-operators', role: 'operator' },
          { group: 'bw-auditors', role: 'auditor' },
        ],
      },
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    work = tempDir('bulwark-sso-cli-');
  });
  after(async () => {
    await p.close();
    await idp.close();
    work.cleanup();
  });

  test('bulwark login --sso: loopback listener, browser sign-in, PKCE exchange, token saved 0600, logout revokes it', async () => {
    const env = cliEnv(work.path);
    let stderr = '';
    let resolveLink: (s: string) => void = () => {};
    const linkSeen = new Promise<string>((r) => (resolveLink = r));
    const cli = runCli(
      ['login', '--sso', '--no-browser', '--timeout', '60', '--url', p.url, '--ca-file', p.app.paths.caFile],
      {
        env,
        cwd: work.path,
        timeoutMs: 90_000,
        onStderr: (text) => {
          stderr = text;
          const m = /(https:\/\/127\.0\.0\.1:\d+\/auth\/oidc\/default\/cli\/[A-Za-z0-9_-]{43})/.exec(text);
          if (m?.[1]) resolveLink(m[1]);
        },
      },
    );
    const browserUrl = await linkSeen;
    const back = await browser(browserUrl, 'alice');
    assert.equal(back.protocol, 'http:');
    assert.equal(back.hostname, '127.0.0.1');
    // A name that resolves to loopback (DNS rebinding) is not the address the CLI gave: not answered.
    const rebound = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port: Number(back.port),
          path: `${back.pathname}${back.search}`,
          headers: { host: `evil.example:${back.port}` },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end();
    });
    assert.equal(rebound, 404);
    // Another page making the browser call the CLI's listener with a forged answer is ignored.
    const forged = await fetch(`${back.origin}/callback?code=bwc_forged&state=not-the-state`);
    assert.equal(forged.status, 400);
    const done = await fetch(back.toString());
    assert.equal(done.status, 200);
    assert.match(await done.text(), /Signed in to Bulwark/);
    const r = await cli;
    assert.equal(r.code, 0, stderr);
    assert.match(
      r.stdout,
      /logged in to https:\/\/127\.0\.0\.1:\d+ as alice \(role operator, tenant default\) by single sign-on/,
    );
    const configFile = join(work.path, '.config', 'bulwark', 'config.json');
    assert.equal(statSync(configFile).mode & 0o777, 0o600);
    const saved = JSON.parse(readFileSync(configFile, 'utf8')) as {
      url: string;
      token: string;
      sso: { tokenId: string; expiresAt: string; tenant: string };
    };
    assert.match(saved.token, /^bwk_/);
    assert.equal(saved.sso.tenant, 'default');
    // Short-lived: 12 hours.
    const lifetime = Date.parse(saved.sso.expiresAt) - clock.now();
    assert.ok(lifetime > 11.9 * 3_600_000 && lifetime <= 12 * 3_600_000, String(lifetime));
    // Later commands use the saved login (no token in the environment).
    const who = await runInProcess(['whoami', '--json'], { env, cwd: work.path });
    assert.equal(who.code, 0, who.stderr);
    assert.deepEqual(
      (({ name, role }: { name: string; role: string }) => ({ name, role }))(JSON.parse(who.stdout)),
      { name: 'alice', role: 'operator' },
    );
    // The sign-in is audited.
    await p.app.services.audit.flush();
    const audit = await call<{ items: { action: string; details?: { method?: string } }[] }>(
      p.url,
      p.ca,
      'GET',
      '/api/v1/audit?action=auth.login',
      { token: p.token },
    );
    assert.ok(audit.body.items.some((e) => e.details?.method === 'oidc-cli'));
    // Logout revokes the token on the server.
    const out = await runInProcess(['logout'], { env, cwd: work.path });
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stderr, /revoked the single sign-on token/);
    expectCode(
      await call(p.url, p.ca, 'GET', '/api/v1/whoami', { token: saved.token }),
      401,
      'ERR_AUTH_INVALID_TOKEN',
    );
  });

  test('the CLI reports a refused sign-in (no role for the person) and saves nothing', async () => {
    const home = tempDir('bulwark-sso-cli-refused-');
    try {
      let resolveLink: (s: string) => void = () => {};
      const linkSeen = new Promise<string>((r) => (resolveLink = r));
      const cli = runCli(
        ['login', '--sso', '--no-browser', '--url', p.url, '--ca-file', p.app.paths.caFile],
        {
          env: cliEnv(home.path),
          cwd: home.path,
          timeoutMs: 90_000,
          onStderr: (text) => {
            const m = /(https:\/\/\S+\/cli\/[A-Za-z0-9_-]{43})/.exec(text);
            if (m?.[1]) resolveLink(m[1]);
          },
        },
      );
      const back = await browser(await linkSeen, 'outsider');
      assert.equal(back.searchParams.get('error'), 'ERR_AUTH_OIDC_NO_ROLE');
      assert.equal(back.searchParams.get('code'), null);
      await fetch(back.toString());
      const r = await cli;
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /single sign-on refused: ERR_AUTH_OIDC_NO_ROLE/);
      assert.throws(() => statSync(join(home.path, '.config', 'bulwark', 'config.json')));
      // --sso flags without --sso, and --sso with a token, are usage errors.
      const usage = await runInProcess(['login', '--tenant', 'acme', '--url', p.url, '--token', 'bwk_x'], {
        env: cliEnv(home.path),
        cwd: home.path,
      });
      assert.equal(usage.code, 2, usage.stderr);
      assert.match(usage.stderr, /--tenant goes with --sso/);
      const both = await runInProcess(['login', '--sso', '--url', p.url, '--token', 'bwk_x'], {
        env: cliEnv(home.path),
        cwd: home.path,
      });
      assert.equal(both.code, 2, both.stderr);
      assert.match(both.stderr, /--sso and --token exclude each other/);
    } finally {
      home.cleanup();
    }
  });

  test('only a loopback redirect: every other one is refused', async () => {
    const k = pkce();
    const state = randomBytes(16).toString('base64url');
    const refused = [
      'http://evil.example:8080/callback',
      'https://127.0.0.1:8080/callback',
      'http://localhost:8080/callback',
      'http://127.0.0.1/callback',
      'http://127.0.0.1:80/callback',
      'http://user@127.0.0.1:8080/callback',
      'http://user:pw@127.0.0.1:8080/callback',
      'http://127.0.0.1:8080/callback?next=https://evil.example',
      'http://127.0.0.1:8080/callback#x',
      'http://127.0.0.1:8080/callback?',
      'http://127.1:8080/callback',
      'http://2130706433:8080/callback',
      'http://0x7f.0.0.1:8080/callback',
      'http://127.0.0.2:8080/callback',
      'http://127.0.0.1.evil.example:8080/callback',
      'http://[::ffff:127.0.0.1]:8080/callback',
      'http://[0:0:0:0:0:0:0:1]:8080/callback',
      'http://0.0.0.0:8080/callback',
      'http://10.0.0.1:8080/callback',
      'file:///etc/passwd',
      'javascript:alert(1)',
      'not a url',
      `http://127.0.0.1:8080/${'x'.repeat(600)}`,
    ];
    for (const redirectUri of refused) {
      const r = await start({ redirectUri, codeChallenge: k.challenge, codeChallengeMethod: 'S256', state });
      assert.equal(r.status, 400, `${redirectUri}: ${JSON.stringify(r.body)}`);
      assert.ok(['ERR_AUTH_CLI_REDIRECT', 'ERR_VALIDATION'].includes(r.body.code), redirectUri);
      if (redirectUri.length <= 512) assert.equal(r.body.code, 'ERR_AUTH_CLI_REDIRECT', redirectUri);
    }
    for (const redirectUri of [
      'http://127.0.0.1:53682/callback',
      'http://[::1]:53682/cb',
      'http://127.0.0.1:1/',
    ]) {
      const r = await start({ redirectUri, codeChallenge: k.challenge, codeChallengeMethod: 'S256', state });
      assert.equal(r.status, 200, `${redirectUri}: ${JSON.stringify(r.body)}`);
    }
    // Only S256, and a challenge of the right shape.
    const plain = await start({
      redirectUri: 'http://127.0.0.1:1/',
      codeChallenge: k.challenge,
      codeChallengeMethod: 'plain',
      state,
    });
    expectCode(plain, 400, 'ERR_VALIDATION');
  });

  test('the one-time code: once, within 60 s, and only with the verifier of the challenge', async () => {
    // The right verifier: a token; the same code again: refused.
    const a = await signIn('carol');
    const ok = await exchange(a.code, a.verifier);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.deepEqual([ok.body.account.name, ok.body.account.role, ok.body.mfa], ['carol', 'auditor', false]);
    assert.equal(ok.body.token.name, 'cli-sso');
    const who = await call<{ name: string; authMethod: string }>(p.url, p.ca, 'GET', '/api/v1/whoami', {
      token: ok.body.secret,
    });
    assert.equal(who.body.name, 'carol');
    expectCode(await exchange(a.code, a.verifier), 401, 'ERR_AUTH_CLI_CODE_INVALID');

    // Another program's verifier: refused, and the code is spent.
    const b = await signIn('carol');
    expectCode(await exchange(b.code, pkce().verifier), 401, 'ERR_AUTH_CLI_VERIFIER');
    expectCode(await exchange(b.code, b.verifier), 401, 'ERR_AUTH_CLI_CODE_INVALID');
    // A malformed verifier is no better.
    const b2 = await signIn('carol');
    expectCode(await exchange(b2.code, 'x'.repeat(43).replace(/x/g, '!')), 401, 'ERR_AUTH_CLI_VERIFIER');

    // Too late: refused.
    const c = await signIn('carol');
    clock.advance(61_000);
    try {
      expectCode(await exchange(c.code, c.verifier), 401, 'ERR_AUTH_CLI_CODE_EXPIRED');
    } finally {
      clock.set(Date.now());
    }

    // Unknown codes and malformed ones.
    expectCode(await exchange(`bwc_${'A'.repeat(43)}`, a.verifier), 401, 'ERR_AUTH_CLI_CODE_INVALID');
    expectCode(await exchange('bwk_not-a-code', a.verifier), 401, 'ERR_AUTH_CLI_CODE_INVALID');
    await p.app.services.audit.flush();
    const denied = await call<{ items: { action: string; outcome: string; reason?: string }[] }>(
      p.url,
      p.ca,
      'GET',
      '/api/v1/audit?action=auth.sso-cli',
      { token: p.token },
    );
    const reasons = denied.body.items.filter((e) => e.outcome === 'denied').map((e) => e.reason);
    for (const why of ['code already used', 'verifier does not match the challenge', 'code expired'])
      assert.ok(reasons.includes(why), `${why} audited: ${JSON.stringify(reasons)}`);
  });

  test('the browser link works once, for 10 minutes, and only names a sign-in of its tenant', async () => {
    const k = pkce();
    const s = await start({
      redirectUri: 'http://127.0.0.1:9/callback',
      codeChallenge: k.challenge,
      codeChallengeMethod: 'S256',
      state: randomBytes(16).toString('base64url'),
    });
    const path = s.body.browserUrl.slice(p.url.length);
    assert.equal((await call(p.url, p.ca, 'GET', path)).status, 302);
    expectCode(await call(p.url, p.ca, 'GET', path), 401, 'ERR_AUTH_CLI_REQUEST');
    expectCode(
      await call(p.url, p.ca, 'GET', `/auth/oidc/default/cli/${'A'.repeat(43)}`),
      401,
      'ERR_AUTH_CLI_REQUEST',
    );
    const late = await start({
      redirectUri: 'http://127.0.0.1:9/callback',
      codeChallenge: k.challenge,
      codeChallengeMethod: 'S256',
      state: randomBytes(16).toString('base64url'),
    });
    clock.advance(11 * 60_000);
    try {
      expectCode(
        await call(p.url, p.ca, 'GET', late.body.browserUrl.slice(p.url.length)),
        401,
        'ERR_AUTH_CLI_REQUEST',
      );
    } finally {
      clock.set(Date.now());
    }
    // A link of tenant default opened under another tenant's path names nothing there.
    const other = await start({
      redirectUri: 'http://127.0.0.1:9/callback',
      codeChallenge: k.challenge,
      codeChallengeMethod: 'S256',
      state: randomBytes(16).toString('base64url'),
    });
    const handle = other.body.browserUrl.split('/').at(-1) ?? '';
    expectCode(await call(p.url, p.ca, 'GET', `/auth/oidc/acme/cli/${handle}`), 401, 'ERR_AUTH_CLI_REQUEST');
    // A tenant without single sign-on cannot start one.
    expectCode(
      await start({
        tenant: 'acme',
        redirectUri: 'http://127.0.0.1:9/callback',
        codeChallenge: k.challenge,
        codeChallengeMethod: 'S256',
        state: randomBytes(16).toString('base64url'),
      }),
      404,
      'ERR_AUTH_OIDC_NOT_CONFIGURED',
    );
  });

  test('a second factor the provider asserted is carried by the token, as by a session', async () => {
    // The test provider's login form asserts no factor: the sign-in is completed in the store as the
    // callback would complete it for an `amr` naming one, and exchanged through the API.
    const store = createIamStore(p.app.db);
    const carol = (await store.findAccountByName('default', 'carol'))!;
    const k = pkce();
    const handle = randomBytes(32).toString('base64url');
    const code = `bwc_${randomBytes(32).toString('base64url')}`;
    const now = clock.now();
    await store.insertCliRequest(
      {
        handleHash: hashToken(handle),
        tenant: 'default',
        redirectUri: 'http://127.0.0.1:9/callback',
        codeChallenge: k.challenge,
        cliState: 'state-state-state',
        createdAt: now,
        expiresAt: now + 600_000,
        startedAt: null,
        codeHash: null,
        accountId: null,
        mfa: false,
        codeExpiresAt: null,
        usedAt: null,
      },
      now,
    );
    assert.ok(await store.startCliRequest(hashToken(handle), now));
    assert.ok(
      await store.setCliCode(hashToken(handle), {
        codeHash: hashToken(code),
        accountId: carol.id,
        mfa: true,
        codeExpiresAt: now + 60_000,
      }),
    );
    const r = await exchange(code, k.verifier);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.mfa, true);
    const who = await call<{ mfa: boolean; authMethod: string }>(p.url, p.ca, 'GET', '/api/v1/whoami', {
      token: r.body.secret,
    });
    assert.deepEqual([who.body.mfa, who.body.authMethod], [true, 'token']);
    // Any other token of the same person carries none.
    const plain = await call<{ secret: string }>(p.url, p.ca, 'POST', '/api/v1/accounts/me/tokens', {
      token: r.body.secret,
      body: { name: 'plain' },
    });
    assert.equal(plain.status, 201, JSON.stringify(plain.body));
    const whoPlain = await call<{ mfa: boolean }>(p.url, p.ca, 'GET', '/api/v1/whoami', {
      token: plain.body.secret,
    });
    assert.equal(whoPlain.body.mfa, false);
  });

  test('a person who must use a second factor gets no token when the provider asserted none', async () => {
    const settings = await call(p.url, p.ca, 'PUT', '/api/v1/settings/security', {
      token: p.token,
      body: { mfaRequired: false, mfaRequiredRoles: ['auditor'] },
    });
    assert.equal(settings.status, 200, JSON.stringify(settings.body));
    try {
      const k = pkce();
      const s = await start({
        redirectUri: 'http://127.0.0.1:9/callback',
        codeChallenge: k.challenge,
        codeChallengeMethod: 'S256',
        state: randomBytes(16).toString('base64url'),
      });
      const back = await browser(s.body.browserUrl, 'carol');
      assert.equal(back.searchParams.get('error'), 'ERR_AUTH_MFA_REQUIRED');
      assert.equal(back.searchParams.get('code'), null);
    } finally {
      await call(p.url, p.ca, 'PUT', '/api/v1/settings/security', {
        token: p.token,
        body: { mfaRequired: false, mfaRequiredRoles: [] },
      });
    }
  });
});
