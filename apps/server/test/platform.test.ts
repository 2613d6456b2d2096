// End to end: a real platform on loopback, real TLS, a real MQTT client (MQTT.js, v5 and 3.1.1).
import 'reflect-metadata';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import type { MqttClient } from 'mqtt';
import { pgUrl } from '../../../test/support/db.ts';
import {
  connectDevice,
  enrollDevice,
  makeCsr,
  startPlatform,
  waitFor,
  type DeviceCredentials,
  type Platform,
} from '../../../test/support/platform.ts';

interface AuditItem {
  action: string;
  outcome: string;
  reason?: string;
  actor: { type: string; id: string };
}

const audits = async (p: Platform, action: string) =>
  (await p.api<{ items: AuditItem[] }>('GET', `/api/v1/audit?action=${action}&limit=100`)).body.items;

const publishAck = (c: MqttClient, topic: string, payload: string) =>
  new Promise<{ reasonCode?: number } | undefined>((resolve, reject) =>
    c.publish(topic, payload, { qos: 1 }, (err, packet) => {
      if (err && !(err as { code?: number }).code) reject(err);
      else
        resolve({
          reasonCode:
            (err as { code?: number } | undefined)?.code ??
            (packet as { reasonCode?: number } | undefined)?.reasonCode ??
            0,
        });
    }),
  );

describe('platform end to end', () => {
  let p: Platform;
  let sensor: DeviceCredentials;
  before(async () => {
    p = await startPlatform();
    sensor = await enrollDevice(p, 'sensor-1');
  });
  after(async () => {
    await p.close();
  });

  test('first start: owner token file is 0600, secrets dir 0700, CA file written', () => {
    assert.equal(statSync(p.app.paths.initialTokenFile).mode & 0o777, 0o600);
    assert.equal(statSync(`${p.dataDir}/secrets`).mode & 0o777, 0o700);
    assert.match(p.token, /^bwk_/);
    assert.match(p.ca, /BEGIN CERTIFICATE/);
  });

  test('health, readiness, OpenAPI, security headers', async () => {
    assert.equal((await p.api('GET', '/healthz')).status, 200);
    assert.equal((await p.api('GET', '/readyz')).status, 200);
    const doc = await p.api<{ openapi: string; paths: Record<string, unknown> }>(
      'GET',
      '/api/v1/openapi.json',
    );
    assert.equal(doc.status, 200);
    assert.match(doc.body.openapi, /^3\./);
    assert.ok(doc.body.paths['/api/v1/devices/{id}/telemetry']);
    const r = await p.api('GET', '/api/v1/devices');
    assert.match(String(r.headers['strict-transport-security']), /max-age=/);
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
  });

  test('the API refuses missing, malformed and unknown tokens with problem+json', async () => {
    for (const token of [undefined, 'nope', `bwk_${'A'.repeat(43)}`]) {
      const r = await p.api<{ code: string; status: number }>(
        'GET',
        '/api/v1/devices',
        undefined,
        token ?? '',
      );
      assert.equal(r.status, 401);
      assert.match(String(r.headers['content-type']), /application\/problem\+json/);
      assert.equal(r.body.code, token === undefined ? 'ERR_AUTH_MISSING' : 'ERR_AUTH_INVALID_TOKEN');
    }
  });

  test('bad input gets a stable code and changes nothing', async () => {
    const bad = await p.api<{ code: string; errors: unknown[] }>('POST', '/api/v1/devices', {
      id: 'bad id!',
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, 'ERR_VALIDATION');
    const dup = await p.api<{ code: string }>('POST', '/api/v1/devices', { id: 'sensor-1' });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.code, 'ERR_DEVICE_EXISTS');
    const csr = await p.api<{ code: string }>('POST', '/api/v1/devices/sensor-1/certificates', {
      csr: 'garbage',
    });
    assert.equal(csr.status, 400);
    assert.equal(csr.body.code, 'ERR_PKI_CSR_INVALID');
    const missing = await p.api<{ code: string }>('GET', '/api/v1/devices/nope/telemetry');
    assert.equal(missing.body.code, 'ERR_DEVICE_NOT_FOUND');
    const list = await p.api<{ items: { id: string }[] }>('GET', '/api/v1/devices');
    assert.deepEqual(
      list.body.items.map((d) => d.id),
      ['sensor-1'],
    );
  });

  test('MQTT 5 device publishes telemetry at QoS 1; once acknowledged it can be read back', async () => {
    const c = await connectDevice(p, sensor, { clientId: 'sensor-1' });
    try {
      const ack = await publishAck(c, 'devices/sensor-1/telemetry', '{"temp":21.5}');
      assert.equal(ack?.reasonCode, 0);
      await publishAck(c, 'devices/sensor-1/telemetry/power', '{"watts":3}');
      const r = await p.api<{ items: { ts: string; data: unknown; stream?: string }[] }>(
        'GET',
        '/api/v1/devices/sensor-1/telemetry',
      );
      assert.equal(r.status, 200);
      assert.deepEqual(
        r.body.items.map((i) => i.data),
        [{ temp: 21.5 }, { watts: 3 }],
      );
      assert.equal(r.body.items[1]?.stream, 'power');
      assert.match(r.body.items[0]?.ts ?? '', /^\d{4}-\d{2}-\d{2}T/);
      const dev = await p.api<{ connected: boolean; certificates: unknown[] }>(
        'GET',
        '/api/v1/devices/sensor-1',
      );
      assert.equal(dev.body.connected, true);
      assert.equal(dev.body.certificates.length, 1);
    } finally {
      await c.endAsync();
    }
  });

  test('malformed telemetry is refused with a reason and never stored', async () => {
    const before = (await p.api<{ items: unknown[] }>('GET', '/api/v1/devices/sensor-1/telemetry')).body.items
      .length;
    const c = await connectDevice(p, sensor, { clientId: 'sensor-1' });
    try {
      const ack = await publishAck(c, 'devices/sensor-1/telemetry', '[1,2,3]');
      assert.equal(ack?.reasonCode, 0x99, 'payload format invalid');
      const ack2 = await publishAck(c, 'devices/sensor-1/telemetry', 'not json');
      assert.equal(ack2?.reasonCode, 0x99);
    } finally {
      await c.endAsync();
    }
    const afterCount = (await p.api<{ items: unknown[] }>('GET', '/api/v1/devices/sensor-1/telemetry')).body
      .items.length;
    assert.equal(afterCount, before);
  });

  test("publishing or subscribing to another device's topic is refused and recorded", async () => {
    const c = await connectDevice(p, sensor, { clientId: 'sensor-1' });
    try {
      const ack = await publishAck(c, 'devices/sensor-2/telemetry', '{"spoofed":true}');
      assert.equal(ack?.reasonCode, 0x87, 'not authorized');
      const refused = await c.subscribeAsync('devices/+/commands', { qos: 1 }).then(
        () => undefined,
        (err: { packet?: { granted?: number[] } }) => err.packet?.granted,
      );
      assert.deepEqual(refused, [0x87]);
      const own = await c.subscribeAsync('devices/sensor-1/commands', { qos: 1 });
      assert.equal(own[0]?.qos, 1);
    } finally {
      await c.endAsync();
    }
    const entries = await waitFor(async () => {
      const items = await audits(p, 'mqtt.publish');
      return items.length > 0 ? items : undefined;
    });
    assert.equal(entries[0]?.outcome, 'denied');
    assert.equal(entries[0]?.actor.id, 'sensor-1');
    assert.ok((await audits(p, 'mqtt.subscribe')).some((e) => e.outcome === 'denied'));
  });

  test('an MQTT 3.1.1 client publishing outside its namespace is disconnected', async () => {
    const c = await connectDevice(p, sensor, { clientId: 'sensor-1', protocolVersion: 4 });
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    c.publish('devices/other/telemetry', '{"a":1}', { qos: 1 });
    await closed;
    c.end(true);
  });

  test('a client id that differs from the certificate is refused (0x85) and recorded', async () => {
    await assert.rejects(connectDevice(p, sensor, { clientId: 'sensor-2' }), /client|identifier|0x85|133/i);
    const items = await waitFor(async () => {
      const all = await audits(p, 'mqtt.connect');
      return all.find((e) => /client id/.test(e.reason ?? ''));
    });
    assert.equal(items.outcome, 'denied');
  });

  test('no certificate, or one from another CA, fails the TLS handshake and is recorded', async () => {
    const handshake = (opts: { key?: string; cert?: string }) =>
      new Promise<string>((resolve) => {
        const s = tlsConnect({
          host: '127.0.0.1',
          port: p.mqttPort,
          ca: p.ca,
          servername: 'localhost',
          ...opts,
        });
        s.on('secureConnect', () => {
          // TLS 1.3: the server's verdict on our certificate arrives after the handshake.
          s.write(Buffer.from([0xc0, 0x00]));
        });
        s.on('error', (e) => resolve(e.message));
        s.on('close', () => resolve('closed'));
        s.setTimeout(3000, () => s.destroy());
      });
    const none = await handshake({});
    assert.match(none, /certificate|alert|closed|reset/i);

    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const rogueKeys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
    const rogueCa = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: 'CN=Rogue CA',
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 86_400_000),
      keys: rogueKeys,
      signingAlgorithm: alg,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
      ],
    });
    const { keyPem, csrPem } = await makeCsr('sensor-1');
    const csr = new x509.Pkcs10CertificateRequest(csrPem);
    const forged = await x509.X509CertificateGenerator.create({
      serialNumber: '02',
      subject: 'CN=sensor-1',
      issuer: rogueCa.subject,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 86_400_000),
      publicKey: csr.publicKey,
      signingKey: rogueKeys.privateKey,
      signingAlgorithm: alg,
      extensions: [
        new x509.SubjectAlternativeNameExtension([
          { type: 'url', value: 'urn:bulwark:default:device:sensor-1' },
        ]),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      ],
    });
    const rogue = await handshake({
      key: keyPem,
      cert: `${forged.toString('pem')}\n${rogueCa.toString('pem')}\n`,
    });
    assert.match(rogue, /certificate|alert|closed|reset/i);
    const tls = await waitFor(async () => {
      const items = await audits(p, 'mqtt.tls');
      return items.length >= 2 ? items : undefined;
    });
    assert.ok(tls.every((e) => e.outcome === 'denied'));
  });

  test('a disabled device cannot connect; enabling it again restores access', async () => {
    const dev = await enrollDevice(p, 'sensor-dis');
    const c = await connectDevice(p, dev, { clientId: 'sensor-dis' });
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    assert.equal((await p.api('POST', '/api/v1/devices/sensor-dis/disable')).status, 200);
    await closed;
    c.end(true);
    await assert.rejects(connectDevice(p, dev, { clientId: 'sensor-dis' }));
    await p.api('POST', '/api/v1/devices/sensor-dis/enable');
    const again = await connectDevice(p, dev, { clientId: 'sensor-dis' });
    await again.endAsync();
  });

  test('revocation drops the live session at once and refuses the next connection', async () => {
    const dev = await enrollDevice(p, 'sensor-rev');
    const c = await connectDevice(p, dev, { clientId: 'sensor-rev' });
    const closedAt = new Promise<number>((r) => c.once('close', () => r(Date.now())));
    const r = await p.api<{ revoked: string[] }>('POST', '/api/v1/devices/sensor-rev/revoke', {
      reason: 'keyCompromise',
    });
    const answeredAt = Date.now();
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.revoked, [dev.serial]);
    assert.ok((await closedAt) - answeredAt < 1000, 'dropped within one second of the revocation');
    c.end(true);
    await assert.rejects(connectDevice(p, dev, { clientId: 'sensor-rev' }));
    const refused = await waitFor(async () => {
      const all = await audits(p, 'mqtt.connect');
      return all.find((e) => /revoked/i.test(e.reason ?? ''));
    });
    assert.equal(refused.outcome, 'denied');
    const certs = await p.api<{ items: { status: string }[] }>(
      'GET',
      '/api/v1/devices/sensor-rev/certificates',
    );
    assert.equal(certs.body.items[0]?.status, 'revoked');
  });

  test('administrative actions land in the audit log', async () => {
    const items = (await p.api<{ items: AuditItem[] }>('GET', '/api/v1/audit?limit=200')).body.items;
    const actions = new Set(items.map((i) => i.action));
    for (const a of [
      'tenant.create',
      'account.create-owner',
      'device.create',
      'cert.issue',
      'cert.revoke',
      'device.disable',
    ]) {
      assert.ok(actions.has(a), `missing ${a}`);
    }
  });
});

describe('platform end to end on PostgreSQL', { skip: pgUrl ? false : 'PostgreSQL not reachable' }, () => {
  test('enroll, connect over mTLS, publish QoS 1, read back, revoke', async () => {
    const p = await startPlatform({ postgres: true });
    try {
      const dev = await enrollDevice(p, 'pg-sensor');
      const c = await connectDevice(p, dev, { clientId: 'pg-sensor' });
      for (let i = 0; i < 20; i++)
        assert.equal(
          (await publishAck(c, 'devices/pg-sensor/telemetry', JSON.stringify({ i })))?.reasonCode,
          0,
        );
      const r = await p.api<{ items: { data: { i: number } }[] }>(
        'GET',
        '/api/v1/devices/pg-sensor/telemetry?limit=100',
      );
      assert.deepEqual(
        r.body.items.map((x) => x.data.i),
        [...Array(20).keys()],
      );
      const closed = new Promise<void>((res) => c.once('close', () => res()));
      await p.api('POST', '/api/v1/devices/pg-sensor/revoke', {});
      await closed;
      c.end(true);
      await assert.rejects(connectDevice(p, dev, { clientId: 'pg-sensor' }));
    } finally {
      await p.close();
    }
  });
});
