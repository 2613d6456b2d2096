// The one place that touches @peculiar/x509, so its gotchas are handled once
// (docs: shared/reference/standards-and-security.md §3.1):
//  1. v2 needs a Reflect polyfill loaded before it (tsyringe checks at import time), hence the import order.
//  2. `crl.toString('pem')` writes `BEGIN CRL`, which OpenSSL and node reject; we write `X509 CRL`.
//  3. `Pkcs10CertificateRequest.getExtension(Class)` returns null; CSR extensions are looked up by OID.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createHash, webcrypto } from 'node:crypto';
import type { Signer } from './model.ts';

export { x509 };

// @peculiar/x509's declarations use the DOM WebCrypto types, node's are `webcrypto.*`: same objects
// at run time, slightly different declarations (node's KeyUsage has more members). Bridge them here.
export type X509Key = x509.X509CertificateCreateWithKeyParams['signingKey'];
export type X509Crypto = NonNullable<Parameters<typeof x509.X509CertificateGenerator.create>[1]>;
export const asX509Key = (key: webcrypto.CryptoKey): X509Key => key as unknown as X509Key;
const nodeCrypto = webcrypto as unknown as X509Crypto;

let providerSet = false;

/** Points @peculiar/x509 at node's WebCrypto. Idempotent; called by the service factory, not at import. */
export function useNodeCrypto(): void {
  if (providerSet) return;
  x509.cryptoProvider.set(nodeCrypto);
  providerSet = true;
}

export const OID = {
  subjectAltName: '2.5.29.17',
  extKeyUsage: '2.5.29.37',
  crlNumber: '2.5.29.20',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

/**
 * What @peculiar/x509's generators need to sign through a Signer instead of a private CryptoKey: they
 * call `crypto.subtle.sign(alg, signingKey, tbs)` and read `signingKey.algorithm`, so we hand them a
 * key-shaped placeholder and a crypto whose `subtle.sign` is the Signer's. That keeps HSM/KMS signers
 * possible without a second certificate encoder.
 */
export function signingParams(signer: Signer): {
  crypto: X509Crypto;
  signingKey: X509Key;
  signingAlgorithm: webcrypto.Algorithm;
} {
  const subtle = webcrypto.subtle;
  const proxied = new Proxy(subtle, {
    get(target, prop) {
      if (prop === 'sign') {
        return (_alg: unknown, _key: unknown, data: ArrayBuffer | ArrayBufferView) =>
          signer.sign(
            ArrayBuffer.isView(data)
              ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
              : new Uint8Array(data),
          );
      }
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  const crypto = {
    subtle: proxied,
    getRandomValues: <T extends ArrayBufferView>(array: T) => webcrypto.getRandomValues(array as never) as T,
    randomUUID: () => webcrypto.randomUUID(),
  };
  const signingKey = {
    type: 'private',
    extractable: false,
    algorithm: signer.publicKey.algorithm,
    usages: ['sign'],
  };
  return {
    crypto: crypto as unknown as X509Crypto,
    signingKey: signingKey as unknown as X509Key,
    signingAlgorithm: signer.algorithm,
  };
}

/** Serial numbers are compared as lower-case hex without leading zeros (node prints upper case). */
export function normalizeSerial(serial: string): string {
  const s = serial
    .trim()
    .toLowerCase()
    .replace(/^(0x)?0*/, '');
  return s === '' ? '0' : s;
}

/** SHA-256 of the DER in node's `fingerprint256` format (`AB:CD:...`). */
export function fingerprint256(der: ArrayBuffer | Uint8Array): string {
  const bytes = der instanceof Uint8Array ? der : new Uint8Array(der);
  return createHash('sha256')
    .update(bytes)
    .digest('hex')
    .toUpperCase()
    .replace(/(..)(?!$)/g, '$1:');
}

export function pemEncode(der: ArrayBuffer | Uint8Array, label: string): string {
  const bytes = der instanceof Uint8Array ? der : new Uint8Array(der);
  const b64 = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END ${label}-----\n`;
}

export function certPem(cert: x509.X509Certificate): string {
  return pemEncode(cert.rawData, 'CERTIFICATE');
}

/** DER INTEGER (X.690 §8.3) for a non-negative value, as RFC 5280 §5.2.3 wants for the CRL number. */
export function derInteger(value: bigint): Uint8Array<ArrayBuffer> {
  if (value < 0n) throw new RangeError('negative');
  let hex = value.toString(16);
  if (hex.length % 2) hex = '0' + hex;
  if (/^[89a-f]/.test(hex)) hex = '00' + hex;
  const body = Buffer.from(hex, 'hex');
  if (body.length > 127) throw new RangeError('too large');
  return new Uint8Array([0x02, body.length, ...body]);
}

/** X.509 times have whole seconds; we round every instant we put in a certificate down to one. */
export function toSeconds(ms: number): number {
  return Math.floor(ms / 1000) * 1000;
}

export const DAY_MS = 86_400_000;

/**
 * A certs-only CMS SignedData (RFC 5652 §5, "degenerate" PKCS#7: no signers), base64 DER: the EST
 * response body of /cacerts, /simpleenroll and /simplereenroll (RFC 7030 §4.1.3, §4.2.3).
 */
export function certsOnlyPkcs7(pems: readonly string[]): string {
  const certs = new x509.X509Certificates(pems.map((p) => new x509.X509Certificate(p)));
  return certs.export('base64');
}

/** WebCrypto ECDSA signatures are r||s; X.509, CMS and OCSP carry a DER ECDSA-Sig-Value (RFC 3279 §2.2.3). */
export function ecdsaDerSignature(raw: ArrayBuffer | Uint8Array): Uint8Array {
  const bytes = raw instanceof Uint8Array ? raw : new Uint8Array(raw);
  const half = bytes.length / 2;
  const int = (b: Uint8Array): number[] => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    const v = [...b.subarray(i)];
    if ((v[0] ?? 0) & 0x80) v.unshift(0);
    return [0x02, v.length, ...v];
  };
  const body = [...int(bytes.subarray(0, half)), ...int(bytes.subarray(half))];
  return new Uint8Array([0x30, ...(body.length > 127 ? [0x81] : []), body.length, ...body]);
}

/** CRLReason codes (RFC 5280 §5.3.1). */
export function revocationReasonCode(reason: string): number {
  const codes: Record<string, number> = {
    unspecified: 0,
    keyCompromise: 1,
    cACompromise: 2,
    affiliationChanged: 3,
    superseded: 4,
    cessationOfOperation: 5,
    certificateHold: 6,
    privilegeWithdrawn: 9,
  };
  return codes[reason] ?? 0;
}
