// A minimal EST (RFC 7030) client for tests: HTTPS with optional client certificate and Basic auth.
import 'reflect-metadata';
import { request } from 'node:https';
import { webcrypto, X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export interface EstResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

export interface EstRequestOptions {
  method?: 'GET' | 'POST';
  body?: string | Buffer;
  contentType?: string;
  basic?: { user: string; pass: string };
  cert?: string;
  key?: string;
}

export function estRequest(
  url: string,
  ca: string,
  path: string,
  o: EstRequestOptions = {},
): Promise<EstResponse> {
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(path, url),
      {
        method: o.method ?? (o.body !== undefined ? 'POST' : 'GET'),
        ca,
        servername: 'localhost',
        ...(o.cert ? { cert: o.cert, key: o.key } : {}),
        // No TLS session reuse between requests: each call presents its own certificate.
        agent: false,
        headers: {
          ...(o.contentType ? { 'content-type': o.contentType } : {}),
          ...(o.basic
            ? { authorization: `Basic ${Buffer.from(`${o.basic.user}:${o.basic.pass}`).toString('base64')}` }
            : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text: Buffer.concat(chunks).toString('latin1'),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(o.body);
  });
}

/** Certificates out of a base64 certs-only PKCS#7 body (CR/LF tolerated, RFC 8951). */
export function certsFromPkcs7(b64: string): string[] {
  const certs = new x509.X509Certificates();
  certs.import(Buffer.from(b64.replace(/[\r\n]/g, ''), 'base64'));
  return certs.map((c) => c.toString('pem') + '\n');
}

export type KeyAlg = 'P-256' | 'P-384' | 'Ed25519' | 'RSA-2048' | 'RSA-1024';

export async function makeKeyAndCsr(
  cn: string | undefined,
  alg: KeyAlg = 'P-256',
): Promise<{ keyPem: string; csrB64: string; csrPem: string }> {
  const gen: Record<KeyAlg, { gen: object; sign: object }> = {
    'P-256': { gen: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } },
    'P-384': { gen: { name: 'ECDSA', namedCurve: 'P-384' }, sign: { name: 'ECDSA', hash: 'SHA-384' } },
    Ed25519: { gen: { name: 'Ed25519' }, sign: { name: 'Ed25519' } },
    'RSA-2048': {
      gen: {
        name: 'RSASSA-PKCS1-v1_5',
        modulusLength: 2048,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: 'SHA-256',
      },
      sign: { name: 'RSASSA-PKCS1-v1_5' },
    },
    'RSA-1024': {
      gen: {
        name: 'RSASSA-PKCS1-v1_5',
        modulusLength: 1024,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: 'SHA-256',
      },
      sign: { name: 'RSASSA-PKCS1-v1_5' },
    },
  };
  const keys = (await webcrypto.subtle.generateKey(gen[alg].gen as EcKeyGenParams, true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    ...(cn !== undefined ? { name: `CN=${cn}` } : {}),
    keys,
    signingAlgorithm: gen[alg].sign as Algorithm,
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return {
    keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'),
    csrB64: Buffer.from(csr.rawData)
      .toString('base64')
      .replace(/(.{64})/g, '$1\r\n'),
    csrPem: csr.toString('pem'),
  };
}

export interface TestCa {
  cert: x509.X509Certificate;
  pem: string;
  keys: CryptoKeyPair;
}

/** A CA made outside the platform (a manufacturer's), self-signed or under `issuer`. */
export async function makeTestCa(name: string, issuer?: TestCa, now = Date.now()): Promise<TestCa> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: webcrypto
      .getRandomValues(new Uint8Array(8))
      .reduce((s, b) => s + (b & 0x7f).toString(16).padStart(2, '0'), '1'),
    subject: `CN=${name}`,
    issuer: issuer ? issuer.cert.subject : `CN=${name}`,
    notBefore: new Date(now - 86_400_000),
    notAfter: new Date(now + 365 * 86_400_000),
    publicKey: keys.publicKey,
    signingKey: (issuer ?? { keys }).keys.privateKey,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, pem: cert.toString('pem') + '\n', keys };
}

/** A leaf signed by `ca`: a manufacturer (IDevID) certificate, or a CA verification certificate. */
export async function makeLeaf(
  ca: TestCa,
  subject: string,
  opts: { eku?: string[]; notAfter?: Date; notBefore?: Date } = {},
): Promise<{ certPem: string; keyPem: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber:
      '1' +
      Buffer.from(webcrypto.getRandomValues(new Uint8Array(8)))
        .toString('hex')
        .slice(1),
    subject,
    issuer: ca.cert.subject,
    notBefore: opts.notBefore ?? new Date(Date.now() - 86_400_000),
    notAfter: opts.notAfter ?? new Date(Date.now() + 3650 * 86_400_000),
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      ...(opts.eku ? [new x509.ExtendedKeyUsageExtension(opts.eku)] : []),
    ],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { certPem: cert.toString('pem') + '\n', keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') };
}

export const serialOf = (pem: string) =>
  new X509Certificate(pem).serialNumber.toLowerCase().replace(/^0+/, '');
