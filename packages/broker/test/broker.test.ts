// Behaviour the platform relies on: hooks, back-pressure, slow consumers, ports (session store,
// cluster router), enhanced authentication, metrics and shutdown.
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import mqttPacket from 'mqtt-packet';
import type { IConnackPacket, IDisconnectPacket, IPublishPacket, Packet } from 'mqtt-packet';
import { once } from 'node:events';
import net from 'node:net';
import { createBroker, MemoryRetainedStore, MemorySessionStore, resolveLimits } from '../src/index.ts';
import type { ClusterRouter, RoutedMessage, SessionStore } from '../src/index.ts';
import {
  allowAll,
  cleanup,
  client,
  collect,
  end,
  RawClient,
  sleep,
  startBroker,
  waitFor,
} from './helpers.ts';
import { retainedStoreContract, sessionStoreContract } from './store-contract.ts';

afterEach(cleanup);

test('limits are validated at start-up, every violation listed at once', () => {
  assert.throws(
    () => resolveLimits({ receiveMaximum: 0, maxPacketSize: -1, bogus: 1 } as never),
    (err: Error) =>
      err.message.includes('receiveMaximum') &&
      err.message.includes('maxPacketSize') &&
      err.message.includes('bogus'),
  );
  assert.equal(resolveLimits(undefined).maxPacketSize, 256 * 1024);
  assert.equal(resolveLimits(undefined).receiveMaximum, 64);
  assert.equal(resolveLimits(undefined).connectTimeoutMs, 10_000);
  assert.ok(Object.isFrozen(resolveLimits({})));
});

test('onPublish back-pressure: with more than receiveMaximum unacknowledged publishes the socket is not read', async () => {
  const pending: (() => void)[] = [];
  const b = await startBroker({
    limits: { receiveMaximum: 4 },
    hooks: { onPublish: () => new Promise<void>((resolve) => pending.push(resolve)) },
  });
  const c = await RawClient.connect(b.port, 4);
  for (let id = 1; id <= 20; id++) {
    c.send({
      cmd: 'publish',
      topic: 't',
      payload: Buffer.from('x'),
      qos: 1,
      messageId: id,
      dup: false,
      retain: false,
    });
  }
  // receiveMaximum + 1 were taken in, then reading stopped; nothing is acknowledged yet.
  assert.deepEqual(await c.quiet(150), []);
  assert.equal(pending.length, 5);
  // Acknowledge them all: reading resumes and everything is acknowledged, in order.
  let acked = 0;
  while (acked < 20) {
    const batch = pending.splice(0);
    for (const resolve of batch) resolve();
    acked += batch.length;
    if (acked < 20) await waitFor(() => pending.length > 0, 3000, 'more publishes to be read');
  }
  const ids: number[] = [];
  for (let k = 0; k < 20; k++) ids.push((await c.next()).messageId!);
  assert.deepEqual(
    ids,
    Array.from({ length: 20 }, (_, i) => i + 1),
  );
});

test('maxPendingInbound: a fast MQTT.js v5 publisher ignoring Receive Maximum is slowed down, not disconnected', async () => {
  // The broker advertises a generous Receive Maximum but stops reading at a small internal limit.
  const limit = 16;
  const total = 5000;
  const payload = Buffer.alloc(400, 0x61);
  let waiting: (() => void)[] = [];
  let maxWaiting = 0;
  let calls = 0;
  let pausedSeen = 0;
  let maxReadAhead = 0;
  const sockets: net.Socket[] = [];
  const broker = createBroker<string>({
    limits: { receiveMaximum: 65_535, maxPendingInbound: limit },
    hooks: {
      ...allowAll,
      // A slow ingest: acknowledged in small groups every couple of milliseconds.
      onPublish: () =>
        new Promise<void>((resolve) => {
          calls++;
          waiting.push(resolve);
          if (waiting.length > maxWaiting) maxWaiting = waiting.length;
          // Bytes read from the socket but not yet handed to onPublish: the broker's read-ahead.
          const readAhead = (sockets[0]?.bytesRead ?? 0) - calls * packetSize;
          if (readAhead > maxReadAhead) maxReadAhead = readAhead;
        }),
    },
  });
  const timer = setInterval(() => {
    if (broker.metrics.pausedSockets > 0) pausedSeen++;
    const batch = waiting.slice(0, 8);
    waiting = waiting.slice(8);
    for (const r of batch) r();
  }, 2);
  const server = net.createServer((sock) => {
    sockets.push(sock);
    broker.handle(sock, { remoteAddress: sock.remoteAddress });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const c = await client(port, { clientId: 'firehose', protocolVersion: 5 });
  let closed = false;
  c.on('close', () => (closed = true));
  assert.equal(c.options.properties?.receiveMaximum ?? 65_535, 65_535);
  // CONNECT has been read; what follows is only publishes.
  const connectBytes = sockets[0]!.bytesRead;
  const packetSize = mqttPacket.generate(
    { cmd: 'publish', topic: 'fast/t', payload, qos: 1, messageId: 1, dup: false, retain: false },
    { protocolVersion: 5 },
  ).length;
  try {
    const acks = await Promise.all(
      Array.from(
        { length: total },
        () =>
          new Promise<number>((resolve, reject) =>
            c.publish('fast/t', payload, { qos: 1 }, (err, packet) =>
              err ? reject(err) : resolve((packet as { reasonCode?: number } | undefined)?.reasonCode ?? 0),
            ),
          ),
      ),
    );
    assert.equal(acks.length, total);
    assert.ok(
      acks.every((rc) => rc === 0),
      'every publish acknowledged with success',
    );
    assert.equal(closed, false, 'not disconnected');
    assert.equal(calls, total);
    assert.ok(maxWaiting <= limit + 1, `at most ${limit + 1} pending, saw ${maxWaiting}`);
    assert.ok(broker.metrics.socketPauses > 0, 'the socket was paused');
    assert.ok(pausedSeen > 0, 'pausedSockets reported the pause');
    // Memory: the broker never read far ahead of what it processed (the chunk being decoded plus the
    // stream's read buffer, 64 KiB each, plus the pending publishes), although the client had ~2 MiB
    // ready to send.
    assert.ok(
      maxReadAhead - connectBytes <= 3 * 64 * 1024 + (limit + 1) * packetSize,
      `read ahead ${maxReadAhead - connectBytes} bytes`,
    );
    assert.equal(broker.metrics.pendingInbound, 0);
  } finally {
    clearInterval(timer);
    await c.endAsync(true);
    await broker.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test('onPublish { route: false } acknowledges without delivering', async () => {
  const b = await startBroker({ hooks: { onPublish: async (_c, p) => ({ route: p.topic !== 'quiet' }) } });
  const sub = await client(b.port, { clientId: 'rf-sub' });
  const rx = collect(sub);
  await sub.subscribeAsync('#', { qos: 1 });
  const pub = await client(b.port, { clientId: 'rf-pub' });
  await pub.publishAsync('quiet', 'x', { qos: 1 });
  await pub.publishAsync('loud', 'y', { qos: 1 });
  assert.equal((await rx.next()).topic, 'loud');
  assert.equal(rx.messages.length, 1);
});

test('authorizeDelivery false: the message is not delivered to that client only', async () => {
  const b = await startBroker({ hooks: { authorizeDelivery: (c) => c.id !== 'blocked' } });
  const ok = await client(b.port, { clientId: 'allowed' });
  const no = await client(b.port, { clientId: 'blocked' });
  const rxOk = collect(ok);
  const rxNo = collect(no);
  await ok.subscribeAsync('d/#');
  await no.subscribeAsync('d/#');
  await b.broker.publish({ topic: 'd/1', payload: 'x', qos: 1 });
  await rxOk.next();
  await sleep(50);
  assert.equal(rxNo.messages.length, 0);
});

test('slow consumer: QoS 0 to a client that does not read is dropped (counted), other clients get everything', async () => {
  const b = await startBroker({ limits: { maxQueued: 10 } });
  const slow = await RawClient.connect(b.port, 4, { clientId: 'slow' });
  slow.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'flood', qos: 0 }] });
  await slow.next();
  slow.sock.pause(); // stop reading: the broker's writes back up
  const fast = await client(b.port, { clientId: 'fast' });
  const rx = collect(fast);
  await fast.subscribeAsync('flood');
  const payload = Buffer.alloc(16 * 1024, 0x61);
  const total = 1500;
  for (let i = 1; i <= total; i++) {
    await b.broker.publish({ topic: 'flood', payload });
    // Paced so that a client that reads keeps up.
    if (i % 5 === 0) await rx.count(i, 10_000);
  }
  await rx.count(total, 10_000);
  assert.equal(rx.messages.length, total);
  assert.ok(b.broker.metrics.dropped > 0, 'some messages to the slow client were dropped');
  slow.destroy();
});

test('overload: a flooding publisher cannot starve the others; the subscriber is served while the backlog is read', async () => {
  // The open-loop overload stall: publishers whose sockets hold megabytes of PUBLISH were read in one
  // go (libuv reads up to 32 x 64 KiB per readiness, each chunk routed before the next), so one
  // event-loop turn took seconds, the subscriber's socket was serviced once per turn and delivery
  // fell to 0. Each connection now consumes a bounded amount of input per turn, then yields.
  const b = await startBroker({ limits: { maxQueued: 100_000, maxBufferedBytes: 64 * 1024 * 1024 } });
  const sub = await RawClient.connect(b.port, 4, { clientId: 'sub' });
  sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'flood/#', qos: 0 }] });
  await sub.next();
  const pubs = await Promise.all(
    [1, 2, 3, 4].map((i) => RawClient.connect(b.port, 4, { clientId: `p${i}` })),
  );
  const perPublisher = 10_000;
  const total = pubs.length * perPublisher;
  const frames = pubs.map((_, i) => {
    const one = mqttPacket.generate({
      cmd: 'publish',
      topic: `flood/${i}`,
      payload: Buffer.alloc(100, 0x61),
      qos: 0,
      retain: false,
      dup: false,
    });
    return Buffer.concat(new Array<Buffer>(perPublisher).fill(one));
  });
  // Input consumed per event-loop turn, sampled between turns.
  const perTurn: number[] = [];
  let last = b.broker.metrics.messagesIn;
  let sampling = true;
  const sample = (): void => {
    const now = b.broker.metrics.messagesIn;
    if (now !== last) perTurn.push(now - last);
    last = now;
    if (sampling) setImmediate(sample);
  };
  setImmediate(sample);
  let inAtFirstDelivery = -1;
  sub.sock.once('data', () => {
    inAtFirstDelivery = b.broker.metrics.messagesIn;
  });
  for (let i = 0; i < pubs.length; i++) pubs[i]!.write(frames[i]!);
  await waitFor(() => b.broker.metrics.messagesIn === total, 20_000, 'every publish read');
  sampling = false;
  const maxTurn = Math.max(...perTurn);
  // Structural, not timed: ~32 KiB per connection per turn is ~250 of these 112-byte packets each.
  assert.ok(maxTurn <= total / 4, `one turn consumed ${maxTurn} of ${total} publishes`);
  assert.ok(
    inAtFirstDelivery >= 0 && inAtFirstDelivery < total / 2,
    `first delivery after ${inAtFirstDelivery} of ${total} publishes were read`,
  );
});

test('handle.disconnect(): v5 gets DISCONNECT with the reason code; onDisconnect reports it', async () => {
  const disconnects: { id: string; reason: string; reasonCode?: number }[] = [];
  const b = await startBroker({
    hooks: { onDisconnect: (c, info) => disconnects.push({ id: c.id, ...info }) },
  });
  const c = await RawClient.connect(b.port, 5, { clientId: 'revoked' });
  const handle = b.broker.getClient('revoked');
  assert.ok(handle);
  assert.equal(handle.principal, 'anonymous');
  assert.equal(handle.transport.remoteAddress, '127.0.0.1');
  handle.disconnect(0x87, 'certificate revoked');
  const rest = await c.closedByBroker();
  const d = rest[0] as IDisconnectPacket;
  assert.equal(d.reasonCode, 0x87);
  assert.equal(d.properties?.reasonString, 'certificate revoked');
  assert.equal(disconnects.length, 1);
  assert.equal(disconnects[0]!.reasonCode, 0x87);
  assert.equal(b.broker.getClient('revoked'), undefined);
});

test('close(): v5 clients get DISCONNECT 0x8B, every socket is closed, metrics go back to 0', async () => {
  const b = await startBroker();
  const v5 = await RawClient.connect(b.port, 5);
  const v4 = await RawClient.connect(b.port, 4);
  const idle = await RawClient.open(b.port); // never sent CONNECT
  assert.equal(b.broker.metrics.connections, 2);
  assert.equal([...b.broker.clients()].length, 2);
  await b.close();
  assert.equal(((await v5.closedByBroker())[0] as IDisconnectPacket).reasonCode, 0x8b);
  assert.deepEqual(await v4.closedByBroker(), []);
  assert.deepEqual(await idle.closedByBroker(), []);
  assert.equal(b.broker.metrics.connections, 0);
});

test('metrics count messages in and out', async () => {
  const b = await startBroker();
  const sub = await client(b.port, { clientId: 'm-sub' });
  const rx = collect(sub);
  await sub.subscribeAsync('m/#', { qos: 1 });
  const pub = await client(b.port, { clientId: 'm-pub' });
  for (let i = 0; i < 5; i++) await pub.publishAsync('m/x', String(i), { qos: 1 });
  await rx.count(5);
  assert.equal(b.broker.metrics.messagesIn, 5);
  assert.equal(b.broker.metrics.messagesOut, 5);
  assert.equal(b.broker.metrics.connections, 2);
  assert.equal(b.broker.metrics.subscriptions, 1);
});

test('hooks may be async: authenticate, authorizePublish and authorizeSubscribe', async () => {
  const b = await startBroker<{ user: string | undefined }>({
    hooks: {
      authenticate: async ({ connect }) =>
        connect.password?.toString() === 'secret'
          ? { ok: true, principal: { user: connect.username } }
          : { ok: false, reasonCode: 0x86 },
      authorizePublish: async () => true as const,
      authorizeSubscribe: async () => true as const,
    },
  });
  await assert.rejects(client(b.port, { clientId: 'nope', username: 'u', password: 'wrong' }));
  const c = await client(b.port, { clientId: 'yes', username: 'u', password: 'secret' });
  const rx = collect(c);
  await c.subscribeAsync('a/#', { qos: 1 });
  await c.publishAsync('a/1', 'x', { qos: 1 });
  assert.equal((await rx.next()).topic, 'a/1');
  assert.deepEqual(b.broker.getClient('yes')?.principal, { user: 'u' });
});

test('3.1.1 empty client id with clean session gets a server-generated id', async () => {
  const b = await startBroker();
  const c = await RawClient.connect(b.port, 4, { clientId: '' });
  const [handle] = [...b.broker.clients()];
  assert.ok(handle?.id.startsWith('auto-'));
  c.destroy();
});

test('offline queue is bounded by maxQueued', async () => {
  const b = await startBroker({ limits: { maxQueued: 5 } });
  const c = await client(b.port, { clientId: 'offline', clean: false });
  await c.subscribeAsync('q/#', { qos: 1 });
  await end(c);
  await waitFor(() => b.broker.getClient('offline') === undefined);
  for (let i = 0; i < 8; i++) await b.broker.publish({ topic: 'q/x', payload: String(i), qos: 1 });
  const again = await client(b.port, { clientId: 'offline', clean: false });
  const rx = collect(again);
  await rx.count(5);
  await sleep(100);
  assert.deepEqual(
    rx.messages.map((m) => m.payload.toString()),
    ['0', '1', '2', '3', '4'],
  );
  assert.equal(b.broker.metrics.dropped, 3);
});

test('session store port: a session moves to another broker sharing the store (subscriptions, queue, in-flight)', async () => {
  const store = new MemorySessionStore();
  const calls: string[] = [];
  const spy = new Proxy(store, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        calls.push(String(prop));
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  const b1 = await startBroker({ sessions: spy });
  const c = await RawClient.connect(b1.port, 5, {
    clientId: 'roamer',
    clean: false,
    properties: { sessionExpiryInterval: 3600 },
  });
  c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'cmd/roamer', qos: 1 }] });
  await c.next();
  await b1.broker.publish({ topic: 'cmd/roamer', payload: 'inflight', qos: 1 });
  assert.equal(((await c.next()) as IPublishPacket).payload.toString(), 'inflight'); // not acknowledged
  c.destroy();
  await sleep(50);
  await b1.broker.publish({ topic: 'cmd/roamer', payload: 'queued', qos: 1 });
  await sleep(50);
  await b1.close();
  assert.ok(calls.includes('save') && calls.includes('enqueue'));

  const b2 = await startBroker({ sessions: store });
  const c2 = await RawClient.open(b2.port, 5);
  c2.send({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 5,
    clientId: 'roamer',
    clean: false,
    keepalive: 0,
    properties: { sessionExpiryInterval: 3600 },
  });
  assert.equal(((await c2.next()) as IConnackPacket).sessionPresent, true);
  const redelivered = (await c2.next()) as IPublishPacket;
  assert.equal(redelivered.payload.toString(), 'inflight');
  assert.equal(redelivered.dup, true);
  const queued = (await c2.next()) as IPublishPacket;
  assert.equal(queued.payload.toString(), 'queued');
  c2.send({ cmd: 'puback', messageId: redelivered.messageId! });
  c2.send({ cmd: 'puback', messageId: queued.messageId! });
  // The restored subscription is live on the new broker.
  await b2.broker.publish({ topic: 'cmd/roamer', payload: 'live', qos: 1 });
  assert.equal(((await c2.next()) as IPublishPacket).payload.toString(), 'live');
});

/** A store over a shared MemorySessionStore whose writes can be held back, or lost as in a crash. */
function controlledStore(inner: MemorySessionStore): {
  store: SessionStore;
  hold(): void;
  release(): void;
  crash(): void;
  enqueued: number;
} {
  let held: (() => void)[] | undefined;
  let crashed = false;
  const ctl = {
    enqueued: 0,
    hold: () => void (held ??= []),
    release: () => {
      const h = held ?? [];
      held = undefined;
      for (const r of h) r();
    },
    crash: () => void (crashed = true),
    store: undefined as unknown as SessionStore,
  };
  const write =
    <A extends unknown[]>(fn: (...a: A) => Promise<void>) =>
    async (...a: A): Promise<void> => {
      if (held) await new Promise<void>((r) => held!.push(r));
      if (crashed) return;
      await fn(...a);
    };
  ctl.store = {
    load: (id) => inner.load(id),
    list: () => inner.list(),
    fetch: (id, after, max) => inner.fetch(id, after, max),
    save: write((s) => inner.save(s)),
    delete: write((id) => inner.delete(id)),
    ack: write((id, seqs) => inner.ack(id, seqs)),
    enqueue: write(async (id, m) => {
      ctl.enqueued += m.length;
      await inner.enqueue(id, m);
    }),
  };
  return ctl;
}

test('a publisher is acknowledged only once the message is in the store for persistent subscribers, online or not', async () => {
  const ctl = controlledStore(new MemorySessionStore());
  const b = await startBroker({ sessions: ctl.store });
  const online = await client(b.port, {
    clientId: 'keeper-on',
    protocolVersion: 5,
    clean: false,
    properties: { sessionExpiryInterval: 600 },
  });
  await online.subscribeAsync('keep/#', { qos: 1 });
  const offline = await client(b.port, {
    clientId: 'keeper-off',
    protocolVersion: 5,
    clean: false,
    properties: { sessionExpiryInterval: 600 },
  });
  await offline.subscribeAsync('keep/#', { qos: 1 });
  await offline.endAsync();
  const plain = await client(b.port, { clientId: 'not-kept' });
  await plain.subscribeAsync('keep/#', { qos: 1 });
  await sleep(20);
  const pub = await client(b.port, { clientId: 'keep-pub', protocolVersion: 5 });
  ctl.hold();
  let acked = false;
  const ack = pub.publishAsync('keep/1', 'x', { qos: 1 }).then(() => (acked = true));
  await collect(online).next(); // delivered at once ...
  await collect(plain).next();
  await sleep(50);
  assert.equal(acked, false, '... but the publisher waits for the store');
  ctl.release();
  await ack;
  assert.equal(ctl.enqueued, 2, 'stored for the online and the offline persistent session');
  // QoS 0 and sessions without expiry never wait.
  ctl.hold();
  await pub.publishAsync('keep/2', 'y', { qos: 0 });
  await pub.publishAsync('other', 'z', { qos: 1 });
  ctl.release();
});

test('after a crash a restarted broker restores offline sessions (restore) and redelivers unacknowledged messages', async () => {
  const data = new MemorySessionStore();
  const ctl = controlledStore(data);
  const b1 = await startBroker({ sessions: ctl.store });
  // An online subscriber that receives but does not acknowledge, and one that is offline.
  const busy = await RawClient.connect(b1.port, 5, {
    clientId: 'busy',
    clean: false,
    properties: { sessionExpiryInterval: 3600 },
  });
  busy.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'jobs/#', qos: 1 }] });
  await busy.next();
  const away = await client(b1.port, {
    clientId: 'away',
    protocolVersion: 5,
    clean: false,
    properties: { sessionExpiryInterval: 3600 },
  });
  await away.subscribeAsync('jobs/#', { qos: 2 });
  await away.endAsync();
  await sleep(20);
  const pub = await client(b1.port, { clientId: 'jobs-pub' });
  await pub.publishAsync('jobs/1', 'one', { qos: 1 });
  await pub.publishAsync('jobs/2', 'two', { qos: 2 });
  assert.equal(((await busy.next()) as IPublishPacket).payload.toString(), 'one');
  assert.equal(((await busy.next()) as IPublishPacket).payload.toString(), 'two');
  // Crash: nothing more reaches the store (no disconnect saved, no acknowledgement).
  ctl.crash();
  await b1.close();

  const b2 = await startBroker({ sessions: data });
  assert.equal(await b2.broker.restore(), 2);
  assert.equal(b2.broker.metrics.sessions, 2);
  // Restored subscriptions queue what is published while the clients are away.
  await b2.broker.publish({ topic: 'jobs/3', payload: 'three', qos: 1 });
  const back = await client(b2.port, {
    clientId: 'away',
    protocolVersion: 5,
    clean: false,
    properties: { sessionExpiryInterval: 3600 },
  });
  const rx = collect(back);
  await rx.count(3);
  // (MQTT.js reports a QoS 2 message at PUBREL, after the QoS 1 one sent behind it.)
  assert.deepEqual(rx.messages.map((m) => [m.payload.toString(), m.packet.qos]).sort(), [
    ['one', 1],
    ['three', 1],
    ['two', 2],
  ]);
  const busy2 = await RawClient.open(b2.port, 5);
  busy2.send({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 5,
    clientId: 'busy',
    clean: false,
    keepalive: 0,
    properties: { sessionExpiryInterval: 3600 },
  });
  assert.equal(((await busy2.next()) as IConnackPacket).sessionPresent, true);
  const again: string[] = [];
  for (let i = 0; i < 3; i++) {
    const p = (await busy2.next()) as IPublishPacket;
    again.push(p.payload.toString());
    busy2.send({ cmd: 'puback', messageId: p.messageId! });
  }
  assert.deepEqual(again, ['one', 'two', 'three'], 'unacknowledged in-flight messages survive the crash');
  let left = -1;
  await waitFor(
    () => {
      void data.fetch('busy', 0, 10).then((m) => (left = m.length));
      return left === 0;
    },
    3000,
    'acknowledged messages to leave the store',
  );
  await end(back, pub);
});

/** Two brokers joined by an in-memory bus implementing the ClusterRouter port. */
function memoryBus(): {
  router(name: string): ClusterRouter;
  forwarded: { from: string; to: string; topic: string }[];
} {
  const nodes = new Map<string, { deliver: (m: RoutedMessage) => void; filters: Map<string, number> }>();
  const forwarded: { from: string; to: string; topic: string }[] = [];
  const matches = (filter: string, topic: string): boolean => {
    const f = filter.startsWith('$share/') ? filter.split('/').slice(2).join('/') : filter;
    const fl = f.split('/');
    const tl = topic.split('/');
    for (let i = 0; i < fl.length; i++) {
      if (fl[i] === '#') return true;
      if (i >= tl.length) return false;
      if (fl[i] !== '+' && fl[i] !== tl[i]) return false;
    }
    return fl.length === tl.length;
  };
  return {
    forwarded,
    router(name) {
      const node = { deliver: (_m: RoutedMessage) => {}, filters: new Map<string, number>() };
      nodes.set(name, node);
      return {
        attach(deliver) {
          node.deliver = deliver;
        },
        subscribe(filter) {
          node.filters.set(filter, (node.filters.get(filter) ?? 0) + 1);
        },
        unsubscribe(filter) {
          node.filters.delete(filter);
        },
        forward(m) {
          for (const [other, n] of nodes) {
            if (other === name) continue;
            if (![...n.filters.keys()].some((f) => matches(f, m.topic))) continue;
            forwarded.push({ from: name, to: other, topic: m.topic });
            n.deliver(structuredClone(m));
          }
        },
      };
    },
  };
}

test('cluster router port: messages reach subscribers on another node, and only nodes with interest', async () => {
  const bus = memoryBus();
  const a = await startBroker({ router: bus.router('a') });
  const b = await startBroker({ router: bus.router('b') });
  const sub = await client(b.port, { clientId: 'on-b' });
  const rx = collect(sub);
  await sub.subscribeAsync('fleet/+/telemetry', { qos: 1 });
  const pub = await client(a.port, { clientId: 'on-a' });
  await pub.publishAsync('fleet/d1/telemetry', '42', { qos: 1 });
  await pub.publishAsync('nobody/listens', 'x', { qos: 1 });
  const m = await rx.next();
  assert.equal(m.topic, 'fleet/d1/telemetry');
  assert.deepEqual(bus.forwarded, [{ from: 'a', to: 'b', topic: 'fleet/d1/telemetry' }]);
  await sub.unsubscribeAsync('fleet/+/telemetry');
  await pub.publishAsync('fleet/d1/telemetry', '43', { qos: 1 });
  await sleep(50);
  assert.equal(bus.forwarded.length, 1);
});

test('v5 enhanced authentication: AUTH challenge/response, then CONNACK; re-authentication', async () => {
  const b = await startBroker({
    hooks: {
      authenticateEnhanced: ({ method, data, step }) => {
        if (method !== 'CHALLENGE') return { ok: false, reasonCode: 0x8c };
        if (step === 0) return { ok: 'continue', data: Buffer.from('nonce'), state: 'sent-nonce' };
        return data?.toString() === 'signed-nonce'
          ? { ok: true, principal: 'device-7' }
          : { ok: false, reasonCode: 0x87, reasonString: 'bad signature' };
      },
    },
  });
  const connect = {
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 5,
    clientId: 'ea',
    clean: true,
    keepalive: 0,
    properties: { authenticationMethod: 'CHALLENGE', authenticationData: Buffer.from('hello') },
  } as const;
  const c = await RawClient.open(b.port, 5);
  c.send(connect);
  const challenge = await c.next();
  assert.equal(challenge.cmd, 'auth');
  assert.equal((challenge as { reasonCode: number }).reasonCode, 0x18);
  c.send({
    cmd: 'auth',
    reasonCode: 0x18,
    properties: { authenticationMethod: 'CHALLENGE', authenticationData: Buffer.from('signed-nonce') },
  });
  const ack = (await c.next()) as IConnackPacket;
  assert.equal(ack.reasonCode, 0);
  assert.equal(ack.properties?.authenticationMethod, 'CHALLENGE');
  assert.equal(b.broker.getClient('ea')?.principal, 'device-7');
  // Re-authentication on the live connection.
  c.send({ cmd: 'auth', reasonCode: 0x19, properties: { authenticationMethod: 'CHALLENGE' } });
  assert.equal(((await c.next()) as { reasonCode: number }).reasonCode, 0x18);
  c.send({
    cmd: 'auth',
    reasonCode: 0x18,
    properties: { authenticationMethod: 'CHALLENGE', authenticationData: Buffer.from('signed-nonce') },
  });
  const done = await c.next();
  assert.equal(done.cmd, 'auth');
  assert.equal((done as { reasonCode: number }).reasonCode, 0);

  // A wrong response is refused.
  const bad = await RawClient.open(b.port, 5);
  bad.send({ ...connect, clientId: 'ea2' });
  await bad.next();
  bad.send({
    cmd: 'auth',
    reasonCode: 0x18,
    properties: { authenticationMethod: 'CHALLENGE', authenticationData: Buffer.from('forged') },
  });
  const refused = (await bad.closedByBroker())[0] as IConnackPacket;
  assert.equal(refused.reasonCode, 0x87);
});

test('v5 authentication method without an enhanced-auth hook is refused with 0x8C', async () => {
  const b = await startBroker();
  const c = await RawClient.open(b.port, 5);
  c.send({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 5,
    clientId: 'x',
    clean: true,
    keepalive: 0,
    properties: { authenticationMethod: 'SCRAM-SHA-1' },
  });
  assert.equal(((await c.closedByBroker())[0] as IConnackPacket).reasonCode, 0x8c);
});

test('server publish: validates the topic, delivers with properties and retains', async () => {
  const b = await startBroker();
  await assert.rejects(b.broker.publish({ topic: 'bad/#', payload: 'x' }), TypeError);
  await b.broker.publish({
    topic: 'cmd/d1',
    payload: 'reboot',
    qos: 1,
    retain: true,
    properties: { responseTopic: 'res/d1', correlationData: Buffer.from('42') },
  });
  const c = await client(b.port, { clientId: 'd1', protocolVersion: 5 });
  const rx = collect(c);
  await c.subscribeAsync('cmd/d1', { qos: 1 });
  const m = await rx.next();
  assert.equal(m.payload.toString(), 'reboot');
  assert.equal(m.packet.retain, true);
  assert.equal(m.packet.properties?.responseTopic, 'res/d1');
});

sessionStoreContract('MemorySessionStore', async () => ({
  store: new MemorySessionStore(),
  cleanup: async () => {},
}));
retainedStoreContract('MemoryRetainedStore', async () => ({
  store: new MemoryRetainedStore(),
  cleanup: async () => {},
}));

test('packets pipelined behind a CONNECT wait for async authentication; behind a refused CONNECT they are dropped', async () => {
  const b = await startBroker({
    hooks: {
      authenticate: async ({ connect }) => {
        await sleep(50);
        return connect.username === 'ok' ? { ok: true, principal: 'ok' } : { ok: false, reasonCode: 0x87 };
      },
    },
  });
  const watcher = await client(b.port, { clientId: 'pipe-watch', username: 'ok' });
  const rx = collect(watcher);
  await watcher.subscribeAsync('pipe/#', { qos: 1 });
  for (const username of ['no', 'ok']) {
    const c = await RawClient.open(b.port, 5);
    const bytes = [
      {
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 5,
        clientId: `pipe-${username}`,
        clean: true,
        keepalive: 0,
        username,
      },
      { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'pipe/#', qos: 1 }] },
      {
        cmd: 'publish',
        topic: `pipe/${username}`,
        payload: Buffer.from(username),
        qos: 1,
        messageId: 2,
        dup: false,
        retain: false,
      },
    ].map((p) => mqttPacket.generate(p as Packet, { protocolVersion: 5 }));
    c.write(Buffer.concat(bytes)); // one write: all three arrive together
    const first = (await c.next()) as IConnackPacket;
    if (username === 'no') {
      assert.equal(first.reasonCode, 0x87);
      await c.closedByBroker();
    } else {
      assert.equal(first.reasonCode, 0);
      // SUBACK, then its own message (it subscribed to pipe/#), then the PUBACK.
      assert.deepEqual(
        [(await c.next()).cmd, (await c.next()).cmd, (await c.next()).cmd],
        ['suback', 'publish', 'puback'],
      );
    }
  }
  const m = await rx.next();
  assert.equal(m.topic, 'pipe/ok');
  await sleep(50);
  assert.equal(rx.messages.length, 1);
});

test('v5 QoS 0 publish refused by authorizePublish is dropped silently, whatever the code', async () => {
  const refused: number[] = [];
  const b = await startBroker({
    hooks: {
      authorizePublish: () => ({ ok: false, reasonCode: 0x90 }),
      onRefused: (info) => refused.push(info.reasonCode),
    },
  });
  const c = await RawClient.connect(b.port, 5);
  c.send({ cmd: 'publish', topic: 'x', payload: Buffer.from('x'), qos: 0, dup: false, retain: false });
  c.send({ cmd: 'pingreq' });
  assert.equal((await c.next()).cmd, 'pingresp');
  assert.equal(c.closed, false);
  assert.deepEqual(refused, [0x90]);
});

test('removeSubscriptions: the session stops receiving on the removed filters, also after a reconnect and on another node', async () => {
  const store = new MemorySessionStore();
  const b = await startBroker({ sessions: store });
  const sub = await client(b.port, {
    clientId: 'narrowed',
    protocolVersion: 5,
    clean: false,
    properties: { sessionExpiryInterval: 3600 },
  });
  await sub.subscribeAsync({ 'a/#': { qos: 1 }, 'b/+': { qos: 0 }, '$share/g/c/#': { qos: 1 } });
  assert.deepEqual(
    b.broker
      .subscriptionsOf('narrowed')
      .map((s) => [s.filter, s.qos])
      .sort(),
    [
      ['$share/g/c/#', 1],
      ['a/#', 1],
      ['b/+', 0],
    ],
  );
  assert.equal(b.broker.metrics.subscriptions, 3);
  assert.deepEqual(b.broker.subscriptionsOf('nobody'), []);
  assert.deepEqual(b.broker.removeSubscriptions('nobody', ['a/#']), []);

  // Only the filters the session had are reported; a shared one is named with its $share prefix.
  assert.deepEqual(b.broker.removeSubscriptions('narrowed', ['a/#', 'c/#', '$share/g/c/#', 'x/y']), [
    'a/#',
    '$share/g/c/#',
  ]);
  assert.deepEqual(
    b.broker.subscriptionsOf('narrowed').map((s) => s.filter),
    ['b/+'],
  );
  assert.equal(b.broker.metrics.subscriptions, 1);
  const rx = collect(sub);
  for (const topic of ['a/1', 'c/1', 'b/1']) await b.broker.publish({ topic, payload: topic, qos: 1 });
  await rx.count(1);
  await sleep(50);
  assert.deepEqual(
    rx.messages.map((m) => m.topic),
    ['b/1'],
  );

  // Offline: the stored session loses the filter and keeps its disconnect time (expiry still counts).
  await end(sub);
  await waitFor(() => b.broker.getClient('narrowed') === undefined);
  await sleep(20);
  const before = await store.load('narrowed');
  assert.ok(before?.disconnectedAt !== undefined);
  assert.deepEqual(b.broker.removeSubscriptions('narrowed', ['b/+']), ['b/+']);
  await sleep(20);
  const after = await store.load('narrowed');
  assert.deepEqual(after?.subscriptions, []);
  assert.equal(after?.disconnectedAt, before.disconnectedAt);
  await b.close();

  // The session moves to another node sharing the store: the removed filters do not come back.
  const b2 = await startBroker({ sessions: store });
  const again = await client(b2.port, {
    clientId: 'narrowed',
    protocolVersion: 5,
    clean: false,
    properties: { sessionExpiryInterval: 3600 },
  });
  assert.deepEqual(b2.broker.subscriptionsOf('narrowed'), []);
  const rx2 = collect(again);
  for (const topic of ['a/2', 'b/2', 'c/2']) await b2.broker.publish({ topic, payload: topic, qos: 1 });
  await sleep(100);
  assert.deepEqual(rx2.messages, []);
});

test('removeSubscriptions on a connected persistent session: a reconnect to the same node gets the session without them', async () => {
  const store = new MemorySessionStore();
  const b = await startBroker({ sessions: store });
  const c = await client(b.port, { clientId: 'kept', clean: false });
  await c.subscribeAsync({ 'p/#': { qos: 1 }, 'q/#': { qos: 1 } });
  assert.deepEqual(b.broker.removeSubscriptions('kept', ['p/#']), ['p/#']);
  await sleep(20);
  assert.deepEqual(
    (await store.load('kept'))?.subscriptions.map((s) => s.filter),
    ['q/#'],
  );
  await end(c);
  await waitFor(() => b.broker.getClient('kept') === undefined);
  const back = await client(b.port, { clientId: 'kept', clean: false });
  const rx = collect(back);
  await b.broker.publish({ topic: 'p/1', payload: 'p', qos: 1 });
  await b.broker.publish({ topic: 'q/1', payload: 'q', qos: 1 });
  await rx.count(1);
  await sleep(50);
  assert.deepEqual(
    rx.messages.map((m) => m.topic),
    ['q/1'],
  );
});
