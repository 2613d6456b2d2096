// The strict DER reader for EST's certs-only PKCS#7: the accepted shape, and a table of malformed inputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeBase64Strict, parseCertsOnlyPkcs7, Pkcs7Error, retryAfterMs } from '../src/index.ts';

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
const tlv = (tag: number, ...parts: Buffer[]) => {
  const c = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([tag]), len(c.length), c]);
};
const hex = (h: string) => Buffer.from(h.replace(/\s/g, ''), 'hex');
const OID_SIGNED = tlv(0x06, hex('2a864886f70d010702'));
const OID_DATA = tlv(0x06, hex('2a864886f70d010701'));

/** A certificate-shaped SEQUENCE (tbs, algorithm, signature); `size` pads the tbs. */
const cert = (fill: number, size = 40) =>
  tlv(
    0x30,
    tlv(0x30, tlv(0x02, Buffer.from([fill])), Buffer.alloc(size, fill)),
    tlv(0x30, tlv(0x06, hex('2a8648ce3d040302'))),
    tlv(0x03, Buffer.from([0, fill, fill])),
  );

interface Parts {
  oid?: Buffer;
  version?: Buffer;
  digestAlgs?: Buffer;
  encap?: Buffer;
  certsTag?: number;
  certs?: Buffer[];
  crls?: Buffer;
  signerInfos?: Buffer;
  explicitTag?: number;
  tail?: Buffer;
}
const p7 = (o: Parts = {}) =>
  tlv(
    0x30,
    o.oid ?? OID_SIGNED,
    tlv(
      o.explicitTag ?? 0xa0,
      tlv(
        0x30,
        o.version ?? tlv(0x02, Buffer.from([1])),
        o.digestAlgs ?? tlv(0x31),
        o.encap ?? tlv(0x30, OID_DATA),
        tlv(o.certsTag ?? 0xa0, ...(o.certs ?? [cert(1), cert(2, 300)])),
        ...(o.crls ? [o.crls] : []),
        o.signerInfos ?? tlv(0x31),
        ...(o.tail ? [o.tail] : []),
      ),
    ),
  );

const derOf = (pem: string) =>
  Buffer.from(pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');

test('certs-only PKCS#7: every certificate as PEM, in order; empty crls [1] and eContent are tolerated', () => {
  const emptyContent = tlv(0x30, OID_DATA, tlv(0xa0, tlv(0x04)));
  for (const input of [p7(), p7({ crls: tlv(0xa1) }), p7({ encap: emptyContent })]) {
    const pems = parseCertsOnlyPkcs7(input);
    assert.equal(pems.length, 2);
    assert.match(
      pems[0] ?? '',
      /^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n$/,
    );
    assert.deepEqual(derOf(pems[0] ?? ''), cert(1));
    assert.deepEqual(derOf(pems[1] ?? ''), cert(2, 300));
  }
  assert.equal(parseCertsOnlyPkcs7(p7({ certs: [cert(7)] })).length, 1);
});

const good = p7();
const malformed: [string, Buffer][] = [
  ['empty input', Buffer.alloc(0)],
  ['one byte', Buffer.from([0x30])],
  ['truncated in the middle', good.subarray(0, Math.floor(good.length / 2))],
  ['truncated by one byte', good.subarray(0, good.length - 1)],
  ['truncated long length', Buffer.from([0x30, 0x82, 0x01])],
  ['trailing bytes after ContentInfo', Buffer.concat([good, Buffer.from([0])])],
  ['oversized length (5 length bytes)', Buffer.from([0x30, 0x85, 1, 0, 0, 0, 0, 0])],
  ['length larger than the input', Buffer.concat([Buffer.from([0x30, 0x84, 0x7f, 0xff, 0xff, 0xff]), good])],
  [
    'indefinite length (BER)',
    Buffer.concat([Buffer.from([0x30, 0x80]), good.subarray(2), Buffer.from([0, 0])]),
  ],
  ['non-minimal long-form length', Buffer.concat([Buffer.from([0x30, 0x81, 0x05]), tlv(0x06, hex('2a03'))])],
  [
    'length with a leading zero',
    Buffer.concat([Buffer.from([0x30, 0x82, 0x00, 0x04]), tlv(0x06, hex('2a03'))]),
  ],
  ['outer tag not SEQUENCE', Buffer.concat([Buffer.from([0x31]), good.subarray(1)])],
  ['high tag number', Buffer.from([0x1f, 0x81, 0x01, 0x00])],
  ['wrong OID: id-data instead of signedData', p7({ oid: OID_DATA })],
  ['wrong OID: envelopedData', p7({ oid: tlv(0x06, hex('2a864886f70d010703')) })],
  ['contentType not an OID', p7({ oid: tlv(0x04, hex('2a864886f70d010702')) })],
  ['content tag [1] instead of [0]', p7({ explicitTag: 0xa1 })],
  ['version 3', p7({ version: tlv(0x02, Buffer.from([3])) })],
  ['version not INTEGER', p7({ version: tlv(0x04, Buffer.from([1])) })],
  ['digestAlgorithms not SET', p7({ digestAlgs: tlv(0x30) })],
  ['encapContentInfo not id-data', p7({ encap: tlv(0x30, OID_SIGNED) })],
  [
    'encapContentInfo with eContent not OCTET STRING',
    p7({ encap: tlv(0x30, OID_DATA, tlv(0xa0, tlv(0x05))) }),
  ],
  ['encapContentInfo with content', p7({ encap: tlv(0x30, OID_DATA, tlv(0xa0, tlv(0x04, hex('00')))) })],
  ['certificates with primitive [0] tag', p7({ certsTag: 0x80 })],
  ['certificates as SET (0x31)', p7({ certsTag: 0x31 })],
  ['no certificates', p7({ certs: [] })],
  ['certificate not SEQUENCE', p7({ certs: [tlv(0x31, tlv(0x30), tlv(0x30), tlv(0x03, hex('00')))] })],
  ['certificate missing its signature', p7({ certs: [tlv(0x30, tlv(0x30), tlv(0x30))] })],
  [
    'certificate with extra element',
    p7({ certs: [tlv(0x30, tlv(0x30), tlv(0x30), tlv(0x03, hex('00')), tlv(0x05))] }),
  ],
  ['garbage between certificates', p7({ certs: [cert(1), Buffer.from([0x00]), cert(2)] })],
  ['signerInfos not empty', p7({ signerInfos: tlv(0x31, tlv(0x30)) })],
  ['signerInfos not SET', p7({ signerInfos: tlv(0x30) })],
  ['element after signerInfos', p7({ tail: tlv(0x05) })],
];

for (const [name, input] of malformed) {
  test(`refused: ${name}`, () => {
    assert.throws(() => parseCertsOnlyPkcs7(input), Pkcs7Error);
  });
}

test('base64 bodies: line breaks tolerated (RFC 8951), anything else refused', () => {
  const b64 = good.toString('base64');
  const wrapped = b64.replace(/(.{64})/g, '$1\r\n');
  assert.deepEqual(decodeBase64Strict(wrapped), good);
  for (const bad of ['', 'abc', 'ab!d', `${b64}*`, '-----BEGIN PKCS7-----']) {
    assert.throws(() => decodeBase64Strict(bad), Pkcs7Error, bad);
  }
});

test('Retry-After: seconds or an HTTP date', () => {
  assert.equal(retryAfterMs('60'), 60_000);
  assert.equal(retryAfterMs(undefined), undefined);
  assert.equal(retryAfterMs('soon'), undefined);
  assert.equal(retryAfterMs(new Date(10_000).toUTCString(), 4_000), 6_000);
});
