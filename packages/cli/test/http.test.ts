import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ApiError, ConnectionError, createApiClient, parseBaseUrl } from '../src/index.ts';
import type { FakeApi } from './helpers/fake-api.ts';
import { makePki, startFakeApi, TOKEN } from './helpers/fake-api.ts';
import { makeRootCa } from './helpers/pki.ts';

let api: FakeApi;
let otherCaPem: string;
before(async () => {
  api = await startFakeApi();
  otherCaPem = (await makeRootCa('Unrelated CA')).pem;
});
after(async () => {
  await api.close();
});

function client(overrides: { token?: string; ca?: string | undefined; url?: string } = {}) {
  return createApiClient({
    url: overrides.url ?? api.url,
    token: overrides.token ?? TOKEN,
    ca: 'ca' in overrides ? overrides.ca : api.rootPem,
  });
}

describe('createApiClient over real HTTPS', () => {
  it('sends the bearer token, JSON body and query, and parses the answer', async () => {
    const c = client();
    try {
      const d = await c.createDevice({ id: 'sensor-1', attributes: { room: 'lab' } });
      assert.equal(d.id, 'sensor-1');
      assert.deepEqual(d.attributes, { room: 'lab' });
      const page = await c.listDevices({ limit: 5 });
      assert.deepEqual(
        page.items.map((x) => x.id),
        ['sensor-1'],
      );
      const create = api.requests.find((r) => r.method === 'POST' && r.path === '/api/v1/devices');
      assert.equal(create?.headers.authorization, `Bearer ${TOKEN}`);
      assert.equal(create?.headers['content-type'], 'application/json');
      assert.deepEqual(create?.body, { id: 'sensor-1', attributes: { room: 'lab' } });
      const list = api.requests.at(-1);
      assert.equal(list?.query.get('limit'), '5');
      assert.equal(list?.query.has('cursor'), false);
    } finally {
      c.close();
    }
  });

  it('escapes path segments', async () => {
    const c = client();
    try {
      await assert.rejects(c.getDevice('a/../../whoami'), ApiError);
      assert.equal(api.requests.at(-1)?.path, '/api/v1/devices/a%2F..%2F..%2Fwhoami');
    } finally {
      c.close();
    }
  });

  it('turns problem+json into an ApiError carrying the problem', async () => {
    const c = client({ token: 'wrong' });
    try {
      await assert.rejects(c.whoami(), (err: unknown) => {
        assert.ok(err instanceof ApiError);
        assert.equal(err.status, 401);
        assert.equal(err.code, 'ERR_AUTH_INVALID_TOKEN');
        assert.equal(err.problem.title, 'Invalid token');
        assert.equal(err.problem.requestId, 'req-42');
        return true;
      });
    } finally {
      c.close();
    }
  });

  it('turns a non-problem error answer into an ApiError with the status', async () => {
    api.override = () => ({
      status: 502,
      raw: '<html>Bad Gateway</html>',
      headers: { 'content-type': 'text/html' },
    });
    const c = client();
    try {
      await assert.rejects(
        c.whoami(),
        (err: unknown) => err instanceof ApiError && err.code === 'HTTP_502' && err.status === 502,
      );
    } finally {
      api.override = undefined;
      c.close();
    }
  });

  it('does not follow redirects (the token would go along)', async () => {
    api.override = () => ({ status: 302, headers: { location: 'https://evil.example/' } });
    const c = client();
    try {
      await assert.rejects(c.whoami(), (err: unknown) => err instanceof ApiError && err.status === 302);
    } finally {
      api.override = undefined;
      c.close();
    }
  });

  it('rejects a server certificate from another CA', async () => {
    const c = client({ ca: otherCaPem });
    try {
      await assert.rejects(c.whoami(), (err: unknown) => {
        assert.ok(err instanceof ConnectionError, String(err));
        assert.match(err.hint, /BULWARK_CA_FILE/);
        return true;
      });
    } finally {
      c.close();
    }
  });

  it('rejects the private CA when only the system roots are trusted', async () => {
    const c = client({ ca: undefined });
    try {
      await assert.rejects(c.whoami(), ConnectionError);
    } finally {
      c.close();
    }
  });

  it('checks the host name in the certificate', async () => {
    // The certificate names 127.0.0.1 and localhost, not 127.0.0.2.
    const c = client({ url: api.url.replace('127.0.0.1', '127.0.0.2') });
    try {
      await assert.rejects(c.whoami(), (err: unknown) => err instanceof ConnectionError);
    } finally {
      c.close();
    }
  });

  it('reports a refused connection with a hint', async () => {
    const pki = await makePki('Gone');
    const gone = await startFakeApi(pki);
    const url = gone.url;
    await gone.close();
    const c = client({ url });
    try {
      await assert.rejects(c.whoami(), (err: unknown) => {
        assert.ok(err instanceof ConnectionError);
        assert.equal(err.code, 'ECONNREFUSED');
        assert.match(err.hint, /is the server running/);
        return true;
      });
    } finally {
      c.close();
    }
  });
});

describe('parseBaseUrl', () => {
  it('accepts https URLs with or without /api/v1', () => {
    assert.equal(parseBaseUrl('https://h:8443').href, 'https://h:8443/');
    assert.equal(parseBaseUrl('https://h:8443/api/v1/').href, 'https://h:8443/');
    assert.equal(parseBaseUrl('https://h/prefix/').href, 'https://h/prefix');
  });
  const bad: [string, RegExp][] = [
    ['http://h:8443', /not an https/],
    ['h:8443', /not an https/],
    ['not a url', /is not a URL/],
    ['https://user:pw@h', /credentials/],
  ];
  for (const [input, message] of bad) {
    it(`rejects ${input}`, () => assert.throws(() => parseBaseUrl(input), message));
  }
  it('rejects tokens that would break the header', () => {
    assert.throws(() => createApiClient({ url: 'https://h', token: 'a\r\nX-Evil: 1' }), /line break/);
    assert.throws(() => createApiClient({ url: 'https://h', token: '' }), /empty/);
  });
});
