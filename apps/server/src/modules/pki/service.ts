import { webcrypto, X509Certificate as NodeX509 } from 'node:crypto';
import { deviceUri, isValidDeviceId, parseDeviceUri } from '@bulwark/protocol';
import { AppError, type Clock, type Ids, type Logger } from '../../kernel/index.ts';
import { checkCsrIdentity, parseAndVerifyCsr } from './csr.ts';
import { checkFleet, createExternalCas, type ExternalIdentity } from './external.ts';
import { answerOcsp, issuerHashInput, type OcspIssuer } from './ocsp.ts';
import {
  PLATFORM_TENANT,
  revocationReasons,
  TENANT_ID_PATTERN,
  type CaKeyProvider,
  type CaKind,
  type CaRecord,
  type CaRevokedEvent,
  type ClusterEvents,
  type ExternalCaRecord,
  type KeyType,
  type RegisterExternalCaInput,
  type CertificatePage,
  type CertificateRecord,
  type ClientIdentity,
  type IssuedCertificate,
  type KeyProtector,
  type ListCertificatesQuery,
  type PkiStore,
  type RevocationReason,
  type RevokedEvent,
  type ServerCertificate,
  type ServerCertificateOptions,
  type SignDeviceCsrInput,
  type Signer,
  type StoredCertificate,
} from './model.ts';
import { parseHostnames } from './names.ts';
import { softwareCaKeys } from './signer.ts';
import {
  certPem,
  certsOnlyPkcs7,
  asX509Key,
  DAY_MS,
  derInteger,
  fingerprint256,
  normalizeSerial,
  OID,
  pemEncode,
  signingParams,
  toSeconds,
  useNodeCrypto,
  x509,
} from './x509.ts';

export interface PkiServiceOptions {
  store: PkiStore;
  clock: Clock;
  ids: Ids;
  /** Seals CA private keys at rest (infra/keys). */
  keys: KeyProtector;
  logger: Logger;
  /** Public base URL of the CRLs, e.g. `https://iot.example.com/pki/crl`; device certs then carry `${crlBaseUrl}/{tenant}.crl`. */
  crlBaseUrl?: string;
  /** How CA keys are made and opened; default: software keys sealed with `keys`. Plug an HSM/KMS in here. */
  caKeys?: CaKeyProvider;
  /** How long a CRL is valid (nextUpdate - thisUpdate); it is re-signed after half of it. Default 1 day. */
  crlValidityMs?: number;
  /** OCSP responder URL put into device certificates (Authority Information Access), e.g. `https://host/pki/ocsp`. */
  ocspUrl?: string;
  /** Revocations and CA changes reach the other nodes through this bus within a second. */
  cluster?: ClusterEvents;
}

/** A platform CA as listed to operators (no key material). */
export interface CaSummary {
  id: string;
  tenantId: string | null;
  kind: CaKind;
  subject: string;
  serial: string;
  notBefore: number;
  notAfter: number;
  status: CaRecord['status'];
  /** The private key is not held by the platform (offline root). */
  keyOffline: boolean;
  certPem: string;
}

export interface PkiService {
  /** Loads the CAs and the revoked-certificate set into memory (idempotent; call again to pick up other nodes' changes). */
  load(): Promise<void>;
  /** Creates the platform root and the tenant's issuing CA on first use. Idempotent. */
  ensureHierarchy(tenantId: string): Promise<void>;
  /** Installs an issuing CA signed elsewhere (root kept offline). `certPem` may carry the chain up to the root. */
  importIssuingCa(tenantId: string, certPem: string, keyPem: string): Promise<void>;
  issueServerCertificate(hostnames: string[], opts?: ServerCertificateOptions): Promise<ServerCertificate>;
  signDeviceCsr(input: SignDeviceCsrInput): Promise<IssuedCertificate>;
  /** Runs every check signDeviceCsr runs on a CSR (structure, key, proof of possession, identity) without signing. */
  checkDeviceCsr(tenantId: string, deviceId: string, csr: string | Uint8Array): Promise<{ keyType: KeyType }>;
  /** The tenant's issuing CA and the root as a base64 certs-only PKCS#7 (EST /cacerts, RFC 7030 §4.1.3). */
  caCertsPkcs7(tenantId: string): Promise<string>;
  /** Root, platform CA and the tenant's CAs, any status. */
  listCas(tenantId: string): Promise<CaSummary[]>;
  /**
   * Revokes a tenant issuing CA and every certificate it issued; its sessions are dropped on every
   * node. The tenant gets a new issuing CA (generation + 1) at once when the root key is online.
   */
  revokeCa(
    tenantId: string,
    caId: string,
    reason?: RevocationReason,
    opts?: { replace?: boolean },
  ): Promise<{ revokedCertificates: number }>;
  /** Revokes the active certificates of devices that enrolled through a credential (`ca:<id>`, `code:<id>`). */
  revokeEnrolledVia(
    tenantId: string,
    enrolledVia: string,
    reason?: RevocationReason,
  ): Promise<CertificateRecord[]>;
  createCaRegistrationCode(tenantId: string): Promise<{ code: string; expiresAt: number }>;
  registerExternalCa(input: RegisterExternalCaInput): Promise<ExternalCaRecord>;
  listExternalCas(tenantId: string): Promise<ExternalCaRecord[]>;
  getExternalCa(tenantId: string, id: string): Promise<ExternalCaRecord>;
  setExternalCaStatus(
    tenantId: string,
    id: string,
    status: ExternalCaRecord['status'],
  ): Promise<ExternalCaRecord>;
  removeExternalCa(tenantId: string, id: string): Promise<ExternalCaRecord>;
  /** Who a manufacturer (IDevID) certificate presented at EST is; chain = intermediates the client sent. */
  identifyExternalClient(
    tenantId: string,
    cert: NodeX509,
    chain: readonly NodeX509[],
  ): Promise<ExternalIdentity>;
  /** DER OCSPRequest in, DER OCSPResponse out (RFC 6960); malformed input gets a `malformedRequest` response. */
  ocspResponse(der: Uint8Array): Promise<Uint8Array>;
  /** Called when a CA is revoked (here or on another node): drop every session it issued. */
  onCaRevoked(listener: (event: CaRevokedEvent) => void): () => void;
  /** Root + active tenant issuing CAs: the `ca` option of a TLS server that authenticates devices. */
  trustAnchorsPem(): Promise<string>;
  /** The platform root: what devices and other clients trust. */
  rootCaPem(): Promise<string>;
  /** Who a TLS client certificate belongs to; synchronous, from memory. Throws AppError(ERR_PKI_*). */
  identifyClient(cert: NodeX509): ClientIdentity;
  revokeCertificate(tenantId: string, serial: string, reason?: RevocationReason): Promise<CertificateRecord>;
  revokeDeviceCertificates(
    tenantId: string,
    deviceId: string,
    reason?: RevocationReason,
  ): Promise<CertificateRecord[]>;
  isRevoked(serial: string): boolean;
  /** Called after each revocation (live sessions must be dropped). Returns an unsubscribe function. */
  onRevoked(listener: (event: RevokedEvent) => void): () => void;
  /** Called when trustAnchorsPem() changes (a tenant CA was added): rebuild TLS secure contexts. */
  onTrustAnchorsChanged(listener: () => void): () => void;
  listCertificates(query: ListCertificatesQuery): Promise<CertificatePage>;
  getCertificate(tenantId: string, serial: string): Promise<CertificateRecord>;
  crlPem(tenantId: string): Promise<string>;
  crlDer(tenantId: string): Promise<Uint8Array<ArrayBuffer>>;
}

interface CaEntry {
  record: CaRecord;
  cert: x509.X509Certificate;
  node: NodeX509;
  pem: string;
  /** Hex SubjectKeyIdentifier, copied into the AuthorityKeyIdentifier of what this CA signs. */
  ski: string;
  signer?: Promise<Signer> | undefined;
}

interface CachedCrl {
  thisUpdate: number;
  der: Uint8Array<ArrayBuffer>;
  pem: string;
  refreshAt: number;
}

const HOUR_MS = 3_600_000;
const ROOT_DAYS = 3652;
const ISSUING_DAYS = 1826;
const DEVICE_DAYS = 90;
const SERVER_DAYS = 365;
const MAX_LEAF_DAYS = 397;
/** Leaf notBefore is set a little in the past so devices whose clock lags still accept the certificate. */
const LEAF_BACKDATE_MS = 5 * 60_000;
const CA_BACKDATE_MS = HOUR_MS;

const P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const PEM_CERT = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----/g;

function checkTenant(tenantId: string, allowPlatform = false): void {
  if (allowPlatform && tenantId === PLATFORM_TENANT) return;
  if (typeof tenantId !== 'string' || !TENANT_ID_PATTERN.test(tenantId)) {
    throw new AppError('ERR_PKI_TENANT_INVALID');
  }
}

function checkValidityDays(days: number | undefined, fallback: number): number {
  if (days === undefined) return fallback;
  if (!Number.isInteger(days) || days < 1 || days > MAX_LEAF_DAYS)
    throw new AppError('ERR_PKI_VALIDITY_INVALID');
  return days;
}

function checkReason(reason: RevocationReason | undefined): RevocationReason {
  if (reason === undefined) return 'unspecified';
  if (!(revocationReasons as readonly string[]).includes(reason))
    throw new AppError('ERR_PKI_REVOCATION_REASON');
  return reason;
}

function caId(kind: CaKind, tenantId: string | null, generation: number): string {
  return tenantId === null ? `${kind}:${generation}` : `${kind}:${tenantId}:${generation}`;
}

function sameBytes(a: ArrayBuffer, b: ArrayBuffer): boolean {
  return Buffer.from(a).equals(Buffer.from(b));
}

/** The only SAN our device certificates carry; node prints it as `URI:<uri>` (no quoting: no special characters). */
const SAN_URI = /^URI:(urn:bulwark:[A-Za-z0-9._:-]+)$/;

export function createPkiService(opts: PkiServiceOptions): PkiService {
  useNodeCrypto();
  const { store, clock, ids } = opts;
  const logger = opts.logger.child({ module: 'pki' });
  const caKeys = opts.caKeys ?? softwareCaKeys(opts.keys);
  const crlValidityMs = opts.crlValidityMs ?? DAY_MS;
  const crlBaseUrl = opts.crlBaseUrl?.replace(/\/+$/, '');

  // In-memory view used by the synchronous hot path (identifyClient) and by issuance.
  let loaded: Promise<void> | undefined;
  let root: CaEntry | undefined;
  let platformCa: CaEntry | undefined;
  const issuing = new Map<string, CaEntry>();
  const byIssuerName = new Map<string, CaEntry[]>();
  const revokedSerials = new Set<string>();
  const revokedFingerprints = new Set<string>();
  const crlCache = new Map<string, Promise<CachedCrl>>();
  const lastCrlNumber = new Map<string, bigint>();
  const revokedListeners = new Set<(event: RevokedEvent) => void>();
  const trustListeners = new Set<() => void>();
  const caRevokedListeners = new Set<(event: CaRevokedEvent) => void>();
  const external = createExternalCas({ store, clock, ids });
  const cluster = opts.cluster;
  const ocspUrl = opts.ocspUrl;
  const publish = (message: Record<string, unknown>) => {
    cluster?.publish('pki', message).catch((err: unknown) => {
      // The other nodes still converge on their periodic reload; a lost event is logged, not fatal.
      logger.error({ err: String(err), type: message.type }, 'cluster publish failed');
    });
  };
  // CA creation is serialized in this process; across nodes the deterministic CA id decides (insertCa).
  let caLock: Promise<unknown> = Promise.resolve();

  function serialized<T>(fn: () => Promise<T>): Promise<T> {
    const next = caLock.then(fn, fn);
    caLock = next.catch(() => {});
    return next;
  }

  function entryOf(record: CaRecord, previous?: CaEntry): CaEntry {
    const cert = new x509.X509Certificate(record.certPem);
    const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
    if (!ski) throw new AppError('ERR_PKI_CA_KEY', undefined, { detail: `CA ${record.id} has no SKI` });
    const entry: CaEntry = { record, cert, node: new NodeX509(record.certPem), pem: certPem(cert), ski };
    if (previous?.record.id === record.id && previous.signer) entry.signer = previous.signer;
    return entry;
  }

  function index(entry: CaEntry): void {
    const { record } = entry;
    if (record.kind === 'root') root = entry;
    else if (record.kind === 'platform') platformCa = entry;
    else if (record.tenantId !== null) issuing.set(record.tenantId, entry);
    if (record.kind === 'issuing') {
      const list = (byIssuerName.get(entry.node.subject) ?? []).filter((e) => e.record.id !== record.id);
      list.push(entry);
      byIssuerName.set(entry.node.subject, list);
    }
  }

  function emitTrustChanged(): void {
    for (const l of trustListeners) {
      try {
        l();
      } catch (err) {
        logger.error({ err }, 'trust-anchor listener failed');
      }
    }
  }

  async function reload(): Promise<void> {
    const before = [...issuing.values()]
      .map((e) => e.record.id)
      .sort()
      .join(',');
    const cas = await store.listActiveCas();
    const previous = new Map<string, CaEntry>();
    for (const e of [root, platformCa, ...issuing.values()]) if (e) previous.set(e.record.id, e);
    root = undefined;
    platformCa = undefined;
    issuing.clear();
    byIssuerName.clear();
    for (const record of cas) index(entryOf(record, previous.get(record.id)));
    const revoked = await store.listRevoked(clock.now());
    revokedSerials.clear();
    revokedFingerprints.clear();
    for (const r of revoked) {
      revokedSerials.add(r.serial);
      revokedFingerprints.add(r.fingerprint256);
    }
    // Another node may have created a tenant CA: TLS contexts must learn the new anchor.
    if (
      [...issuing.values()]
        .map((e) => e.record.id)
        .sort()
        .join(',') !== before
    )
      emitTrustChanged();
  }

  function ensureLoaded(): Promise<void> {
    loaded ??= reload().catch((err: unknown) => {
      loaded = undefined;
      throw err;
    });
    return loaded;
  }

  async function signerOf(entry: CaEntry): Promise<Signer> {
    entry.signer ??= (async () => {
      if (entry.record.keyEnc === null) {
        throw new AppError('ERR_PKI_CA_KEY', undefined, { detail: `CA ${entry.record.id} key is offline` });
      }
      const signer = await caKeys.open(entry.record.keyEnc);
      // A sealed key swapped between rows would sign certificates nobody can verify: refuse it.
      const spki = await webcrypto.subtle.exportKey('spki', signer.publicKey);
      if (!sameBytes(spki, entry.cert.publicKey.rawData)) {
        throw new AppError('ERR_PKI_CA_KEY', undefined, {
          detail: `CA ${entry.record.id} key does not match its certificate`,
        });
      }
      return signer;
    })().catch((err: unknown) => {
      entry.signer = undefined;
      throw err;
    });
    return entry.signer;
  }

  async function createCa(
    kind: CaKind,
    tenantId: string | null,
    issuer: CaEntry | undefined,
    generation = 1,
  ): Promise<CaEntry> {
    const id = caId(kind, tenantId, generation);
    const { signer, keyEnc } = await caKeys.generate();
    const now = clock.now();
    const notBefore = toSeconds(now - CA_BACKDATE_MS);
    let notAfter = toSeconds(now + (kind === 'root' ? ROOT_DAYS : ISSUING_DAYS) * DAY_MS);
    if (issuer) notAfter = Math.min(notAfter, issuer.record.notAfter);
    const tag = ids.serial().slice(0, 8);
    const cn =
      kind === 'root'
        ? `Bulwark Root CA ${tag}`
        : kind === 'platform'
          ? `Bulwark Platform Issuing CA ${tag}`
          : `Bulwark Issuing CA ${tenantId} ${tag}`;
    const subject = [{ CN: [cn] }, { O: ['Bulwark'] }, ...(tenantId ? [{ OU: [tenantId] }] : [])];
    const ski = await x509.SubjectKeyIdentifierExtension.create(asX509Key(signer.publicKey));
    const extensions: x509.Extension[] = [
      new x509.BasicConstraintsExtension(true, kind === 'root' ? 1 : 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      ski,
    ];
    if (issuer) {
      extensions.push(new x509.AuthorityKeyIdentifierExtension(issuer.ski, false));
      // EKU in a CA certificate constrains what it can usefully issue (OpenSSL checks it along the chain):
      // a tenant CA can only mint client certificates, the platform CA only server certificates.
      extensions.push(
        new x509.ExtendedKeyUsageExtension([kind === 'platform' ? OID.serverAuth : OID.clientAuth], false),
      );
    }
    const signing = signingParams(issuer ? await signerOf(issuer) : signer);
    const cert = await x509.X509CertificateGenerator.create(
      {
        serialNumber: ids.serial(),
        subject,
        issuer: issuer ? issuer.cert.subjectName : subject,
        notBefore: new Date(notBefore),
        notAfter: new Date(notAfter),
        publicKey: asX509Key(signer.publicKey),
        signingKey: signing.signingKey,
        signingAlgorithm: signing.signingAlgorithm,
        extensions,
      },
      signing.crypto,
    );
    const record: CaRecord = {
      id,
      tenantId,
      kind,
      subject: cert.subject,
      serial: normalizeSerial(cert.serialNumber),
      certPem: certPem(cert),
      keyEnc,
      notBefore,
      notAfter,
      status: 'active',
      createdAt: now,
    };
    if (!(await store.insertCa(record))) {
      // Another node created it first: use theirs, drop our key.
      const theirs = await store.getCa(id);
      if (!theirs || theirs.status !== 'active') {
        throw new AppError('ERR_PKI_CA_KEY', undefined, { detail: `CA ${id} exists but is not active` });
      }
      const entry = entryOf(theirs);
      index(entry);
      return entry;
    }
    const entry = entryOf(record);
    entry.signer = Promise.resolve(signer);
    index(entry);
    logger.info({ caId: id, kind, tenantId, notAfter }, 'certificate authority created');
    publish({ type: 'cas-changed' });
    return entry;
  }

  function ensureRoot(): Promise<CaEntry> {
    if (root) return Promise.resolve(root);
    return serialized(async () => root ?? createCa('root', null, undefined));
  }

  async function ensurePlatformCa(): Promise<CaEntry> {
    if (platformCa) return platformCa;
    const r = await ensureRoot();
    return serialized(async () => platformCa ?? createCa('platform', null, r));
  }

  async function ensureIssuing(tenantId: string): Promise<CaEntry> {
    const existing = issuing.get(tenantId);
    if (existing) return existing;
    const r = await ensureRoot();
    let created = false;
    const entry = await serialized(async () => {
      const found = issuing.get(tenantId);
      if (found) return found;
      created = true;
      // After a revocation the tenant's next CA is a new generation: ids are never reused.
      const generation = (await store.listCas(tenantId)).filter((c) => c.kind === 'issuing').length + 1;
      return createCa('issuing', tenantId, r, generation);
    });
    if (created) emitTrustChanged();
    return entry;
  }

  function liveCa(entry: CaEntry): CaEntry {
    if (entry.record.notAfter <= clock.now()) {
      throw new AppError('ERR_UNAVAILABLE', undefined, { detail: `CA ${entry.record.id} has expired` });
    }
    return entry;
  }

  function leafWindow(ca: CaEntry, days: number): { notBefore: number; notAfter: number } {
    const now = clock.now();
    return {
      notBefore: toSeconds(now - LEAF_BACKDATE_MS),
      notAfter: Math.min(toSeconds(now + days * DAY_MS), ca.record.notAfter),
    };
  }

  function view(c: StoredCertificate): CertificateRecord {
    return { ...c, status: c.status === 'active' && c.notAfter <= clock.now() ? 'expired' : c.status };
  }

  function emitRevoked(
    c: Pick<StoredCertificate, 'tenantId' | 'deviceId' | 'serial' | 'fingerprint256' | 'caId'> & {
      revocationReason?: RevocationReason | null;
    },
    remote = false,
  ): void {
    revokedSerials.add(c.serial);
    revokedFingerprints.add(c.fingerprint256);
    crlCache.delete(c.caId);
    const event: RevokedEvent = {
      tenantId: c.tenantId,
      deviceId: c.deviceId,
      serial: c.serial,
      fingerprint256: c.fingerprint256,
    };
    if (!remote) publish({ type: 'revoked', ...event, caId: c.caId });
    logger.info({ ...event, reason: c.revocationReason, remote }, 'certificate revoked');
    for (const l of revokedListeners) {
      try {
        l(event);
      } catch (err) {
        logger.error({ err, serial: c.serial }, 'revocation listener failed');
      }
    }
  }

  function emitCaRevoked(event: CaRevokedEvent): void {
    logger.info({ ...event }, 'certificate authority revoked');
    for (const l of caRevokedListeners) {
      try {
        l(event);
      } catch (err) {
        logger.error({ err, caId: event.caId }, 'CA revocation listener failed');
      }
    }
  }

  function summary(c: CaRecord): CaSummary {
    return {
      id: c.id,
      tenantId: c.tenantId,
      kind: c.kind,
      subject: c.subject,
      serial: c.serial,
      notBefore: c.notBefore,
      notAfter: c.notAfter,
      status: c.status,
      keyOffline: c.keyEnc === null,
      certPem: c.certPem,
    };
  }

  const ocspInputs = new Map<string, { nameDer: Uint8Array; keyBits: Uint8Array }>();
  function ocspIssuers(): OcspIssuer[] {
    const out: OcspIssuer[] = [];
    for (const entry of [platformCa, ...issuing.values()]) {
      if (!entry) continue;
      let input = ocspInputs.get(entry.record.id);
      if (!input) {
        input = issuerHashInput(entry.cert.rawData);
        ocspInputs.set(entry.record.id, input);
      }
      out.push({
        caId: entry.record.id,
        tenantId: entry.record.tenantId ?? PLATFORM_TENANT,
        ...input,
        signer: () => signerOf(entry),
      });
    }
    return out;
  }

  async function buildCrl(ca: CaEntry): Promise<CachedCrl> {
    const signer = await signerOf(ca);
    const now = clock.now();
    const thisUpdate = toSeconds(now);
    const entries = await store.listRevokedByCa(ca.record.id, now);
    // RFC 5280 §5.2.3: monotonically increasing. Epoch milliseconds keep it increasing across restarts
    // and nodes without shared state (the scheme Let's Encrypt's Boulder uses).
    const previous = lastCrlNumber.get(ca.record.id) ?? 0n;
    const number = BigInt(now) > previous ? BigInt(now) : previous + 1n;
    lastCrlNumber.set(ca.record.id, number);
    const signing = signingParams(signer);
    const crl = await x509.X509CrlGenerator.create(
      {
        issuer: ca.cert.subjectName,
        thisUpdate: new Date(thisUpdate),
        nextUpdate: new Date(thisUpdate + crlValidityMs),
        entries: entries.map((e) => ({
          serialNumber: e.serial,
          revocationDate: new Date(toSeconds(e.revokedAt ?? now)),
          reason: x509.X509CrlReason[e.revocationReason ?? 'unspecified'],
        })),
        extensions: [
          new x509.AuthorityKeyIdentifierExtension(ca.ski, false),
          new x509.Extension(OID.crlNumber, false, derInteger(number)),
        ],
        signingKey: signing.signingKey,
        signingAlgorithm: signing.signingAlgorithm,
      },
      signing.crypto,
    );
    const der = new Uint8Array(crl.rawData);
    // Not crl.toString('pem'): that writes `BEGIN CRL`, which OpenSSL and node reject.
    return { thisUpdate, der, pem: pemEncode(der, 'X509 CRL'), refreshAt: thisUpdate + crlValidityMs / 2 };
  }

  async function currentCrl(tenantId: string): Promise<CachedCrl> {
    checkTenant(tenantId);
    await ensureLoaded();
    const ca = issuing.get(tenantId);
    if (!ca) throw new AppError('ERR_PKI_CA_NOT_FOUND');
    const cached = crlCache.get(ca.record.id);
    if (cached) {
      const crl = await cached;
      const now = clock.now();
      // Re-sign half-way through its validity, and whenever the clock went back before thisUpdate.
      if (now < crl.refreshAt && now >= crl.thisUpdate && crlCache.get(ca.record.id) === cached) return crl;
    }
    const building = buildCrl(ca);
    crlCache.set(ca.record.id, building);
    building.catch(() => {
      if (crlCache.get(ca.record.id) === building) crlCache.delete(ca.record.id);
    });
    return building;
  }

  function encodeCursor(c: StoredCertificate): string {
    return Buffer.from(JSON.stringify([c.createdAt, c.serial])).toString('base64url');
  }

  function decodeCursor(cursor: string): { createdAt: number; serial: string } {
    try {
      const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
      if (Array.isArray(v) && v.length === 2 && Number.isSafeInteger(v[0]) && typeof v[1] === 'string') {
        return { createdAt: v[0] as number, serial: v[1] };
      }
    } catch {
      // fall through
    }
    throw new AppError('ERR_PAGE_CURSOR');
  }

  const service: PkiService = {
    load: () => {
      loaded = reload().catch((err: unknown) => {
        loaded = undefined;
        throw err;
      });
      return loaded;
    },

    async ensureHierarchy(tenantId) {
      checkTenant(tenantId);
      await ensureLoaded();
      await ensureIssuing(tenantId);
    },

    async importIssuingCa(tenantId, certPemIn, keyPem) {
      checkTenant(tenantId, true);
      const kind: CaKind = tenantId === PLATFORM_TENANT ? 'platform' : 'issuing';
      const owner = kind === 'platform' ? null : tenantId;
      await ensureLoaded();
      await serialized(async () => {
        if (kind === 'platform' ? platformCa : issuing.has(tenantId)) throw new AppError('ERR_PKI_CA_EXISTS');
        const invalid = (detail: string, cause?: unknown) =>
          new AppError('ERR_PKI_CA_INVALID', undefined, { detail, cause });
        const pems = typeof certPemIn === 'string' ? (certPemIn.match(PEM_CERT) ?? []) : [];
        if (pems.length < 1 || pems.length > 2)
          throw invalid('expected the CA certificate, optionally followed by the root');
        const parse = (pem: string) => {
          try {
            return new x509.X509Certificate(pem);
          } catch (cause) {
            throw invalid('certificate does not parse', cause);
          }
        };
        const isCa = (c: x509.X509Certificate) => {
          const bc = c.getExtension(x509.BasicConstraintsExtension);
          const ku = c.getExtension(x509.KeyUsagesExtension);
          return bc?.ca === true && ku !== null && (ku.usages & x509.KeyUsageFlags.keyCertSign) !== 0;
        };
        const cert = parse(pems[0] ?? '');
        if (!isCa(cert)) throw invalid('not a CA certificate with keyCertSign');
        // The anchor: the platform root we have, or (first import, root kept offline) the root that came
        // with the chain, adopted without a key.
        let anchor = root?.cert;
        let adopt: x509.X509Certificate | undefined;
        if (pems[1] !== undefined) {
          const chainRoot = parse(pems[1]);
          if (!isCa(chainRoot) || !(await chainRoot.isSelfSigned()))
            throw invalid('second certificate is not a root CA');
          if (anchor && !sameBytes(anchor.rawData, chainRoot.rawData))
            throw invalid('root is not the platform root');
          if (!anchor) adopt = anchor = chainRoot;
        }
        if (!anchor) throw invalid('the platform has no root yet: append the root certificate');
        if (
          cert.issuer !== anchor.subject ||
          !(await cert.verify({ publicKey: anchor.publicKey, signatureOnly: true }))
        ) {
          throw invalid('not signed by the platform root');
        }
        if (!cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId)
          throw invalid('no subjectKeyIdentifier');
        const now = clock.now();
        if (cert.notAfter.getTime() <= now) throw invalid('certificate has expired');
        let pkcs8: Uint8Array;
        try {
          const pem = /^\s*-----BEGIN PRIVATE KEY-----([A-Za-z0-9+/=\s]+)-----END PRIVATE KEY-----\s*$/.exec(
            keyPem,
          );
          if (!pem?.[1]) throw new Error('no PKCS#8 PEM');
          pkcs8 = new Uint8Array(Buffer.from(pem[1].replace(/\s+/g, ''), 'base64'));
        } catch (cause) {
          throw invalid('key is not a PKCS#8 PEM', cause);
        }
        let imported: { signer: Signer; keyEnc: string };
        try {
          imported = await caKeys.importPkcs8(pkcs8);
        } catch (cause) {
          throw invalid('key is not an ECDSA P-256/P-384 key', cause);
        } finally {
          pkcs8.fill(0);
        }
        const spki = await webcrypto.subtle.exportKey('spki', imported.signer.publicKey);
        if (!sameBytes(spki, cert.publicKey.rawData)) throw invalid('key does not match the certificate');
        const generation = (await store.listCas(owner)).filter((c) => c.kind === kind).length + 1;
        const toRecord = (
          c: x509.X509Certificate,
          k: CaKind,
          t: string | null,
          keyEnc: string | null,
        ): CaRecord => ({
          id: caId(k, t, k === 'root' ? 1 : generation),
          tenantId: t,
          kind: k,
          subject: c.subject,
          serial: normalizeSerial(c.serialNumber),
          certPem: certPem(c),
          keyEnc,
          notBefore: c.notBefore.getTime(),
          notAfter: c.notAfter.getTime(),
          status: 'active',
          createdAt: now,
        });
        if (adopt) {
          const rootRecord = toRecord(adopt, 'root', null, null);
          if (!(await store.insertCa(rootRecord))) throw new AppError('ERR_PKI_CA_EXISTS');
          index(entryOf(rootRecord));
          logger.info({ caId: rootRecord.id }, 'offline root CA adopted (no key)');
        }
        const record = toRecord(cert, kind, owner, imported.keyEnc);
        if (!(await store.insertCa(record))) throw new AppError('ERR_PKI_CA_EXISTS');
        const entry = entryOf(record);
        entry.signer = Promise.resolve(imported.signer);
        index(entry);
        logger.info({ caId: record.id, tenantId }, 'issuing CA imported');
      });
      emitTrustChanged();
      publish({ type: 'cas-changed' });
    },

    async issueServerCertificate(hostnames, options = {}) {
      const names = parseHostnames(hostnames);
      const days = checkValidityDays(options.validityDays, SERVER_DAYS);
      await ensureLoaded();
      const ca = liveCa(await ensurePlatformCa());
      const keys = await webcrypto.subtle.generateKey(P256, true, ['sign', 'verify']);
      const { notBefore, notAfter } = leafWindow(ca, days);
      const signing = signingParams(await signerOf(ca));
      const first = names.find((n) => n.type === 'dns') ?? names[0];
      const subject = [{ CN: [first?.value ?? ''] }, { O: ['Bulwark'] }];
      const cert = await x509.X509CertificateGenerator.create(
        {
          serialNumber: ids.serial(),
          subject,
          issuer: ca.cert.subjectName,
          notBefore: new Date(notBefore),
          notAfter: new Date(notAfter),
          publicKey: asX509Key(keys.publicKey),
          signingKey: signing.signingKey,
          signingAlgorithm: signing.signingAlgorithm,
          extensions: [
            new x509.BasicConstraintsExtension(false, undefined, true),
            new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
            new x509.ExtendedKeyUsageExtension([OID.serverAuth], false),
            new x509.SubjectAlternativeNameExtension(names, false),
            await x509.SubjectKeyIdentifierExtension.create(asX509Key(keys.publicKey)),
            new x509.AuthorityKeyIdentifierExtension(ca.ski, false),
          ],
        },
        signing.crypto,
      );
      const pem = certPem(cert);
      const stored: StoredCertificate = {
        serial: normalizeSerial(cert.serialNumber),
        tenantId: PLATFORM_TENANT,
        caId: ca.record.id,
        deviceId: null,
        kind: 'server',
        subject: cert.subject,
        sans: names.map((n) => `${n.type === 'dns' ? 'DNS' : 'IP'}:${n.value}`),
        keyType: 'P-256',
        fingerprint256: fingerprint256(cert.rawData),
        notBefore,
        notAfter,
        pem,
        status: 'active',
        revokedAt: null,
        revocationReason: null,
        createdAt: clock.now(),
        fleet: null,
        enrolledVia: null,
      };
      await store.insertCertificate(stored);
      const pkcs8 = new Uint8Array(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
      const keyPem = pemEncode(pkcs8, 'PRIVATE KEY');
      pkcs8.fill(0);
      logger.info({ serial: stored.serial, sans: stored.sans, notAfter }, 'server certificate issued');
      return { certPem: pem, keyPem, chainPem: pem + ca.pem, notAfter, serial: stored.serial };
    },

    async signDeviceCsr(input) {
      const { tenantId, deviceId } = input;
      checkTenant(tenantId);
      if (typeof deviceId !== 'string' || !isValidDeviceId(deviceId))
        throw new AppError('ERR_DEVICE_INVALID_ID');
      const days = checkValidityDays(input.validityDays, DEVICE_DAYS);
      const fleet =
        input.fleet === undefined || input.fleet === null || input.fleet === ''
          ? null
          : checkFleet(input.fleet);
      const enrolledVia = input.enrolledVia ?? null;
      const csr = await parseAndVerifyCsr(input.csrPem);
      checkCsrIdentity(csr.csr, tenantId, deviceId);
      await ensureLoaded();
      const ca = liveCa(await ensureIssuing(tenantId));
      const r = root;
      if (!r) throw new AppError('ERR_PKI_CA_NOT_FOUND');
      const { notBefore, notAfter } = leafWindow(ca, days);
      const uri = deviceUri(tenantId, deviceId);
      const extensions: x509.Extension[] = [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([OID.clientAuth], false),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: uri }], false),
        await x509.SubjectKeyIdentifierExtension.create(csr.csr.publicKey),
        new x509.AuthorityKeyIdentifierExtension(ca.ski, false),
      ];
      if (crlBaseUrl)
        extensions.push(new x509.CRLDistributionPointsExtension([`${crlBaseUrl}/${tenantId}.crl`]));
      // RFC 5280 §4.2.2.1: where relying parties ask OCSP about this certificate.
      if (ocspUrl) extensions.push(new x509.AuthorityInfoAccessExtension({ ocsp: [ocspUrl] }));
      const signing = signingParams(await signerOf(ca));
      const cert = await x509.X509CertificateGenerator.create(
        {
          serialNumber: ids.serial(),
          subject: [{ CN: [deviceId] }, { O: [tenantId] }],
          issuer: ca.cert.subjectName,
          notBefore: new Date(notBefore),
          notAfter: new Date(notAfter),
          publicKey: csr.csr.publicKey,
          signingKey: signing.signingKey,
          signingAlgorithm: signing.signingAlgorithm,
          extensions,
        },
        signing.crypto,
      );
      const pem = certPem(cert);
      const stored: StoredCertificate = {
        serial: normalizeSerial(cert.serialNumber),
        tenantId,
        caId: ca.record.id,
        deviceId,
        kind: 'device',
        subject: cert.subject,
        sans: [`URI:${uri}`],
        keyType: csr.keyType,
        fingerprint256: fingerprint256(cert.rawData),
        notBefore,
        notAfter,
        pem,
        status: 'active',
        revokedAt: null,
        revocationReason: null,
        createdAt: clock.now(),
        fleet,
        enrolledVia,
      };
      await store.insertCertificate(stored);
      logger.info(
        { tenantId, deviceId, serial: stored.serial, keyType: csr.keyType, notAfter },
        'device certificate issued',
      );
      return {
        serial: stored.serial,
        certificatePem: pem,
        chainPem: pem + ca.pem,
        caPem: r.pem,
        notBefore,
        notAfter,
        fingerprint256: stored.fingerprint256,
        keyType: csr.keyType,
      };
    },

    async trustAnchorsPem() {
      await ensureLoaded();
      const r = await ensureRoot();
      return [r.pem, ...[...issuing.values()].map((e) => e.pem)].join('');
    },

    async rootCaPem() {
      await ensureLoaded();
      return (await ensureRoot()).pem;
    },

    identifyClient(cert) {
      if (loaded === undefined || root === undefined) {
        throw new AppError('ERR_UNAVAILABLE', undefined, { detail: 'PKI not loaded' });
      }
      // 1. Issued by one of our tenant issuing CAs: name match first (cheap), then the signature.
      const ca = (byIssuerName.get(cert.issuer) ?? []).find((c) => {
        try {
          return cert.checkIssued(c.node) && cert.verify(c.node.publicKey);
        } catch {
          return false;
        }
      });
      if (!ca || ca.record.tenantId === null) throw new AppError('ERR_PKI_UNKNOWN_ISSUER');
      const serial = normalizeSerial(cert.serialNumber);
      const fp = cert.fingerprint256;
      // 2. Revocation, from memory: this is what catches resumed TLS sessions, which skip verification.
      if (revokedSerials.has(serial) || revokedFingerprints.has(fp)) {
        throw new AppError('ERR_PKI_CERT_REVOKED', undefined, { detail: `serial ${serial}` });
      }
      // 3. Validity per the injected clock, for the certificate and its CA.
      const now = clock.now();
      const notAfter = cert.validToDate.getTime();
      if (now < cert.validFromDate.getTime()) throw new AppError('ERR_PKI_CERT_NOT_YET_VALID');
      if (now > notAfter || now > ca.record.notAfter) throw new AppError('ERR_PKI_CERT_EXPIRED');
      // 4. An end-entity certificate for TLS client authentication.
      if (cert.ca || !(cert.keyUsage ?? []).includes(OID.clientAuth))
        throw new AppError('ERR_PKI_CERT_USAGE');
      // 5. Exactly one SAN, the device URI, in the CA's own tenant.
      const m = SAN_URI.exec(cert.subjectAltName ?? '');
      const id = m?.[1] ? parseDeviceUri(m[1]) : undefined;
      if (!id) throw new AppError('ERR_PKI_CERT_IDENTITY');
      if (id.tenant !== ca.record.tenantId) {
        throw new AppError('ERR_PKI_UNKNOWN_ISSUER', undefined, {
          detail: `certificate names tenant ${id.tenant}, issued by CA of ${ca.record.tenantId}`,
        });
      }
      return {
        tenantId: id.tenant,
        deviceId: id.deviceId,
        caId: ca.record.id,
        serial,
        fingerprint256: fp,
        notAfter,
      };
    },

    async revokeCertificate(tenantId, serialIn, reasonIn) {
      checkTenant(tenantId, true);
      const reason = checkReason(reasonIn);
      const serial = normalizeSerial(String(serialIn));
      await ensureLoaded();
      const revoked = await store.revokeCertificate(tenantId, serial, clock.now(), reason);
      if (revoked) {
        emitRevoked(revoked);
        return view(revoked);
      }
      const existing = await store.getCertificate(tenantId, serial);
      if (!existing) throw new AppError('ERR_PKI_CERT_NOT_FOUND');
      return view(existing); // already revoked: idempotent
    },

    async revokeDeviceCertificates(tenantId, deviceId, reasonIn) {
      checkTenant(tenantId);
      const reason = checkReason(reasonIn);
      await ensureLoaded();
      const out: CertificateRecord[] = [];
      for (const c of await store.listActiveDeviceCertificates(tenantId, deviceId)) {
        const revoked = await store.revokeCertificate(tenantId, c.serial, clock.now(), reason);
        if (revoked) {
          emitRevoked(revoked);
          out.push(view(revoked));
        }
      }
      return out;
    },

    isRevoked(serial) {
      return revokedSerials.has(normalizeSerial(serial));
    },

    onRevoked(listener) {
      revokedListeners.add(listener);
      return () => revokedListeners.delete(listener);
    },

    onTrustAnchorsChanged(listener) {
      trustListeners.add(listener);
      return () => trustListeners.delete(listener);
    },

    async listCertificates(query) {
      checkTenant(query.tenantId, true);
      const limit = query.limit ?? 100;
      if (!Number.isInteger(limit) || limit < 1 || limit > 500) {
        throw new AppError('ERR_VALIDATION', undefined, {
          errors: [{ path: 'limit', message: 'must be an integer from 1 to 500' }],
        });
      }
      const rows = await store.listCertificates({
        tenantId: query.tenantId,
        ...(query.deviceId !== undefined ? { deviceId: query.deviceId } : {}),
        // An external CA issues nothing here: its certificates are those of devices enrolled through it.
        ...(query.caId !== undefined
          ? query.caId.startsWith('ext_')
            ? { enrolledVia: `ca:${query.caId}` }
            : { caId: query.caId }
          : {}),
        ...(query.fleet ? { fleet: checkFleet(query.fleet) } : {}),
        ...(query.keyType !== undefined ? { keyType: query.keyType } : {}),
        ...(query.status !== undefined ? { status: query.status } : {}),
        ...(query.expiringBefore !== undefined ? { expiringBefore: query.expiringBefore } : {}),
        ...(query.cursor !== undefined ? { after: decodeCursor(query.cursor) } : {}),
        now: clock.now(),
        limit: limit + 1,
      });
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return { items: page.map(view), nextCursor: rows.length > limit && last ? encodeCursor(last) : null };
    },

    async getCertificate(tenantId, serial) {
      checkTenant(tenantId, true);
      const c = await store.getCertificate(tenantId, normalizeSerial(String(serial)));
      if (!c) throw new AppError('ERR_PKI_CERT_NOT_FOUND');
      return view(c);
    },

    async checkDeviceCsr(tenantId, deviceId, csrIn) {
      checkTenant(tenantId);
      if (typeof deviceId !== 'string' || !isValidDeviceId(deviceId))
        throw new AppError('ERR_DEVICE_INVALID_ID');
      const csr = await parseAndVerifyCsr(csrIn);
      checkCsrIdentity(csr.csr, tenantId, deviceId);
      return { keyType: csr.keyType };
    },

    async caCertsPkcs7(tenantId) {
      checkTenant(tenantId);
      await ensureLoaded();
      const ca = await ensureIssuing(tenantId);
      const r = root;
      if (!r) throw new AppError('ERR_PKI_CA_NOT_FOUND');
      return certsOnlyPkcs7([ca.pem, r.pem]);
    },

    async listCas(tenantId) {
      checkTenant(tenantId);
      const rows = [...(await store.listCas(null)), ...(await store.listCas(tenantId))];
      return rows.map(summary);
    },

    async revokeCa(tenantId, id, reasonIn, revokeOpts = {}) {
      checkTenant(tenantId);
      const reason = checkReason(reasonIn ?? 'cACompromise');
      await ensureLoaded();
      const record = typeof id === 'string' ? await store.getCa(id) : undefined;
      if (!record || record.tenantId !== tenantId) throw new AppError('ERR_PKI_CA_NOT_FOUND');
      if (record.kind !== 'issuing') throw new AppError('ERR_PKI_CA_NOT_REVOCABLE');
      if (record.status !== 'active') return { revokedCertificates: 0 };
      const count = await serialized(async () => {
        if (!(await store.setCaStatus(record.id, 'revoked'))) return 0;
        return store.revokeCertificatesOfCa(record.id, clock.now(), reason);
      });
      crlCache.delete(record.id);
      ocspInputs.delete(record.id);
      // Reload: the CA leaves the trust anchors (TLS contexts are rebuilt) and its certificates join the deny set.
      await service.load();
      const event = { tenantId, caId: record.id };
      emitCaRevoked(event);
      publish({ type: 'ca-revoked', ...event });
      try {
        if (revokeOpts.replace !== false) await ensureIssuing(tenantId);
      } catch (err) {
        // Offline root: the operator imports a new issuing CA (importIssuingCa).
        logger.warn({ err: String(err), tenantId }, 'no new issuing CA after revocation');
      }
      return { revokedCertificates: count };
    },

    async revokeEnrolledVia(tenantId, enrolledVia, reasonIn) {
      checkTenant(tenantId);
      const reason = checkReason(reasonIn);
      await ensureLoaded();
      const out: CertificateRecord[] = [];
      for (const c of await store.listActiveEnrolledVia(tenantId, String(enrolledVia))) {
        const revoked = await store.revokeCertificate(tenantId, c.serial, clock.now(), reason);
        if (revoked) {
          emitRevoked(revoked);
          out.push(view(revoked));
        }
      }
      return out;
    },

    createCaRegistrationCode: (tenantId) => external.createRegistrationCode(tenantId),
    registerExternalCa: (input) => external.register(input),
    listExternalCas: (tenantId) => external.list(tenantId),
    getExternalCa: (tenantId, id) => external.get(tenantId, id),
    setExternalCaStatus: (tenantId, id, status) => external.setStatus(tenantId, id, status),
    removeExternalCa: (tenantId, id) => external.remove(tenantId, id),
    identifyExternalClient: (tenantId, cert, chain) => external.identify(tenantId, cert, chain),

    async ocspResponse(der) {
      await ensureLoaded();
      return answerOcsp(der, {
        issuers: ocspIssuers,
        async status(issuer, serial) {
          const c = await store.getCertificate(issuer.tenantId, serial);
          if (!c || c.caId !== issuer.caId) return { status: 'unknown' };
          if (c.status === 'revoked') {
            return { status: 'revoked', revokedAt: c.revokedAt ?? clock.now(), reason: c.revocationReason };
          }
          return { status: 'good' };
        },
        now: () => clock.now(),
        validityMs: HOUR_MS,
      });
    },

    onCaRevoked(listener) {
      caRevokedListeners.add(listener);
      return () => caRevokedListeners.delete(listener);
    },

    async crlPem(tenantId) {
      return (await currentCrl(tenantId)).pem;
    },

    async crlDer(tenantId) {
      return (await currentCrl(tenantId)).der.slice();
    },
  };

  if (cluster) {
    const reload = (why: string) =>
      service.load().catch((err: unknown) => logger.error({ err: String(err), why }, 'PKI reload failed'));
    cluster.subscribe('pki', (m) => {
      const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
      if (m.type === 'revoked') {
        const tenantId = str(m.tenantId);
        const serial = str(m.serial);
        const fp = str(m.fingerprint256);
        const ca = str(m.caId);
        if (!tenantId || !serial || !fp || !ca) return;
        emitRevoked(
          { tenantId, deviceId: str(m.deviceId) ?? null, serial, fingerprint256: fp, caId: ca },
          true,
        );
      } else if (m.type === 'cas-changed') {
        void reload('cas-changed');
      } else if (m.type === 'ca-revoked') {
        const ca = str(m.caId);
        if (!ca) return;
        void reload('ca-revoked').then(() => emitCaRevoked({ tenantId: str(m.tenantId) ?? null, caId: ca }));
      }
    });
    // Messages sent while the bus was down are lost: start again from the database.
    cluster.onResync(() => void reload('resync'));
  }
  return service;
}
