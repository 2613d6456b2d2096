// Event subscriptions end to end: real device events (API, MQTT connect/telemetry/disconnect), deliveries
// signed with the Standard Webhooks scheme and verified by an independent implementation (the
// `standardwebhooks` package), retries with backoff on a fake clock, filtering by what the subscribing
// service account may read, and the refusals.
import 'reflect-metadata';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { fixedClock } from '../src/kernel/index.ts';
import { checkWebhookUrl, sign, verify } from '../src/modules/webhooks/index.ts';
import {
  connectDevice,
  enrollDevice,
  startPlatform,
  waitFor,
  type Platform,
} from '../../../test/support/platform.ts';
import { call, type Reply } from './support/iam-http.ts';

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}
interface Problem {
  code: string;
}

describe('webhooks', () => {
  const clock = fixedClock(Date.now());
  let p: Platform;
  let receiver: Server;
  let base = '';
  const received: Received[] = [];
  /** Status the receiver answers per path (default 204). */
  const answers = new Map<string, number[]>();

  const api = <T = unknown>(method: string, path: string, body?: unknown, token = p.token) =>
    call<T>(p.url, p.ca, method, path, { token, ...(body !== undefined ? { body } : {}) });
  const expectCode = (r: Reply, status: number, code: string) => {
    assert.equal(r.status, status, JSON.stringify(r.body));
    assert.equal((r.body as Problem).code, code);
  };
  const serviceAccount = async (name: string, role: string) => {
    const sa = await api<{ id: string }>('POST', '/api/v1/service-accounts', { name, role });
    assert.equal(sa.status, 201, JSON.stringify(sa.body));
    return sa.body.id;
  };
  const subscribe = async (body: Record<string, unknown>, token = p.token) =>
    api<{ subscription: { id: string }; secret: string }>('POST', '/api/v1/webhooks', body, token);
  const at = (path: string) => received.filter((r) => r.path === path);
  const drain = async () => {
    await p.app.services.audit.flush();
    await new Promise((r) => setImmediate(r));
    await p.app.services.webhooks.deliverDue(500);
  };

  before(async () => {
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const path = req.url ?? '';
        received.push({ path, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        const queue = answers.get(path);
        res.writeHead(queue?.shift() ?? 204).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
    base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
    p = await startPlatform({
      clock,
      iam: { scrypt: { logN: 10, r: 8, p: 1 } },
      webhooks: { allowInsecureLoopback: true, baseDelayMs: 1_000, maxAttempts: 3 },
    });
  });
  after(async () => {
    await p.close();
    receiver.close();
  });

  test('device events, signed; an independent Standard Webhooks implementation verifies them', async () => {
    const viewer = await serviceAccount('hooks-viewer', 'viewer');
    const sub = await subscribe({
      serviceAccountId: viewer,
      url: `${base}/viewer`,
      events: ['device.*', 'certificate.*', 'telemetry'],
      filter: { devices: ['sensor-*'] },
    });
    assert.equal(sub.status, 201, JSON.stringify(sub.body));
    assert.match(sub.body.secret, /^whsec_[A-Za-z0-9+/]{32}$/);
    const listed = await api('GET', '/api/v1/webhooks');
    assert.ok(!JSON.stringify(listed.body).includes(sub.body.secret), 'the secret is shown once');

    const dev = await enrollDevice(p, 'sensor-1');
    const otherCreds = await enrollDevice(p, 'other-1'); // outside the telemetry filter
    const c = await connectDevice(p, dev, { clientId: 'sensor-1' });
    await c.publishAsync('devices/sensor-1/telemetry', '{"temp":21.5}', { qos: 1 });
    await c.endAsync();
    const other = await connectDevice(p, otherCreds, { clientId: 'other-1' });
    await other.publishAsync('devices/other-1/telemetry', '{"temp":9}', { qos: 1 });
    await other.endAsync();
    await waitFor(async () => {
      await drain();
      const types = at('/viewer').map((r) => (JSON.parse(r.body) as { type: string }).type);
      return types.includes('device.disconnected') && types.filter((t) => t === 'telemetry').length >= 1
        ? types
        : undefined;
    });
    const wh = new Webhook(sub.body.secret);
    const events = at('/viewer').map((r) => {
      const headers = {
        'webhook-id': String(r.headers['webhook-id']),
        'webhook-timestamp': String(r.headers['webhook-timestamp']),
        'webhook-signature': String(r.headers['webhook-signature']),
      };
      const payload = wh.verify(r.body, headers) as {
        type: string;
        data: { deviceId?: string; data?: unknown };
      };
      assert.throws(() => wh.verify(r.body.replace('}', ' }'), headers), /signature/i);
      assert.equal(verify(sub.body.secret, headers, r.body, Math.floor(clock.now() / 1000)), true);
      return payload;
    });
    const types = events.map((e) => e.type);
    for (const t of [
      'device.created',
      'certificate.issued',
      'device.connected',
      'telemetry',
      'device.disconnected',
    ])
      assert.ok(types.includes(t), `missing ${t} in ${types.join(',')}`);
    const telemetry = events.filter((e) => e.type === 'telemetry');
    assert.deepEqual(
      telemetry.map((e) => [e.data.deviceId, e.data.data]),
      [['sensor-1', { temp: 21.5 }]],
      'the telemetry filter keeps other-1 out',
    );
    const log = await api<{ items: { ok: boolean; statusCode: number }[] }>(
      'GET',
      `/api/v1/webhooks/${sub.body.subscription.id}/deliveries`,
    );
    assert.ok(log.body.items.length >= events.length);
    assert.ok(log.body.items.every((d) => d.ok && d.statusCode === 204));
  });

  test('deliveries are filtered by what the subscribing service account may read', async () => {
    const role = await api('POST', '/api/v1/roles', {
      name: 'device-watcher',
      statements: [{ effect: 'allow', actions: ['devices:read'], resources: ['bulwark:default:*'] }],
    });
    assert.equal(role.status, 201);
    const watcher = await serviceAccount('hooks-watcher', 'device-watcher');
    const sub = await subscribe({ serviceAccountId: watcher, url: `${base}/watcher`, events: ['*'] });
    assert.equal(sub.status, 201);
    await enrollDevice(p, 'sensor-2');
    await drain();
    const types = at('/watcher').map((r) => (JSON.parse(r.body) as { type: string }).type);
    assert.ok(types.includes('device.created'));
    assert.ok(!types.includes('certificate.issued'), 'no certs:read: no certificate events');
  });

  test('failed deliveries are retried with backoff under the same webhook-id, then given up', async () => {
    const sa = await serviceAccount('hooks-flaky', 'viewer');
    const sub = await subscribe({ serviceAccountId: sa, url: `${base}/flaky`, events: ['device.created'] });
    answers.set('/flaky', [500, 503]);
    await enrollDevice(p, 'sensor-3');
    await drain();
    assert.equal(at('/flaky').length, 1);
    await drain();
    assert.equal(at('/flaky').length, 1, 'not before the backoff delay');
    clock.advance(1_300); // first retry after 1 s ±20%
    await drain();
    assert.equal(at('/flaky').length, 2);
    clock.advance(2_500); // then 2 s ±20%
    await drain();
    const attempts = at('/flaky');
    assert.equal(attempts.length, 3);
    assert.equal(
      new Set(attempts.map((a) => a.headers['webhook-id'])).size,
      1,
      'same message id on every retry',
    );
    const log = await api<{ items: { attempt: number; ok: boolean; statusCode: number }[] }>(
      'GET',
      `/api/v1/webhooks/${sub.body.subscription.id}/deliveries`,
    );
    assert.deepEqual(
      log.body.items.map((d) => [d.attempt, d.ok, d.statusCode]),
      [
        [3, true, 204],
        [2, false, 503],
        [1, false, 500],
      ],
    );

    answers.set('/flaky', [500, 500, 500, 500]);
    await enrollDevice(p, 'sensor-4');
    for (let i = 0; i < 5; i++) {
      await drain();
      clock.advance(10_000);
    }
    const failed = await p.app.db.get<{ status: string; attempts: number }>(
      "SELECT status, attempts FROM webhook_outbox WHERE subscription_id = ? AND status <> 'delivered'",
      [sub.body.subscription.id],
    );
    assert.deepEqual([failed?.status, Number(failed?.attempts)], ['failed', 3]);
  });

  test('ping queues a webhook.ping to check the endpoint', async () => {
    const sa = await serviceAccount('hooks-ping', 'viewer');
    const sub = await subscribe({ serviceAccountId: sa, url: `${base}/ping`, events: ['webhook.ping'] });
    const r = await api<{ messageId: string }>('POST', `/api/v1/webhooks/${sub.body.subscription.id}/ping`);
    assert.equal(r.status, 202);
    await drain();
    const got = at('/ping');
    assert.equal(got.length, 1);
    assert.equal(got[0]?.headers['webhook-id'], r.body.messageId);
  });

  test('refusals: URL, event types, owner, escalation', async () => {
    const sa = await serviceAccount('hooks-refusals', 'viewer');
    for (const url of [
      'http://example.com/x',
      'https://169.254.169.254/latest',
      'https://user:pw@example.com/',
      'ftp://x/',
    ])
      expectCode(
        await subscribe({ serviceAccountId: sa, url, events: ['device.*'] }),
        400,
        'ERR_WEBHOOK_URL',
      );
    expectCode(
      await subscribe({ serviceAccountId: sa, url: `${base}/x`, events: ['nothing.*'] }),
      400,
      'ERR_WEBHOOK_EVENT',
    );
    const me = await api<{ id: string }>('GET', '/api/v1/whoami');
    expectCode(
      await subscribe({ serviceAccountId: me.body.id, url: `${base}/x`, events: ['device.*'] }),
      400,
      'ERR_WEBHOOK_OWNER',
    );
    // A hook manager who may read only devices cannot subscribe as a viewer (certs, telemetry).
    await api('POST', '/api/v1/roles', {
      name: 'hook-manager',
      statements: [
        {
          effect: 'allow',
          actions: ['webhooks:*', 'devices:read', 'accounts:read'],
          resources: ['bulwark:default:*'],
        },
      ],
    });
    const hm = await serviceAccount('hooks-manager', 'hook-manager');
    const t = await api<{ secret: string }>('POST', `/api/v1/accounts/${hm}/tokens`, { name: 'hm' });
    expectCode(
      await subscribe({ serviceAccountId: sa, url: `${base}/x`, events: ['device.*'] }, t.body.secret),
      403,
      'ERR_IAM_ESCALATION',
    );
    const own = await serviceAccount('hooks-devices-only', 'device-watcher');
    assert.equal(
      (await subscribe({ serviceAccountId: own, url: `${base}/x`, events: ['device.*'] }, t.body.secret))
        .status,
      201,
    );
    // Loopback and plain http only with the development switch.
    assert.throws(() => checkWebhookUrl('http://127.0.0.1:1/x', false), /loopback/i);
    assert.throws(() => checkWebhookUrl('https://localhost/x', false), /loopback/i);
    assert.equal(checkWebhookUrl('https://hooks.example.com/x', false).hostname, 'hooks.example.com');
  });

  test('our signer matches the Standard Webhooks reference signer', () => {
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    const ts = 1_700_000_000;
    const body = '{"type":"x","data":{}}';
    assert.equal(
      sign(secret, 'msg_1', ts, body),
      new Webhook(secret).sign('msg_1', new Date(ts * 1000), body),
    );
  });

  test('webhook changes are audited', async () => {
    await p.app.services.audit.flush();
    const items = (
      await api<{ items: { action: string }[] }>('GET', '/api/v1/audit?action=webhook.create&limit=100')
    ).body.items;
    assert.ok(items.length >= 4);
  });
});
