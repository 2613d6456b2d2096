// The organisation's PKI: external CAs (manufacturer / IDevID CAs, root or intermediate) registered per
// tenant with proof of possession, and identification of the manufacturer certificates they issued.
// They are trusted for EST enrollment only: devices then connect to MQTT with the platform-issued
// (LDevID) certificate, so an external CA is never a TLS trust anchor of the MQTT listener.
import { randomBytes, X509Certificate as NodeX509 } from 'node:crypto';
import { isValidDeviceId } from '@bulwark/protocol';
import { AppError, type Clock, type Ids } from '../../kernel/index.ts';
import { keyTypeOf } from './csr.ts';
import {
  TENANT_ID_PATTERN,
  type DeviceIdSource,
  type ExternalCaRecord,
  type PkiStore,
  type RegisterExternalCaInput,
} from './model.ts';
import { certPem, OID, x509 } from './x509.ts';

/** Fleet paths (as the devices module has them): 1-8 segments of `[a-z0-9][a-z0-9_-]*`, joined by `/`. */
export const FLEET_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}(\/[a-z0-9][a-z0-9_-]{0,62}){0,7}$/;
const REGISTRATION_CODE_TTL_MS = 60 * 60_000;
const MAX_CHAIN = 4;
const ANY_EKU = '2.5.29.37.0';
const PEM_ONE_CERT = /^\s*-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----\s*$/;

/** A fleet path, or '' for "no fleet". */
export function checkFleet(fleet: unknown): string {
  if (fleet === '') return fleet;
  if (typeof fleet !== 'string' || !FLEET_PATTERN.test(fleet)) throw new AppError('ERR_PKI_FLEET_INVALID');
  return fleet;
}

function parseOne(pem: unknown, what: string, code: 'ERR_PKI_EXTERNAL_CA_INVALID' | 'ERR_PKI_CA_CHALLENGE') {
  if (typeof pem !== 'string' || pem.length > 64 * 1024 || !PEM_ONE_CERT.test(pem)) {
    throw new AppError(code, undefined, { detail: `${what}: expected exactly one PEM certificate` });
  }
  try {
    return { node: new NodeX509(pem), cert: new x509.X509Certificate(pem) };
  } catch (cause) {
    throw new AppError(code, undefined, { detail: `${what} does not parse`, cause });
  }
}

function isCaCert(cert: x509.X509Certificate): boolean {
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  const ku = cert.getExtension(x509.KeyUsagesExtension);
  // A CA certificate without a keyUsage extension may sign certificates (RFC 5280 §4.2.1.3 makes it optional).
  return bc?.ca === true && (ku === null || (ku.usages & x509.KeyUsageFlags.keyCertSign) !== 0);
}

function within(node: NodeX509, now: number): boolean {
  return now >= node.validFromDate.getTime() && now <= node.validToDate.getTime();
}

export interface ExternalIdentity {
  ca: ExternalCaRecord;
  deviceId: string;
  /** SHA-256 fingerprint of the manufacturer certificate. */
  fingerprint256: string;
}

export interface ExternalCas {
  createRegistrationCode(tenantId: string): Promise<{ code: string; expiresAt: number }>;
  register(input: RegisterExternalCaInput): Promise<ExternalCaRecord>;
  list(tenantId: string): Promise<ExternalCaRecord[]>;
  get(tenantId: string, id: string): Promise<ExternalCaRecord>;
  setStatus(tenantId: string, id: string, status: ExternalCaRecord['status']): Promise<ExternalCaRecord>;
  remove(tenantId: string, id: string): Promise<ExternalCaRecord>;
  /** Who a manufacturer certificate (TLS client certificate at EST) is. `chain`: intermediates the client sent. */
  identify(tenantId: string, leaf: NodeX509, chain: readonly NodeX509[]): Promise<ExternalIdentity>;
}

export function createExternalCas(deps: { store: PkiStore; clock: Clock; ids: Ids }): ExternalCas {
  const { store, clock } = deps;

  const checkTenant = (tenantId: string) => {
    if (typeof tenantId !== 'string' || !TENANT_ID_PATTERN.test(tenantId))
      throw new AppError('ERR_PKI_TENANT_INVALID');
  };

  async function get(tenantId: string, id: string): Promise<ExternalCaRecord> {
    checkTenant(tenantId);
    const ca = typeof id === 'string' ? await store.getExternalCa(tenantId, id) : undefined;
    if (!ca) throw new AppError('ERR_PKI_EXTERNAL_CA_NOT_FOUND');
    return ca;
  }

  function deviceIdOf(cert: x509.X509Certificate, from: DeviceIdSource): string | undefined {
    let values: string[];
    try {
      values = cert.subjectName.getField(from === 'cn' ? 'CN' : '2.5.4.5');
    } catch {
      return undefined;
    }
    const [id] = values;
    return values.length === 1 && id !== undefined && isValidDeviceId(id) ? id : undefined;
  }

  return {
    async createRegistrationCode(tenantId) {
      checkTenant(tenantId);
      // 128 bits, hex: fits a CN (<= 64 characters) and survives every certificate tool's quoting.
      const code = randomBytes(16).toString('hex');
      const expiresAt = clock.now() + REGISTRATION_CODE_TTL_MS;
      await store.insertRegistrationCode(code, tenantId, expiresAt);
      return { code, expiresAt };
    },

    async register(input) {
      const { tenantId } = input;
      checkTenant(tenantId);
      const fleet = checkFleet(input.fleet);
      const deviceIdFrom = input.deviceIdFrom ?? 'cn';
      if (deviceIdFrom !== 'cn' && deviceIdFrom !== 'serialNumber') {
        throw new AppError('ERR_VALIDATION', undefined, {
          errors: [{ path: 'deviceIdFrom', message: 'must be cn or serialNumber' }],
        });
      }
      const invalid = (detail: string, cause?: unknown) =>
        new AppError('ERR_PKI_EXTERNAL_CA_INVALID', undefined, { detail, cause });
      const ca = parseOne(input.certPem, 'CA certificate', 'ERR_PKI_EXTERNAL_CA_INVALID');
      if (!isCaCert(ca.cert)) throw invalid('not a CA certificate (basicConstraints CA and keyCertSign)');
      const now = clock.now();
      if (!within(ca.node, now)) throw invalid('outside its validity period');
      try {
        keyTypeOf(ca.cert.publicKey.rawData);
      } catch (cause) {
        throw invalid('key type not allowed', cause);
      }
      // Proof of possession: a certificate the CA signed over our one-time code.
      const proof = parseOne(input.verificationCertPem, 'verification certificate', 'ERR_PKI_CA_CHALLENGE');
      let signed: boolean;
      try {
        signed = proof.node.checkIssued(ca.node) && proof.node.verify(ca.node.publicKey);
      } catch {
        signed = false;
      }
      if (!signed) {
        throw new AppError('ERR_PKI_CA_CHALLENGE', undefined, {
          detail: 'verification certificate not signed by the CA',
        });
      }
      let cns: string[];
      try {
        cns = proof.cert.subjectName.getField('CN');
      } catch {
        cns = [];
      }
      const code = cns.length === 1 ? cns[0] : undefined;
      if (!code || !/^[0-9a-f]{32}$/.test(code) || !(await store.useRegistrationCode(code, tenantId, now))) {
        throw new AppError('ERR_PKI_CA_CHALLENGE', undefined, {
          detail: 'verification certificate CN is not an open registration code of this tenant',
        });
      }
      const record: ExternalCaRecord = {
        id: `ext_${deps.ids.token(12)}`,
        tenantId,
        name:
          typeof input.name === 'string' && input.name.length > 0
            ? input.name.slice(0, 128)
            : ca.cert.subject.slice(0, 128),
        subject: ca.node.subject,
        fingerprint256: ca.node.fingerprint256,
        certPem: certPem(ca.cert),
        fleet,
        deviceIdFrom,
        approval: input.approval === true,
        notBefore: ca.node.validFromDate.getTime(),
        notAfter: ca.node.validToDate.getTime(),
        status: 'active',
        createdAt: now,
        updatedAt: now,
      };
      if (!(await store.insertExternalCa(record))) throw new AppError('ERR_PKI_EXTERNAL_CA_EXISTS');
      return record;
    },

    async list(tenantId) {
      checkTenant(tenantId);
      return store.listExternalCas(tenantId);
    },

    get,

    async setStatus(tenantId, id, status) {
      await get(tenantId, id);
      await store.updateExternalCaStatus(tenantId, id, status, clock.now());
      return get(tenantId, id);
    },

    async remove(tenantId, id) {
      const ca = await get(tenantId, id);
      if (!(await store.deleteExternalCa(tenantId, id))) throw new AppError('ERR_PKI_EXTERNAL_CA_NOT_FOUND');
      return ca;
    },

    async identify(tenantId, leaf, chain) {
      checkTenant(tenantId);
      const now = clock.now();
      const cas = (await store.listExternalCas(tenantId)).map((record) => ({
        record,
        node: new NodeX509(record.certPem),
      }));
      const signedBy = (child: NodeX509, parent: NodeX509): boolean => {
        try {
          return child.checkIssued(parent) && child.verify(parent.publicKey);
        } catch {
          return false;
        }
      };
      // Walk up from the leaf through the intermediates the client sent until a registered CA signs.
      const path: NodeX509[] = [leaf];
      let found: (typeof cas)[number] | undefined;
      for (let depth = 0; depth < MAX_CHAIN && !found; depth++) {
        const current = path[path.length - 1] as NodeX509;
        found = cas.find((c) => signedBy(current, c.node));
        if (found) break;
        const next = chain.find((i) => i.ca && !path.includes(i) && signedBy(current, i));
        if (!next) break;
        path.push(next);
      }
      if (!found) throw new AppError('ERR_EST_UNKNOWN_CA');
      if (found.record.status !== 'active') {
        throw new AppError('ERR_EST_CA_DISABLED', undefined, { detail: `external CA ${found.record.id}` });
      }
      const idevid = (detail: string) => new AppError('ERR_EST_IDEVID_INVALID', undefined, { detail });
      for (const c of [...path, found.node])
        if (!within(c, now)) throw idevid(`${c.subject} not within validity`);
      for (const c of path.slice(1)) if (!c.ca) throw idevid('intermediate is not a CA');
      if (leaf.ca) throw idevid('the certificate is a CA');
      const leafCert = new x509.X509Certificate(leaf.raw);
      const eku = leafCert.getExtension(x509.ExtendedKeyUsageExtension);
      // IEEE 802.1AR IDevIDs often carry no EKU; when there is one it must allow client authentication.
      if (eku && !eku.usages.some((u) => u === OID.clientAuth || u === ANY_EKU)) {
        throw idevid('extendedKeyUsage lacks clientAuth');
      }
      const deviceId = deviceIdOf(leafCert, found.record.deviceIdFrom);
      if (!deviceId) throw idevid(`subject ${found.record.deviceIdFrom} is not a valid device id`);
      return { ca: found.record, deviceId, fingerprint256: leaf.fingerprint256 };
    },
  };
}
