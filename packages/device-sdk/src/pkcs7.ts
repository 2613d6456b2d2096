// A small, strict DER reader for the one CMS shape EST answers with: a certs-only ("degenerate")
// SignedData (RFC 5652 §5, RFC 7030 §4.1.3, §4.2.3). No X.509 library: the SDK only needs each
// certificate's DER, turned into PEM. Anything that is not exactly that shape is refused.

import { toPem } from './csr.ts';

export class Pkcs7Error extends Error {
  override readonly name = 'Pkcs7Error';
}

// 1.2.840.113549.1.7.2 (signedData) and 1.2.840.113549.1.7.1 (data), DER content octets.
const OID_SIGNED_DATA = Buffer.from('2a864886f70d010702', 'hex');
const OID_DATA = Buffer.from('2a864886f70d010701', 'hex');

const EMPTY_ECONTENT = Buffer.from([0xa0, 0x02, 0x04, 0x00]);

const SEQUENCE = 0x30;
const SET = 0x31;
const INTEGER = 0x02;
const OID = 0x06;
const BIT_STRING = 0x03;
const CONTEXT_0 = 0xa0; // [0] constructed
const CONTEXT_1 = 0xa1; // [1] constructed

interface Tlv {
  tag: number;
  /** The whole element (tag, length, content). */
  raw: Buffer;
  content: Buffer;
}

/** One element at the start of `buf`; DER only (definite, minimal lengths, low tag numbers). */
function readTlv(buf: Buffer, what: string): { tlv: Tlv; rest: Buffer } {
  if (buf.length < 2) throw new Pkcs7Error(`${what}: truncated`);
  const tag = buf[0] as number;
  if ((tag & 0x1f) === 0x1f) throw new Pkcs7Error(`${what}: high tag numbers are not used here`);
  const first = buf[1] as number;
  let len: number;
  let header: number;
  if (first < 0x80) {
    len = first;
    header = 2;
  } else {
    const n = first & 0x7f;
    if (n === 0) throw new Pkcs7Error(`${what}: indefinite length is not DER`);
    if (n > 4) throw new Pkcs7Error(`${what}: length of ${n} bytes is too large`);
    if (buf.length < 2 + n) throw new Pkcs7Error(`${what}: truncated length`);
    if (buf[2] === 0) throw new Pkcs7Error(`${what}: length with a leading zero is not DER`);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[2 + i] as number);
    if (len < 0x80) throw new Pkcs7Error(`${what}: long form for a short length is not DER`);
    header = 2 + n;
  }
  if (buf.length - header < len) {
    throw new Pkcs7Error(`${what}: length ${len} exceeds the ${buf.length - header} bytes left (truncated)`);
  }
  return {
    tlv: { tag, raw: buf.subarray(0, header + len), content: buf.subarray(header, header + len) },
    rest: buf.subarray(header + len),
  };
}

function expect(buf: Buffer, tag: number, what: string): { tlv: Tlv; rest: Buffer } {
  const r = readTlv(buf, what);
  if (r.tlv.tag !== tag) {
    throw new Pkcs7Error(`${what}: expected tag 0x${tag.toString(16)}, found 0x${r.tlv.tag.toString(16)}`);
  }
  return r;
}

function end(rest: Buffer, what: string): void {
  if (rest.length !== 0) throw new Pkcs7Error(`${what}: ${rest.length} unexpected trailing byte(s)`);
}

/** Exactly one element of `tag` filling `buf`. */
function only(buf: Buffer, tag: number, what: string): Tlv {
  const r = expect(buf, tag, what);
  end(r.rest, what);
  return r.tlv;
}

/** Certificate ::= SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm SEQUENCE, signature BIT STRING } */
function checkCertificate(cert: Tlv, i: number): void {
  const what = `certificate ${i}`;
  let rest = cert.content;
  ({ rest } = expect(rest, SEQUENCE, `${what} tbsCertificate`));
  ({ rest } = expect(rest, SEQUENCE, `${what} signatureAlgorithm`));
  ({ rest } = expect(rest, BIT_STRING, `${what} signatureValue`));
  end(rest, what);
}

/**
 * The certificates of a DER certs-only PKCS#7 (ContentInfo → SignedData → certificates [0] IMPLICIT
 * SET OF Certificate), each as PEM, in the order they appear. Throws Pkcs7Error on anything else.
 */
export function parseCertsOnlyPkcs7(der: Uint8Array): string[] {
  const buf = Buffer.from(der.buffer, der.byteOffset, der.byteLength);
  // ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT ANY }
  const contentInfo = only(buf, SEQUENCE, 'ContentInfo');
  const type = expect(contentInfo.content, OID, 'contentType');
  if (!type.tlv.content.equals(OID_SIGNED_DATA)) {
    throw new Pkcs7Error('contentType: not signedData (1.2.840.113549.1.7.2)');
  }
  const explicit = only(type.rest, CONTEXT_0, 'content [0]');
  const signedData = only(explicit.content, SEQUENCE, 'SignedData');

  // SignedData ::= SEQUENCE { version, digestAlgorithms SET, encapContentInfo, [0] certificates,
  //                           [1] crls OPTIONAL, signerInfos SET }
  let rest = signedData.content;
  const version = expect(rest, INTEGER, 'SignedData version');
  if (!version.tlv.content.equals(Buffer.from([1]))) throw new Pkcs7Error('SignedData version: not 1');
  ({ rest } = expect(version.rest, SET, 'digestAlgorithms'));
  const encap = expect(rest, SEQUENCE, 'encapContentInfo');
  const eType = expect(encap.tlv.content, OID, 'encapContentInfo eContentType');
  if (!eType.tlv.content.equals(OID_DATA)) throw new Pkcs7Error('encapContentInfo: not id-data');
  // eContent is absent (RFC 8551 §3.8); some encoders write an empty one: [0] { OCTET STRING '' }.
  if (eType.rest.length > 0 && !eType.rest.equals(EMPTY_ECONTENT)) {
    throw new Pkcs7Error('encapContentInfo: carries content (not certs-only)');
  }
  const certificates = expect(encap.rest, CONTEXT_0, 'certificates [0]');
  rest = certificates.rest;
  if (rest[0] === CONTEXT_1) ({ rest } = readTlv(rest, 'crls [1]'));
  const signerInfos = only(rest, SET, 'signerInfos');
  if (signerInfos.content.length !== 0) throw new Pkcs7Error('signerInfos: not empty (not certs-only)');

  const out: string[] = [];
  let certs = certificates.tlv.content;
  while (certs.length > 0) {
    const c = expect(certs, SEQUENCE, `certificate ${out.length}`);
    checkCertificate(c.tlv, out.length);
    out.push(toPem(c.tlv.raw, 'CERTIFICATE'));
    certs = c.rest;
  }
  if (out.length === 0) throw new Pkcs7Error('certificates: empty');
  return out;
}

/** Base64 as EST sends it (line breaks tolerated, RFC 8951); anything else is refused. */
export function decodeBase64Strict(text: string, what = 'body'): Buffer {
  const compact = text.replace(/[\r\n\t ]/g, '');
  if (compact.length === 0 || compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(compact)) {
    throw new Pkcs7Error(`${what}: not base64`);
  }
  return Buffer.from(compact, 'base64');
}
