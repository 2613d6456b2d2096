// Test PKI made with @peculiar/x509: a root CA, an issuing CA, a TLS server certificate for 127.0.0.1/localhost,
// and a signer for device CSRs. Nothing here is used outside the tests.

import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';

type X509Crypto = typeof x509.cryptoProvider extends { get(): infer C } ? C : never;
x509.cryptoProvider.set(webcrypto as unknown as X509Crypto);

type Keys = Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[0]['keys'];
const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const sign = { name: 'ECDSA', hash: 'SHA-256' };
const DAY = 86_400_000;

export interface Issuer {
  name: string;
  cert: x509.X509Certificate;
  keys: Keys;
  pem: string;
}

async function newKeys(): Promise<Keys> {
  return (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as unknown as Keys;
}

let serialCounter = 1;
function nextSerial(): string {
  return (0x1000 + serialCounter++).toString(16).padStart(16, '0');
}

export async function makeRootCa(cn: string): Promise<Issuer> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: nextSerial(),
    name: `CN=${cn}`,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 30 * DAY),
    keys,
    signingAlgorithm: sign,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { name: `CN=${cn}`, cert, keys, pem: cert.toString('pem') + '\n' };
}

export async function makeIssuingCa(root: Issuer, cn: string): Promise<Issuer> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: nextSerial(),
    subject: `CN=${cn}`,
    issuer: root.cert.subject,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 30 * DAY),
    signingKey: root.keys.privateKey,
    publicKey: keys.publicKey,
    signingAlgorithm: sign,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.AuthorityKeyIdentifierExtension.create(root.cert),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { name: `CN=${cn}`, cert, keys, pem: cert.toString('pem') + '\n' };
}

export async function makeServerCert(ca: Issuer): Promise<{ cert: string; key: string }> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: nextSerial(),
    subject: 'CN=localhost',
    issuer: ca.cert.subject,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 30 * DAY),
    signingKey: ca.keys.privateKey,
    publicKey: keys.publicKey,
    signingAlgorithm: sign,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        { type: 'dns', value: 'localhost' },
        { type: 'ip', value: '127.0.0.1' },
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
    ],
  });
  const der = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey as unknown as webcrypto.CryptoKey);
  return { cert: cert.toString('pem') + '\n', key: x509.PemConverter.encode(der, 'PRIVATE KEY') + '\n' };
}

export interface SignedDevice {
  serial: string;
  pem: string;
  notBefore: string;
  notAfter: string;
  fingerprint256: string;
  keyType: string;
}

/** Verifies a CSR and signs it like the platform would (CN from the CSR, client auth). */
export async function signCsr(ca: Issuer, csrPem: string): Promise<SignedDevice | { error: string }> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch {
    return { error: 'ERR_PKI_CSR_INVALID' };
  }
  if (!(await csr.verify())) return { error: 'ERR_PKI_CSR_SIGNATURE' };
  const serial = nextSerial();
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(Date.now() + 7 * DAY);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject: csr.subject,
    issuer: ca.cert.subject,
    notBefore,
    notAfter,
    signingKey: ca.keys.privateKey,
    publicKey: csr.publicKey,
    signingAlgorithm: sign,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
    ],
  });
  const alg = csr.publicKey.algorithm as { name: string; namedCurve?: string; modulusLength?: number };
  const keyType =
    alg.name === 'ECDSA'
      ? `ec-${(alg.namedCurve ?? '').toLowerCase()}`
      : alg.name === 'Ed25519'
        ? 'ed25519'
        : `rsa-${alg.modulusLength ?? 0}`;
  const thumb = Buffer.from(await cert.getThumbprint('SHA-256')).toString('hex');
  return {
    serial,
    pem: cert.toString('pem') + '\n',
    notBefore: notBefore.toISOString(),
    notAfter: notAfter.toISOString(),
    fingerprint256: thumb,
    keyType,
  };
}
