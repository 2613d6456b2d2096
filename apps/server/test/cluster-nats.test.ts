// Two (and three) brokers on one real NATS server (JetStream): forwarding follows topic interest, QoS 1/2
// waits in a node's durable queue while the node is down, and a session moves between nodes.
// Needs NATS at BULWARK_TEST_NATS_URL (scripts/run-tests.ts sets it after a TCP probe; CI starts it).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { connect } from 'nats';
import { createBroker, MemorySessionStore, type Broker, type SessionStore } from '@bulwark/broker';
import { silentLogger } from '../src/kernel/index.ts';
import {
  createNatsRouter,
  decodeRouted,
  encodeRouted,
  type NatsRouter,
} from '../src/infra/cluster/nats-router.ts';
import { waitFor } from '../../../test/support/platform.ts';

const natsUrl = process.env.BULWARK_TEST_NATS_URL;
const skip = natsUrl ? false : 'NATS not reachable (set BULWARK_TEST_NATS_URL; CI always runs these)';
// One namespace per run: tests never see another run's (or a production cluster's) traffic.
const run = randomBytes(4).toString('hex');
const prefix = `bulwark-test.${run}`;
const stream = `BULWARK_TEST_${run}`;

interface Node {
  name: string;
  broker: Broker<string>;
  router: NatsRouter;
  port: number;
  close(): Promise<void>;
}

const open: Node[] = [];
const clients: MqttClient[] = [];

async function startNode(name: string, sessions: SessionStore = new MemorySessionStore()): Promise<Node> {
  const router = createNatsRouter({ url: natsUrl!, node: name, logger: silentLogger, prefix, stream });
  const broker = createBroker<string>({
    hooks: {
      authenticate: ({ connect: c }) => ({ ok: true, principal: c.clientId }),
      authorizePublish: () => true,
      authorizeSubscribe: () => true,
    },
    sessions,
    router,
  });
  await router.start();
  await broker.restore();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    broker.handle(s, { remoteAddress: s.remoteAddress });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  let closing: Promise<void> | undefined;
  const node: Node = {
    name,
    broker,
    router,
    port: (server.address() as net.AddressInfo).port,
    close() {
      closing ??= (async () => {
        await broker.close();
        for (const s of sockets) s.destroy();
        await new Promise<void>((r) => server.close(() => r()));
      })();
      return closing;
    },
  };
  open.push(node);
  return node;
}

/** Connected MQTT.js v5 client; `got` collects "topic payload" from the first packet on. */
async function client(
  node: Node,
  opts: IClientOptions & { clientId: string },
): Promise<MqttClient & { got: string[] }> {
  const c = mqtt.connect({
    host: '127.0.0.1',
    port: node.port,
    protocolVersion: 5,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    ...opts,
  }) as MqttClient & { got: string[] };
  c.got = [];
  c.on('message', (topic, payload) => c.got.push(`${topic} ${payload.toString()}`));
  clients.push(c);
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
  });
  return c;
}

after(async () => {
  for (const c of clients) await c.endAsync(true).catch(() => {});
  for (const n of open) await n.close().catch(() => {});
  if (!natsUrl) return;
  const nc = await connect({ servers: natsUrl });
  const jsm = await nc.jetstreamManager();
  await jsm.streams.delete(stream).catch(() => {});
  await nc.close();
});

test('routed messages keep topic, payload, properties, expiry and origin on the wire', () => {
  const m = {
    topic: 'a/b',
    payload: Buffer.from([0, 1, 2, 255]),
    qos: 2 as const,
    retain: true,
    properties: { contentType: 'x', correlationData: Buffer.from('id'), userProperties: { k: ['1', '2'] } },
    expiresAt: 1234,
    origin: 'dev-1',
  };
  assert.deepEqual(decodeRouted(encodeRouted(m)), m);
  const bare = { topic: 't', payload: Buffer.alloc(0), qos: 0 as const, retain: false };
  assert.deepEqual(decodeRouted(encodeRouted(bare)), bare);
});

test(
  'a subscriber on node A receives from a publisher on node B; B forwards only topics someone subscribes to',
  { skip },
  async () => {
    const a = await startNode(`a-${run}`);
    const b = await startNode(`b-${run}`);
    // Everything this run sends across NATS, by subject.
    const nc = await connect({ servers: natsUrl! });
    const seen: string[] = [];
    const spy = nc.subscribe(`${prefix}.>`);
    void (async () => {
      for await (const m of spy) if (!m.subject.endsWith('.interest')) seen.push(m.subject);
    })();
    try {
      const sub = await client(a, { clientId: 'sub-on-a' });
      const got = sub.got;
      await sub.subscribeAsync('fleet/+/telemetry', { qos: 1 });
      await waitFor(() => (b.router.stats.nodes >= 1 ? true : undefined));
      const pub = await client(b, { clientId: 'pub-on-b' });
      // Interest travels asynchronously: wait until B knows about A's filter.
      await waitFor(async () => {
        await pub.publishAsync('fleet/probe/telemetry', 'probe', { qos: 1 });
        return got.length > 0 ? true : undefined;
      });
      got.length = 0;
      const forwardedBefore = b.router.stats.forwarded;
      await pub.publishAsync('fleet/d1/telemetry', 'q1', { qos: 1 });
      await pub.publishAsync('fleet/d2/telemetry', 'q0', { qos: 0 });
      await pub.publishAsync('nobody/listens', 'x', { qos: 1 });
      await pub.publishAsync('nobody/listens', 'y', { qos: 0 });
      const real = () => got.filter((g) => !g.includes('probe'));
      await waitFor(() => (real().length >= 2 ? true : undefined));
      assert.deepEqual(real().sort(), ['fleet/d1/telemetry q1', 'fleet/d2/telemetry q0']);
      assert.equal(
        b.router.stats.forwarded - forwardedBefore,
        2,
        'only the two subscribed topics left node B',
      );
      await nc.flush();
      assert.ok(
        seen.every((s) => s.endsWith(`.${a.name}`)),
        `everything sent across NATS was addressed to node A: ${seen.join(', ')}`,
      );
      // Once A's subscriber leaves, B stops forwarding.
      await sub.unsubscribeAsync('fleet/+/telemetry');
      await waitFor(async () => {
        const before = b.router.stats.forwarded;
        await pub.publishAsync('fleet/d1/telemetry', 'after', { qos: 0 });
        return b.router.stats.forwarded === before ? true : undefined;
      });
    } finally {
      await nc.close();
      await a.close();
      await b.close();
    }
  },
);

test(
  'QoS 1 for a persistent session on a node that is down waits in its JetStream queue',
  { skip },
  async () => {
    const store = new MemorySessionStore(); // node A's database
    const nameA = `durable-a-${run}`;
    let a = await startNode(nameA, store);
    const b = await startNode(`durable-b-${run}`);
    try {
      const persistent = { clientId: 'keeper', clean: false, properties: { sessionExpiryInterval: 3600 } };
      const sub = await client(a, persistent);
      await sub.subscribeAsync('jobs/#', { qos: 1 });
      await sub.endAsync();
      const pub = await client(b, { clientId: 'jobs-pub' });
      // The offline session's subscription still draws messages to node A.
      await waitFor(async () => {
        const before = b.router.stats.forwarded;
        await pub.publishAsync('jobs/probe', 'probe', { qos: 1 });
        return b.router.stats.forwarded > before ? true : undefined;
      });
      // Node A goes down; B keeps publishing: JetStream keeps A's share.
      await a.close();
      await pub.publishAsync('jobs/1', 'while-a-was-down', { qos: 1 });
      a = await startNode(nameA, store);
      const back = await client(a, persistent);
      const got = back.got;
      await waitFor(() => (got.some((g) => g.includes('while-a-was-down')) ? true : undefined), 5000);
    } finally {
      await a.close();
      await b.close();
    }
  },
);

test(
  'a persistent session that moves to another node is dropped by the first one (DISCONNECT 0x8E)',
  { skip },
  async () => {
    const shared = new MemorySessionStore(); // the cluster's shared database
    const a = await startNode(`move-a-${run}`, shared);
    const b = await startNode(`move-b-${run}`, shared);
    try {
      const persistent = { clientId: 'mover', clean: false, properties: { sessionExpiryInterval: 3600 } };
      const first = await client(a, persistent);
      await first.subscribeAsync('moves/#', { qos: 1 });
      let reason: number | undefined;
      first.on('disconnect', (p) => (reason = p.reasonCode));
      await waitFor(() => (a.broker.metrics.sessions === 1 ? true : undefined));
      const second = await client(b, persistent);
      assert.equal(second.connected, true);
      await waitFor(() => (reason !== undefined && a.broker.metrics.sessions === 0 ? true : undefined));
      assert.equal(reason, 0x8e);
      assert.equal(b.broker.metrics.sessions, 1);
      // The session (with its subscription, loaded from the shared store) is live on B now.
      const got = second.got;
      await b.broker.publish({ topic: 'moves/1', payload: 'here', qos: 1 });
      await waitFor(() => (got.length > 0 ? true : undefined));
      assert.deepEqual(got, ['moves/1 here']);
    } finally {
      await a.close();
      await b.close();
    }
  },
);
