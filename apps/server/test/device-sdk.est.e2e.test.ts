// The device SDK's EST enroller (RFC 7030) against a real platform: simpleenroll with a one-time code,
// MQTT with the certificate it got, simplereenroll with the current certificate as TLS client
// certificate, approval (202 + Retry-After), and the server's ERR_... codes surfacing in the errors.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  createCsr,
  createDevice,
  EnrollmentError,
  estEnroller,
  generateSoftwareKey,
  softwareKey,
  type DeviceClient,
} from '@bulwark/device';
import { startPlatform, type Platform } from '../../../test/support/platform.ts';
import { tempDir } from '../../../test/support/db.ts';

describe('device SDK: EST enrollment end to end', { timeout: 120_000 }, () => {
  let p: Platform;
  let work: { path: string; cleanup(): void };
  const devices: DeviceClient[] = [];
  const newCode = async (body: Record<string, unknown>) => {
    const r = await p.api<{ code: string }>('POST', '/api/v1/enrollment-codes', body);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.code;
  };
  const refusedWith = (status: number, code: string) => (err: unknown) => {
    assert.ok(err instanceof EnrollmentError, String(err));
    assert.equal(err.code, code, err.message);
    assert.equal(err.status, status);
    assert.match(err.message, new RegExp(code));
    return true;
  };

  before(async () => {
    p = await startPlatform();
    work = tempDir('bulwark-sdk-est-');
    assert.equal((await p.api('POST', '/api/v1/fleets', { path: 'field' })).status, 201);
  });
  after(async () => {
    for (const d of devices) await d.close();
    await p.close();
    work.cleanup();
  });

  test('cacerts: the trust bundle, issuing CA then root', async () => {
    for (const tenant of [undefined, 'default']) {
      const certs = await estEnroller({ url: p.url, ca: p.ca, ...(tenant ? { tenant } : {}) }).cacerts();
      assert.equal(certs.length, 2);
      assert.equal(certs[1], p.ca);
      assert.ok(new X509Certificate(certs[0] ?? '').verify(new X509Certificate(p.ca).publicKey));
    }
    await assert.rejects(
      estEnroller({ url: p.url, ca: p.ca, tenant: 'nope' }).cacerts(),
      refusedWith(404, 'ERR_EST_TENANT_NOT_FOUND'),
    );
  });

  test('enrolls with a code, publishes over MQTT (QoS 1 acked), renews via simplereenroll and reconnects', async () => {
    const id = 'est-sdk-1';
    const code = await newCode({ deviceId: id });
    const stateDir = join(work.path, id);
    const d = createDevice({
      deviceId: id,
      url: `mqtts://127.0.0.1:${p.mqttPort}`,
      servername: 'localhost',
      stateDir,
      enroller: estEnroller({ url: p.url, ca: p.ca, code }),
      renewal: { enabled: false },
      backoff: { baseMs: 20, maxMs: 200 },
    });
    devices.push(d);
    await d.start();
    const first = new X509Certificate(readFileSync(join(stateDir, 'device.crt')));
    assert.equal(first.subjectAltName, `URI:urn:bulwark:default:device:${id}`);
    assert.equal(readFileSync(join(stateDir, 'ca.crt'), 'utf8'), p.ca);
    await d.waitConnected(10_000);
    await d.telemetry({ temp: 20.5 }); // resolves on PUBACK

    const oldKey = softwareKey(createPrivateKey(readFileSync(join(stateDir, 'device.key'), 'utf8')));
    const oldChain = readFileSync(join(stateDir, 'device.crt'), 'utf8');
    const reconnected = new Promise((r) => d.once('connect', () => r(undefined)));
    await d.renewCertificate();
    await reconnected;
    const second = new X509Certificate(readFileSync(join(stateDir, 'device.crt')));
    assert.notEqual(second.serialNumber, first.serialNumber);
    assert.equal(second.subjectAltName, first.subjectAltName);
    assert.equal(d.certificate?.serial.toLowerCase(), second.serialNumber.toLowerCase());
    await d.telemetry({ temp: 21 });
    const rows = await p.api<{ items: { data: Record<string, unknown> }[] }>(
      'GET',
      `/api/v1/devices/${id}/telemetry?limit=10`,
    );
    assert.deepEqual(
      rows.body.items.map((r) => r.data),
      [{ temp: 20.5 }, { temp: 21 }],
    );
    const certs = await p.api<{ items: unknown[] }>('GET', `/api/v1/devices/${id}/certificates`);
    assert.equal(certs.body.items.length, 2);

    // The superseded certificate cannot renew again: the server's code is in the error.
    const fork = generateSoftwareKey('p256');
    await assert.rejects(
      estEnroller({ url: p.url, ca: p.ca }).renew({
        deviceId: id,
        csrPem: await createCsr(id, fork),
        current: { certificateChainPem: oldChain, key: oldKey },
      }),
      refusedWith(403, 'ERR_EST_CERT_SUPERSEDED'),
    );
    await d.close();
  });

  test('an EST-enrolled device answers commands and renews by itself before its certificate expires', async () => {
    const id = 'est-sdk-auto';
    const code = await newCode({ deviceId: id });
    // The device's clock says 70 of the certificate's 90 days have passed: less than the third of
    // its lifetime at which it renews is left. After the renewal the clock is right again.
    let skew = 70 * 86_400_000;
    const d = createDevice({
      deviceId: id,
      url: `mqtts://127.0.0.1:${p.mqttPort}`,
      servername: 'localhost',
      stateDir: join(work.path, id),
      enroller: estEnroller({ url: p.url, ca: p.ca, code }),
      backoff: { baseMs: 20, maxMs: 200 },
      now: () => Date.now() + skew,
    });
    devices.push(d);
    d.onCommand('ping', () => 'pong');
    // Connected again after the renewal: with the new certificate.
    const renewedAndConnected = new Promise<void>((r) =>
      d.once('renewed', () => {
        skew = 0;
        d.once('connect', () => r());
      }),
    );
    await d.start();
    const enrolledSerial = d.certificate?.serial;
    await renewedAndConnected; // by the renewal timer, over simplereenroll
    assert.notEqual(d.certificate?.serial, enrolledSerial);
    const cmd = await p.api<{ status: string; result: unknown }>('POST', `/api/v1/devices/${id}/commands`, {
      name: 'ping',
    });
    assert.deepEqual([cmd.body.status, cmd.body.result], ['succeeded', 'pong']);
    const audit = await p.api<{ items: { action: string; actor: { id: string } }[] }>(
      'GET',
      '/api/v1/audit?limit=100',
    );
    const mine = audit.body.items.filter((e) => e.actor.id === id).map((e) => e.action);
    assert.ok(mine.includes('est.enroll') && mine.includes('est.reenroll'), JSON.stringify(mine));
    const certs = await p.api<{ items: { serial: string; status: string }[] }>(
      'GET',
      `/api/v1/devices/${id}/certificates`,
    );
    assert.equal(certs.body.items.length, 2);
    await d.close();
  });

  test('a reused code is refused with the server code; a wrong code too', async () => {
    const id = 'est-sdk-2';
    const code = await newCode({ deviceId: id });
    const enroller = estEnroller({ url: p.url, ca: p.ca, code });
    const csr = async () => createCsr(id, generateSoftwareKey('p256'));
    const ok = await enroller.enroll({ deviceId: id, csrPem: await csr() });
    assert.match(ok.certificateChainPem, /^-----BEGIN CERTIFICATE-----/);
    await assert.rejects(
      enroller.enroll({ deviceId: id, csrPem: await csr() }),
      refusedWith(403, 'ERR_EST_CODE_USED'),
    );
    await assert.rejects(
      estEnroller({ url: p.url, ca: p.ca, code: 'bwe_not-a-real-code' }).enroll({
        deviceId: 'est-sdk-3',
        csrPem: await createCsr('est-sdk-3', generateSoftwareKey('p256')),
      }),
      refusedWith(401, 'ERR_EST_CODE_INVALID'),
    );
  });

  test('approval: waits through 202 + Retry-After, bounded', async () => {
    const code = await newCode({ fleet: 'field', quota: 3, approval: true });
    const waits: number[] = [];
    const approveOnWait = async (ms: number) => {
      waits.push(ms);
      if (waits.length < 2) return; // stay pending once more
      const list = await p.api<{ items: { id: string; deviceId: string }[] }>(
        'GET',
        '/api/v1/enrollment-requests?status=pending',
      );
      const req = list.body.items.find((i) => i.deviceId === 'est-appr-1');
      assert.ok(req);
      assert.equal((await p.api('POST', `/api/v1/enrollment-requests/${req.id}/approve`)).status, 200);
    };
    const key = generateSoftwareKey('p256');
    const res = await estEnroller({ url: p.url, ca: p.ca, code, sleep: approveOnWait }).enroll({
      deviceId: 'est-appr-1',
      csrPem: await createCsr('est-appr-1', key),
    });
    assert.deepEqual(waits, [60_000, 60_000]);
    assert.match(res.certificateChainPem, /BEGIN CERTIFICATE/);

    // Never approved: gives up after maxPendingRetries.
    let slept = 0;
    await assert.rejects(
      estEnroller({
        url: p.url,
        ca: p.ca,
        code,
        maxPendingRetries: 2,
        maxRetryAfterMs: 5,
        sleep: async (ms) => {
          assert.equal(ms, 5);
          slept++;
        },
      }).enroll({ deviceId: 'est-appr-2', csrPem: await createCsr('est-appr-2', key) }),
      refusedWith(202, 'EST_PENDING'),
    );
    assert.equal(slept, 2);
  });
});
