// PKI and enrollment: device certificates issued per second (the CA signing path, and EST
// /simpleenroll end to end over HTTPS with enrollment codes), OCSP responses per second, and full and
// resumed mutual-TLS handshakes per second against the platform's MQTT listener (which identifies the
// device and checks the in-memory revocation set on every connection, resumed or not).
// Everything runs in this process (platform and clients share the cores): the figures are lower bounds.
import 'reflect-metadata';
import { connect, type TLSSocket } from 'node:tls';
import { webcrypto } from 'node:crypto';
import { request } from 'node:https';
import * as x509 from '@peculiar/x509';
import { createHash } from 'node:crypto';
import { issuerHashInput } from '../../apps/server/src/modules/pki/ocsp.ts';
import { startPlatform, type Platform } from '../../test/support/platform.ts';
import type { Suite, SuiteContext } from '../lib/types.ts';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);
const CONCURRENCY = 16;

const tlv = (tag: number, body: Buffer): Buffer => {
  const len =
    body.length < 128 ? Buffer.from([body.length]) : Buffer.from([0x82, body.length >> 8, body.length & 255]);
  return Buffer.concat([Buffer.from([tag]), len, body]);
};
const seq = (...items: Buffer[]) => tlv(0x30, Buffer.concat(items));

/** A DER OCSPRequest (RFC 6960 §4.1.1) for one serial of `issuerDer`, SHA-1 CertID as openssl sends. */
function ocspRequest(issuerDer: ArrayBuffer, serialHex: string): Buffer {
  const { nameDer, keyBits } = issuerHashInput(issuerDer);
  const sha1 = (b: Uint8Array) => createHash('sha1').update(b).digest();
  let serial = Buffer.from(serialHex.length % 2 ? `0${serialHex}` : serialHex, 'hex');
  if ((serial[0] ?? 0) & 0x80) serial = Buffer.concat([Buffer.from([0]), serial]);
  const sha1Alg = seq(Buffer.from([0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a]), Buffer.from([0x05, 0x00]));
  const certId = seq(sha1Alg, tlv(0x04, sha1(nameDer)), tlv(0x04, sha1(keyBits)), tlv(0x02, serial));
  return seq(seq(seq(seq(certId))));
}

async function csrs(n: number, prefix: string): Promise<{ id: string; keyPem: string; csrB64: string }[]> {
  const out = [];
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  for (let i = 0; i < n; i++) {
    const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
    const id = `${prefix}-${i}`;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: `CN=${id}`,
      keys,
      signingAlgorithm: alg,
    });
    const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
    out.push({
      id,
      keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'),
      csrB64: Buffer.from(csr.rawData).toString('base64'),
    });
  }
  return out;
}

/** Runs `fn` with CONCURRENCY workers until `seconds` pass or `limit` calls are made; calls per second. */
async function rate(
  seconds: number,
  limit: number,
  fn: (i: number) => Promise<void>,
): Promise<{ perSecond: number; count: number; failed: number }> {
  const until = performance.now() + seconds * 1000;
  let next = 0;
  let failed = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < until && next < limit) {
        const i = next++;
        await fn(i).catch(() => void failed++);
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  return { perSecond: Math.round((next - failed) / elapsed), count: next, failed };
}

function post(
  p: Platform,
  path: string,
  body: string | Buffer,
  headers: Record<string, string>,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, p.url), { method: 'POST', ca: p.ca, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function handshake(
  p: Platform,
  cred: { key: string; cert: string },
  session?: Buffer,
): Promise<{ reused: boolean; session?: Buffer }> {
  return new Promise((resolve, reject) => {
    const s: TLSSocket = connect({
      host: '127.0.0.1',
      port: p.mqttPort,
      servername: 'localhost',
      ca: p.ca,
      key: cred.key,
      cert: cred.cert,
      minVersion: 'TLSv1.3',
      ...(session ? { session } : {}),
    });
    let ticket: Buffer | undefined;
    s.once('session', (t: Buffer) => {
      ticket = t;
      s.destroy();
      resolve({ reused: s.isSessionReused(), session: ticket });
    });
    s.once('secureConnect', () => {
      // A resumed TLS 1.3 session may bring no new ticket; done once the handshake is.
      if (session) {
        const reused = s.isSessionReused();
        s.destroy();
        resolve({ reused });
      }
    });
    s.once('error', reject);
  });
}

const suite: Suite = {
  name: 'pki',
  description:
    'Certificates issued per second (CA signing and EST simpleenroll over HTTPS), OCSP responses per second, full and resumed mTLS handshakes per second with identification and revocation checks',
  order: 60,
  async run(ctx: SuiteContext) {
    const seconds = ctx.quick ? 2 : 8;
    const n = ctx.quick ? 200 : 2000;
    ctx.log(`pki: preparing ${n} device keys and CSRs`);
    const pool = await csrs(n, 'bench');
    const p = await startPlatform();
    try {
      const pki = p.app.services.pki;
      // 1. The CA signing path: parse + verify CSR, sign, store (SQLite, synchronous=FULL).
      ctx.log('pki: issuing certificates through the CA');
      const issue = await rate(seconds, n, async (i) => {
        const c = pool[i];
        if (!c) return;
        await pki.signDeviceCsr({ tenantId: 'default', deviceId: c.id, csrPem: c.csrB64 });
      });
      // 2. EST end to end: HTTPS, Basic auth with a quota code, JIT registration, signing, audit.
      ctx.log('pki: EST simpleenroll over HTTPS');
      const est = await csrs(Math.min(n, 1000), 'est');
      const code = await p.api<{ code: string }>('POST', '/api/v1/enrollment-codes', {
        quota: est.length,
        ttlSeconds: 3600,
      });
      const estRate = await rate(seconds, est.length, async (i) => {
        const c = est[i];
        if (!c) return;
        const status = await post(p, '/.well-known/est/simpleenroll', c.csrB64, {
          'content-type': 'application/pkcs10',
          authorization: `Basic ${Buffer.from(`${c.id}:${code.body.code}`).toString('base64')}`,
        });
        if (status !== 200) throw new Error(`EST ${status}`);
      });
      // 3. OCSP: one request for a known certificate, answered and signed each time.
      ctx.log('pki: OCSP responses');
      const page = await pki.listCertificates({ tenantId: 'default', limit: 1 });
      const first = page.items[0];
      const issuer = (
        await p.api<{ items: { kind: string; status: string; certificate: string }[] }>('GET', '/api/v1/cas')
      ).body.items.find((c) => c.kind === 'issuing' && c.status === 'active');
      let ocsp = { perSecond: 0, count: 0, failed: 0 };
      if (first && issuer) {
        const der = ocspRequest(new x509.X509Certificate(issuer.certificate).rawData, first.serial);
        ocsp = await rate(seconds, 1_000_000, async () => {
          const status = await post(p, '/pki/ocsp', der, { 'content-type': 'application/ocsp-request' });
          if (status !== 200) throw new Error(`OCSP ${status}`);
        });
      }
      // 4. mTLS handshakes against the MQTT listener, full and resumed (TLS 1.3 tickets).
      ctx.log('pki: full and resumed mutual-TLS handshakes');
      const dev = pool[0];
      const cert = dev
        ? (await pki.listCertificates({ tenantId: 'default', deviceId: dev.id, limit: 1 })).items[0]
        : undefined;
      let full = { perSecond: 0, count: 0, failed: 0 };
      let resumed = { perSecond: 0, count: 0, failed: 0 };
      let resumedShare = 0;
      if (dev && cert) {
        const cred = { key: dev.keyPem, cert: cert.pem };
        full = await rate(seconds, 1_000_000, async () => void (await handshake(p, cred)));
        const { session } = await handshake(p, cred);
        let reusedCount = 0;
        resumed = await rate(seconds, 1_000_000, async () => {
          const r = await handshake(p, cred, session);
          if (r.reused) reusedCount++;
        });
        resumedShare = resumed.count > 0 ? reusedCount / resumed.count : 0;
      }
      const result = {
        note: 'platform and clients in one process on the same cores: lower bounds',
        certificatesIssuedPerSecond: issue.perSecond,
        estEnrollmentsPerSecond: estRate.perSecond,
        estFailed: estRate.failed,
        ocspResponsesPerSecond: ocsp.perSecond,
        fullHandshakesPerSecond: full.perSecond,
        resumedHandshakesPerSecond: resumed.perSecond,
        resumedShare: Math.round(resumedShare * 1000) / 1000,
        concurrency: CONCURRENCY,
        seconds,
      };
      ctx.log(`pki: ${JSON.stringify(result)}`);
      return result;
    } finally {
      await p.close();
    }
  },
};

export default suite;
