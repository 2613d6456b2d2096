import type { webcrypto } from 'node:crypto';

/** Tenant ids that can appear in a device URI (see parseDeviceUri in @bulwark/protocol). */
export const TENANT_ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;

/**
 * Pseudo-tenant under which the platform's own server certificates are recorded. It cannot collide
 * with a real tenant: `_` is not allowed by TENANT_ID_PATTERN.
 */
export const PLATFORM_TENANT = '_platform';

/** Device key types we accept in a CSR; RSA carries its modulus length (`RSA-2048`, `RSA-3072`, ...). */
export type KeyType = 'P-256' | 'P-384' | 'Ed25519' | `RSA-${number}`;

/**
 * `root`: the platform root (tenant NULL). `platform`: the issuing CA for the platform's own TLS server
 * certificates (tenant NULL). `issuing`: one per tenant, issues that tenant's device certificates.
 */
export type CaKind = 'root' | 'platform' | 'issuing';

/**
 * `active` CAs issue and are trusted; `retired` and `revoked` ones are neither (kept for the record).
 * Revoking a CA also revokes every certificate it issued.
 */
export type CaStatus = 'active' | 'retired' | 'revoked';

/** A row of `cas`. `keyEnc` is the sealed private key (KeyProtector), or NULL for an offline key. */
export interface CaRecord {
  id: string;
  tenantId: string | null;
  kind: CaKind;
  subject: string;
  serial: string;
  certPem: string;
  keyEnc: string | null;
  notBefore: number;
  notAfter: number;
  status: CaStatus;
  createdAt: number;
}

export type CertificateKind = 'device' | 'server';

/** Stored status; `expired` is derived from `notAfter` and the clock when read through the service. */
export type StoredCertificateStatus = 'active' | 'revoked';
export type CertificateStatus = StoredCertificateStatus | 'expired';

/** RFC 5280 §5.3.1 CRLReason values we let operators choose (`removeFromCRL` and `aACompromise` make no sense here). */
export const revocationReasons = [
  'unspecified',
  'keyCompromise',
  'cACompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'certificateHold',
  'privilegeWithdrawn',
] as const;
export type RevocationReason = (typeof revocationReasons)[number];

/** A row of `certificates`, as stored. */
export interface StoredCertificate {
  serial: string;
  tenantId: string;
  caId: string;
  deviceId: string | null;
  kind: CertificateKind;
  subject: string;
  /** GeneralNames as `URI:...`, `DNS:...`, `IP:...`. */
  sans: string[];
  keyType: KeyType;
  /** SHA-256 of the DER, colon-separated upper-case hex, the format of node's `fingerprint256`. */
  fingerprint256: string;
  notBefore: number;
  notAfter: number;
  pem: string;
  status: StoredCertificateStatus;
  revokedAt: number | null;
  revocationReason: RevocationReason | null;
  createdAt: number;
  /** Fleet path the certificate was issued for (EST: the enrollment credential's fleet), or null. */
  fleet: string | null;
  /** Credential the device enrolled with: `code:<id>`, `ca:<external CA id>`; null for API issuance. */
  enrolledVia: string | null;
}

/** A certificate as the service returns it: status says `expired` once `notAfter` has passed. */
export interface CertificateRecord extends Omit<StoredCertificate, 'status'> {
  status: CertificateStatus;
}

export interface IssuedCertificate {
  /** Lower-case hex, no leading zeros. */
  serial: string;
  certificatePem: string;
  /** Device certificate followed by the tenant's issuing CA: what the device presents in TLS. */
  chainPem: string;
  /** The platform root CA: what clients trust. */
  caPem: string;
  notBefore: number;
  notAfter: number;
  fingerprint256: string;
  keyType: KeyType;
}

export interface ServerCertificate {
  certPem: string;
  /** PKCS#8 PEM of the freshly generated P-256 key. */
  keyPem: string;
  /** Server certificate followed by the platform issuing CA. */
  chainPem: string;
  notAfter: number;
  serial: string;
}

export interface ServerCertificateOptions {
  /** Default 365. */
  validityDays?: number;
}

export interface SignDeviceCsrInput {
  tenantId: string;
  deviceId: string;
  /** PEM (`CERTIFICATE REQUEST`), base64 DER (EST, RFC 7030 §4.2.1) or raw DER. */
  csrPem: string | Uint8Array;
  /** Default 90 (short-lived; devices renew over EST). */
  validityDays?: number;
  /** Recorded with the certificate (listing by fleet). */
  fleet?: string | null;
  /** Recorded with the certificate: `code:<id>` or `ca:<external CA id>`. */
  enrolledVia?: string | null;
}

/** Who a TLS client certificate says it is, once every check has passed. */
export interface ClientIdentity {
  tenantId: string;
  deviceId: string;
  /** The platform issuing CA that signed the certificate. */
  caId: string;
  serial: string;
  fingerprint256: string;
  notAfter: number;
}

export interface RevokedEvent {
  tenantId: string;
  deviceId: string | null;
  serial: string;
  fingerprint256: string;
}

/** A CA was revoked: every session whose certificate it issued must go. */
export interface CaRevokedEvent {
  tenantId: string | null;
  caId: string;
}

export interface ListCertificatesQuery {
  tenantId: string;
  deviceId?: string;
  /** Issuing CA id, or an external CA id (`ext_...`): the certificates of devices enrolled through it. */
  caId?: string;
  /** Fleet path; includes nested fleets. */
  fleet?: string;
  keyType?: string;
  status?: CertificateStatus;
  /** Only certificates with `notAfter` strictly before this instant (epoch ms). */
  expiringBefore?: number;
  /** 1-500, default 100. */
  limit?: number;
  cursor?: string;
}

export interface CertificatePage {
  items: CertificateRecord[];
  /** Pass back as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}

/** Store-level query: the service has already decoded the cursor and resolved `now`. */
export interface CertificateQuery {
  tenantId: string;
  deviceId?: string;
  caId?: string;
  enrolledVia?: string;
  fleet?: string;
  keyType?: string;
  status?: CertificateStatus;
  expiringBefore?: number;
  now: number;
  limit: number;
  after?: { createdAt: number; serial: string };
}

/** Persistence port for the PKI; `createPkiStore(db)` implements it for SQLite and PostgreSQL. */
export interface PkiStore {
  /** Every CA with status `active`. */
  listActiveCas(): Promise<CaRecord[]>;
  getCa(id: string): Promise<CaRecord | undefined>;
  /** Inserts a CA; returns false when a CA with this id exists already (another node created it first). */
  insertCa(ca: CaRecord): Promise<boolean>;
  insertCertificate(cert: StoredCertificate): Promise<void>;
  getCertificate(tenantId: string, serial: string): Promise<StoredCertificate | undefined>;
  listCertificates(query: CertificateQuery): Promise<StoredCertificate[]>;
  /** Active certificates of one device (any CA), for revoke-all. */
  listActiveDeviceCertificates(tenantId: string, deviceId: string): Promise<StoredCertificate[]>;
  /** Marks an active certificate revoked; returns the updated row, or undefined when it was not active. */
  revokeCertificate(
    tenantId: string,
    serial: string,
    at: number,
    reason: RevocationReason,
  ): Promise<StoredCertificate | undefined>;
  /** Revoked certificates issued by `caId` that are still unexpired at `now` (CRL entries). */
  listRevokedByCa(caId: string, now: number): Promise<StoredCertificate[]>;
  /** Revoked, unexpired certificates of every CA (the in-memory deny set). */
  listRevoked(now: number): Promise<{ serial: string; fingerprint256: string }[]>;
  /** Every CA of a tenant (NULL: the platform's own), any status. */
  listCas(tenantId: string | null): Promise<CaRecord[]>;
  /** Sets the status of a CA that is `active`; false when it was not active. */
  setCaStatus(id: string, status: CaStatus): Promise<boolean>;
  /** Revokes every active certificate issued by `caId`; returns how many. */
  revokeCertificatesOfCa(caId: string, at: number, reason: RevocationReason): Promise<number>;
  /** Active certificates enrolled through a credential (`ca:<id>`, `code:<id>`). */
  listActiveEnrolledVia(tenantId: string, enrolledVia: string): Promise<StoredCertificate[]>;
  insertExternalCa(ca: ExternalCaRecord): Promise<boolean>;
  getExternalCa(tenantId: string, id: string): Promise<ExternalCaRecord | undefined>;
  listExternalCas(tenantId: string): Promise<ExternalCaRecord[]>;
  updateExternalCaStatus(
    tenantId: string,
    id: string,
    status: ExternalCaStatus,
    at: number,
  ): Promise<boolean>;
  deleteExternalCa(tenantId: string, id: string): Promise<boolean>;
  insertRegistrationCode(code: string, tenantId: string, expiresAt: number): Promise<void>;
  /** Marks an unexpired, unused code of the tenant used; false when there is none. */
  useRegistrationCode(code: string, tenantId: string, now: number): Promise<boolean>;
}

export type ExternalCaStatus = 'active' | 'disabled';

/** How a device id is read from a manufacturer certificate's subject. */
export type DeviceIdSource = 'cn' | 'serialNumber';

/** A CA of the organisation (manufacturer / IDevID CA), trusted for EST enrollment into one fleet. */
export interface ExternalCaRecord {
  id: string;
  tenantId: string;
  name: string;
  subject: string;
  fingerprint256: string;
  certPem: string;
  fleet: string;
  deviceIdFrom: DeviceIdSource;
  /** New devices enrolling through this CA wait for an operator's approval. */
  approval: boolean;
  notBefore: number;
  notAfter: number;
  status: ExternalCaStatus;
  createdAt: number;
  updatedAt: number;
}

export interface RegisterExternalCaInput {
  tenantId: string;
  /** PEM of the CA certificate (root or intermediate). */
  certPem: string;
  /** PEM of a certificate signed by that CA whose subject CN is a registration code (proof of possession). */
  verificationCertPem: string;
  name?: string;
  fleet: string;
  deviceIdFrom?: DeviceIdSource;
  approval?: boolean;
}

/**
 * Cluster-wide events between server nodes sharing one database (PostgreSQL LISTEN/NOTIFY, or
 * in-process for the embedded default). Messages are small JSON objects; a node does not receive
 * its own messages.
 */
export interface ClusterEvents {
  readonly nodeId: string;
  publish(channel: string, message: Record<string, unknown>): Promise<void>;
  subscribe(channel: string, handler: (message: Record<string, unknown>) => void): () => void;
  /** Called after the connection to the bus was re-established: messages may have been lost, reload. */
  onResync(listener: () => void): () => void;
  close(): Promise<void>;
}

/**
 * At-rest protection for private keys (implemented in infra/keys). The sealed form is an opaque string
 * that names the master key it was sealed with, so the master key can be rotated.
 */
export interface KeyProtector {
  seal(plain: Uint8Array): Promise<string>;
  open(sealed: string): Promise<Uint8Array>;
}

/**
 * A CA signing key. The default keeps a non-extractable WebCrypto key in memory; an HSM or KMS can
 * implement the same shape (`sign` returns the WebCrypto signature format: r||s for ECDSA).
 */
export interface Signer {
  readonly publicKey: webcrypto.CryptoKey;
  /** WebCrypto signature algorithm, e.g. `{ name: 'ECDSA', hash: 'SHA-256' }`. */
  readonly algorithm: { name: string; hash?: string };
  sign(data: Uint8Array): Promise<ArrayBuffer>;
}

/** Creates and opens CA keys. The default (`softwareKeys`) seals them with a KeyProtector. */
export interface CaKeyProvider {
  /** New CA key; `keyEnc` is what goes into `cas.key_enc` (sealed key, or an HSM/KMS reference). */
  generate(): Promise<{ signer: Signer; keyEnc: string }>;
  /** Opens the key behind `keyEnc`. */
  open(keyEnc: string): Promise<Signer>;
  /** Seals an imported PKCS#8 private key (importIssuingCa). */
  importPkcs8(pkcs8: Uint8Array): Promise<{ signer: Signer; keyEnc: string }>;
}
