// PKCS#10 certificate signing requests (RFC 2986), DER-encoded by hand so the SDK needs no X.509
// library. The signature comes from the KeyStore, so a key inside a TPM or secure element never has to
// leave it: only `sign()` and the public key are used.

import type { DeviceKey, KeyType } from './key-store.ts';

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), length(content.length), content]);
}

const sequence = (...parts: Buffer[]) => tlv(0x30, Buffer.concat(parts));
const set = (...parts: Buffer[]) => tlv(0x31, Buffer.concat(parts));

function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const [a = 0, b = 0, ...rest] = arcs;
  const out = [40 * a + b];
  for (const arc of rest) {
    const chunk: number[] = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

/** Signature algorithm identifiers (RFC 5758 §3.2, RFC 8410 §3). */
const SIGNATURE_ALGORITHM: Record<KeyType, { oid: string; hash: 'sha256' | 'sha384' | null }> = {
  p256: { oid: '1.2.840.10045.4.3.2', hash: 'sha256' }, // ecdsa-with-SHA256
  p384: { oid: '1.2.840.10045.4.3.3', hash: 'sha384' }, // ecdsa-with-SHA384
  ed25519: { oid: '1.3.101.112', hash: null }, // id-Ed25519 (PureEdDSA)
};

export function signatureHash(keyType: KeyType): 'sha256' | 'sha384' | null {
  return SIGNATURE_ALGORITHM[keyType].hash;
}

/** A PEM CSR with subject CN=<commonName>, signed by `key` (proof of possession). */
export async function createCsr(commonName: string, key: DeviceKey): Promise<string> {
  const name = sequence(set(sequence(oid('2.5.4.3'), tlv(0x0c, Buffer.from(commonName, 'utf8')))));
  const info = sequence(
    tlv(0x02, Buffer.from([0])), // version v1 (0)
    name,
    key.publicKeyDer(),
    Buffer.from([0xa0, 0x00]), // attributes [0] IMPLICIT SET OF: empty
  );
  const signature = await key.sign(info);
  const der = sequence(
    info,
    sequence(oid(SIGNATURE_ALGORITHM[key.keyType].oid)),
    tlv(0x03, Buffer.concat([Buffer.from([0]), signature])),
  );
  return toPem(der, 'CERTIFICATE REQUEST');
}

export function toPem(der: Buffer, label: string): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
