// CSR attributes (RFC 7030 §4.5.2): what the server wants in a CSR. We ask for the platform's preferred
// device key: ECDSA P-256 signed with SHA-256. Other allowed keys (P-384, Ed25519, RSA >= 2048) are
// still accepted; this is a hint for clients that generate keys on request.
import * as asn1js from 'asn1js';

const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';
const EC_PUBLIC_KEY = '1.2.840.10045.2.1';
const SECP256R1 = '1.2.840.10045.3.1.7';

/** CsrAttrs ::= SEQUENCE OF AttrOrOID, DER. */
export function csrAttrsDer(): Uint8Array {
  const attrs = new asn1js.Sequence({
    value: [
      new asn1js.ObjectIdentifier({ value: ECDSA_WITH_SHA256 }),
      // Attribute ::= SEQUENCE { type, values SET OF }: the key algorithm with its curve (RFC 7030 §4.5.2 example).
      new asn1js.Sequence({
        value: [
          new asn1js.ObjectIdentifier({ value: EC_PUBLIC_KEY }),
          new asn1js.Set({ value: [new asn1js.ObjectIdentifier({ value: SECP256R1 })] }),
        ],
      }),
    ],
  });
  return new Uint8Array(attrs.toBER());
}
