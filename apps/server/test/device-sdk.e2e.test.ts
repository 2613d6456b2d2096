// The device SDK (@bulwark/device) against a real platform: API enrollment, mutual TLS, telemetry
// acknowledged after commit, the outbox surviving lost connections and a restart of the device process.
import 'reflect-metadata';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { readFileSync, statSync } from 'node:fs';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import {
  apiEnroller,
  createDevice,
  TelemetryRefusedError,
  type DeviceClient,
  type DeviceOptions,
} from '@bulwark/device';
import { connectDevice, startPlatform, waitFor, type Platform } from '../../../test/support/platform.ts';
import { tempDir } from '../../../test/support/db.ts';

/** A TCP proxy in front of the MQTT listener that the test can cut and restore: a lost network. */
async function tcpProxy(target: number): Promise<{
  port: number;
  cut(): void;
  pause(): Promise<void>;
  resume(): Promise<void>;
  close(): Promise<void>;
}> {
  const sockets = new Set<Socket>();
  let server: Server;
  let port = 0;
  const listen = () =>
    new Promise<void>((resolve) => {
      server = createServer((s) => {
        const up = connect(target, '127.0.0.1');
        sockets.add(s);
        sockets.add(up);
        s.pipe(up).pipe(s);
        const kill = () => {
          s.destroy();
          up.destroy();
          sockets.delete(s);
          sockets.delete(up);
        };
        s.on('error', kill).on('close', kill);
        up.on('error', kill).on('close', kill);
      });
      server.listen(port, '127.0.0.1', () => {
        const a = server.address();
        port = typeof a === 'object' && a ? a.port : 0;
        resolve();
      });
    });
  await listen();
  const cut = () => {
    for (const s of sockets) s.destroy();
    sockets.clear();
  };
  return {
    get port() {
      return port;
    },
    cut,
    async pause() {
      cut();
      await new Promise<void>((r) => server.close(() => r()));
    },
    resume: listen,
    async close() {
      cut();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const telemetryOf = async (p: Platform, id: string) =>
  (
    await p.api<{ items: { data: Record<string, unknown>; stream?: string }[] }>(
      'GET',
      `/api/v1/devices/${id}/telemetry?limit=1000`,
    )
  ).body.items;

describe('device SDK end to end', () => {
  let p: Platform;
  let work: { path: string; cleanup(): void };
  const devices: DeviceClient[] = [];
  before(async () => {
    p = await startPlatform();
    work = tempDir('bulwark-sdk-');
  });
  after(async () => {
    for (const d of devices) await d.close();
    await p.close();
    work.cleanup();
  });

  const options = (id: string, extra: Partial<DeviceOptions> = {}): DeviceOptions => ({
    deviceId: id,
    url: `mqtts://127.0.0.1:${p.mqttPort}`,
    servername: 'localhost',
    stateDir: join(work.path, id),
    enroller: apiEnroller({ url: p.url, token: p.token, ca: p.ca, register: true }),
    backoff: { baseMs: 20, maxMs: 200 },
    ...extra,
  });
  const device = (id: string, extra: Partial<DeviceOptions> = {}) => {
    const d = createDevice(options(id, extra));
    devices.push(d);
    return d;
  };

  test('enrolls through the API, keeps the key 0600, connects with mutual TLS, telemetry resolves on PUBACK', async () => {
    const d = device('sdk-1');
    await d.start();
    const dir = join(work.path, 'sdk-1');
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(statSync(join(dir, 'device.key')).mode & 0o777, 0o600);
    assert.ok(d.certificate && d.certificate.notAfter > new Date());
    await d.waitConnected(10_000);
    await d.telemetry({ temp: 21.5 });
    await d.telemetry({ watts: 3 }, { stream: 'power' });
    // Resolved means committed: readable at once.
    const rows = await telemetryOf(p, 'sdk-1');
    assert.deepEqual(
      rows.map((r) => r.data),
      [{ temp: 21.5 }, { watts: 3 }],
    );
    assert.equal(rows[1]?.stream, 'power');
    const info = await p.api<{ connected: boolean; certificates: unknown[] }>('GET', '/api/v1/devices/sdk-1');
    assert.equal(info.body.connected, true);
    assert.equal(info.body.certificates.length, 1);
    await d.close();
  });

  test('a second start reuses the key and certificate (no new enrollment)', async () => {
    const d = device('sdk-1', { enroller: undefined as never });
    await d.start();
    await d.waitConnected(10_000);
    const certs = await p.api<{ items: unknown[] }>('GET', '/api/v1/devices/sdk-1/certificates');
    assert.equal(certs.body.items.length, 1);
    await d.close();
  });

  test('invalid telemetry is refused locally; a refused message rejects with its reason code', async () => {
    const d = device('sdk-2');
    await d.start();
    await d.waitConnected(10_000);
    await assert.rejects(d.telemetry([1, 2] as never), TypeError);
    await assert.rejects(d.telemetry({ a: 1 }, { stream: 'bad/stream' }), TypeError);
    await assert.rejects(d.telemetry({ big: 'x'.repeat(70_000) }), RangeError);
    // The SDK does not know the platform's limit was lowered: the platform refuses with 0x95.
    const small = device('sdk-2b', { maxTelemetryBytes: 1_000_000 });
    await small.start();
    await small.waitConnected(10_000);
    const refused = await small.telemetry({ big: 'x'.repeat(100_000) }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(refused instanceof TelemetryRefusedError, String(refused));
    // 0x95 (packet too large) is not a PUBACK reason code [MQTT-3.4.2.1]: 0x83 with the code in the reason.
    assert.equal(refused.reasonCode, 0x83);
    assert.equal(small.pendingTelemetry, 0, 'a refused message leaves the outbox');
    await small.close();
    await d.close();
  });

  test('lost connection: messages wait in the outbox, the SDK reconnects and sends them in order', async () => {
    const proxy = await tcpProxy(p.mqttPort);
    try {
      const d = device('sdk-3', { url: `mqtts://127.0.0.1:${proxy.port}` });
      await d.start();
      await d.waitConnected(10_000);
      await d.telemetry({ n: 0 });
      await proxy.pause(); // the network is gone: connections refused
      await waitFor(() => !d.connected || undefined, 5000);
      const sent = Array.from({ length: 20 }, (_, i) => d.telemetry({ n: i + 1 }));
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(d.pendingTelemetry, 20);
      await proxy.resume();
      await Promise.all(sent);
      assert.equal(d.pendingTelemetry, 0);
      const rows = await telemetryOf(p, 'sdk-3');
      assert.deepEqual(
        rows.map((r) => r.data.n),
        Array.from({ length: 21 }, (_, i) => i),
      );
      await d.close();
    } finally {
      await proxy.close();
    }
  });

  test('the outbox survives a restart of the device process and is replayed in order', async () => {
    const proxy = await tcpProxy(p.mqttPort);
    try {
      await proxy.pause();
      const first = device('sdk-4', { url: `mqtts://127.0.0.1:${proxy.port}` });
      await first.start();
      const pending = Array.from({ length: 10 }, (_, i) =>
        first.telemetry({ n: i }).catch((e: Error) => e.name),
      );
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(first.pendingTelemetry, 10, String(await Promise.race([Promise.all(pending), 'pending'])));
      await first.close(); // "the process ends": waiting callers learn it
      assert.deepEqual(new Set(await Promise.all(pending)), new Set(['DeviceClosedError']));

      await proxy.resume();
      const second = device('sdk-4', { url: `mqtts://127.0.0.1:${proxy.port}` });
      const delivered: number[] = [];
      second.on('delivered', (e) => delivered.push(e.seq));
      await second.start();
      assert.equal(second.pendingTelemetry, 10, 'read back from the outbox file');
      await waitFor(() => delivered.length === 10 || undefined, 10_000);
      assert.equal(second.pendingTelemetry, 0);
      const rows = await telemetryOf(p, 'sdk-4');
      assert.deepEqual(
        rows.map((r) => r.data.n),
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      );
      await second.close();
    } finally {
      await proxy.close();
    }
  });

  test('commands: sent over the device connection, answered by the SDK; failures, unknown names, timeouts', async () => {
    const d = device('sdk-cmd');
    let runs = 0;
    d.onCommand('add', (payload) => {
      runs++;
      const { a, b } = payload as { a: number; b: number };
      return a + b;
    });
    d.onCommand('boom', () => {
      throw new Error('nope');
    });
    d.onCommand('slow', () => new Promise((r) => setTimeout(r, 1000)));
    await d.start();
    await d.waitConnected(10_000);
    type Outcome = { id: string; status: string; result?: unknown; error?: string };
    const send = (body: unknown) => p.api<Outcome>('POST', '/api/v1/devices/sdk-cmd/commands', body);

    const ok = await send({ name: 'add', payload: { a: 2, b: 3 } });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.status, 'succeeded');
    assert.equal(ok.body.result, 5);
    assert.equal(runs, 1);
    const failed = await send({ name: 'boom' });
    assert.deepEqual([failed.body.status, failed.body.error], ['failed', 'nope']);
    const unknown = await send({ name: 'reboot' });
    assert.deepEqual([unknown.body.status, unknown.body.error], ['failed', 'unknown command reboot']);
    const late = await send({ name: 'slow', timeoutMs: 200 });
    assert.equal(late.body.status, 'timeout');

    const bad = await p.api<{ code: string }>('POST', '/api/v1/devices/sdk-cmd/commands', { name: 'a/b' });
    assert.equal(bad.status, 400);
    const reserved = await p.api<{ code: string }>('POST', '/api/v1/devices/sdk-cmd/commands', {
      name: 'result',
    });
    assert.equal(reserved.body.code, 'ERR_COMMAND_INVALID_NAME');
    await d.close();
    const offline = await p.api<{ code: string }>('POST', '/api/v1/devices/sdk-cmd/commands', {
      name: 'add',
    });
    assert.equal(offline.status, 409);
    assert.equal(offline.body.code, 'ERR_COMMAND_DEVICE_OFFLINE');
    const missing = await p.api<{ code: string }>('POST', '/api/v1/devices/nope/commands', { name: 'add' });
    assert.equal(missing.body.code, 'ERR_DEVICE_NOT_FOUND');
    const audit = await p.api<{ items: { action: string; details?: { status?: string } }[] }>(
      'GET',
      '/api/v1/audit?action=device.command&limit=10',
    );
    assert.ok(audit.body.items.some((e) => e.details?.status === 'succeeded'));
  });

  test('twin: desired state reaches the device (retained, also after a restart); reported state is stored', async () => {
    const first = device('sdk-twin');
    const seen: [unknown, number][] = [];
    first.onDesired((state, version) => void seen.push([state, version]));
    await first.start();
    await first.waitConnected(10_000);
    type TwinBody = {
      desired: { version: number; state: Record<string, unknown> };
      reported: { state: Record<string, unknown>; desiredVersion: number | null } | null;
    };
    const empty = await p.api<TwinBody>('GET', '/api/v1/devices/sdk-twin/twin');
    assert.deepEqual(empty.body.desired, { version: 0, state: {}, updatedAt: null });
    assert.equal(empty.body.reported, null);

    const put = await p.api<TwinBody>('PUT', '/api/v1/devices/sdk-twin/twin', { desired: { led: 'on' } });
    assert.equal(put.status, 200);
    assert.equal(put.body.desired.version, 1);
    await waitFor(() => seen.length > 0 || undefined, 5000);
    assert.deepEqual(seen[0], [{ led: 'on' }, 1]);
    await first.reportTwin({ led: 'on', fw: '1.0' }, { desiredVersion: 1 });
    const twin = await p.api<TwinBody>('GET', '/api/v1/devices/sdk-twin/twin');
    assert.deepEqual(twin.body.reported?.state, { led: 'on', fw: '1.0' });
    assert.equal(twin.body.reported?.desiredVersion, 1);

    const stale = await p.api<{ code: string }>('PUT', '/api/v1/devices/sdk-twin/twin', {
      desired: { led: 'off' },
      version: 0,
    });
    assert.equal(stale.status, 409);
    assert.equal(stale.body.code, 'ERR_TWIN_VERSION_CONFLICT');
    await first.close();

    // Changed while the device was away: it gets the current state when it connects.
    await p.api('PUT', '/api/v1/devices/sdk-twin/twin', { desired: { led: 'off' }, version: 1 });
    const second = device('sdk-twin');
    const got = new Promise<[unknown, number]>((r) => second.onDesired((s, v) => r([s, v])));
    await second.start();
    assert.deepEqual(await got, [{ led: 'off' }, 2]);
    assert.deepEqual(second.desired, { version: 2, state: { led: 'off' } });
    await second.close();
  });

  test('a device cannot write its own desired state or commands; malformed reports are refused', async () => {
    const d = device('sdk-forge');
    await d.start();
    await d.close();
    const dir = join(work.path, 'sdk-forge');
    const creds = {
      key: readFileSync(join(dir, 'device.key'), 'utf8'),
      chain: readFileSync(join(dir, 'device.crt'), 'utf8'),
      ca: readFileSync(join(dir, 'ca.crt'), 'utf8'),
    };
    const c = await connectDevice(p, creds, { clientId: 'sdk-forge' });
    try {
      const ack = (topic: string, payload: string) =>
        new Promise<number>((resolve) =>
          c.publish(topic, payload, { qos: 1 }, (err, packet) =>
            resolve(
              (err as { code?: number } | undefined)?.code ??
                (packet as { reasonCode?: number })?.reasonCode ??
                0,
            ),
          ),
        );
      assert.equal(await ack('devices/sdk-forge/twin/desired', '{"version":9,"state":{}}'), 0x87);
      assert.equal(await ack('devices/sdk-forge/commands/reboot', '{"id":"x"}'), 0x87);
      assert.equal(await ack('devices/sdk-forge/twin/reported', '{"led":"on"}'), 0x99, 'no state wrapper');
      assert.equal(await ack('devices/sdk-forge/capabilities', '{"color":"red"}'), 0x99);
      assert.equal(await ack('devices/sdk-forge/commands/result', 'garbage'), 0x99);
      assert.equal(
        await ack('devices/sdk-forge/commands/result', '{"id":"unknown","status":"succeeded"}'),
        0,
      );
    } finally {
      await c.endAsync();
    }
    const twin = await p.api<{ desired: { version: number } }>('GET', '/api/v1/devices/sdk-forge/twin');
    assert.equal(twin.body.desired.version, 0);
  });

  test('capabilities: reported with listening ports from the OS; a new version only when changed', async () => {
    const d = device('sdk-caps', {
      capabilities: {
        hardware: { model: 'sim', revision: 'a' },
        firmware: { version: '1.0.0' },
        updateMethod: 'ab-partition',
        sbom: { bomFormat: 'CycloneDX', specVersion: '1.5', components: [] },
      },
    });
    await d.start();
    await d.waitConnected(10_000);
    const report = await d.reportCapabilities();
    assert.ok(Array.isArray(report.listeningPorts));
    type Caps = { version: number; capabilities: Record<string, unknown> };
    let caps = await p.api<Caps>('GET', '/api/v1/devices/sdk-caps/capabilities');
    assert.equal(caps.status, 200);
    assert.equal(caps.body.version, 1);
    assert.equal(caps.body.capabilities.keyStorage, 'file');
    assert.deepEqual(caps.body.capabilities.hardware, { model: 'sim', revision: 'a' });
    assert.deepEqual((caps.body.capabilities.tls as { versions: string[] }).versions, ['TLSv1.2', 'TLSv1.3']);
    await d.reportCapabilities({ listeningPorts: report.listeningPorts ?? [] });
    caps = await p.api<Caps>('GET', '/api/v1/devices/sdk-caps/capabilities');
    assert.equal(caps.body.version, 1, 'unchanged report, no new version');
    await d.reportCapabilities({
      firmware: { version: '1.1.0' },
      listeningPorts: report.listeningPorts ?? [],
    });
    const history = await p.api<{ items: Caps[] }>('GET', '/api/v1/devices/sdk-caps/capabilities/history');
    assert.deepEqual(
      history.body.items.map((i) => [i.version, (i.capabilities.firmware as { version: string }).version]),
      [
        [2, '1.1.0'],
        [1, '1.0.0'],
      ],
    );
    const none = await p.api<{ code: string }>('GET', '/api/v1/devices/sdk-1/capabilities');
    assert.equal(none.body.code, 'ERR_CAPABILITIES_NOT_FOUND');
    await d.close();
  });

  test('tamper reports: durable like telemetry, resolved on PUBACK, recorded as a posture finding; bad ones refused locally', async () => {
    const d = device('sdk-tamper');
    await d.start();
    await d.waitConnected(10_000);
    await assert.rejects(d.reportTamper({ kind: 'two words' }), TypeError);
    await assert.rejects(d.reportTamper({ kind: 'lid', at: '2026-01-01' }), TypeError);
    await assert.rejects(d.reportTamper({ kind: 'lid', detail: 'x'.repeat(513) }), RangeError);
    await d.reportTamper({ kind: 'enclosure-opened', detail: 'lid switch' });
    const findings = await p.api<{ items: { kind: string; deviceId: string; severity: string }[] }>(
      'GET',
      '/api/v1/posture/findings?deviceId=sdk-tamper',
    );
    assert.equal(findings.status, 200, JSON.stringify(findings.body));
    const tamper = findings.body.items.filter((f) => /tamper/.test(f.kind));
    assert.equal(tamper.length, 1, JSON.stringify(findings.body));
    assert.equal(tamper[0]?.severity, 'critical');
    await d.close();
  });

  test('MQTT over WebSocket (wss://…/mqtt) with the device certificate; no certificate, no upgrade', async () => {
    const d = device('sdk-ws', { url: `wss://127.0.0.1:${p.httpPort}/mqtt` });
    d.onCommand('ping', () => 'pong');
    await d.start();
    await d.waitConnected(10_000);
    await d.telemetry({ via: 'websocket' });
    assert.deepEqual(
      (await telemetryOf(p, 'sdk-ws')).map((r) => r.data),
      [{ via: 'websocket' }],
    );
    const r = await p.api<{ status: string; result: unknown }>('POST', '/api/v1/devices/sdk-ws/commands', {
      name: 'ping',
    });
    assert.deepEqual([r.body.status, r.body.result], ['succeeded', 'pong']);
    await d.close();

    const upgrade = (headers: Record<string, string>, withCert: boolean) =>
      new Promise<number>((resolve, reject) => {
        const dir = join(work.path, 'sdk-ws');
        const req = httpsRequest(`https://127.0.0.1:${p.httpPort}/mqtt`, {
          ca: p.ca,
          ...(withCert
            ? {
                key: readFileSync(join(dir, 'device.key'), 'utf8'),
                cert: readFileSync(join(dir, 'device.crt'), 'utf8'),
              }
            : {}),
          headers: {
            connection: 'Upgrade',
            upgrade: 'websocket',
            'sec-websocket-version': '13',
            'sec-websocket-key': Buffer.alloc(16, 1).toString('base64'),
            'sec-websocket-protocol': 'mqtt',
            ...headers,
          },
        });
        req.on('upgrade', (res, socket) => {
          socket.destroy();
          resolve(res.statusCode ?? 0);
        });
        req.on('response', (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
    assert.equal(await upgrade({}, true), 101);
    assert.equal(await upgrade({}, false), 401);
    assert.equal(await upgrade({ origin: 'https://evil.example' }, true), 403);
    assert.equal(await upgrade({ 'sec-websocket-protocol': 'chat' }, true), 400);
    // The API on the same listener still works with a token and no certificate.
    assert.equal((await p.api('GET', '/api/v1/devices/sdk-ws')).status, 200);
  });

  test('certificate renewal: new key and certificate through the enroller, reconnected with them', async () => {
    const d = device('sdk-renew', { renewal: { enabled: false } });
    await d.start();
    await d.waitConnected(10_000);
    const before = d.certificate?.serial;
    const keyBefore = readFileSync(join(work.path, 'sdk-renew', 'device.key'), 'utf8');
    const renewed = new Promise((r) => d.once('renewed', r));
    await d.renewCertificate();
    await renewed;
    assert.notEqual(d.certificate?.serial, before);
    assert.notEqual(readFileSync(join(work.path, 'sdk-renew', 'device.key'), 'utf8'), keyBefore, 'new key');
    assert.equal(statSync(join(work.path, 'sdk-renew', 'device.key')).mode & 0o777, 0o600);
    await d.waitConnected(10_000);
    await d.telemetry({ after: 'renewal' });
    const certs = await p.api<{ items: { serial: string }[] }>(
      'GET',
      '/api/v1/devices/sdk-renew/certificates',
    );
    assert.equal(certs.body.items.length, 2);
    await d.close();
  });

  test('the platform is verified: a server certificate from another CA is refused, the device never connects', async () => {
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
    const other = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: 'CN=Not the platform CA',
      notBefore: new Date(Date.now() - 1000),
      notAfter: new Date(Date.now() + 86_400_000),
      keys,
      signingAlgorithm: alg,
      extensions: [new x509.BasicConstraintsExtension(true, 0, true)],
    });
    const warnings: string[] = [];
    const d = device('sdk-verify', { ca: other.toString('pem') });
    d.on('warning', (e) => warnings.push(e.message));
    await d.start();
    await assert.rejects(d.waitConnected(1500), { name: 'NotConnectedError' });
    assert.ok(
      warnings.some((w) => /unable to (get|verify)|self.signed|certificate/i.test(w)),
      warnings.join('\n'),
    );
    await d.close();
    // The same device with the platform's CA connects.
    const ok = device('sdk-verify', { ca: p.ca, enroller: undefined as never });
    await ok.start();
    await ok.waitConnected(10_000);
    await ok.close();
  });

  test('TLS session resumption: a reconnect resumes the session, also after failed attempts; not after a renewal or a refusal; can be turned off', async () => {
    const proxy = await tcpProxy(p.mqttPort);
    try {
      const run = async (id: string, extra: Partial<DeviceOptions>) => {
        const resumed: boolean[] = [];
        const d = device(id, {
          url: `mqtts://127.0.0.1:${proxy.port}`,
          renewal: { enabled: false },
          ...extra,
        });
        d.on('connect', (info) => resumed.push(info.tlsSessionResumed));
        const reconnected = () => new Promise<void>((r) => d.once('connect', () => r()));
        await d.start();
        await d.waitConnected(10_000);
        let next = reconnected();
        proxy.cut(); // the network drops every connection
        await next;
        await d.telemetry({ after: 'reconnect' });
        next = reconnected();
        await d.renewCertificate();
        await next;
        await d.telemetry({ after: 'renewal' });
        next = reconnected();
        proxy.cut();
        await next;
        await d.telemetry({ after: 'second reconnect' });
        // The network is down for a while: attempts fail, the session is kept for when it is back.
        next = reconnected();
        await proxy.pause();
        await new Promise((r) => setTimeout(r, 300));
        await proxy.resume();
        await next;
        // The platform drops the device and refuses it while it is disabled: afterwards, a full handshake.
        let refusals = 0;
        const refused = () => refusals++;
        d.on('warning', refused);
        assert.equal((await p.api('POST', `/api/v1/devices/${id}/disable`)).status, 200);
        await waitFor(() => refusals >= 2 || undefined, 10_000);
        next = reconnected();
        assert.equal((await p.api('POST', `/api/v1/devices/${id}/enable`)).status, 200);
        await next;
        d.off('warning', refused);
        await d.telemetry({ after: 'enabled again' });
        await d.close();
        return resumed;
      };
      // The connection after a renewal must present the new certificate: a full handshake.
      assert.deepEqual(await run('sdk-resume', {}), [false, true, false, true, true, false]);
      assert.deepEqual(await run('sdk-no-resume', { tlsSessionResumption: false }), [
        false,
        false,
        false,
        false,
        false,
        false,
      ]);
      assert.equal((await telemetryOf(p, 'sdk-resume')).length, 4);
    } finally {
      await proxy.close();
    }
  });
});
