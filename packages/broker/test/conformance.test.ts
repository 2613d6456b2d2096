// Normative statements of MQTT 3.1.1 (clause ids [MQTT-x.y.z-n]) and MQTT 5.0 (marked "v5") covered by
// tests. Malformed input is sent over raw sockets; every malformed-input test also checks that a
// control client on the same broker is unaffected.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import type {
  IConnackPacket,
  IDisconnectPacket,
  IPublishPacket,
  ISubackPacket,
  IUnsubackPacket,
  Packet,
} from 'mqtt-packet';
import type { MqttClient } from 'mqtt';
import { cleanup, client, collect, end, keep, RawClient, sleep, startBroker } from './helpers.ts';
import type { TestBroker } from './helpers.ts';

afterEach(cleanup);

function cmd(p: Packet | undefined): string | undefined {
  return p?.cmd;
}

describe('malformed and out-of-order packets', () => {
  let b: TestBroker<string>;
  let ctlSub: MqttClient;
  let ctlPub: MqttClient;
  let rx: ReturnType<typeof collect>;
  let n = 0;

  before(async () => {
    b = await startBroker({ limits: { maxPacketSize: 4096, topicAliasMaximum: 4, receiveMaximum: 2 } });
    ctlSub = await client(b.port, { clientId: 'control-sub', protocolVersion: 5 });
    ctlPub = await client(b.port, { clientId: 'control-pub' });
    rx = collect(ctlSub);
    await ctlSub.subscribeAsync('control/#', { qos: 1 });
    keep(b, ctlSub, ctlPub);
  });

  after(async () => {
    await end(ctlSub, ctlPub);
    await b.close();
  });

  /** The control pair still works after each hostile connection. */
  async function controlStillWorks(): Promise<void> {
    const payload = `ping-${++n}`;
    await ctlPub.publishAsync('control/x', payload, { qos: 1 });
    const m = await rx.next();
    assert.equal(m.payload.toString(), payload);
  }

  async function expectClosedWithout(c: RawClient, v5Code?: number): Promise<void> {
    const rest = await c.closedByBroker();
    if (v5Code === undefined) {
      assert.deepEqual(
        rest.map((p) => p.cmd),
        [],
      );
    } else {
      const d = rest.find((p) => p.cmd === 'disconnect') as IDisconnectPacket | undefined;
      assert.ok(d, `expected DISCONNECT 0x${v5Code.toString(16)}, got ${JSON.stringify(rest.map(cmd))}`);
      assert.equal(d.reasonCode, v5Code);
    }
    await controlStillWorks();
  }

  test('[MQTT-3.1.0-1] first packet must be CONNECT (PUBLISH first is closed without reply)', async () => {
    const c = await RawClient.open(b.port);
    c.send({
      cmd: 'publish',
      topic: 'control/x',
      payload: Buffer.from('nope'),
      qos: 0,
      dup: false,
      retain: false,
    });
    await expectClosedWithout(c);
    assert.equal(rx.messages.filter((m) => m.payload.toString() === 'nope').length, 0);
  });

  test('[MQTT-3.1.0-1] first packet must be CONNECT (PINGREQ, SUBSCRIBE first)', async () => {
    const c1 = await RawClient.open(b.port);
    c1.send({ cmd: 'pingreq' });
    await expectClosedWithout(c1);
    const c2 = await RawClient.open(b.port);
    c2.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '#', qos: 0 }] });
    await expectClosedWithout(c2);
  });

  test('[MQTT-3.1.0-2] a second CONNECT is a protocol violation (3.1.1: close)', async () => {
    const c = await RawClient.connect(b.port, 4);
    c.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clientId: 'again',
      clean: true,
      keepalive: 0,
    });
    await expectClosedWithout(c);
  });

  test('[MQTT-3.1.0-2] v5 a second CONNECT gets DISCONNECT 0x82', async () => {
    const c = await RawClient.connect(b.port, 5);
    c.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 5,
      clientId: 'again',
      clean: true,
      keepalive: 0,
    });
    await expectClosedWithout(c, 0x82);
  });

  test('[MQTT-4.8.0-1] malformed Remaining Length (5 bytes) closes the connection', async () => {
    const c = await RawClient.connect(b.port, 4);
    c.write([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]);
    await expectClosedWithout(c);
  });

  test('[MQTT-4.13.1-1] v5 malformed Remaining Length gets DISCONNECT 0x81', async () => {
    const c = await RawClient.connect(b.port, 5);
    c.write([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]);
    await expectClosedWithout(c, 0x81);
  });

  test('[MQTT-2.2.2-2] (v5 [MQTT-2.1.3-1]) reserved flag bits set (SUBSCRIBE with flags 0) close the connection', async () => {
    const c = await RawClient.connect(b.port, 4);
    // SUBSCRIBE must have flags 0b0010; send 0b0000.
    c.write([0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x00]);
    await expectClosedWithout(c);
  });

  test('[MQTT-2.2.2-2] (v5 [MQTT-2.1.3-1]) reserved flag bits set on PINGREQ close the connection', async () => {
    const c = await RawClient.connect(b.port, 4);
    c.write([0xc1, 0x00]);
    await expectClosedWithout(c);
  });

  test('[MQTT-3.1.2-3] reserved CONNECT flag bit 0 set closes the connection', async () => {
    const c = await RawClient.open(b.port);
    // CONNECT, MQTT 3.1.1, flags 0x03 (clean session + reserved), keep alive 0, client id "x"
    c.write([0x10, 0x0d, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x03, 0x00, 0x00, 0x00, 0x01, 0x78]);
    await expectClosedWithout(c);
  });

  test('[MQTT-3.1.2-2] unsupported protocol level gets CONNACK 0x01, then close', async () => {
    const c = await RawClient.open(b.port);
    c.write([0x10, 0x0d, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x06, 0x02, 0x00, 0x00, 0x00, 0x01, 0x78]);
    const rest = await c.closedByBroker();
    assert.equal(rest.length, 1);
    assert.equal((rest[0] as IConnackPacket).returnCode, 1);
    await controlStillWorks();
  });

  test('[MQTT-1.5.3-1] (v5 [MQTT-1.5.4-1]) ill-formed UTF-8 in a topic name closes the connection', async () => {
    const c = await RawClient.connect(b.port, 4);
    // PUBLISH QoS 0, topic of 2 bytes 0xc3 0x28 (invalid sequence), payload "x"
    c.write([0x30, 0x05, 0x00, 0x02, 0xc3, 0x28, 0x78]);
    await expectClosedWithout(c);
  });

  test('[MQTT-1.5.4-1] v5 ill-formed UTF-8 in a topic filter gets DISCONNECT 0x81', async () => {
    const c = await RawClient.connect(b.port, 5);
    // SUBSCRIBE id 1, no properties, filter 0xed 0xa0 0x80 (UTF-16 surrogate encoded), options 0
    c.write([0x82, 0x09, 0x00, 0x01, 0x00, 0x00, 0x03, 0xed, 0xa0, 0x80, 0x00]);
    await expectClosedWithout(c, 0x81);
  });

  test('[MQTT-1.5.3-2] (v5 [MQTT-1.5.4-2]) U+0000 in a topic name closes the connection', async () => {
    const c = await RawClient.connect(b.port, 4);
    c.write([0x30, 0x05, 0x00, 0x02, 0x61, 0x00, 0x78]);
    await expectClosedWithout(c);
  });

  test('[MQTT-3.1.3-4] [MQTT-1.5.3-1] ill-formed UTF-8 in the CONNECT client id closes without CONNACK', async () => {
    const c = await RawClient.open(b.port);
    c.write([0x10, 0x0e, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x00, 0x00, 0x02, 0xff, 0xfe]);
    await expectClosedWithout(c);
  });

  test('[MQTT-3.3.2-2] wildcard in a PUBLISH topic closes the connection (3.1.1)', async () => {
    const c = await RawClient.connect(b.port, 4);
    c.write([0x30, 0x06, 0x00, 0x03, 0x61, 0x2f, 0x23, 0x78]); // topic "a/#"
    await expectClosedWithout(c);
    assert.equal(
      rx.messages.some((m) => m.topic.includes('#')),
      false,
    );
  });

  test('[MQTT-3.3.2-2] v5 wildcard in a PUBLISH topic gets DISCONNECT 0x90', async () => {
    const c = await RawClient.connect(b.port, 5);
    c.send({
      cmd: 'publish',
      topic: 'control/+',
      payload: Buffer.from('x'),
      qos: 0,
      dup: false,
      retain: false,
    });
    await expectClosedWithout(c, 0x90);
  });

  test('[MQTT-4.7.3-1] empty PUBLISH topic (no alias) is refused', async () => {
    const c = await RawClient.connect(b.port, 4);
    c.write([0x30, 0x03, 0x00, 0x00, 0x78]);
    await expectClosedWithout(c);
  });

  test('[MQTT-2.3.1-1] a QoS 1 PUBLISH with packet identifier 0 closes the connection', async () => {
    const c = await RawClient.connect(b.port, 4);
    c.write([0x32, 0x06, 0x00, 0x01, 0x61, 0x00, 0x00, 0x78]);
    await expectClosedWithout(c);
  });

  test('[MQTT-2.3.1-1] a PUBREC without a packet identifier closes the connection', async () => {
    const c = await RawClient.connect(b.port, 4);
    c.write([0x50, 0x00]);
    await expectClosedWithout(c);
  });

  test('[MQTT-3.3.1-4] PUBLISH with both QoS bits set closes the connection', async () => {
    const c = await RawClient.connect(b.port, 4);
    c.write([0x36, 0x06, 0x00, 0x01, 0x61, 0x00, 0x01, 0x78]);
    await expectClosedWithout(c);
  });

  test('[MQTT-3.3.1-2] DUP set on a QoS 0 PUBLISH is malformed', async () => {
    const c = await RawClient.connect(b.port, 4);
    c.write([0x38, 0x04, 0x00, 0x01, 0x61, 0x78]);
    await expectClosedWithout(c);
  });

  test('[MQTT-3.8.3-3] (v5 [MQTT-3.8.3-2]) SUBSCRIBE without topic filters closes the connection', async () => {
    const c = await RawClient.connect(b.port, 4);
    c.write([0x82, 0x02, 0x00, 0x01]);
    await expectClosedWithout(c);
  });

  test('[MQTT-3.8.3-4] 3.1.1 SUBSCRIBE options with reserved bits set close the connection (v5 [MQTT-3.8.3-5])', async () => {
    const c = await RawClient.connect(b.port, 4);
    c.write([0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x04]);
    await expectClosedWithout(c);
  });

  test('[MQTT-4.7.1-2] 3.1.1 invalid topic filter "a/#/b" closes the connection', async () => {
    const c = await RawClient.connect(b.port, 4);
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a/#/b', qos: 0 }] });
    await expectClosedWithout(c);
  });

  test('[MQTT-4.7.1-2] v5 invalid topic filter "a+/b" gets SUBACK 0x8F for that filter', async () => {
    const c = await RawClient.connect(b.port, 5);
    c.send({
      cmd: 'subscribe',
      messageId: 7,
      subscriptions: [
        { topic: 'a+/b', qos: 0 },
        { topic: 'ok/+', qos: 1 },
      ],
    });
    const ack = (await c.next()) as ISubackPacket;
    assert.equal(ack.cmd, 'suback');
    assert.equal(ack.messageId, 7);
    assert.deepEqual(ack.granted, [0x8f, 1]);
    c.destroy();
  });

  test('[MQTT-3.3.4-6] v5 a PUBLISH with a Subscription Identifier gets DISCONNECT 0x82', async () => {
    const c = await RawClient.connect(b.port, 5);
    c.send({
      cmd: 'publish',
      topic: 'control/x',
      payload: Buffer.from('x'),
      qos: 0,
      dup: false,
      retain: false,
      properties: { subscriptionIdentifier: 3 },
    });
    await expectClosedWithout(c, 0x82);
  });

  test('[MQTT-3.3.2-9] v5 topic alias above Topic Alias Maximum gets DISCONNECT 0x94', async () => {
    const c = await RawClient.connect(b.port, 5);
    c.send({
      cmd: 'publish',
      topic: 'control/x',
      payload: Buffer.from('x'),
      qos: 0,
      dup: false,
      retain: false,
      properties: { topicAlias: 5 },
    });
    await expectClosedWithout(c, 0x94);
  });

  test('[MQTT-3.3.2-8] v5 topic alias 0 gets DISCONNECT 0x94', async () => {
    const c = await RawClient.connect(b.port, 5);
    c.send({
      cmd: 'publish',
      topic: 'control/x',
      payload: Buffer.from('x'),
      qos: 0,
      dup: false,
      retain: false,
      properties: { topicAlias: 0 },
    });
    await expectClosedWithout(c, 0x94);
  });

  test('v5 §3.3.2.3.4 unknown topic alias with an empty topic gets DISCONNECT 0x82', async () => {
    const c = await RawClient.connect(b.port, 5);
    c.send({
      cmd: 'publish',
      topic: '',
      payload: Buffer.from('x'),
      qos: 0,
      dup: false,
      retain: false,
      properties: { topicAlias: 2 },
    });
    await expectClosedWithout(c, 0x82);
  });

  test('[MQTT-3.3.2-12] v5 topic alias set then used routes to the aliased topic', async () => {
    const c = await RawClient.connect(b.port, 5);
    const base = { cmd: 'publish', qos: 0, dup: false, retain: false } as const;
    c.send({ ...base, topic: 'control/alias', payload: Buffer.from('first'), properties: { topicAlias: 1 } });
    c.send({ ...base, topic: '', payload: Buffer.from('second'), properties: { topicAlias: 1 } });
    const m1 = await rx.next();
    const m2 = await rx.next();
    assert.deepEqual(
      [m1.topic, m1.payload.toString(), m2.topic, m2.payload.toString()],
      ['control/alias', 'first', 'control/alias', 'second'],
    );
    c.destroy();
  });

  test('[MQTT-3.2.2-15] v5 packet larger than Maximum Packet Size gets DISCONNECT 0x95', async () => {
    const c = await RawClient.connect(b.port, 5);
    c.send({
      cmd: 'publish',
      topic: 'control/big',
      payload: Buffer.alloc(5000),
      qos: 0,
      dup: false,
      retain: false,
    });
    await expectClosedWithout(c, 0x95);
  });

  test('3.1.1 packet larger than the server limit closes before the body is read (implementation limit)', async () => {
    const c = await RawClient.connect(b.port, 4);
    // Announce 1 MiB, send only the header.
    c.write([0x30, 0x80, 0x80, 0x40]);
    await expectClosedWithout(c);
  });

  test('[MQTT-3.3.4-7] v5 more QoS 1 publishes than Receive Maximum gets DISCONNECT 0x93', async () => {
    const slow = await startBroker({
      limits: { receiveMaximum: 2 },
      hooks: { onPublish: () => new Promise<void>(() => {}) }, // never acknowledges
    });
    const c = await RawClient.connect(slow.port, 5);
    for (let i = 1; i <= 3; i++) {
      c.send({
        cmd: 'publish',
        topic: 't',
        payload: Buffer.from('x'),
        qos: 1,
        messageId: i,
        dup: false,
        retain: false,
      });
    }
    const rest = await c.closedByBroker();
    const d = rest.find((p) => p.cmd === 'disconnect') as IDisconnectPacket | undefined;
    assert.equal(d?.reasonCode, 0x93);
    await slow.close();
  });

  test('[MQTT-3.8.3-4] v5 No Local on a shared subscription gets DISCONNECT 0x82', async () => {
    const c = await RawClient.connect(b.port, 5);
    c.send({
      cmd: 'subscribe',
      messageId: 1,
      subscriptions: [{ topic: '$share/g/control/#', qos: 0, nl: true }],
    });
    await expectClosedWithout(c, 0x82);
  });

  test('v5 §3.14.2.2.2 raising session expiry from 0 at DISCONNECT gets DISCONNECT 0x82', async () => {
    const c = await RawClient.connect(b.port, 5);
    c.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 60 } });
    await expectClosedWithout(c, 0x82);
  });

  test('[MQTT-3.1.4-1] v5 CONNECT with Receive Maximum 0 (§3.1.2.11.3) is refused with CONNACK 0x82', async () => {
    const c = await RawClient.open(b.port, 5);
    c.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 5,
      clientId: 'rm0',
      clean: true,
      keepalive: 0,
      properties: { receiveMaximum: 0 },
    });
    const rest = await c.closedByBroker();
    assert.equal((rest[0] as IConnackPacket).reasonCode, 0x82);
    await controlStillWorks();
  });

  test('[MQTT-3.1.3-8] 3.1.1 empty client id with CleanSession=0 gets CONNACK 0x02', async () => {
    const c = await RawClient.open(b.port, 4);
    c.write([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00]);
    const rest = await c.closedByBroker();
    assert.equal((rest[0] as IConnackPacket).returnCode, 2);
  });

  test('[MQTT-3.1.2-14] (v5 [MQTT-3.1.2-12]) will QoS 3 closes the connection', async () => {
    const c = await RawClient.open(b.port);
    // flags: will (0x04), will QoS 3 (0x18), clean (0x02)
    const body = [0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x1e, 0x00, 0x00, 0x00, 0x01, 0x78];
    body.push(0x00, 0x01, 0x77, 0x00, 0x00); // will topic "w", empty will payload
    c.write([0x10, body.length, ...body]);
    await expectClosedWithout(c);
  });

  test('[MQTT-4.8.0-1] (v5 [MQTT-4.13.1-1]) unexpected server-to-client packet (CONNACK from client) closes the connection', async () => {
    const c = await RawClient.connect(b.port, 4);
    c.write([0x20, 0x02, 0x00, 0x00]);
    await expectClosedWithout(c);
  });

  test('[MQTT-4.8.0-1] random garbage after CONNECT closes only that connection', async () => {
    const c = await RawClient.connect(b.port, 4);
    c.write([0x00, 0x00]); // reserved packet type 0
    await expectClosedWithout(c);
  });
});

describe('connect, session and keep alive', () => {
  test('[MQTT-3.1.4-2] (v5 [MQTT-3.1.4-3]) session takeover: the old connection is closed (v5: DISCONNECT 0x8E)', async () => {
    const b = await startBroker();
    const old = await RawClient.connect(b.port, 5, { clientId: 'dup-id' });
    const neu = await RawClient.connect(b.port, 5, { clientId: 'dup-id' });
    const rest = await old.closedByBroker();
    assert.equal((rest[0] as IDisconnectPacket).reasonCode, 0x8e);
    assert.equal(neu.closed, false);
    assert.equal(b.broker.getClient('dup-id')?.protocolVersion, 5);
    neu.destroy();
    await b.close();
  });

  test('[MQTT-3.1.4-2] 3.1.1 session takeover closes the old connection', async () => {
    const b = await startBroker();
    const old = await RawClient.connect(b.port, 4, { clientId: 'dup4' });
    const neu = await RawClient.connect(b.port, 4, { clientId: 'dup4' });
    assert.deepEqual(await old.closedByBroker(), []);
    neu.destroy();
    await b.close();
  });

  test('[MQTT-3.2.2-1] [MQTT-3.1.2-6] (v5 [MQTT-3.2.2-2] [MQTT-3.1.2-4]) clean session: session present is 0', async () => {
    const b = await startBroker();
    const c = await RawClient.open(b.port, 4);
    c.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clientId: 'cs',
      clean: true,
      keepalive: 0,
    });
    const ack = (await c.next()) as IConnackPacket;
    assert.equal(ack.sessionPresent, false);
    c.destroy();
    await b.close();
  });

  test('[MQTT-3.2.2-2] [MQTT-3.1.2-4] (v5 [MQTT-3.2.2-3] [MQTT-3.1.2-5]) CleanSession=0 resumes the session: session present is 1, subscriptions kept', async () => {
    const b = await startBroker();
    const c1 = await client(b.port, { clientId: 'persist', clean: false });
    await c1.subscribeAsync('p/#', { qos: 1 });
    await end(c1);
    const pub = await client(b.port, { clientId: 'p-pub' });
    await pub.publishAsync('p/1', 'while-offline', { qos: 1 });
    const c2 = await client(b.port, { clientId: 'persist', clean: false });
    const rx = collect(c2);
    const m = await rx.next();
    assert.equal(m.payload.toString(), 'while-offline');
    await end(c2, pub);
    await b.close();
  });

  test('[MQTT-3.1.2-24] (v5 [MQTT-3.1.2-22]) no packet within 1.5 x Keep Alive closes the connection (v5: DISCONNECT 0x8D)', async () => {
    const b = await startBroker();
    const c = await RawClient.connect(b.port, 5, { keepalive: 1 });
    const started = Date.now();
    const rest = await c.closedByBroker(4000);
    assert.ok(Date.now() - started >= 1400);
    assert.equal((rest[0] as IDisconnectPacket).reasonCode, 0x8d);
    await b.close();
  });

  test('[MQTT-3.1.2-24] the bytes of an unfinished packet do not keep the connection alive', async () => {
    const b = await startBroker();
    const c = await RawClient.connect(b.port, 4, { keepalive: 1 });
    const started = Date.now();
    // A PUBLISH announcing 100 bytes, trickled one byte every 200 ms: never a whole packet.
    c.write([0x30, 100, 0x00, 0x01, 0x74]);
    const trickle = setInterval(() => c.write([0x78]), 200);
    try {
      await c.closedByBroker(4000);
    } finally {
      clearInterval(trickle);
    }
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 1400 && elapsed < 3000, `closed after ${elapsed} ms`);
    await b.close();
  });

  test('[MQTT-3.12.4-1] PINGREQ gets PINGRESP and keeps the connection alive', async () => {
    const b = await startBroker();
    const c = await RawClient.connect(b.port, 4, { keepalive: 1 });
    for (let i = 0; i < 4; i++) {
      await sleep(500);
      c.send({ cmd: 'pingreq' });
      assert.equal((await c.next()).cmd, 'pingresp');
    }
    assert.equal(c.closed, false);
    c.destroy();
    await b.close();
  });

  test('a connection that sends no CONNECT in time is closed (a SHOULD, no clause id)', async () => {
    const b = await startBroker({ limits: { connectTimeoutMs: 200 } });
    const c = await RawClient.open(b.port);
    assert.deepEqual(await c.closedByBroker(2000), []);
    await b.close();
  });

  test('[MQTT-3.2.2-4] [MQTT-3.2.2-5] refused CONNECT: 3.1.1 CONNACK return code 5/4, then close', async () => {
    const b = await startBroker({
      hooks: {
        authenticate: ({ connect }) =>
          connect.username === 'bad' ? { ok: false, reasonCode: 0x86 } : { ok: false, reasonCode: 0x87 },
      },
    });
    const c1 = await RawClient.open(b.port, 4);
    c1.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clientId: 'x',
      clean: true,
      keepalive: 0,
    });
    assert.equal(((await c1.closedByBroker())[0] as IConnackPacket).returnCode, 5);
    const c2 = await RawClient.open(b.port, 4);
    c2.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clientId: 'x',
      clean: true,
      keepalive: 0,
      username: 'bad',
    });
    assert.equal(((await c2.closedByBroker())[0] as IConnackPacket).returnCode, 4);
    await b.close();
  });

  test('[MQTT-3.2.2-6] [MQTT-3.2.2-7] [MQTT-3.2.2-8] v5 refused CONNECT carries the reason code and reason string', async () => {
    const refused: unknown[] = [];
    const b = await startBroker({
      hooks: {
        authenticate: async () => ({ ok: false, reasonCode: 0x8a, reasonString: 'banned' }),
        onRefused: (info) => refused.push(info),
      },
    });
    const c = await RawClient.open(b.port, 5);
    c.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 5,
      clientId: 'x',
      clean: true,
      keepalive: 0,
    });
    const ack = (await c.closedByBroker())[0] as IConnackPacket;
    assert.equal(ack.reasonCode, 0x8a);
    assert.equal(ack.properties?.reasonString, 'banned');
    assert.equal(refused.length, 1);
    await b.close();
  });

  test('[MQTT-3.1.3-6] [MQTT-3.1.3-7] [MQTT-3.2.2-16] v5 empty client id: the assigned client identifier is returned in CONNACK', async () => {
    const b = await startBroker({
      hooks: { authenticate: () => ({ ok: true, principal: 'p', assignedClientId: 'device-42' }) },
    });
    const c = await RawClient.open(b.port, 5);
    c.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 5,
      clientId: '',
      clean: true,
      keepalive: 0,
    });
    const ack = (await c.next()) as IConnackPacket;
    assert.equal(ack.reasonCode, 0);
    assert.equal(ack.properties?.assignedClientIdentifier, 'device-42');
    assert.ok(b.broker.getClient('device-42'));
    c.destroy();
    await b.close();
  });

  test('v5 §3.2.2.3 CONNACK announces the server limits and capabilities', async () => {
    const b = await startBroker({
      limits: { receiveMaximum: 10, maxPacketSize: 9999, topicAliasMaximum: 3, keepAliveMax: 30 },
    });
    const c = await RawClient.open(b.port, 5);
    c.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 5,
      clientId: 'caps',
      clean: true,
      keepalive: 0,
    });
    const ack = (await c.next()) as IConnackPacket;
    assert.equal(ack.properties?.receiveMaximum, 10);
    assert.equal(ack.properties?.maximumPacketSize, 9999);
    assert.equal(ack.properties?.topicAliasMaximum, 3);
    assert.equal(ack.properties?.retainAvailable, true);
    assert.equal(ack.properties?.wildcardSubscriptionAvailable, true);
    assert.equal(ack.properties?.sharedSubscriptionAvailable, true);
    assert.equal(ack.properties?.subscriptionIdentifiersAvailable, true);
    // [MQTT-3.2.2-21] keep alive 0 overridden by Server Keep Alive.
    assert.equal(ack.properties?.serverKeepAlive, 30);
    c.destroy();
    await b.close();
  });

  test('[MQTT-3.1.2-8] the will is published when the connection is lost', async () => {
    const b = await startBroker();
    const watcher = await client(b.port, { clientId: 'watcher' });
    const rx = collect(watcher);
    await watcher.subscribeAsync('will/#');
    const c = await RawClient.connect(b.port, 4, {
      clientId: 'dying',
      will: { topic: 'will/dying', payload: Buffer.from('gone'), qos: 0, retain: false },
    });
    c.destroy();
    const m = await rx.next();
    assert.equal(m.payload.toString(), 'gone');
    await end(watcher);
    await b.close();
  });

  test('[MQTT-3.1.2-10] [MQTT-3.14.4-3] the will is discarded on a normal DISCONNECT', async () => {
    const b = await startBroker();
    const watcher = await client(b.port, { clientId: 'watcher' });
    const rx = collect(watcher);
    await watcher.subscribeAsync('will/#');
    const c = await RawClient.connect(b.port, 4, {
      clientId: 'polite',
      will: { topic: 'will/polite', payload: Buffer.from('gone'), qos: 0, retain: false },
    });
    c.send({ cmd: 'disconnect' });
    await c.closedByBroker();
    await sleep(100);
    assert.equal(rx.messages.length, 0);
    await end(watcher);
    await b.close();
  });

  test('[MQTT-3.1.2-8] v5 DISCONNECT 0x04 (§3.14.2.1) publishes the will', async () => {
    const b = await startBroker();
    const watcher = await client(b.port, { clientId: 'watcher' });
    const rx = collect(watcher);
    await watcher.subscribeAsync('will/#');
    const c = await RawClient.connect(b.port, 5, {
      clientId: 'w4',
      will: { topic: 'will/w4', payload: Buffer.from('asked'), qos: 0, retain: false },
    });
    c.send({ cmd: 'disconnect', reasonCode: 0x04 });
    assert.equal((await rx.next()).payload.toString(), 'asked');
    await end(watcher);
    await b.close();
  });

  test('[MQTT-3.1.3-9] v5 will delay: a reconnect within the delay cancels the will', async () => {
    const b = await startBroker();
    const watcher = await client(b.port, { clientId: 'watcher' });
    const rx = collect(watcher);
    await watcher.subscribeAsync('will/#');
    const willConnect = {
      clientId: 'delayed',
      clean: false,
      properties: { sessionExpiryInterval: 60 },
      will: {
        topic: 'will/delayed',
        payload: Buffer.from('late'),
        qos: 0 as const,
        retain: false,
        properties: { willDelayInterval: 1 },
      },
    };
    const c = await RawClient.connect(b.port, 5, willConnect);
    c.destroy();
    await sleep(200);
    // The new connection carries the will again; it is only published if this one is lost too.
    const again = await RawClient.connect(b.port, 5, willConnect);
    await sleep(1300);
    assert.equal(rx.messages.length, 0);
    // Without a reconnect the will comes after the delay.
    again.destroy();
    const m = await rx.next(3000);
    assert.equal(m.payload.toString(), 'late');
    await end(watcher);
    await b.close();
  });
});

describe('publish, subscribe and delivery', () => {
  test('[MQTT-4.6.0-2] PUBACKs are sent in the order the PUBLISHes were received, whatever order onPublish settles in', async () => {
    let i = 0;
    const b = await startBroker({
      hooks: {
        // The first publish takes longest, the last one is immediate.
        onPublish: () => sleep([300, 150, 50, 0][i++ % 4]!),
      },
    });
    const c = await RawClient.connect(b.port, 4);
    for (let id = 1; id <= 4; id++) {
      c.send({
        cmd: 'publish',
        topic: 'o',
        payload: Buffer.from(String(id)),
        qos: 1,
        messageId: id,
        dup: false,
        retain: false,
      });
    }
    const ids: number[] = [];
    for (let k = 0; k < 4; k++) ids.push((await c.next()).messageId!);
    assert.deepEqual(ids, [1, 2, 3, 4]);
    c.destroy();
    await b.close();
  });

  test('[MQTT-4.6.0-5] [MQTT-4.6.0-6] messages are routed in the order received even when onPublish settles out of order', async () => {
    let i = 0;
    const b = await startBroker({ hooks: { onPublish: () => sleep([120, 0, 60][i++ % 3]!) } });
    const sub = await client(b.port, { clientId: 'ord-sub' });
    const rx = collect(sub);
    await sub.subscribeAsync('o/#', { qos: 1 });
    const pub = await client(b.port, { clientId: 'ord-pub' });
    await Promise.all(['1', '2', '3'].map((p) => pub.publishAsync('o/t', p, { qos: 1 })));
    const got = await rx.count(3);
    assert.deepEqual(
      got.map((m) => m.payload.toString()),
      ['1', '2', '3'],
    );
    await end(sub, pub);
    await b.close();
  });

  test('[MQTT-3.3.5-2] 3.1.1 unauthorized PUBLISH closes the connection; v5 gets PUBACK 0x87', async () => {
    const refused: string[] = [];
    const b = await startBroker({
      hooks: {
        authorizePublish: (_c, p) => (p.topic.startsWith('deny') ? { ok: false, reasonCode: 0x87 } : true),
        onRefused: (info) => refused.push(`${info.stage}:${info.topic ?? ''}`),
      },
    });
    const c4 = await RawClient.connect(b.port, 4);
    c4.send({
      cmd: 'publish',
      topic: 'deny/x',
      payload: Buffer.from('x'),
      qos: 1,
      messageId: 1,
      dup: false,
      retain: false,
    });
    assert.deepEqual(await c4.closedByBroker(), []);
    const c5 = await RawClient.connect(b.port, 5);
    c5.send({
      cmd: 'publish',
      topic: 'deny/x',
      payload: Buffer.from('x'),
      qos: 1,
      messageId: 9,
      dup: false,
      retain: false,
    });
    const ack = await c5.next();
    assert.equal(ack.cmd, 'puback');
    assert.equal((ack as { reasonCode?: number }).reasonCode, 0x87);
    assert.deepEqual(refused, ['publish:deny/x', 'publish:deny/x']);
    c5.destroy();
    await b.close();
  });

  test('[MQTT-3.4.2-1] v5 onPublish rejection with mqttReasonCode is returned in the PUBACK; QoS 0 gets DISCONNECT', async () => {
    const b = await startBroker({
      hooks: {
        onPublish: async () => {
          throw Object.assign(new Error('quota'), {
            mqttReasonCode: 0x97,
            mqttReasonString: 'quota exceeded',
          });
        },
      },
    });
    const c = await RawClient.connect(b.port, 5);
    c.send({
      cmd: 'publish',
      topic: 't',
      payload: Buffer.from('x'),
      qos: 1,
      messageId: 3,
      dup: false,
      retain: false,
    });
    const ack = (await c.next()) as {
      cmd: string;
      reasonCode?: number;
      properties?: { reasonString?: string };
    };
    assert.equal(ack.cmd, 'puback');
    assert.equal(ack.reasonCode, 0x97);
    assert.equal(ack.properties?.reasonString, 'quota exceeded');
    c.send({ cmd: 'publish', topic: 't', payload: Buffer.from('x'), qos: 0, dup: false, retain: false });
    const rest = await c.closedByBroker();
    assert.equal((rest[0] as IDisconnectPacket).reasonCode, 0x97);
    await b.close();
  });

  test('[MQTT-3.9.3-1] [MQTT-3.9.3-2] SUBACK per-filter authorization: 0x80 in 3.1.1, 0x87 in v5', async () => {
    const b = await startBroker({
      hooks: {
        authorizeSubscribe: async (_c, f) =>
          f.startsWith('secret') ? { ok: false, reasonCode: 0x87 } : true,
      },
    });
    for (const v of [4, 5] as const) {
      const c = await RawClient.connect(b.port, v);
      c.send({
        cmd: 'subscribe',
        messageId: 5,
        subscriptions: [
          { topic: 'open/#', qos: 2 },
          { topic: 'secret/#', qos: 1 },
          { topic: 'open/+', qos: 0 },
        ],
      });
      const ack = (await c.next()) as ISubackPacket;
      assert.equal(ack.messageId, 5);
      assert.deepEqual(ack.granted, [2, v === 5 ? 0x87 : 0x80, 0]);
      c.destroy();
    }
    await b.close();
  });

  test('[MQTT-3.10.4-5] [MQTT-3.11.3-2] v5 UNSUBACK reports 0x11 for a filter that was not subscribed', async () => {
    const b = await startBroker();
    const c = await RawClient.connect(b.port, 5);
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a/b', qos: 0 }] });
    await c.next();
    c.send({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['a/b', 'c/d'] });
    const ack = (await c.next()) as IUnsubackPacket;
    assert.equal(ack.messageId, 2);
    assert.deepEqual(ack.granted, [0, 0x11]);
    c.destroy();
    await b.close();
  });

  test('[MQTT-3.10.4-1] [MQTT-3.10.4-2] after UNSUBSCRIBE no more messages are delivered for the filter', async () => {
    const b = await startBroker();
    const sub = await client(b.port, { clientId: 'uns' });
    const rx = collect(sub);
    await sub.subscribeAsync('u/t');
    await sub.unsubscribeAsync('u/t');
    const pub = await client(b.port, { clientId: 'uns-pub' });
    await pub.publishAsync('u/t', 'x', { qos: 1 });
    await sleep(100);
    assert.equal(rx.messages.length, 0);
    await end(sub, pub);
    await b.close();
  });

  test('[MQTT-4.7.2-1] filters starting with a wildcard do not match $ topics', async () => {
    const b = await startBroker();
    const sub = await client(b.port, { clientId: 'dollar' });
    const rx = collect(sub);
    await sub.subscribeAsync(['#', '+/info', '$SYS/#']);
    await b.broker.publish({ topic: '$SYS/info', payload: 'sys' });
    await b.broker.publish({ topic: 'app/info', payload: 'app' });
    await rx.count(2);
    await sleep(100);
    // '$SYS/info' only via '$SYS/#'; 'app/info' via '#' and '+/info', one delivery per client.
    assert.deepEqual(
      rx.messages.map((m) => m.topic),
      ['$SYS/info', 'app/info'],
    );
    await end(sub);
    await b.close();
  });

  test('[MQTT-4.7.1-2] [MQTT-4.7.1-3] (v5 [MQTT-4.7.1-1] [MQTT-4.7.1-2]) "sport/#" also matches "sport"; "+" matches exactly one level', async () => {
    const b = await startBroker();
    const sub = await client(b.port, { clientId: 'sport' });
    const rx = collect(sub);
    await sub.subscribeAsync(['sport/#', 'a/+/c']);
    for (const t of ['sport', 'sport/tennis/p1', 'a/b/c', 'a/c', 'a/b/b/c', 'a//c']) {
      await b.broker.publish({ topic: t, payload: t });
    }
    await rx.count(4);
    await sleep(50);
    assert.deepEqual(
      rx.messages.map((m) => m.topic),
      ['sport', 'sport/tennis/p1', 'a/b/c', 'a//c'],
    );
    await end(sub);
    await b.close();
  });

  test('[MQTT-3.3.5-1] (v5 [MQTT-3.3.4-2]) overlapping subscriptions: one delivery at the highest granted QoS', async () => {
    const b = await startBroker();
    const sub = await client(b.port, { clientId: 'overlap' });
    const rx = collect(sub);
    await sub.subscribeAsync({ 'ov/#': { qos: 0 }, 'ov/+': { qos: 1 } });
    const pub = await client(b.port, { clientId: 'ov-pub' });
    await pub.publishAsync('ov/x', 'x', { qos: 2 });
    const m = await rx.next();
    assert.equal(m.packet.qos, 1);
    await sleep(100);
    assert.equal(rx.messages.length, 1);
    await end(sub, pub);
    await b.close();
  });

  test('[MQTT-3.3.1-6] [MQTT-3.3.1-8] [MQTT-3.3.1-9] (v5 [MQTT-3.3.1-12]) retained message: RETAIN set for a new subscription, cleared on live forwarding', async () => {
    const b = await startBroker();
    const pub = await client(b.port, { clientId: 'r-pub' });
    await pub.publishAsync('r/t', 'kept', { qos: 1, retain: true });
    const sub = await client(b.port, { clientId: 'r-sub' });
    const rx = collect(sub);
    await sub.subscribeAsync('r/#', { qos: 1 });
    const first = await rx.next();
    assert.equal(first.payload.toString(), 'kept');
    assert.equal(first.packet.retain, true);
    await pub.publishAsync('r/t', 'live', { qos: 1, retain: true });
    const second = await rx.next();
    assert.equal(second.payload.toString(), 'live');
    assert.equal(second.packet.retain, false);
    await end(sub, pub);
    await b.close();
  });

  test('[MQTT-3.3.1-10] [MQTT-3.3.1-11] (v5 [MQTT-3.3.1-6] [MQTT-3.3.1-7]) a retained message with an empty payload removes the retained message', async () => {
    const b = await startBroker();
    const pub = await client(b.port, { clientId: 'r0-pub' });
    await pub.publishAsync('r0/t', 'kept', { qos: 1, retain: true });
    await pub.publishAsync('r0/t', '', { qos: 1, retain: true });
    const sub = await client(b.port, { clientId: 'r0-sub' });
    const rx = collect(sub);
    await sub.subscribeAsync('r0/#', { qos: 1 });
    await sleep(150);
    assert.equal(rx.messages.length, 0);
    await end(sub, pub);
    await b.close();
  });

  test('[MQTT-3.3.1-10] [MQTT-3.3.1-11] v5 Retain Handling 1 sends retained only for a new subscription, 2 never', async () => {
    const b = await startBroker();
    await b.broker.publish({ topic: 'rh/t', payload: 'kept', retain: true });
    const sub = await client(b.port, { clientId: 'rh', protocolVersion: 5 });
    const rx = collect(sub);
    await sub.subscribeAsync('rh/#', { qos: 0, rh: 1 });
    await rx.next();
    await sub.subscribeAsync('rh/#', { qos: 0, rh: 1 });
    await sub.subscribeAsync('rh/+', { qos: 0, rh: 2 });
    await sleep(150);
    assert.equal(rx.messages.length, 1);
    await end(sub);
    await b.close();
  });

  test('[MQTT-3.3.1-12] [MQTT-3.3.1-13] v5 Retain As Published keeps the RETAIN flag', async () => {
    const b = await startBroker();
    const sub = await client(b.port, { clientId: 'rap', protocolVersion: 5 });
    const rx = collect(sub);
    await sub.subscribeAsync('rap/a', { qos: 0, rap: true });
    await sub.subscribeAsync('rap/b', { qos: 0, rap: false });
    const pub = await client(b.port, { clientId: 'rap-pub', protocolVersion: 5 });
    await pub.publishAsync('rap/a', 'a', { retain: true });
    await pub.publishAsync('rap/b', 'b', { retain: true });
    const got = await rx.count(2);
    assert.deepEqual(
      got.map((m) => [m.topic, m.packet.retain]),
      [
        ['rap/a', true],
        ['rap/b', false],
      ],
    );
    await end(sub, pub);
    await b.close();
  });

  test('[MQTT-3.8.3-3] v5 No Local: a client does not receive its own publications', async () => {
    const b = await startBroker();
    const c = await client(b.port, { clientId: 'nl', protocolVersion: 5 });
    const rx = collect(c);
    await c.subscribeAsync('nl/own', { qos: 0, nl: true });
    await c.subscribeAsync('nl/other', { qos: 0, nl: false });
    await c.publishAsync('nl/own', 'mine', { qos: 1 });
    await c.publishAsync('nl/other', 'echo', { qos: 1 });
    const m = await rx.next();
    assert.equal(m.topic, 'nl/other');
    await sleep(100);
    assert.equal(rx.messages.length, 1);
    await end(c);
    await b.close();
  });

  test('[MQTT-3.3.4-3] [MQTT-3.3.4-4] v5 subscription identifiers are sent with matching messages', async () => {
    const b = await startBroker();
    const c = await client(b.port, { clientId: 'sid', protocolVersion: 5 });
    const rx = collect(c);
    await c.subscribeAsync('sid/#', { qos: 0, properties: { subscriptionIdentifier: 7 } });
    await c.subscribeAsync('sid/+', { qos: 0, properties: { subscriptionIdentifier: 9 } });
    await b.broker.publish({ topic: 'sid/x', payload: 'x' });
    const m = await rx.next();
    const ids = m.packet.properties?.subscriptionIdentifier;
    assert.deepEqual(([] as number[]).concat(ids ?? []).sort(), [7, 9]);
    await end(c);
    await b.close();
  });

  test('[MQTT-3.3.2-5] [MQTT-3.3.2-6] v5 message expiry: the remaining interval is forwarded; expired messages are not delivered', async () => {
    const b = await startBroker();
    const sub = await client(b.port, {
      clientId: 'exp',
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    await sub.subscribeAsync('exp/#', { qos: 1 });
    await end(sub);
    const pub = await client(b.port, { clientId: 'exp-pub', protocolVersion: 5 });
    await pub.publishAsync('exp/short', 'short', { qos: 1, properties: { messageExpiryInterval: 1 } });
    await pub.publishAsync('exp/long', 'long', { qos: 1, properties: { messageExpiryInterval: 100 } });
    await sleep(1200);
    const again = await client(b.port, {
      clientId: 'exp',
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    const rx = collect(again);
    const m = await rx.next();
    assert.equal(m.topic, 'exp/long');
    const left = m.packet.properties?.messageExpiryInterval ?? 0;
    assert.ok(left > 0 && left <= 100, `remaining ${left}`);
    await sleep(100);
    assert.equal(rx.messages.length, 1);
    await end(again, pub);
    await b.close();
  });

  test('[MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-18] [MQTT-3.3.2-20] v5 response topic, correlation data, content type and user properties pass through', async () => {
    const b = await startBroker();
    const sub = await client(b.port, { clientId: 'rr-sub', protocolVersion: 5 });
    const rx = collect(sub);
    await sub.subscribeAsync('req/#');
    const pub = await client(b.port, { clientId: 'rr-pub', protocolVersion: 5 });
    await pub.publishAsync('req/1', '{}', {
      qos: 1,
      properties: {
        responseTopic: 'resp/1',
        correlationData: Buffer.from('corr'),
        contentType: 'application/json',
        payloadFormatIndicator: true,
        userProperties: { a: '1', b: ['2', '3'] },
      },
    });
    const m = await rx.next();
    const p = m.packet.properties!;
    assert.equal(p.responseTopic, 'resp/1');
    assert.equal(p.correlationData?.toString(), 'corr');
    assert.equal(p.contentType, 'application/json');
    assert.equal(p.payloadFormatIndicator, true);
    assert.deepEqual({ ...p.userProperties }, { a: '1', b: ['2', '3'] });
    await end(sub, pub);
    await b.close();
  });

  test('[MQTT-4.8.2-1] v5 shared subscription: each message goes to one member of the group (§4.8.2)', async () => {
    const b = await startBroker();
    const a = await client(b.port, { clientId: 'sh-a', protocolVersion: 5 });
    const c = await client(b.port, { clientId: 'sh-b', protocolVersion: 5 });
    const ra = collect(a);
    const rc = collect(c);
    await a.subscribeAsync('$share/g/jobs/#', { qos: 1 });
    await c.subscribeAsync('$share/g/jobs/#', { qos: 1 });
    const pub = await client(b.port, { clientId: 'sh-pub', protocolVersion: 5 });
    for (let i = 0; i < 10; i++) await pub.publishAsync('jobs/x', String(i), { qos: 1 });
    await sleep(200);
    assert.equal(ra.messages.length + rc.messages.length, 10);
    assert.ok(ra.messages.length > 0 && rc.messages.length > 0);
    await end(a, c, pub);
    await b.close();
  });

  test('[MQTT-4.3.3-2] (v5 [MQTT-4.3.3-10]) QoS 2: a re-sent PUBLISH with the same packet id before PUBREL is delivered once', async () => {
    const b = await startBroker();
    const sub = await client(b.port, { clientId: 'q2-sub' });
    const rx = collect(sub);
    await sub.subscribeAsync('q2/#', { qos: 2 });
    const c = await RawClient.connect(b.port, 4);
    const pkt = {
      cmd: 'publish',
      topic: 'q2/t',
      payload: Buffer.from('once'),
      qos: 2,
      messageId: 11,
      dup: false,
      retain: false,
    } as const;
    c.send(pkt);
    assert.equal((await c.next()).cmd, 'pubrec');
    c.send({ ...pkt, dup: true });
    assert.equal((await c.next()).cmd, 'pubrec');
    c.send({ cmd: 'pubrel', messageId: 11 });
    const comp = await c.next();
    assert.equal(comp.cmd, 'pubcomp');
    assert.equal(comp.messageId, 11);
    await rx.next();
    await sleep(100);
    assert.equal(rx.messages.length, 1);
    assert.equal(rx.messages[0]!.packet.qos, 2);
    c.destroy();
    await end(sub);
    await b.close();
  });

  test('[MQTT-4.4.0-1] unacknowledged QoS 1 messages are re-sent with DUP on reconnect', async () => {
    const b = await startBroker();
    const c = await RawClient.connect(b.port, 4, { clientId: 'redeliver', clean: false });
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'rd/#', qos: 1 }] });
    assert.equal((await c.next()).cmd, 'suback');
    await b.broker.publish({ topic: 'rd/x', payload: 'again', qos: 1 });
    const first = (await c.next()) as IPublishPacket;
    assert.equal(first.dup, false);
    c.destroy(); // no PUBACK
    await sleep(50);
    const c2 = await RawClient.open(b.port, 4);
    c2.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clientId: 'redeliver',
      clean: false,
      keepalive: 0,
    });
    const ack = (await c2.next()) as IConnackPacket;
    assert.equal(ack.sessionPresent, true);
    const again = (await c2.next()) as IPublishPacket;
    assert.equal(again.dup, true);
    assert.equal(again.messageId, first.messageId);
    assert.equal(again.payload.toString(), 'again');
    c2.send({ cmd: 'puback', messageId: again.messageId! });
    c2.destroy();
    await b.close();
  });

  test('[MQTT-4.4.0-1] QoS 2 outbound: PUBREL is re-sent on reconnect after PUBREC', async () => {
    const b = await startBroker();
    const c = await RawClient.connect(b.port, 5, {
      clientId: 'q2out',
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'q2o', qos: 2 }] });
    await c.next();
    await b.broker.publish({ topic: 'q2o', payload: 'x', qos: 2 });
    const pub = (await c.next()) as IPublishPacket;
    c.send({ cmd: 'pubrec', messageId: pub.messageId! });
    const rel = await c.next();
    assert.equal(rel.cmd, 'pubrel');
    c.destroy();
    await sleep(50);
    const c2 = await RawClient.open(b.port, 5);
    c2.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 5,
      clientId: 'q2out',
      clean: false,
      keepalive: 0,
      properties: { sessionExpiryInterval: 60 },
    });
    assert.equal(((await c2.next()) as IConnackPacket).sessionPresent, true);
    const rel2 = await c2.next();
    assert.equal(rel2.cmd, 'pubrel');
    assert.equal(rel2.messageId, pub.messageId);
    c2.send({ cmd: 'pubcomp', messageId: pub.messageId! });
    c2.destroy();
    await b.close();
  });

  test('[MQTT-3.1.2-23] [MQTT-4.1.0-2] v5 the session is kept, then discarded after the session expiry interval', async () => {
    const b = await startBroker();
    const c = await client(b.port, {
      clientId: 'sexp',
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 1 },
    });
    await c.subscribeAsync('sexp/#', { qos: 1 });
    await end(c);
    await sleep(1300);
    const again = await client(b.port, {
      clientId: 'sexp',
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 1 },
    });
    // MQTT.js exposes the CONNACK session present flag on the client.
    assert.equal(
      (again as unknown as { connackPacket?: IConnackPacket }).connackPacket?.sessionPresent ?? false,
      false,
    );
    await end(again);
    await b.close();
  });

  test('[MQTT-3.1.2-24] [MQTT-3.1.2-25] v5 a message larger than the client Maximum Packet Size is not sent to it', async () => {
    const b = await startBroker();
    const small = await client(b.port, {
      clientId: 'small',
      protocolVersion: 5,
      properties: { maximumPacketSize: 200 },
    });
    const rx = collect(small);
    await small.subscribeAsync('big/#');
    await b.broker.publish({ topic: 'big/1', payload: Buffer.alloc(500) });
    await b.broker.publish({ topic: 'big/2', payload: 'fits' });
    const m = await rx.next();
    assert.equal(m.topic, 'big/2');
    assert.equal(b.broker.metrics.dropped, 1);
    await end(small);
    await b.close();
  });

  test('[MQTT-3.3.2-11] [MQTT-3.1.2-26] v5 the broker uses topic aliases towards clients that allow them', async () => {
    const b = await startBroker();
    const c = await RawClient.connect(b.port, 5, { properties: { topicAliasMaximum: 2 } });
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'al/#', qos: 0 }] });
    await c.next();
    await b.broker.publish({ topic: 'al/x', payload: '1' });
    await b.broker.publish({ topic: 'al/x', payload: '2' });
    const p1 = (await c.next()) as IPublishPacket;
    const p2 = (await c.next()) as IPublishPacket;
    assert.equal(p1.topic, 'al/x');
    assert.equal(p1.properties?.topicAlias, 1);
    assert.equal(p2.topic, '');
    assert.equal(p2.properties?.topicAlias, 1);
    c.destroy();
    await b.close();
  });
});
