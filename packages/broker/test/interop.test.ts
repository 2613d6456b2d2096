// Interoperability with clients nobody here wrote: MQTT.js (3.1.1 and 5), mosquitto_pub/mosquitto_sub
// (3.1, 3.1.1, 5) and Eclipse Paho for Python (3.1, 3.1.1, 5). A missing tool skips its cases with
// the reason; with CI set, a missing tool fails instead.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterEach, test } from 'node:test';
import { cleanup, client, collect, end, startBroker, waitFor } from './helpers.ts';
import type { TestBroker } from './helpers.ts';

afterEach(cleanup);

const PYTHON = '/usr/bin/python3';

function which(bin: string): boolean {
  return ['/usr/bin', '/usr/local/bin', '/bin'].some((d) => existsSync(`${d}/${bin}`));
}

/** Returns the skip option for a tool: false when present, the reason otherwise (or throws on CI). */
function requireTool(name: string, present: boolean, hint: string): false | string {
  if (present) return false;
  const reason = `${name} not installed (${hint})`;
  if (process.env.CI) throw new Error(`${reason}: interop tests must run on CI`);
  return reason;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], timeoutMs = 10_000, input?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ code, stdout, stderr });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** Starts a long-running process; resolves with its output once it exits (bounded). */
function background(cmd: string, args: string[], timeoutMs = 10_000): { done: Promise<Run> } {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const done = new Promise<Run>((resolve) => {
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
  return { done };
}

// ---- MQTT.js ---------------------------------------------------------------------------------------

for (const protocolVersion of [4, 5] as const) {
  test(`MQTT.js v${protocolVersion}: QoS 0, 1 and 2 round trip, retained, will`, async () => {
    const b = await startBroker();
    const sub = await client(b.port, { clientId: `js-sub-${protocolVersion}`, protocolVersion });
    const rx = collect(sub);
    await sub.subscribeAsync('js/#', { qos: 2 });
    const pub = await client(b.port, { clientId: `js-pub-${protocolVersion}`, protocolVersion });
    for (const qos of [0, 1, 2] as const) await pub.publishAsync(`js/q${qos}`, `payload-${qos}`, { qos });
    const got = await rx.count(3);
    assert.deepEqual(
      got.map((m) => [m.topic, m.payload.toString(), m.packet.qos]),
      [
        ['js/q0', 'payload-0', 0],
        ['js/q1', 'payload-1', 1],
        ['js/q2', 'payload-2', 2],
      ],
    );
    await pub.publishAsync('js/retained', 'kept', { qos: 1, retain: true });
    const late = await client(b.port, { clientId: `js-late-${protocolVersion}`, protocolVersion });
    const lateRx = collect(late);
    await late.subscribeAsync('js/retained', { qos: 1 });
    const r = await lateRx.next();
    assert.equal(r.payload.toString(), 'kept');
    assert.equal(r.packet.retain, true);
    const dying = await client(b.port, {
      clientId: `js-dying-${protocolVersion}`,
      protocolVersion,
      will: { topic: 'js/will', payload: Buffer.from('bye'), qos: 1, retain: false },
    });
    (dying as unknown as { stream: { destroy(): void } }).stream.destroy();
    const all = await rx.count(5);
    // The live copy of the retained publish (RETAIN cleared), then the will.
    assert.deepEqual(
      all.slice(3).map((m) => [m.topic, m.payload.toString(), m.packet.retain]),
      [
        ['js/retained', 'kept', false],
        ['js/will', 'bye', false],
      ],
    );
    await end(sub, pub, late, dying);
  });
}

test('MQTT.js: a 3.1.1 publisher and a 5 subscriber (and back) interoperate', async () => {
  const b = await startBroker();
  const v5 = await client(b.port, { clientId: 'mix5', protocolVersion: 5 });
  const v4 = await client(b.port, { clientId: 'mix4', protocolVersion: 4 });
  const rx5 = collect(v5);
  const rx4 = collect(v4);
  await v5.subscribeAsync('mix/to5', { qos: 1 });
  await v4.subscribeAsync('mix/to4', { qos: 1 });
  await v4.publishAsync('mix/to5', 'from4', { qos: 1 });
  await v5.publishAsync('mix/to4', 'from5', { qos: 1, properties: { userProperties: { a: 'b' } } });
  assert.equal((await rx5.next()).payload.toString(), 'from4');
  assert.equal((await rx4.next()).payload.toString(), 'from5');
});

// ---- mosquitto clients -----------------------------------------------------------------------------

const mosquittoSkip = requireTool(
  'mosquitto_pub/mosquitto_sub',
  which('mosquitto_pub') && which('mosquitto_sub'),
  'apt-get install mosquitto-clients',
);

async function mosquittoRoundTrip(b: TestBroker<string>, version: string, qos: 0 | 1 | 2): Promise<void> {
  const id = `msub-${version}-${qos}`;
  const topic = `mosq/${version}/q${qos}`;
  const sub = background(
    'mosquitto_sub',
    [
      '-h',
      '127.0.0.1',
      '-p',
      String(b.port),
      '-V',
      version,
      '-i',
      id,
      '-t',
      topic,
      '-q',
      String(qos),
      '-C',
      '1',
      '-W',
      '8',
      '-v',
    ],
    10_000,
  );
  // Connected, then give the SUBSCRIBE a moment (mosquitto_sub sends it right after CONNACK).
  await waitFor(() => b.broker.getClient(id) !== undefined, 5000, 'mosquitto_sub to connect');
  await new Promise((r) => setTimeout(r, 100));
  const pub = await run('mosquitto_pub', [
    '-h',
    '127.0.0.1',
    '-p',
    String(b.port),
    '-V',
    version,
    '-i',
    `mpub-${version}-${qos}`,
    '-t',
    topic,
    '-q',
    String(qos),
    '-m',
    `hello ${version} ${qos}`,
  ]);
  assert.equal(pub.code, 0, pub.stderr);
  const res = await sub.done;
  assert.equal(res.code, 0, res.stderr);
  assert.equal(res.stdout.trim(), `${topic} hello ${version} ${qos}`);
}

for (const version of ['mqttv31', 'mqttv311', 'mqttv5']) {
  test(`mosquitto_pub/mosquitto_sub -V ${version}: QoS 0, 1, 2`, { skip: mosquittoSkip }, async () => {
    const b = await startBroker();
    for (const qos of [0, 1, 2] as const) await mosquittoRoundTrip(b, version, qos);
  });
}

test('mosquitto_pub -V mqttv31 to an MQTT.js v5 subscriber, retained', { skip: mosquittoSkip }, async () => {
  const b = await startBroker();
  const pub = await run('mosquitto_pub', [
    '-h',
    '127.0.0.1',
    '-p',
    String(b.port),
    '-V',
    'mqttv31',
    '-t',
    'cross/r',
    '-q',
    '1',
    '-r',
    '-m',
    'retained-31',
  ]);
  assert.equal(pub.code, 0, pub.stderr);
  const sub = await client(b.port, { clientId: 'cross-sub', protocolVersion: 5 });
  const rx = collect(sub);
  await sub.subscribeAsync('cross/#', { qos: 1 });
  const m = await rx.next();
  assert.equal(m.payload.toString(), 'retained-31');
  assert.equal(m.packet.retain, true);
});

test(
  'mosquitto_sub -V mqttv5 gets user properties and the refused-subscription code',
  { skip: mosquittoSkip },
  async () => {
    const b = await startBroker({
      hooks: { authorizeSubscribe: (_c, f) => (f === 'forbidden' ? { ok: false, reasonCode: 0x87 } : true) },
    });
    const refused = await run(
      'mosquitto_sub',
      [
        '-h',
        '127.0.0.1',
        '-p',
        String(b.port),
        '-V',
        'mqttv5',
        '-t',
        'forbidden',
        '-C',
        '1',
        '-W',
        '3',
        '-E',
      ],
      6000,
    );
    assert.match(refused.stderr, /subscription requests were denied/);
    const sub = background(
      'mosquitto_sub',
      [
        '-h',
        '127.0.0.1',
        '-p',
        String(b.port),
        '-V',
        'mqttv5',
        '-i',
        'props',
        '-t',
        'props/x',
        '-C',
        '1',
        '-W',
        '8',
        '-F',
        '%t %p %P',
      ],
      10_000,
    );
    await waitFor(() => b.broker.getClient('props') !== undefined, 5000, 'mosquitto_sub');
    await new Promise((r) => setTimeout(r, 100));
    const pub = await client(b.port, { clientId: 'props-pub', protocolVersion: 5 });
    await pub.publishAsync('props/x', 'body', { qos: 1, properties: { userProperties: { k: 'v' } } });
    const res = await sub.done;
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /props\/x body .*k:v/);
  },
);

// ---- Paho (Python) ---------------------------------------------------------------------------------

async function pahoPresent(): Promise<boolean> {
  if (!existsSync(PYTHON)) return false;
  const r = await run(PYTHON, ['-c', 'import paho.mqtt.client'], 5000);
  return r.code === 0;
}
const pahoSkip = requireTool('python3-paho-mqtt', await pahoPresent(), 'apt-get install python3-paho-mqtt');

const PAHO_SCRIPT = `
import sys, time, threading
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

port = int(sys.argv[1]); proto_name = sys.argv[2]
proto = {"31": mqtt.MQTTv31, "311": mqtt.MQTTv311, "5": mqtt.MQTTv5}[proto_name]
got = []
done = threading.Event()
subscribed = threading.Event()

def on_connect(c, u, flags, rc, props=None):
    c.subscribe("paho/" + proto_name + "/#", qos=2)

def on_subscribe(c, u, mid, granted, props=None):
    subscribed.set()

def on_message(c, u, msg):
    up = None
    if proto == mqtt.MQTTv5 and hasattr(msg, "properties") and hasattr(msg.properties, "UserProperty"):
        up = msg.properties.UserProperty
    got.append((msg.topic, msg.payload.decode(), msg.qos, up))
    if len(got) == 3:
        done.set()

cid = "paho-" + proto_name
c = mqtt.Client(client_id=cid, protocol=proto) if proto != mqtt.MQTTv5 else mqtt.Client(client_id=cid, protocol=proto)
c.on_connect = on_connect
c.on_subscribe = on_subscribe
c.on_message = on_message
c.will_set("paho/will", "gone", qos=1)
c.connect("127.0.0.1", port, keepalive=10)
c.loop_start()
if not subscribed.wait(5):
    print("no suback"); sys.exit(2)
for q in (0, 1, 2):
    props = None
    if proto == mqtt.MQTTv5:
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = ("q", str(q))
    c.publish("paho/" + proto_name + "/q" + str(q), "p" + str(q), qos=q, properties=props).wait_for_publish(5)
ok = done.wait(5)
c.disconnect()
c.loop_stop()
for g in sorted(got):
    print(g[0], g[1], g[2], g[3])
sys.exit(0 if ok else 3)
`;

for (const proto of ['31', '311', '5']) {
  test(`paho-mqtt (Python) protocol ${proto}: QoS 0, 1, 2 to itself`, { skip: pahoSkip }, async () => {
    const b = await startBroker();
    const r = await run(PYTHON, ['-c', PAHO_SCRIPT, String(b.port), proto], 15_000);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const lines = r.stdout.trim().split('\n');
    const up = (q: number): string => (proto === '5' ? `[('q', '${q}')]` : 'None');
    assert.deepEqual(lines, [
      `paho/${proto}/q0 p0 0 ${up(0)}`,
      `paho/${proto}/q1 p1 1 ${up(1)}`,
      `paho/${proto}/q2 p2 2 ${up(2)}`,
    ]);
  });
}
