// Validation of an untrusted PKCS#10 request (RFC 2986). Order: size, encoding, structure, key type
// allowlist, signature algorithm allowlist, proof of possession, identity. The key type is checked
// before the signature so keys WebCrypto cannot even verify (secp256k1, P-192) get the precise error.
import { createPublicKey, type KeyObject } from 'node:crypto';
import { AppError } from '../../kernel/index.ts';
import { deviceUri } from '@bulwark/protocol';
import type { KeyType } from './model.ts';
import { OID, x509 } from './x509.ts';

/** Far above any real CSR (an RSA-8192 request is ~1.5 KiB DER); bounds the work an attacker can ask for. */
export const MAX_CSR_BYTES = 16 * 1024;
const MIN_RSA_BITS = 2048;
const MAX_RSA_BITS = 8192;

const PEM_LABELS = new Set(['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST']);
const PEM_RE =
  /^-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n\t ]+?)\r?\n?-----END ([A-Z0-9 ]+)-----\s*$/;
const BASE64_RE = /^[A-Za-z0-9+/]+={0,2}$/;

export interface ValidatedCsr {
  csr: x509.Pkcs10CertificateRequest;
  /** SubjectPublicKeyInfo DER, copied into the certificate unchanged. */
  spki: ArrayBuffer;
  keyType: KeyType;
}

function invalid(detail: string, cause?: unknown): AppError {
  return new AppError('ERR_PKI_CSR_INVALID', undefined, { detail, cause });
}

function strictBase64(text: string): Uint8Array<ArrayBuffer> {
  const compact = text.replace(/[\r\n\t ]/g, '');
  if (compact.length === 0 || compact.length % 4 !== 0 || !BASE64_RE.test(compact)) {
    throw invalid('not base64');
  }
  return new Uint8Array(Buffer.from(compact, 'base64'));
}

/** PEM with a CSR label, base64 DER (RFC 7030 §4.2.1; RFC 8951: CR/LF tolerated) or raw DER bytes. */
export function decodeCsr(input: string | Uint8Array): Uint8Array<ArrayBuffer> {
  if (input instanceof Uint8Array) {
    if (input.byteLength > MAX_CSR_BYTES) throw invalid('CSR too large');
    return new Uint8Array(input);
  }
  if (typeof input !== 'string') throw invalid('CSR must be a string or bytes');
  if (input.length > MAX_CSR_BYTES * 2) throw invalid('CSR too large');
  const text = input.trim();
  if (text.startsWith('-----BEGIN')) {
    const m = PEM_RE.exec(text);
    if (!m || m[1] !== m[3] || !PEM_LABELS.has(m[1] ?? '')) throw invalid('not a PEM certificate request');
    return strictBase64(m[2] ?? '');
  }
  return strictBase64(text);
}

export function keyTypeOf(spki: ArrayBuffer): KeyType {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch (cause) {
    // Unknown curves and algorithms fail to import: they are not on the allowlist either way.
    throw new AppError('ERR_PKI_KEY_TYPE', undefined, { detail: 'public key not importable', cause });
  }
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'ec':
      if (details.namedCurve === 'prime256v1') return 'P-256';
      if (details.namedCurve === 'secp384r1') return 'P-384';
      break;
    case 'ed25519':
      return 'Ed25519';
    case 'rsa': {
      const bits = details.modulusLength ?? 0;
      const e = details.publicExponent ?? 0n;
      // Odd exponent from 2^16+1 up (CA/Browser Forum BR §6.1.6): tiny exponents invite forgeries.
      if (bits >= MIN_RSA_BITS && bits <= MAX_RSA_BITS && e >= 65537n && e % 2n === 1n) return `RSA-${bits}`;
      break;
    }
  }
  throw new AppError('ERR_PKI_KEY_TYPE', undefined, {
    detail: `key ${key.asymmetricKeyType ?? '?'} ${details.namedCurve ?? details.modulusLength ?? ''}`.trim(),
  });
}

/** Signature algorithms a CSR may use: SHA-2 only, no SHA-1 or MD5 (RFC 9155 deprecates them in TLS too). */
const SIGNATURE_HASHES: Record<string, ReadonlySet<string>> = {
  ECDSA: new Set(['SHA-256', 'SHA-384', 'SHA-512']),
  'RSASSA-PKCS1-v1_5': new Set(['SHA-256', 'SHA-384', 'SHA-512']),
  'RSA-PSS': new Set(['SHA-256', 'SHA-384', 'SHA-512']),
};

function signatureAllowed(csr: x509.Pkcs10CertificateRequest): boolean {
  const alg = csr.signatureAlgorithm as { name?: string; hash?: { name?: string } };
  if (alg.name === 'Ed25519') return true;
  return SIGNATURE_HASHES[alg.name ?? '']?.has(alg.hash?.name ?? '') ?? false;
}

/**
 * Total length of the outer DER TLV (X.690 §8.1.3), or -1 when the header is malformed. The ASN.1
 * parser stops after the outer SEQUENCE, so trailing bytes have to be caught here.
 */
export function derLength(der: Uint8Array): number {
  if (der.length < 2 || der[0] !== 0x30) return -1;
  const first = der[1] ?? 0;
  if (first < 0x80) return 2 + first;
  const n = first & 0x7f;
  if (n === 0 || n > 4 || der.length < 2 + n) return -1;
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + (der[2 + i] ?? 0);
  return 2 + n + len;
}

/** Parses the CSR and checks key type and proof of possession. Throws AppError with a specific code. */
export async function parseAndVerifyCsr(input: string | Uint8Array): Promise<ValidatedCsr> {
  const der = decodeCsr(input);
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(der);
  } catch (cause) {
    throw invalid('not a PKCS#10 structure', cause);
  }
  if (derLength(der) !== der.byteLength) throw invalid('trailing data after the CSR');
  let spki: ArrayBuffer;
  try {
    spki = csr.publicKey.rawData;
  } catch (cause) {
    throw invalid('no subject public key', cause);
  }
  const keyType = keyTypeOf(spki);
  let allowed: boolean;
  try {
    allowed = signatureAllowed(csr);
  } catch (cause) {
    throw new AppError('ERR_PKI_CSR_SIGNATURE', undefined, { detail: 'unknown signature algorithm', cause });
  }
  if (!allowed) {
    throw new AppError('ERR_PKI_CSR_SIGNATURE', undefined, { detail: 'signature algorithm not allowed' });
  }
  let ok: boolean;
  try {
    ok = await csr.verify();
  } catch (cause) {
    throw new AppError('ERR_PKI_CSR_SIGNATURE', undefined, { detail: 'signature check failed', cause });
  }
  if (!ok) throw new AppError('ERR_PKI_CSR_SIGNATURE');
  return { csr, spki, keyType };
}

/**
 * The CSR may leave the identity out (we write it), but what it does say must be this device:
 * every subject CN equals the device id and every SAN URI is the device's URI. Other SAN types are
 * not copied into the certificate, so they are ignored.
 */
export function checkCsrIdentity(
  csr: x509.Pkcs10CertificateRequest,
  tenantId: string,
  deviceId: string,
): void {
  let cns: string[];
  try {
    cns = csr.subjectName.getField('CN');
  } catch (cause) {
    throw invalid('subject does not parse', cause);
  }
  for (const cn of cns) {
    if (cn !== deviceId) {
      throw new AppError('ERR_PKI_CSR_IDENTITY', undefined, {
        detail: `CSR subject CN ${JSON.stringify(cn)}`,
      });
    }
  }
  const expected = deviceUri(tenantId, deviceId);
  for (const ext of csr.extensions) {
    if (ext.type !== OID.subjectAltName) continue;
    let san: x509.SubjectAlternativeNameExtension;
    try {
      san = new x509.SubjectAlternativeNameExtension(ext.rawData);
    } catch (cause) {
      throw invalid('subjectAltName does not parse', cause);
    }
    for (const name of san.names.items) {
      if (name.type === 'url' && name.value !== expected) {
        throw new AppError('ERR_PKI_CSR_IDENTITY', undefined, {
          detail: `CSR SAN URI ${JSON.stringify(name.value)}`,
        });
      }
    }
  }
}
