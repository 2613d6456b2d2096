// The reader's own decoder for PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP and PINGREQ must accept and
// refuse exactly what mqtt-packet (with strict strings) does, and decode to the same fields.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import mqttPacket from 'mqtt-packet';
import type { Packet } from 'mqtt-packet';
import { Message } from '../src/message.ts';
import { PacketReader } from '../src/packet-reader.ts';

function connected(version: 3 | 4 | 5): PacketReader {
  const r = new PacketReader(1 << 20);
  r.push(
    mqttPacket.generate({
      cmd: 'connect',
      protocolId: version === 3 ? 'MQIsdp' : 'MQTT',
      protocolVersion: version,
      clientId: 'c',
      clean: true,
      keepalive: 0,
    }),
  );
  const c = r.next();
  assert.ok(c !== undefined && 'cmd' in c && c.cmd === 'connect');
  return r;
}

function fields(p: Packet): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(p)) {
    if (v === undefined || v === null) continue;
    out[k] = Buffer.isBuffer(v) ? v.toString('hex') : v;
  }
  return out;
}

const valid: [string, Packet][] = [
  ['QoS 0', { cmd: 'publish', topic: 'a/b', payload: Buffer.from('x'), qos: 0, retain: false, dup: false }],
  [
    'QoS 1 retain',
    { cmd: 'publish', topic: 'a', payload: Buffer.alloc(0), qos: 1, retain: true, dup: false, messageId: 7 },
  ],
  [
    'QoS 2 dup',
    {
      cmd: 'publish',
      topic: 'd/1/t',
      payload: Buffer.alloc(300, 1),
      qos: 2,
      retain: false,
      dup: true,
      messageId: 65535,
    },
  ],
  [
    'UTF-8 topic',
    { cmd: 'publish', topic: 'grüße/€', payload: Buffer.from('p'), qos: 0, retain: false, dup: false },
  ],
  ['puback', { cmd: 'puback', messageId: 3 }],
  ['pubrec', { cmd: 'pubrec', messageId: 4 }],
  ['pubrel', { cmd: 'pubrel', messageId: 5 }],
  ['pubcomp', { cmd: 'pubcomp', messageId: 6 }],
  ['pingreq', { cmd: 'pingreq' }],
];

for (const version of [3, 4, 5] as const) {
  for (const [name, packet] of valid) {
    test(`v${version} ${name} decodes as mqtt-packet does`, () => {
      const bytes = mqttPacket.generate(packet, { protocolVersion: version });
      const expected = mqttPacket.parser({ protocolVersion: version });
      let want: Packet | undefined;
      expected.on('packet', (p: Packet) => (want = p));
      expected.parse(bytes);
      const r = connected(version);
      // Twice: the second PUBLISH reuses the cached topic.
      r.push(Buffer.concat([bytes, bytes]));
      for (let i = 0; i < 2; i++) {
        const got = r.next();
        assert.ok(got !== undefined && 'cmd' in got, JSON.stringify(got));
        assert.deepEqual(fields(got), fields(want!));
      }
    });
  }
}

// [MQTT-1.5.3-1] [MQTT-1.5.3-2] [MQTT-3.3.1-4] [MQTT-2.3.1-1] [MQTT-3.6.1-1]
const malformed: [string, number[]][] = [
  ['PUBLISH with both QoS bits set', [0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01]],
  ['PUBLISH topic of ill-formed UTF-8', [0x30, 0x05, 0x00, 0x02, 0xc3, 0x28, 0x78]],
  ['PUBLISH topic with U+0000', [0x30, 0x05, 0x00, 0x02, 0x61, 0x00, 0x78]],
  ['PUBLISH topic longer than the packet', [0x30, 0x03, 0x00, 0x05, 0x61]],
  ['PUBLISH shorter than a topic length', [0x30, 0x01, 0x00]],
  ['QoS 1 PUBLISH without a packet id', [0x32, 0x03, 0x00, 0x01, 0x61]],
  ['QoS 1 PUBLISH with packet id 0', [0x32, 0x05, 0x00, 0x01, 0x61, 0x00, 0x00]],
  ['PUBACK without a packet id', [0x40, 0x00]],
  ['PUBACK with packet id 0', [0x40, 0x02, 0x00, 0x00]],
  ['PUBACK with flags', [0x41, 0x02, 0x00, 0x01]],
  ['PUBREL with flags 0000', [0x60, 0x02, 0x00, 0x01]],
  ['PUBCOMP with one byte', [0x70, 0x01, 0x00]],
  ['PINGREQ with flags', [0xc1, 0x00]],
];

for (const [name, bytes] of malformed) {
  test(`malformed: ${name}`, () => {
    const r = connected(4);
    r.push(Buffer.from(bytes));
    const got = r.next();
    assert.ok(got !== undefined && !('cmd' in got) && got.kind === 'malformed', JSON.stringify(got));
  });
}

test('v5 PUBLISH with properties and a reason-coded PUBACK go through mqtt-packet and decode fully', () => {
  const r = connected(5);
  r.push(
    mqttPacket.generate(
      {
        cmd: 'publish',
        topic: 't',
        payload: Buffer.from('x'),
        qos: 1,
        messageId: 9,
        retain: false,
        dup: false,
        properties: { contentType: 'text/plain', userProperties: { k: 'v' } },
      },
      { protocolVersion: 5 },
    ),
  );
  const p = r.next();
  assert.ok(p !== undefined && 'cmd' in p && p.cmd === 'publish');
  assert.equal(p.properties?.contentType, 'text/plain');
  r.push(mqttPacket.generate({ cmd: 'puback', messageId: 9, reasonCode: 0x10 }, { protocolVersion: 5 }));
  const a = r.next();
  assert.ok(a !== undefined && 'cmd' in a && a.cmd === 'puback');
  assert.equal(a.reasonCode, 0x10);
});

test('Message.encode and writePlain write the same bytes as mqtt-packet for PUBLISH without properties', () => {
  for (const version of [4, 5] as const) {
    for (const qos of [0, 1, 2] as const) {
      for (const [topic, size] of [
        ['a', 0],
        ['devices/x/telemetry', 100],
        ['grüße/€', 127],
        ['t', 20_000],
        ['t', 3_000_000],
      ] as const) {
        const payload = Buffer.alloc(size, 0x61);
        const m = new Message(topic, payload, qos, false, undefined, 0, undefined);
        for (const [retain, dup] of [
          [false, false],
          [true, true],
        ] as const) {
          const id = qos === 0 ? 0 : 4242;
          const got = m.encode(qos, retain, dup, id, version === 5, undefined, 0, false, 0);
          const packet: Packet = { cmd: 'publish', topic, payload, qos, retain, dup };
          if (qos > 0) packet.messageId = id;
          if (version === 5) packet.properties = {};
          const want = mqttPacket.generate(packet, { protocolVersion: version });
          assert.ok(got.equals(want), `v${version} qos ${qos} ${topic} ${size} retain ${retain}`);
          // Written into a batch between other bytes.
          const n = m.plainSize(qos, version === 5);
          assert.equal(n, want.length);
          const batch = Buffer.alloc(n + 6, 0xee);
          assert.equal(m.writePlain(batch, 3, qos, retain, dup, id, version === 5), 3 + n);
          assert.ok(
            batch.subarray(3, 3 + n).equals(want),
            `writePlain v${version} qos ${qos} ${topic} ${size}`,
          );
          assert.deepEqual(
            [...batch.subarray(0, 3), ...batch.subarray(3 + n)],
            [0xee, 0xee, 0xee, 0xee, 0xee, 0xee],
          );
        }
      }
    }
  }
});

test('a byte stream cut anywhere (mid-header too) decodes to the same packets, several per chunk or one across many', () => {
  const packets: Packet[] = [
    { cmd: 'publish', topic: 'd/1/t', payload: Buffer.from('one'), qos: 0, retain: false, dup: false },
    {
      cmd: 'publish',
      topic: 'd/1/t',
      payload: Buffer.alloc(200, 2),
      qos: 1,
      retain: false,
      dup: false,
      messageId: 1,
    },
    { cmd: 'puback', messageId: 7 },
    { cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'a/+', qos: 1 }] },
    {
      cmd: 'publish',
      topic: 'grüße',
      payload: Buffer.from('zwei'),
      qos: 2,
      retain: true,
      dup: false,
      messageId: 3,
    },
    { cmd: 'pingreq' },
    { cmd: 'pubrel', messageId: 9 },
    { cmd: 'unsubscribe', messageId: 4, unsubscriptions: ['a/+'] },
    { cmd: 'publish', topic: 'd/1/t', payload: Buffer.alloc(0), qos: 0, retain: false, dup: false },
  ];
  const bytes = Buffer.concat(packets.map((p) => mqttPacket.generate(p)));
  const expected = packets.map((p) => {
    const one = connected(4);
    one.push(mqttPacket.generate(p));
    return fields(one.next() as Packet);
  });
  const decode = (pieces: Buffer[]): Record<string, unknown>[] => {
    const r = connected(4);
    const out: Record<string, unknown>[] = [];
    for (const piece of pieces) {
      r.push(piece);
      for (let p = r.next(); p !== undefined; p = r.next()) {
        assert.ok('cmd' in p, JSON.stringify(p));
        out.push(fields(p));
      }
    }
    assert.equal(r.buffered, 0);
    return out;
  };
  for (let cut = 0; cut <= bytes.length; cut++) {
    assert.deepEqual(decode([bytes.subarray(0, cut), bytes.subarray(cut)]), expected, `cut at ${cut}`);
  }
  for (const size of [1, 2, 3, 7, 64]) {
    const pieces: Buffer[] = [];
    for (let i = 0; i < bytes.length; i += size) pieces.push(bytes.subarray(i, i + size));
    assert.deepEqual(decode(pieces), expected, `pieces of ${size}`);
  }
});
