// OCSP (RFC 6960) parser and responder units: a table of malformed requests, mixed issuers, unknown
// hash algorithms, the nonce, and a signature that verifies; plus the r||s -> DER signature conversion.
import 'reflect-metadata';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPublicKey, verify, webcrypto } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { AppError } from '../src/kernel/index.ts';
import { answerOcsp, issuerHashInput, parseOcspRequest, type OcspIssuer } from '../src/modules/pki/ocsp.ts';
import { webCryptoSigner } from '../src/modules/pki/signer.ts';
import { ecdsaDerSignature, x509 } from '../src/modules/pki/x509.ts';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

async function makeCa(name: string) {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: `CN=${name}`,
    notBefore: new Date(Date.now() - 1000),
    notAfter: new Date(Date.now() + 86_400_000),
    keys,
    signingAlgorithm: alg,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true)],
  });
  return { cert, keys };
}

function certId(issuer: { nameDer: Uint8Array; keyBits: Uint8Array }, serialHex: string, hash = 'sha1') {
  const oid =
    hash === 'sha1' ? '1.3.14.3.2.26' : hash === 'md5' ? '1.2.840.113549.2.5' : '2.16.840.1.101.3.4.2.1';
  const h = (b: Uint8Array) => createHash(hash).update(b).digest();
  return new pkijs.CertID({
    hashAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: oid, algorithmParams: new asn1js.Null() }),
    issuerNameHash: new asn1js.OctetString({ valueHex: h(issuer.nameDer) }),
    issuerKeyHash: new asn1js.OctetString({ valueHex: h(issuer.keyBits) }),
    serialNumber: new asn1js.Integer({ valueHex: Buffer.from(serialHex, 'hex') }),
  });
}

function request(ids: pkijs.CertID[], nonce?: Uint8Array): Uint8Array {
  const req = new pkijs.OCSPRequest();
  req.tbsRequest.requestList = ids.map((reqCert) => new pkijs.Request({ reqCert }));
  if (nonce) {
    req.tbsRequest.requestExtensions = [
      new pkijs.Extension({
        extnID: '1.3.6.1.5.5.7.48.1.2',
        extnValue: new asn1js.OctetString({ valueHex: nonce }).toBER(),
      }),
    ];
  }
  return new Uint8Array(req.toSchema(true).toBER());
}

test('parseOcspRequest refuses a table of malformed requests with ERR_OCSP_REQUEST_INVALID', async () => {
  const ca = await makeCa('CA');
  const input = issuerHashInput(ca.cert.rawData);
  const good = request([certId(input, '0a')]);
  const cases: [string, Uint8Array][] = [
    ['empty', new Uint8Array()],
    ['not DER', new TextEncoder().encode('GET / HTTP/1.1')],
    ['truncated', good.subarray(0, good.length - 5)],
    ['trailing bytes', new Uint8Array([...good, 0])],
    ['empty sequence', new Uint8Array([0x30, 0x00])],
    ['a certificate', new Uint8Array(ca.cert.rawData)],
    ['no certificates asked', request([])],
    ['too many certificates', request(Array.from({ length: 21 }, () => certId(input, '0a')))],
    ['MD5 CertID', request([certId(input, '0a', 'md5')])],
    ['too large', new Uint8Array(9000).fill(0x30)],
  ];
  for (const [name, der] of cases) {
    assert.throws(
      () => parseOcspRequest(der),
      (err: unknown) => err instanceof AppError && err.code === 'ERR_OCSP_REQUEST_INVALID',
      name,
    );
  }
  assert.equal(parseOcspRequest(good).certIds[0]?.serial, 'a');
});

test('answerOcsp: signed by the issuer, statuses, nonce echoed, mixed or unknown issuers unauthorized', async () => {
  const ca = await makeCa('Issuing');
  const other = await makeCa('Other');
  const input = issuerHashInput(ca.cert.rawData);
  const issuer: OcspIssuer = {
    caId: 'issuing:t:1',
    tenantId: 't',
    ...input,
    signer: async () => webCryptoSigner(ca.keys.privateKey as never, ca.keys.publicKey as never, 'SHA-256'),
  };
  const deps = {
    issuers: () => [issuer],
    status: async (_i: OcspIssuer, serial: string) =>
      serial === 'aa'
        ? ({ status: 'good' } as const)
        : serial === 'bb'
          ? ({ status: 'revoked', revokedAt: Date.now(), reason: 'keyCompromise' } as const)
          : ({ status: 'unknown' } as const),
    now: () => Date.now(),
    validityMs: 3_600_000,
  };
  const nonce = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
  const der = await answerOcsp(
    request([certId(input, 'aa'), certId(input, 'bb', 'sha256'), certId(input, 'cc')], nonce),
    deps,
  );
  const res = pkijs.OCSPResponse.fromBER(new Uint8Array(der));
  assert.equal(res.responseStatus.valueBlock.valueDec, 0);
  const basic = pkijs.BasicOCSPResponse.fromBER(
    new Uint8Array(res.responseBytes?.response.valueBlock.valueHexView ?? new Uint8Array()),
  );
  const tags = basic.tbsResponseData.responses.map(
    (r) => (r.certStatus as asn1js.BaseBlock).idBlock.tagNumber,
  );
  assert.deepEqual(tags, [0, 1, 2], 'good, revoked, unknown');
  const echoed = basic.tbsResponseData.responseExtensions?.find((e) => e.extnID === '1.3.6.1.5.5.7.48.1.2');
  assert.ok(echoed);
  // The signature verifies with the CA key (DER ECDSA over the DER ResponseData).
  const tbs = basic.tbsResponseData.toSchema(true).toBER();
  const pub = createPublicKey({ key: Buffer.from(ca.cert.publicKey.rawData), format: 'der', type: 'spki' });
  assert.ok(verify('sha256', Buffer.from(tbs), pub, Buffer.from(basic.signature.valueBlock.valueHexView)));
  const status = async (d: Uint8Array) =>
    pkijs.OCSPResponse.fromBER(new Uint8Array(await answerOcsp(d, deps))).responseStatus.valueBlock.valueDec;
  const otherInput = issuerHashInput(other.cert.rawData);
  assert.equal(await status(request([certId(otherInput, 'aa')])), 6, 'unknown issuer: unauthorized');
  assert.equal(await status(request([certId(input, 'aa'), certId(otherInput, 'aa')])), 6, 'mixed issuers');
  assert.equal(await status(new Uint8Array([1, 2, 3])), 1, 'malformedRequest');
});

test('ecdsaDerSignature: WebCrypto r||s becomes a DER signature node verifies, including high-bit and short values', async () => {
  const alg = { name: 'ECDSA', namedCurve: 'P-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey));
  const pub = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  for (let i = 0; i < 50; i++) {
    const data = Buffer.from(`message ${i}`);
    const raw = await webcrypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, keys.privateKey, data);
    assert.ok(verify('sha256', data, pub, Buffer.from(ecdsaDerSignature(raw))), `signature ${i}`);
  }
  // r with the top bit set gets a 0x00 pad; leading zeros are stripped.
  const r = new Uint8Array(32).fill(0x80);
  const s = new Uint8Array(32);
  s[31] = 1;
  const der = ecdsaDerSignature(new Uint8Array([...r, ...s]));
  assert.deepEqual([...der.subarray(0, 5)], [0x30, 38, 0x02, 33, 0x00]);
  assert.deepEqual([...der.subarray(-3)], [0x02, 0x01, 0x01]);
});
