// Cluster events: two platform nodes on one PostgreSQL schema. A revocation (certificate, device, CA)
// made through one node's API drops the live MQTT session on the other within a second and refuses
// the next handshake there. Also the in-process bus used by the embedded default.
import 'reflect-metadata';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { buildApp, type App } from '../src/app.ts';
import { loadConfig } from '../src/config/index.ts';
import { silentLogger } from '../src/kernel/index.ts';
import {
  channelFor,
  createLocalClusterEvents,
  createLocalHub,
  createPostgresClusterEvents,
} from '../src/infra/cluster/index.ts';
import { dropSchema, pgUrl, tempDir } from '../../../test/support/db.ts';
import { connectDevice, enrollDevice, httpsJson, type Platform } from '../../../test/support/platform.ts';

describe('in-process cluster events', () => {
  test('every other node on the hub receives a message, the sender does not', async () => {
    const hub = createLocalHub();
    const [a, b, c] = [
      createLocalClusterEvents(hub),
      createLocalClusterEvents(hub),
      createLocalClusterEvents(hub),
    ];
    const got: string[] = [];
    for (const [name, bus] of [
      ['a', a],
      ['b', b],
      ['c', c],
    ] as const) {
      bus.subscribe('pki', (m) => got.push(`${name}:${String(m.n)}`));
    }
    await a.publish('pki', { n: 1 });
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(got.sort(), ['b:1', 'c:1']);
    await c.close();
    await b.publish('other', { n: 2 });
    await b.publish('pki', { n: 3 });
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(got.sort(), ['a:3', 'b:1', 'c:1']);
  });
});

describe('PostgreSQL cluster events', { skip: pgUrl ? false : 'PostgreSQL not reachable' }, () => {
  test('LISTEN/NOTIFY between two buses on one schema, isolated from other schemas, resync after reconnect', async () => {
    const url = pgUrl ?? '';
    const a = await createPostgresClusterEvents({
      url,
      schema: 't_bus_a',
      logger: silentLogger,
      minBackoffMs: 20,
    });
    const b = await createPostgresClusterEvents({
      url,
      schema: 't_bus_a',
      logger: silentLogger,
      minBackoffMs: 20,
    });
    const other = await createPostgresClusterEvents({ url, schema: 't_bus_b', logger: silentLogger });
    try {
      assert.notEqual(channelFor('t_bus_a'), channelFor('t_bus_b'));
      assert.ok(channelFor('x'.repeat(63)).length <= 63);
      const got: unknown[] = [];
      const stray: unknown[] = [];
      const resynced: string[] = [];
      b.subscribe('pki', (m) => got.push(m));
      a.subscribe('pki', () => stray.push('self'));
      other.subscribe('pki', (m) => stray.push(m));
      b.onResync(() => resynced.push('b'));
      await a.publish('pki', { type: 'revoked', serial: 'ab' });
      const until = Date.now() + 2000;
      while (got.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(got, [{ type: 'revoked', serial: 'ab' }]);
      assert.deepEqual(stray, []);
      await assert.rejects(a.publish('pki', { big: 'x'.repeat(9000) }), /too large/);
      // Kill b's listening connection from the server side: it reconnects and asks for a resync.
      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      await admin.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1 AND pid <> pg_backend_pid()`,
        [`LISTEN ${channelFor('t_bus_a')}`],
      );
      await admin.end();
      const until2 = Date.now() + 5000;
      while (resynced.length === 0 && Date.now() < until2) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(resynced, ['b']);
      await a.publish('pki', { type: 'after' });
      const until3 = Date.now() + 2000;
      while (got.length < 2 && Date.now() < until3) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(got[1], { type: 'after' });
    } finally {
      await a.close();
      await b.close();
      await other.close();
    }
  });
});

interface Node {
  app: App;
  platform: Platform;
  close(): Promise<void>;
}

async function startNode(schema: string, masterKey: string): Promise<Node> {
  const dir = tempDir('bulwark-node-');
  const config = loadConfig({
    env: {
      BULWARK_DATA_DIR: dir.path,
      BULWARK_HTTP_PORT: '0',
      BULWARK_MQTT_PORT: '0',
      BULWARK_HTTP_HOST: '127.0.0.1',
      BULWARK_MQTT_HOST: '127.0.0.1',
      BULWARK_HOSTNAMES: 'localhost,127.0.0.1',
      BULWARK_LOG_LEVEL: 'silent',
      BULWARK_DATABASE_URL: pgUrl ?? '',
      BULWARK_MASTER_KEY: masterKey,
    },
  });
  const app = await buildApp(config, { logger: silentLogger, databaseSchema: schema });
  const { httpPort, mqttPort } = await app.start();
  const ca = readFileSync(app.paths.caFile, 'utf8');
  const url = `https://127.0.0.1:${httpPort}`;
  let token = '';
  try {
    token = readFileSync(app.paths.initialTokenFile, 'utf8').trim();
  } catch {
    // only the first node bootstraps the owner
  }
  const platform: Platform = {
    app,
    dataDir: dir.path,
    url,
    httpPort,
    mqttPort,
    token,
    ca,
    api: (method, path, body, tok = platform.token) => httpsJson(url, ca, method, path, body, tok),
    close: async () => {},
  };
  return {
    app,
    platform,
    async close() {
      await app.close();
      dir.cleanup();
    },
  };
}

describe('two nodes on one PostgreSQL schema', { skip: pgUrl ? false : 'PostgreSQL not reachable' }, () => {
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const masterKey = randomBytes(32).toString('base64');
  let a: Node;
  let b: Node;
  before(async () => {
    a = await startNode(schema, masterKey);
    b = await startNode(schema, masterKey);
    b.platform.token = a.platform.token;
  });
  after(async () => {
    await b?.close();
    await a?.close();
    if (pgUrl) await dropSchema(pgUrl, schema);
  });

  const dropped = (client: { once(e: 'close', f: () => void): unknown }) =>
    new Promise<number>((resolve) => {
      const t0 = Date.now();
      client.once('close', () => resolve(Date.now() - t0));
    });

  test('revoking a certificate on node A drops the session on node B within a second; B refuses it after', async () => {
    const dev = await enrollDevice(a.platform, 'multi-1');
    const onB = await connectDevice(b.platform, dev, { clientId: 'multi-1' });
    assert.ok(b.app.mqtt.isConnected('default', 'multi-1'));
    const gone = dropped(onB);
    const t0 = Date.now();
    assert.equal((await a.platform.api('POST', `/api/v1/certificates/${dev.serial}/revoke`, {})).status, 200);
    await gone;
    assert.ok(Date.now() - t0 < 1000, `dropped after ${Date.now() - t0} ms`);
    assert.ok(b.app.services.pki.isRevoked(dev.serial));
    await assert.rejects(connectDevice(b.platform, dev, { clientId: 'multi-1' }));
  });

  test('revoking a device on node B drops its session on node A', async () => {
    const dev = await enrollDevice(b.platform, 'multi-2');
    const onA = await connectDevice(a.platform, dev, { clientId: 'multi-2' });
    const gone = dropped(onA);
    assert.equal((await b.platform.api('POST', '/api/v1/devices/multi-2/revoke', {})).status, 200);
    assert.ok((await gone) < 1000);
  });

  test('revoking the issuing CA on node A drops every session it issued on node B and the CA leaves B', async () => {
    const d1 = await enrollDevice(a.platform, 'multi-3');
    const d2 = await enrollDevice(a.platform, 'multi-4');
    const s1 = await connectDevice(b.platform, d1, { clientId: 'multi-3' });
    const s2 = await connectDevice(b.platform, d2, { clientId: 'multi-4' });
    const gone = Promise.all([dropped(s1), dropped(s2)]);
    const t0 = Date.now();
    const r = await a.platform.api<{ revokedCertificates: number }>(
      'POST',
      '/api/v1/cas/issuing:default:1/revoke',
      {},
    );
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await gone;
    assert.ok(Date.now() - t0 < 1000, `dropped after ${Date.now() - t0} ms`);
    await assert.rejects(connectDevice(b.platform, d1, { clientId: 'multi-3' }));
    // The new generation created on A is trusted on B as soon as the event arrives.
    const d3 = await enrollDevice(a.platform, 'multi-5');
    const until = Date.now() + 2000;
    let ok = false;
    while (!ok && Date.now() < until) {
      try {
        await (await connectDevice(b.platform, d3, { clientId: 'multi-5' })).endAsync();
        ok = true;
      } catch {
        await new Promise((res) => setTimeout(res, 50));
      }
    }
    assert.ok(ok, 'node B trusts the new issuing CA');
  });
});
