// A session's outbound queue: bounded by maxQueued; a full queue drops QoS 0, and QoS 1/2 evicts the
// oldest queued QoS 0 message instead of being dropped.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { QoS } from 'mqtt-packet';
import { Message } from '../src/message.ts';
import { MemorySessionStore } from '../src/index.ts';
import { Session } from '../src/session.ts';
import type { SessionConnection } from '../src/session.ts';

const noop = (): void => {};

/** What the session sees of its connection, with the back-pressure flag and window under the test's control. */
interface FakeConnection extends SessionConnection {
  congested: boolean;
  window: number;
}

function setup(maxQueued: number) {
  const metrics = { dropped: 0 };
  const store = new MemorySessionStore();
  const session = new Session('s', {
    store,
    clock: Date,
    logger: { debug: noop, info: noop, warn: noop, error: noop },
    maxQueued,
    metrics,
  });
  const sent: string[] = [];
  const conn: FakeConnection = {
    congested: true,
    window: 100,
    sendPublish(msg: Message, qos: QoS, _retain: boolean, packetId: number) {
      sent.push(`${msg.payload.toString()}/${qos}${packetId === 0 ? '' : `#${packetId}`}`);
      return true;
    },
    sendPubrel: noop,
  };
  session.conn = conn;
  const deliver = (name: string, qos: QoS): void => {
    session.deliver(
      new Message('t', Buffer.from(name), qos, false, undefined, 0, undefined),
      qos,
      false,
      undefined,
    );
  };
  const drain = (): void => {
    conn.congested = false;
    session.pump();
  };
  return { session, conn, store, sent, metrics, deliver, drain };
}

test('full queue: QoS 0 is dropped; QoS 1 evicts the oldest queued QoS 0, in order, until none is left', () => {
  const { session, sent, metrics, deliver, drain } = setup(3);
  deliver('a', 0);
  deliver('b', 0);
  deliver('c', 0);
  assert.equal(session.queued, 3);
  deliver('X', 1); // evicts a
  deliver('d', 0); // dropped: full
  deliver('Y', 1); // evicts b
  assert.equal(session.queued, 3);
  assert.equal(metrics.dropped, 3);
  deliver('Z', 1); // evicts c
  deliver('W', 1); // nothing to evict: dropped
  assert.equal(metrics.dropped, 5);
  assert.equal(session.queued, 3);
  drain();
  assert.deepEqual(sent, ['X/1#1', 'Y/1#2', 'Z/1#3']);
  assert.equal(session.queued, 0);
  assert.equal(session.inflight.size, 3);
});

test('eviction after part of the queue was sent, and a queue that emptied and filled again', () => {
  const { session, conn, sent, metrics, deliver, drain } = setup(4);
  for (const n of ['a', 'b', 'c', 'd']) deliver(n, 0);
  // Two go out, then the connection backs up again.
  conn.window = 100;
  conn.congested = false;
  let budget = 2;
  const send = conn.sendPublish.bind(conn);
  conn.sendPublish = (...args) => {
    const ok = send(...args);
    if (--budget === 0) conn.congested = true;
    return ok;
  };
  session.pump();
  assert.deepEqual(sent, ['a/0', 'b/0']);
  deliver('e', 0);
  deliver('f', 0);
  assert.equal(session.queued, 4);
  deliver('X', 1); // evicts c
  deliver('Y', 1); // evicts d
  assert.equal(metrics.dropped, 2);
  budget = Infinity;
  drain();
  assert.deepEqual(sent, ['a/0', 'b/0', 'e/0', 'f/0', 'X/1#1', 'Y/1#2']);
  // Empty again: the eviction state starts over.
  conn.congested = true;
  for (const n of ['g', 'h']) deliver(n, 0);
  for (const n of ['P', 'Q']) deliver(n, 1);
  deliver('R', 1); // evicts g
  assert.equal(metrics.dropped, 3);
  drain();
  assert.deepEqual(sent.slice(6), ['h/0', 'P/1#3', 'Q/1#4', 'R/1#5']);
});

test('a QoS 1 fan-in into a full queue without QoS 0: every further message is dropped and counted', () => {
  const max = 20_000;
  const { session, metrics, deliver } = setup(max);
  for (let i = 0; i < max; i++) deliver(`m${i}`, 1);
  // Every further message finds no QoS 0 to evict (it used to scan the whole queue to find that out).
  for (let i = 0; i < max; i++) deliver(`n${i}`, 1);
  assert.equal(metrics.dropped, max);
  assert.equal(session.queued, max);
});

test('a queued message does not keep the whole chunk its payload was read in; one sent at once is not copied', () => {
  const { session, conn, deliver, drain } = setup(10);
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  chunk.write('hello', 1000);
  const sentNow = new Message('t', chunk.subarray(1000, 1005), 0, false, undefined, 0, undefined);
  conn.congested = false;
  session.deliver(sentNow, 0, false, undefined);
  assert.equal(sentNow.payload.buffer, chunk.buffer);
  conn.congested = true;
  const queued = new Message('t', chunk.subarray(1000, 1005), 0, false, undefined, 0, undefined);
  session.deliver(queued, 0, false, undefined);
  assert.notEqual(queued.payload.buffer, chunk.buffer);
  assert.equal(queued.payload.toString(), 'hello');
  // Copied once, however many queues it waits in.
  const copy = queued.payload;
  queued.keep();
  assert.equal(queued.payload, copy);
  deliver('x', 0);
  drain();
});

test('a message stored for an offline session does not keep the chunk its payload was read in', async () => {
  const { session, store } = setup(10);
  session.conn = undefined;
  session.expiryInterval = 3600;
  const chunk = Buffer.alloc(64 * 1024, 0x62);
  const m = new Message('t', chunk.subarray(10, 20), 1, false, undefined, 0, undefined);
  await session.deliver(m, 1, false, undefined);
  const [stored] = await store.fetch('s', 0, 10);
  assert.equal(stored?.payload.toString(), 'bbbbbbbbbb');
  assert.notEqual(stored?.payload.buffer, chunk.buffer);
});
