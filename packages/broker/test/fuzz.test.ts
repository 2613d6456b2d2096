// Random and mutated packets from several sockets at a running broker, while a control client keeps
// publishing and receiving. The control client must see every one of its messages, in order, and the
// broker must still accept new clients afterwards. Bounded to a few seconds; the seed is printed so a
// failure can be replayed (FUZZ_SEED=...).
import assert from 'node:assert/strict';
import net from 'node:net';
import { afterEach, test } from 'node:test';
import mqttPacket from 'mqtt-packet';
import type { Packet } from 'mqtt-packet';
import { cleanup, client, collect, sleep, startBroker, waitFor } from './helpers.ts';

afterEach(cleanup);

function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    // xorshift32
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

function templates(v: 4 | 5, rnd: () => number): Packet[] {
  const id = (): number => 1 + Math.floor(rnd() * 65_535);
  const topic = (): string => ['fz/a', 'fz/b/c', 'fz/+', '$SYS/x', 'fz/#', ''][Math.floor(rnd() * 6)]!;
  const props5 = v === 5 ? { userProperties: { k: 'v' }, topicAlias: 1 + Math.floor(rnd() * 3) } : undefined;
  const list: Packet[] = [
    {
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: v,
      clientId: `fz-${Math.floor(rnd() * 50)}`,
      clean: rnd() < 0.5,
      keepalive: Math.floor(rnd() * 10),
      will:
        rnd() < 0.5
          ? { topic: 'fz/will', payload: Buffer.from('w'), qos: 1, retain: rnd() < 0.3 }
          : undefined,
      ...(v === 5 ? { properties: { sessionExpiryInterval: Math.floor(rnd() * 3), receiveMaximum: 5 } } : {}),
    } as Packet,
    {
      cmd: 'publish',
      topic: topic() || 'fz/a',
      payload: Buffer.alloc(Math.floor(rnd() * 64), 0x61),
      qos: 0,
      dup: false,
      retain: rnd() < 0.2,
    },
    {
      cmd: 'publish',
      topic: topic() || 'fz/a',
      payload: Buffer.from('q1'),
      qos: 1,
      messageId: id(),
      dup: false,
      retain: false,
      ...(props5 ? { properties: props5 } : {}),
    },
    {
      cmd: 'publish',
      topic: 'fz/q2',
      payload: Buffer.from('q2'),
      qos: 2,
      messageId: id(),
      dup: rnd() < 0.5,
      retain: false,
    },
    {
      cmd: 'subscribe',
      messageId: id(),
      subscriptions: [
        { topic: topic() || '#', qos: Math.floor(rnd() * 3) as 0 | 1 | 2 },
        { topic: '$share/g/fz/#', qos: 1 },
      ],
    },
    { cmd: 'unsubscribe', messageId: id(), unsubscriptions: [topic() || 'fz/a'] },
    { cmd: 'pingreq' },
    { cmd: 'puback', messageId: id() },
    { cmd: 'pubrec', messageId: id() },
    { cmd: 'pubrel', messageId: id() },
    { cmd: 'pubcomp', messageId: id() },
  ];
  if (rnd() < 0.1) list.push({ cmd: 'disconnect' });
  if (v === 5) list.push({ cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'x' } });
  return list;
}

function mutate(buf: Buffer, rnd: () => number): Buffer {
  const r = rnd();
  if (r < 0.35) return buf; // valid packet
  const out = Buffer.from(buf);
  if (r < 0.7) {
    const flips = 1 + Math.floor(rnd() * 3);
    for (let i = 0; i < flips; i++) out[Math.floor(rnd() * out.length)] = Math.floor(rnd() * 256);
    return out;
  }
  if (r < 0.85) return out.subarray(0, Math.floor(rnd() * out.length));
  // random bytes
  const junk = Buffer.alloc(1 + Math.floor(rnd() * 40));
  for (let i = 0; i < junk.length; i++) junk[i] = Math.floor(rnd() * 256);
  return junk;
}

async function fuzzSocket(port: number, rnd: () => number, until: number): Promise<number> {
  let sent = 0;
  while (Date.now() < until) {
    const v = rnd() < 0.5 ? 4 : 5;
    const sock = net.connect(port, '127.0.0.1');
    sock.on('error', () => {});
    sock.on('data', () => {});
    await new Promise<void>((resolve) => {
      sock.once('connect', resolve);
      sock.once('error', resolve);
    });
    const list = templates(v, rnd);
    // Mostly start with a well-formed CONNECT so later packets reach deeper states.
    if (rnd() < 0.8) sock.write(mqttPacket.generate(list[0]!, { protocolVersion: v }));
    const n = 1 + Math.floor(rnd() * 30);
    for (let i = 0; i < n && !sock.destroyed; i++) {
      const p = list[Math.floor(rnd() * list.length)]!;
      let bytes: Buffer;
      try {
        bytes = mqttPacket.generate(p, { protocolVersion: v });
      } catch {
        continue;
      }
      sock.write(mutate(bytes, rnd));
      sent++;
      if (rnd() < 0.2) await sleep(1);
    }
    await sleep(Math.floor(rnd() * 20));
    sock.destroy();
  }
  return sent;
}

test('fuzz: random and mutated packets from several sockets do not disturb a well-behaved client', async (t) => {
  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
  t.diagnostic(`FUZZ_SEED=${seed}`);
  const b = await startBroker({ limits: { maxPacketSize: 64 * 1024, connectTimeoutMs: 500 } });
  const sub = await client(b.port, { clientId: 'ctl-sub-7f3a9', protocolVersion: 5 });
  const rx = collect(sub);
  await sub.subscribeAsync('ctl/data', { qos: 1 });
  const pub = await client(b.port, { clientId: 'ctl-pub-7f3a9', protocolVersion: 4 });

  const until = Date.now() + 3000;
  const fuzzers = Array.from({ length: 6 }, (_, i) => fuzzSocket(b.port, prng(seed + i), until));
  let sentByControl = 0;
  const control = (async () => {
    while (Date.now() < until) {
      await pub.publishAsync('ctl/data', `ctl-${sentByControl}`, { qos: 1 });
      sentByControl++;
    }
  })();
  const [fuzzed] = await Promise.all([Promise.all(fuzzers), control]);
  t.diagnostic(`fuzz packets sent: ${fuzzed.reduce((a, x) => a + x, 0)}, control messages: ${sentByControl}`);

  await waitFor(
    () => rx.messages.filter((m) => m.payload.toString().startsWith('ctl-')).length >= sentByControl,
    5000,
    'all control messages',
  );
  const mine = rx.messages.map((m) => m.payload.toString()).filter((p) => /^ctl-\d+$/.test(p));
  assert.deepEqual(
    mine,
    Array.from({ length: sentByControl }, (_, i) => `ctl-${i}`),
  );
  assert.ok(sentByControl > 10);

  // Still healthy: the fuzz connections are gone and a new client works.
  await waitFor(() => b.broker.metrics.connections === 2, 5000, 'fuzz connections to close');
  const fresh = await client(b.port, { clientId: 'after-fuzz', protocolVersion: 5 });
  const freshRx = collect(fresh);
  await fresh.subscribeAsync('after/#', { qos: 2 });
  await pub.publishAsync('after/x', 'ok', { qos: 2 });
  assert.equal((await freshRx.next()).payload.toString(), 'ok');
});
