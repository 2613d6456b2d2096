// OCSP responder (RFC 6960) for the certificates the platform's issuing CAs signed. The CA signs its own
// responses (§4.2.2.2: the responder is the issuer), so relying parties need no delegated responder
// certificate. @peculiar/x509 has no OCSP; pkijs encodes and decodes the ASN.1, our Signer signs.
import { createHash } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { AppError } from '../../kernel/index.ts';
import type { RevocationReason, Signer } from './model.ts';
import { ecdsaDerSignature, normalizeSerial, revocationReasonCode } from './x509.ts';

/** Far above a real request (one CertID is ~100 bytes); bounds the work an anonymous caller can cause. */
export const MAX_OCSP_REQUEST_BYTES = 8 * 1024;
const MAX_CERTS_PER_REQUEST = 20;
const OID_BASIC = '1.3.6.1.5.5.7.48.1.1';
const OID_NONCE = '1.3.6.1.5.5.7.48.1.2';
const HASHES: Record<string, string> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};
const ECDSA_OIDS: Record<string, string> = {
  'SHA-256': '1.2.840.10045.4.3.2',
  'SHA-384': '1.2.840.10045.4.3.3',
  'SHA-512': '1.2.840.10045.4.3.4',
};

/** OCSPResponseStatus (RFC 6960 §4.2.1). */
export const OcspStatus = {
  successful: 0,
  malformedRequest: 1,
  internalError: 2,
  tryLater: 3,
  sigRequired: 5,
  unauthorized: 6,
} as const;

export interface OcspIssuer {
  caId: string;
  tenantId: string;
  /** DER of the issuer's subject Name and the contents of its subjectPublicKey BIT STRING. */
  nameDer: Uint8Array;
  keyBits: Uint8Array;
  signer(): Promise<Signer>;
}

export type OcspCertStatus =
  | { status: 'good' }
  | { status: 'revoked'; revokedAt: number; reason: RevocationReason | null }
  | { status: 'unknown' };

export interface OcspDeps {
  issuers(): readonly OcspIssuer[];
  status(issuer: OcspIssuer, serial: string): Promise<OcspCertStatus>;
  now(): number;
  /** nextUpdate - thisUpdate. */
  validityMs: number;
}

/** Name DER and key bits of a CA certificate, what CertID hashes (RFC 6960 §4.1.1). */
export function issuerHashInput(certDer: ArrayBuffer | Uint8Array): {
  nameDer: Uint8Array;
  keyBits: Uint8Array;
} {
  const cert = pkijs.Certificate.fromBER(new Uint8Array(certDer));
  return {
    nameDer: new Uint8Array(cert.subject.toSchema().toBER()),
    keyBits: new Uint8Array(cert.subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView),
  };
}

function statusOnly(status: number): Uint8Array {
  const res = new pkijs.OCSPResponse({ responseStatus: new asn1js.Enumerated({ value: status }) });
  return new Uint8Array(res.toSchema().toBER());
}

interface ParsedCertId {
  certId: pkijs.CertID;
  hash: string;
  serial: string;
}

/** Decodes an OCSPRequest; throws ERR_OCSP_REQUEST_INVALID on anything else. */
export function parseOcspRequest(der: Uint8Array): { certIds: ParsedCertId[]; nonce?: pkijs.Extension } {
  const invalid = (detail: string, cause?: unknown) =>
    new AppError('ERR_OCSP_REQUEST_INVALID', undefined, { detail, cause });
  if (!(der instanceof Uint8Array) || der.byteLength === 0) throw invalid('empty request');
  if (der.byteLength > MAX_OCSP_REQUEST_BYTES) throw invalid('request too large');
  const asn = asn1js.fromBER(der);
  if (asn.offset === -1) throw invalid('not DER');
  if (asn.offset !== der.byteLength) throw invalid('trailing data after the request');
  let req: pkijs.OCSPRequest;
  try {
    req = new pkijs.OCSPRequest({ schema: asn.result });
  } catch (cause) {
    throw invalid('not an OCSPRequest', cause);
  }
  const list = req.tbsRequest.requestList;
  if (list.length === 0 || list.length > MAX_CERTS_PER_REQUEST) throw invalid('need 1-20 certificates');
  const certIds = list.map(({ reqCert }) => {
    const hash = HASHES[reqCert.hashAlgorithm.algorithmId];
    if (!hash) throw invalid(`hash algorithm ${reqCert.hashAlgorithm.algorithmId} not supported`);
    const serialHex = Buffer.from(reqCert.serialNumber.valueBlock.valueHexView).toString('hex');
    if (serialHex.length === 0 || serialHex.length > 128) throw invalid('bad serial number');
    return { certId: reqCert, hash, serial: normalizeSerial(serialHex) };
  });
  const nonce = req.tbsRequest.requestExtensions?.find((e) => e.extnID === OID_NONCE);
  return nonce ? { certIds, nonce } : { certIds };
}

function matches(issuer: OcspIssuer, id: ParsedCertId): boolean {
  const h = (data: Uint8Array) => createHash(id.hash).update(data).digest();
  return (
    Buffer.from(id.certId.issuerNameHash.valueBlock.valueHexView).equals(h(issuer.nameDer)) &&
    Buffer.from(id.certId.issuerKeyHash.valueBlock.valueHexView).equals(h(issuer.keyBits))
  );
}

function certStatus(s: OcspCertStatus): asn1js.BaseBlock {
  if (s.status === 'good') return new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: 0 } });
  if (s.status === 'unknown') return new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: 2 } });
  // RevokedInfo ::= SEQUENCE { revocationTime GeneralizedTime, revocationReason [0] EXPLICIT CRLReason OPTIONAL }
  const value: asn1js.BaseBlock[] = [new asn1js.GeneralizedTime({ valueDate: new Date(s.revokedAt) })];
  if (s.reason !== null && s.reason !== 'unspecified') {
    value.push(
      new asn1js.Constructed({
        idBlock: { tagClass: 3, tagNumber: 0 },
        value: [new asn1js.Enumerated({ value: revocationReasonCode(s.reason) })],
      }),
    );
  }
  return new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 1 }, value });
}

/**
 * Answers one DER OCSPRequest with a DER OCSPResponse. Never throws for bad input: a malformed request
 * gets `malformedRequest`, certificates of CAs we do not run get `unauthorized` (§2.3).
 */
export async function answerOcsp(der: Uint8Array, deps: OcspDeps): Promise<Uint8Array> {
  let parsed: ReturnType<typeof parseOcspRequest>;
  try {
    parsed = parseOcspRequest(der);
  } catch {
    return statusOnly(OcspStatus.malformedRequest);
  }
  const issuers = deps.issuers();
  const first = parsed.certIds[0] as ParsedCertId;
  const issuer = issuers.find((i) => matches(i, first));
  // One response has one signer: every certificate asked about must be from the same issuer.
  if (!issuer || !parsed.certIds.every((id) => matches(issuer, id)))
    return statusOnly(OcspStatus.unauthorized);
  let signer: Signer;
  try {
    signer = await issuer.signer();
  } catch {
    return statusOnly(OcspStatus.tryLater);
  }
  const now = deps.now();
  const thisUpdate = new Date(Math.floor(now / 1000) * 1000);
  const nextUpdate = new Date(thisUpdate.getTime() + deps.validityMs);
  const responses: pkijs.SingleResponse[] = [];
  for (const id of parsed.certIds) {
    responses.push(
      new pkijs.SingleResponse({
        certID: id.certId,
        certStatus: certStatus(await deps.status(issuer, id.serial)),
        thisUpdate,
        nextUpdate,
      }),
    );
  }
  const keyHash = createHash('sha1').update(issuer.keyBits).digest();
  const tbs = new pkijs.ResponseData({
    responderID: new asn1js.OctetString({ valueHex: keyHash }),
    producedAt: thisUpdate,
    responses,
  });
  // RFC 6960 §4.4.1 / RFC 8954: echo the client's nonce so it can match the response to its request.
  if (parsed.nonce) tbs.responseExtensions = [parsed.nonce];
  const basic = new pkijs.BasicOCSPResponse({ tbsResponseData: tbs });
  tbs.tbsView = new Uint8Array(tbs.toSchema(true).toBER());
  const algorithm = ECDSA_OIDS[signer.algorithm.hash ?? ''];
  if (signer.algorithm.name !== 'ECDSA' || !algorithm) return statusOnly(OcspStatus.internalError);
  const raw = await signer.sign(tbs.tbsView);
  basic.signatureAlgorithm = new pkijs.AlgorithmIdentifier({ algorithmId: algorithm });
  basic.signature = new asn1js.BitString({ valueHex: ecdsaDerSignature(raw) });
  const response = new pkijs.OCSPResponse({
    responseStatus: new asn1js.Enumerated({ value: OcspStatus.successful }),
    responseBytes: new pkijs.ResponseBytes({
      responseType: OID_BASIC,
      response: new asn1js.OctetString({ valueHex: basic.toSchema().toBER() }),
    }),
  });
  return new Uint8Array(response.toSchema().toBER());
}
