// EST (RFC 7030) end to end on a real platform: real TLS, enrollment codes, renewal with a grace period,
// approval, manufacturer (IDevID) certificates of a registered external CA, CA revocation, OCSP, the
// certificate inventory, and interop with tools nobody here wrote (openssl, curl, mosquitto_pub).
import 'reflect-metadata';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { request } from 'node:https';
import { fixedClock } from '../src/kernel/index.ts';
import { connectDevice, startPlatform, waitFor, type Platform } from '../../../test/support/platform.ts';
import {
  certsFromPkcs7,
  estRequest,
  makeKeyAndCsr,
  makeLeaf,
  makeTestCa,
  serialOf,
  type EstRequestOptions,
} from './support/est-client.ts';

const DAY = 86_400_000;
const ci = process.env.CI === 'true' || process.env.CI === '1';
const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
const missing = ['openssl', 'curl', 'mosquitto_pub'].filter((t) => !has(t));
const interopSkip = missing.length > 0 && !ci ? `not installed: ${missing.join(', ')}` : false;
const PKCS10 = 'application/pkcs10';
// Never spawnSync a client of the platform: the server runs in this process and would be blocked.
const run = async (file: string, args: string[], cwd: string) => {
  try {
    const r = await promisify(execFile)(file, args, { cwd, encoding: 'utf8' });
    return { status: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { status: e.code ?? 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
};

interface AuditItem {
  action: string;
  outcome: string;
  reason?: string;
  target?: { type: string; id: string };
}

describe('EST enrollment end to end', { timeout: 120_000 }, () => {
  let p: Platform;
  const clock = fixedClock(Date.now());
  const est = (path: string, o: EstRequestOptions = {}) => estRequest(p.url, p.ca, path, o);
  const code = async (body: Record<string, unknown>) => {
    const r = await p.api<{ code: string; id: string }>('POST', '/api/v1/enrollment-codes', body);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body;
  };
  const enroll = async (
    user: string,
    pass: string,
    cn: string | undefined = user,
    alg?: 'RSA-1024' | 'P-384',
  ) => {
    const k = await makeKeyAndCsr(cn, alg);
    const r = await est('/.well-known/est/simpleenroll', {
      body: k.csrB64,
      contentType: PKCS10,
      basic: { user, pass },
    });
    return { ...r, keyPem: k.keyPem, cert: r.status === 200 ? certsFromPkcs7(r.text)[0] : undefined };
  };
  const audits = async (action: string) =>
    (await p.api<{ items: AuditItem[] }>('GET', `/api/v1/audit?action=${action}&limit=200`)).body.items;
  const refusal = (r: { status: number; text: string }, status: number, code: string) => {
    assert.equal(r.status, status, r.text);
    assert.match(r.text, new RegExp(`^${code}: `), r.text);
  };

  before(async () => {
    p = await startPlatform({ clock });
    for (const path of ['sensors', 'sensors/gen2', 'legacy']) {
      assert.equal((await p.api('POST', '/api/v1/fleets', { path })).status, 201);
    }
  });
  after(async () => {
    await p.close();
  });

  test('cacerts: certs-only PKCS#7 with the issuing CA and the root; csrattrs; unknown label', async () => {
    for (const path of ['/.well-known/est/cacerts', '/.well-known/est/default/cacerts']) {
      const r = await est(path);
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-type'], 'application/pkcs7-mime');
      assert.equal(r.headers['content-transfer-encoding'], 'base64');
      const certs = certsFromPkcs7(r.text);
      assert.equal(certs.length, 2);
      assert.equal(certs[1], p.ca);
      assert.ok(new X509Certificate(certs[0] ?? '').verify(new X509Certificate(p.ca).publicKey));
    }
    const attrs = await est('/.well-known/est/csrattrs');
    assert.equal(attrs.status, 200);
    assert.equal(attrs.headers['content-type'], 'application/csrattrs');
    assert.match(attrs.text, /^MC/);
    for (const label of ['nope', 'Bad_Label']) {
      refusal(await est(`/.well-known/est/${label}/cacerts`), 404, 'ERR_EST_TENANT_NOT_FOUND');
    }
  });

  test('device code: enrolls once; the certificate names the device and works for MQTT', async () => {
    const c = await code({ deviceId: 'est-1' });
    assert.match(c.code, /^bwe_/);
    const r = await enroll('est-1', c.code);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers['content-type'], 'application/pkcs7-mime; smime-type=certs-only');
    const cert = new X509Certificate(r.cert ?? '');
    assert.equal(cert.subjectAltName, 'URI:urn:bulwark:default:device:est-1');
    assert.match(cert.infoAccess ?? '', /OCSP - URI:https:\/\/localhost:\d+\/pki\/ocsp/);
    const client = await connectDevice(
      p,
      { key: r.keyPem, chain: r.cert ?? '', ca: p.ca },
      { clientId: 'est-1' },
    );
    await client.endAsync();
    // Reused code: refused, audited.
    refusal(await enroll('est-1', c.code), 403, 'ERR_EST_CODE_USED');
    const denied = (await audits('est.enroll')).filter((a) => a.outcome === 'denied');
    assert.ok(denied.some((a) => a.reason?.startsWith('ERR_EST_CODE_USED')));
    const ok = (await audits('est.enroll')).find((a) => a.outcome === 'success');
    assert.equal(ok?.target?.id, serialOf(r.cert ?? ''));
  });

  test('refusals: no credentials, wrong or foreign code, expired or revoked code, bad CSRs, content type', async () => {
    const k = await makeKeyAndCsr('est-2');
    const noAuth = await est('/.well-known/est/simpleenroll', { body: k.csrB64, contentType: PKCS10 });
    refusal(noAuth, 401, 'ERR_EST_AUTH_REQUIRED');
    assert.match(String(noAuth.headers['www-authenticate']), /^Basic realm=/);
    const c = await code({ deviceId: 'est-2' });
    refusal(await enroll('est-2', 'bwe_not-a-real-code'), 401, 'ERR_EST_CODE_INVALID');
    refusal(await enroll('est-3', c.code), 401, 'ERR_EST_CODE_INVALID'); // code made for est-2
    refusal(await enroll('bad id!', c.code), 401, 'ERR_EST_CODE_INVALID');
    // A CSR for another identity, or with a weak key, is refused before the code is counted.
    refusal(await enroll('est-2', c.code, 'someone-else'), 400, 'ERR_PKI_CSR_IDENTITY');
    refusal(await enroll('est-2', c.code, 'est-2', 'RSA-1024'), 400, 'ERR_PKI_KEY_TYPE');
    const garbage = await est('/.well-known/est/simpleenroll', {
      body: 'not base64 at all!',
      contentType: PKCS10,
      basic: { user: 'est-2', pass: c.code },
    });
    refusal(garbage, 400, 'ERR_PKI_CSR_INVALID');
    const json = await est('/.well-known/est/simpleenroll', {
      body: JSON.stringify({ csr: k.csrB64 }),
      contentType: 'application/json',
      basic: { user: 'est-2', pass: c.code },
    });
    refusal(json, 415, 'ERR_EST_CONTENT_TYPE');
    assert.equal((await enroll('est-2', c.code, undefined, 'P-384')).status, 200, 'the code was not burnt');
    // Expired and revoked codes.
    const short = await code({ deviceId: 'est-4', ttlSeconds: 60 });
    clock.advance(61_000);
    refusal(await enroll('est-4', short.code), 403, 'ERR_EST_CODE_EXPIRED');
    clock.set(Date.now()); // TLS checks certificates against real time: keep the fake clock near it
    const revoked = await code({ deviceId: 'est-5' });
    assert.equal((await p.api('POST', `/api/v1/enrollment-codes/${revoked.id}/revoke`)).status, 200);
    refusal(await enroll('est-5', revoked.code), 403, 'ERR_EST_CODE_EXPIRED');
    const list = await p.api<{ items: { id: string; status: string; code?: string }[] }>(
      'GET',
      '/api/v1/enrollment-codes',
    );
    assert.equal(list.body.items.find((i) => i.id === revoked.id)?.status, 'revoked');
    assert.ok(
      list.body.items.every((i) => i.code === undefined),
      'codes are never listed',
    );
  });

  test('fleet code: quota, new devices only, registered just in time into the fleet', async () => {
    const c = await code({ fleet: 'sensors/gen2', quota: 2 });
    for (const id of ['fleet-a', 'fleet-b']) assert.equal((await enroll(id, c.code)).status, 200);
    refusal(await enroll('fleet-c', c.code), 403, 'ERR_EST_CODE_USED');
    const dev = await p.api<{ fleet: string }>('GET', '/api/v1/devices/fleet-a');
    assert.equal(dev.body.fleet, 'sensors/gen2');
    // A fleet code cannot take over an existing device.
    const c2 = await code({ fleet: 'sensors', quota: 5 });
    refusal(await enroll('est-1', c2.code), 403, 'ERR_EST_DEVICE_EXISTS');
    const inv = await p.api<{ items: { deviceId: string; fleet: string; enrolledVia: string }[] }>(
      'GET',
      '/api/v1/certificates?fleet=sensors',
    );
    assert.deepEqual(inv.body.items.map((i) => i.deviceId).sort(), ['fleet-a', 'fleet-b']);
    assert.ok(inv.body.items.every((i) => i.enrolledVia === `code:${c.id}`));
  });

  test('failed code attempts are rate limited per source and device id', async () => {
    const k = await makeKeyAndCsr('brute-1');
    let last;
    for (let i = 0; i < 11; i++) {
      last = await est('/.well-known/est/simpleenroll', {
        body: k.csrB64,
        contentType: PKCS10,
        basic: { user: 'brute-1', pass: `bwe_guess${i}` },
      });
    }
    refusal(last ?? { status: 0, text: '' }, 429, 'ERR_RATE_LIMITED');
    assert.ok(Number(last?.headers['retry-after']) > 0);
    clock.advance(16 * 60_000); // the window passes
    const after = await est('/.well-known/est/simpleenroll', {
      body: k.csrB64,
      contentType: PKCS10,
      basic: { user: 'brute-1', pass: 'bwe_guess-again' },
    });
    refusal(after, 401, 'ERR_EST_CODE_INVALID');
    clock.set(Date.now());
  });

  test('simplereenroll rotates; the old certificate is revoked after the grace period; superseded cannot renew', async () => {
    assert.equal(
      (
        await p.api('PUT', '/api/v1/enrollment-settings', {
          fleet: 'legacy',
          certDays: 30,
          graceSeconds: 600,
        })
      ).status,
      200,
    );
    const c = await code({ fleet: 'legacy', quota: 1 });
    const first = await enroll('rot-1', c.code);
    assert.equal(first.status, 200);
    const firstCert = new X509Certificate(first.cert ?? '');
    assert.ok(Math.abs(firstCert.validToDate.getTime() - clock.now() - 30 * DAY) < 60_000, 'fleet lifetime');
    const live = await connectDevice(
      p,
      { key: first.keyPem, chain: first.cert ?? '', ca: p.ca },
      { clientId: 'rot-1' },
    );
    const next = await makeKeyAndCsr('rot-1');
    const renewed = await est('/.well-known/est/simplereenroll', {
      body: next.csrB64,
      contentType: PKCS10,
      cert: first.cert ?? '',
      key: first.keyPem,
    });
    assert.equal(renewed.status, 200, renewed.text);
    const newCert = certsFromPkcs7(renewed.text)[0] ?? '';
    assert.notEqual(serialOf(newCert), serialOf(first.cert ?? ''));
    // The old certificate is superseded: it cannot renew again (a copy of it cannot fork the identity).
    const again = await est('/.well-known/est/simplereenroll', {
      body: next.csrB64,
      contentType: PKCS10,
      cert: first.cert ?? '',
      key: first.keyPem,
    });
    refusal(again, 403, 'ERR_EST_CERT_SUPERSEDED');
    refusal(
      await est('/.well-known/est/simplereenroll', { body: next.csrB64, contentType: PKCS10 }),
      401,
      'ERR_EST_REENROLL_CERT',
    );
    // Within the grace period the old session lives; after it the sweep revokes and drops it.
    assert.equal(await p.app.services.est.sweep(), 0);
    assert.ok(p.app.mqtt.isConnected('default', 'rot-1'));
    const closed = new Promise<void>((resolve) => live.once('close', () => resolve()));
    clock.advance(601_000);
    assert.equal(await p.app.services.est.sweep(), 1);
    await closed;
    const old = await p.api<{ status: string; revocationReason: string }[]>(
      'GET',
      `/api/v1/certificates?deviceId=rot-1&status=revoked`,
    );
    assert.equal(
      (old.body as unknown as { items: { revocationReason: string }[] }).items[0]?.revocationReason,
      'superseded',
    );
    const c2 = await connectDevice(p, { key: next.keyPem, chain: newCert, ca: p.ca }, { clientId: 'rot-1' });
    await c2.endAsync();
    clock.set(Date.now());
    assert.ok((await audits('est.reenroll')).some((a) => a.outcome === 'success'));
    assert.ok((await audits('est.reenroll')).some((a) => a.reason?.startsWith('ERR_EST_CERT_SUPERSEDED')));
  });

  test('operator approval: 202 with Retry-After until approved, then the certificate', async () => {
    const c = await code({ fleet: 'sensors', quota: 3, approval: true });
    const k = await makeKeyAndCsr('appr-1');
    const req = () =>
      est('/.well-known/est/simpleenroll', {
        body: k.csrB64,
        contentType: PKCS10,
        basic: { user: 'appr-1', pass: c.code },
      });
    const pending = await req();
    assert.equal(pending.status, 202, pending.text);
    assert.equal(pending.headers['retry-after'], '60');
    assert.equal((await req()).status, 202);
    const list = await p.api<{ items: { id: string; deviceId: string }[] }>(
      'GET',
      '/api/v1/enrollment-requests?status=pending',
    );
    const id = list.body.items.find((i) => i.deviceId === 'appr-1')?.id ?? '';
    assert.equal((await p.api('POST', `/api/v1/enrollment-requests/${id}/approve`)).status, 200);
    const done = await req();
    assert.equal(done.status, 200, done.text);
    // A rejected one stays refused.
    const k2 = await makeKeyAndCsr('appr-2');
    const r2 = () =>
      est('/.well-known/est/simpleenroll', {
        body: k2.csrB64,
        contentType: PKCS10,
        basic: { user: 'appr-2', pass: c.code },
      });
    assert.equal((await r2()).status, 202);
    const id2 = (
      await p.api<{ items: { id: string; deviceId: string }[] }>(
        'GET',
        '/api/v1/enrollment-requests?status=pending',
      )
    ).body.items.find((i) => i.deviceId === 'appr-2')?.id;
    assert.equal((await p.api('POST', `/api/v1/enrollment-requests/${id2}/reject`)).status, 200);
    refusal(await r2(), 403, 'ERR_EST_REJECTED');
  });

  test('external CA: proof of possession, IDevID enrollment into its fleet, disable, remove with revocation', async () => {
    const maker = await makeTestCa('Acme Manufacturing Root');
    const sub = await makeTestCa('Acme Line 7', maker);
    // Proof of possession: refused without a fresh code as CN, or when another key signed it.
    const regCode = (await p.api<{ code: string }>('POST', '/api/v1/cas/external/registration-codes')).body
      .code;
    const other = await makeTestCa('Someone Else');
    const forged = await makeLeaf(other, `CN=${regCode}`);
    const register = (verificationCertificate: string, certificate = maker.pem) =>
      p.api<{ id: string; code?: string; fleet: string }>('POST', '/api/v1/cas/external', {
        certificate,
        verificationCertificate,
        fleet: 'sensors',
        name: 'Acme',
      });
    const badPop = await register(forged.certPem);
    assert.equal(badPop.status, 400);
    assert.equal(badPop.body.code, 'ERR_PKI_CA_CHALLENGE');
    const wrongCn = await register((await makeLeaf(maker, 'CN=0123456789abcdef0123456789abcdef')).certPem);
    assert.equal(wrongCn.body.code, 'ERR_PKI_CA_CHALLENGE');
    for (const bad of ['garbage', (await makeLeaf(maker, 'CN=leaf')).certPem]) {
      const r = await register((await makeLeaf(maker, `CN=${regCode}`)).certPem, bad);
      assert.equal(r.status, 400);
      assert.match(String(r.body.code), /ERR_PKI_EXTERNAL_CA_INVALID|ERR_VALIDATION/);
    }
    const ok = await register((await makeLeaf(maker, `CN=${regCode}`)).certPem);
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
    const reuse = await register((await makeLeaf(maker, `CN=${regCode}`)).certPem);
    assert.equal(reuse.body.code, 'ERR_PKI_CA_CHALLENGE', 'a registration code is one-time');
    const caId = ok.body.id;
    // A device with a manufacturer certificate from a sub-CA (sent along in TLS) enrolls without a code.
    const idevid = await makeLeaf(sub, 'CN=acme-0001', { eku: ['1.3.6.1.5.5.7.3.2'] });
    const k = await makeKeyAndCsr('acme-0001');
    const viaIdevid = (leaf = idevid) =>
      est('/.well-known/est/simpleenroll', {
        body: k.csrB64,
        contentType: PKCS10,
        cert: leaf.certPem + sub.pem,
        key: leaf.keyPem,
      });
    const r = await viaIdevid();
    assert.equal(r.status, 200, r.text);
    const ldevid = certsFromPkcs7(r.text)[0] ?? '';
    assert.equal((await p.api<{ fleet: string }>('GET', '/api/v1/devices/acme-0001')).body.fleet, 'sensors');
    // The same manufacturer certificate may bootstrap the device again (it lost its LDevID).
    assert.equal((await viaIdevid()).status, 200);
    // Negative: unknown CA, expired manufacturer certificate, wrong EKU.
    const stranger = await makeLeaf(other, 'CN=acme-0002');
    refusal(await viaIdevid(stranger), 401, 'ERR_EST_UNKNOWN_CA');
    const expired = await makeLeaf(sub, 'CN=acme-0003', {
      notAfter: new Date(Date.now() - DAY),
      notBefore: new Date(Date.now() - 2 * DAY),
    });
    refusal(await viaIdevid(expired), 401, 'ERR_EST_IDEVID_INVALID');
    const serverOnly = await makeLeaf(sub, 'CN=acme-0004', { eku: ['1.3.6.1.5.5.7.3.1'] });
    refusal(await viaIdevid(serverOnly), 401, 'ERR_EST_IDEVID_INVALID');
    // The LDevID works for MQTT; the manufacturer certificate does not (enrollment only).
    const live = await connectDevice(
      p,
      { key: k.keyPem, chain: ldevid, ca: p.ca },
      { clientId: 'acme-0001' },
    );
    await assert.rejects(
      connectDevice(p, { key: idevid.keyPem, chain: idevid.certPem, ca: p.ca }, { clientId: 'acme-0001' }),
    );
    // Disabled: refused at enrollment.
    assert.equal((await p.api('POST', `/api/v1/cas/external/${caId}/disable`, {})).status, 200);
    refusal(await viaIdevid(), 403, 'ERR_EST_CA_DISABLED');
    assert.equal((await p.api('POST', `/api/v1/cas/external/${caId}/enable`, {})).status, 200);
    const list = await p.api<{ items: { serial: string }[] }>(
      'GET',
      `/api/v1/certificates?ca=${caId}&status=active`,
    );
    assert.equal(list.body.items.length, 2);
    // Removed with its certificates: the live session goes at once.
    const closed = new Promise<void>((resolve) => live.once('close', () => resolve()));
    const rm = await p.api<{ revoked: string[] }>(
      'DELETE',
      `/api/v1/cas/external/${caId}?revokeCertificates=true`,
    );
    assert.equal(rm.status, 200);
    assert.equal(rm.body.revoked.length, 2);
    await closed;
    refusal(await viaIdevid(), 401, 'ERR_EST_UNKNOWN_CA');
  });

  test(
    'OCSP: good, then revoked; malformed requests get malformedRequest',
    { skip: interopSkip },
    async () => {
      const c = await code({ deviceId: 'ocsp-1' });
      const r = await enroll('ocsp-1', c.code);
      const dir = mkdtempSync(join(tmpdir(), 'ocsp-'));
      try {
        const chain = certsFromPkcs7((await est('/.well-known/est/cacerts')).text);
        writeFileSync(join(dir, 'issuer.pem'), chain[0] ?? '');
        writeFileSync(join(dir, 'ca.pem'), p.ca);
        writeFileSync(join(dir, 'dev.pem'), r.cert ?? '');
        const ask = () =>
          run(
            'openssl',
            [
              'ocsp',
              '-issuer',
              'issuer.pem',
              '-cert',
              'dev.pem',
              '-url',
              `${p.url}/pki/ocsp`,
              '-CAfile',
              'ca.pem',
            ],
            dir,
          );
        const good = await ask();
        assert.match(good.stdout, /dev\.pem: good/, good.stderr);
        assert.match(good.stderr + good.stdout, /Response verify OK/);
        assert.equal(
          (
            await p.api('POST', `/api/v1/certificates/${serialOf(r.cert ?? '')}/revoke`, {
              reason: 'keyCompromise',
            })
          ).status,
          200,
        );
        const revoked = await ask();
        assert.match(revoked.stdout, /dev\.pem: revoked/, revoked.stderr);
        assert.match(revoked.stdout, /Reason: keyCompromise/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      // Malformed input table: every one gets an OCSPResponse with status malformedRequest (1).
      const malformed: [string, Buffer][] = [
        ['empty', Buffer.alloc(0)],
        ['not DER', Buffer.from('hello')],
        ['truncated', Buffer.from([0x30, 0x82, 0x01])],
        ['empty sequence', Buffer.from([0x30, 0x00])],
        ['trailing bytes', Buffer.concat([Buffer.from([0x30, 0x00]), Buffer.from([0])])],
        ['huge', Buffer.alloc(9000, 0x30)],
      ];
      for (const [name, body] of malformed) {
        const res = await est('/pki/ocsp', { body, contentType: 'application/ocsp-request' });
        assert.equal(res.status, 200, name);
        assert.equal(res.headers['content-type'], 'application/ocsp-response', name);
        assert.deepEqual([...Buffer.from(res.text, 'latin1')], [0x30, 0x03, 0x0a, 0x01, 0x01], name);
      }
      const get = await est('/pki/ocsp/' + encodeURIComponent(Buffer.from('junk').toString('base64')));
      assert.deepEqual([...Buffer.from(get.text, 'latin1')], [0x30, 0x03, 0x0a, 0x01, 0x01]);
    },
  );

  test('inventory: by device, fleet, CA, key type and expiring within N days', async () => {
    const all = await p.api<{
      items: { serial: string; notAfter: string; keyType: string; status: string }[];
    }>('GET', '/api/v1/certificates?limit=500');
    assert.ok(all.body.items.length > 5);
    const soon = await p.api<{ items: { deviceId: string; status: string }[] }>(
      'GET',
      '/api/v1/certificates?expiringWithinDays=31',
    );
    assert.ok(soon.body.items.length >= 1);
    assert.ok(soon.body.items.every((i) => i.status === 'active'));
    assert.ok(
      soon.body.items.some((i) => i.deviceId === 'rot-1'),
      'the 30-day fleet certificate',
    );
    const p384 = await p.api<{ items: { keyType: string }[] }>('GET', '/api/v1/certificates?keyType=P-384');
    assert.ok(p384.body.items.length >= 1 && p384.body.items.every((i) => i.keyType === 'P-384'));
    const bad = await p.api<{ code: string }>('GET', '/api/v1/certificates?fleet=Bad%20Fleet');
    assert.equal(bad.status, 400);
  });

  test('revoking the issuing CA drops its sessions, refuses new handshakes and starts a new CA', async () => {
    const c = await code({ deviceId: 'carev-1' });
    const r = await enroll('carev-1', c.code);
    const live = await connectDevice(
      p,
      { key: r.keyPem, chain: r.cert ?? '', ca: p.ca },
      { clientId: 'carev-1' },
    );
    const cas = await p.api<{ items: { id: string; kind: string; status: string }[] }>('GET', '/api/v1/cas');
    const issuing = cas.body.items.find((i) => i.kind === 'issuing' && i.status === 'active');
    assert.ok(issuing);
    const closedAt = new Promise<number>((resolve) => live.once('close', () => resolve(Date.now())));
    const rev = await p.api<{ revokedCertificates: number; items: { id: string; status: string }[] }>(
      'POST',
      `/api/v1/cas/${issuing.id}/revoke`,
      { reason: 'cACompromise' },
    );
    assert.equal(rev.status, 200, JSON.stringify(rev.body));
    // The revocation takes effect when the call commits; making the replacement CA is part of the call.
    const answeredAt = Date.now();
    assert.ok(rev.body.revokedCertificates >= 1);
    assert.ok((await closedAt) - answeredAt < 1000, 'session dropped within a second of the revocation');
    await assert.rejects(
      connectDevice(p, { key: r.keyPem, chain: r.cert ?? '', ca: p.ca }, { clientId: 'carev-1' }),
    );
    const next = rev.body.items.find((i) => i.id === 'issuing:default:2');
    assert.equal(next?.status, 'active');
    const chain = certsFromPkcs7((await est('/.well-known/est/cacerts')).text);
    assert.match(new X509Certificate(chain[0] ?? '').subject, /Issuing CA default/);
    assert.notEqual(chain[0], certsFromPkcs7((await est('/.well-known/est/cacerts')).text)[1]);
    // The device enrolls again under the new CA and connects.
    const c2 = await code({ deviceId: 'carev-1' });
    const again = await enroll('carev-1', c2.code);
    assert.equal(again.status, 200, again.text);
    await waitFor(async () => {
      try {
        const cl = await connectDevice(
          p,
          { key: again.keyPem, chain: again.cert ?? '', ca: p.ca },
          { clientId: 'carev-1' },
        );
        await cl.endAsync();
        return true;
      } catch {
        return undefined;
      }
    });
  });

  test(
    'interop: openssl req + curl against EST, then mosquitto_pub with the certificate',
    { skip: interopSkip },
    async () => {
      const c = await code({ deviceId: 'interop-1' });
      const dir = mkdtempSync(join(tmpdir(), 'est-interop-'));
      const sh = async (cmd: string) => {
        const r = await run('sh', ['-c', cmd], dir);
        assert.equal(r.status, 0, `${cmd}\n${r.stderr}`);
        return r.stdout;
      };
      try {
        writeFileSync(join(dir, 'ca.pem'), p.ca);
        await sh(
          `curl -sf --cacert ca.pem ${p.url}/.well-known/est/cacerts | tr -d '\\r\\n' | base64 -d | openssl pkcs7 -inform DER -print_certs -out cacerts.pem`,
        );
        assert.equal(
          (readFileSync(join(dir, 'cacerts.pem'), 'utf8').match(/BEGIN CERTIFICATE/g) ?? []).length,
          2,
        );
        await sh(
          `curl -sf --cacert ca.pem ${p.url}/.well-known/est/csrattrs | tr -d '\\r\\n' | base64 -d | openssl asn1parse -inform DER > attrs.txt`,
        );
        assert.match(readFileSync(join(dir, 'attrs.txt'), 'utf8'), /ecdsa-with-SHA256/);
        await sh(
          `openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout dev.key -subj /CN=interop-1 -outform DER 2>/dev/null | base64 > csr.b64`,
        );
        await sh(
          `curl -sf --cacert ca.pem -u interop-1:${c.code} -H 'Content-Type: application/pkcs10' --data-binary @csr.b64 ${p.url}/.well-known/est/simpleenroll | tr -d '\\r\\n' | base64 -d | openssl pkcs7 -inform DER -print_certs -out dev.pem`,
        );
        assert.match(
          await sh('openssl x509 -in dev.pem -noout -ext subjectAltName'),
          /urn:bulwark:default:device:interop-1/,
        );
        await sh(
          `mosquitto_pub -h 127.0.0.1 -p ${p.mqttPort} --cafile ca.pem --cert dev.pem --key dev.key -i interop-1 -q 1 -t devices/interop-1/telemetry -m '{"temp":20}'`,
        );
        const t = await p.api<{ items: { data: unknown }[] }>('GET', '/api/v1/devices/interop-1/telemetry');
        assert.deepEqual(
          t.body.items.map((i) => i.data),
          [{ temp: 20 }],
        );
        // Renewal with curl and the current certificate as TLS client certificate.
        await sh(
          `openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout dev2.key -subj /CN=interop-1 -outform DER 2>/dev/null | base64 > csr2.b64`,
        );
        await sh(
          `curl -sf --cacert ca.pem --cert dev.pem --key dev.key -H 'Content-Type: application/pkcs10' --data-binary @csr2.b64 ${p.url}/.well-known/est/simplereenroll | tr -d '\\r\\n' | base64 -d | openssl pkcs7 -inform DER -print_certs -out dev2.pem`,
        );
        await sh(
          `mosquitto_pub -h 127.0.0.1 -p ${p.mqttPort} --cafile ca.pem --cert dev2.pem --key dev2.key -i interop-1 -q 1 -t devices/interop-1/telemetry -m '{"temp":21}'`,
        );
        // The CRL named in the certificate verifies with openssl crl.
        const serial = serialOf(readFileSync(join(dir, 'dev.pem'), 'utf8'));
        assert.equal((await p.api('POST', `/api/v1/certificates/${serial}/revoke`, {})).status, 200);
        await sh(`curl -sf --cacert ca.pem ${p.url}/pki/crl/default.crl -o crl.der`);
        await sh(`openssl crl -inform DER -in crl.der -CAfile cacerts.pem -noout 2>&1 | grep -q 'verify OK'`);
        assert.match(
          await sh('openssl crl -inform DER -in crl.der -noout -text'),
          new RegExp(serial.toUpperCase()),
        );
        // A revoked certificate cannot publish any more.
        const refused = await run(
          'sh',
          [
            '-c',
            `mosquitto_pub -h 127.0.0.1 -p ${p.mqttPort} --cafile ca.pem --cert dev.pem --key dev.key -i interop-1 -q 1 -t devices/interop-1/telemetry -m '{"temp":22}'`,
          ],
          dir,
        );
        assert.notEqual(refused.status, 0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  test('malformed EST requests: a table of bodies and Authorization headers', async () => {
    const c = await code({ deviceId: 'table-1' });
    const k = await makeKeyAndCsr('table-1');
    const der = Buffer.from(k.csrB64.replace(/\s/g, ''), 'base64');
    const bodies: [string, string, string][] = [
      ['empty body', '', 'ERR_PKI_CSR_INVALID'],
      ['not base64', '@@@@', 'ERR_PKI_CSR_INVALID'],
      ['base64 of garbage', Buffer.from('garbage!').toString('base64'), 'ERR_PKI_CSR_INVALID'],
      ['truncated DER', der.subarray(0, der.length - 10).toString('base64'), 'ERR_PKI_CSR_INVALID'],
      ['trailing bytes', Buffer.concat([der, Buffer.from([0, 0])]).toString('base64'), 'ERR_PKI_CSR_INVALID'],
      ['a certificate, not a CSR', p.ca, 'ERR_PKI_CSR_INVALID'],
      ['oversized', 'A'.repeat(40_000), 'ERR_PKI_CSR_INVALID'],
    ];
    for (const [name, body, expected] of bodies) {
      const r = await est('/.well-known/est/simpleenroll', {
        body,
        contentType: PKCS10,
        basic: { user: 'table-1', pass: c.code },
      });
      assert.equal(r.status, 400, `${name}: ${r.text}`);
      assert.match(r.text, new RegExp(`^${expected}: `), name);
    }
    const headers: [string, string][] = [
      ['Bearer token', `Bearer ${p.token}`],
      ['Basic without colon', `Basic ${Buffer.from('table-1').toString('base64')}`],
      ['Basic not base64', 'Basic !!!'],
      ['Basic with nothing', 'Basic '],
    ];
    for (const [name, authorization] of headers) {
      const r = await new Promise<{ status: number; text: string }>((resolve, reject) => {
        const req = request(
          new URL('/.well-known/est/simpleenroll', p.url),
          { method: 'POST', ca: p.ca, agent: false, headers: { authorization, 'content-type': PKCS10 } },
          (res) => {
            let text = '';
            res.on('data', (d: Buffer) => (text += d.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
          },
        );
        req.on('error', reject);
        req.end(k.csrB64);
      });
      refusal(r, 401, 'ERR_EST_AUTH_REQUIRED');
      void name;
    }
    // None of that used the code.
    assert.equal((await enroll('table-1', c.code)).status, 200);
  });
});
