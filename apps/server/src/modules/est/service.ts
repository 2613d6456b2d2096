// EST enrollment (RFC 7030) behind the wire format: who may enroll, as which device, into which fleet,
// and what happens to the old certificate on renewal. Nothing here depends on a fleet-wide secret:
// first enrollment needs a one-time (or quota-bound) code made by an operator, or a manufacturer
// certificate of an external CA registered with proof of possession.
import { createHash, timingSafeEqual, type X509Certificate } from 'node:crypto';
import { isValidDeviceId } from '@bulwark/protocol';
import {
  AppError,
  createMemoryRateLimiter,
  isAppError,
  type Clock,
  type Ids,
  type Logger,
  type RateLimiter,
} from '../../kernel/index.ts';
import type { AuditService } from '../audit/index.ts';
import type { DeviceService } from '../devices/index.ts';
import { certsOnlyPkcs7, checkFleet, type ClientIdentity, type PkiService } from '../pki/index.ts';
import { csrAttrsDer } from './csrattrs.ts';
import type {
  EnrollmentCode,
  EnrollMethod,
  EstRequest,
  EstRequestStatus,
  EstStore,
  FleetSettings,
} from './model.ts';

export interface EstAuth {
  tenantId: string;
  /** Source address, for rate limits and the audit log. */
  source: string;
  basic?: { username: string; password: string };
  /** The TLS client certificate, and the other certificates the client sent with it. */
  clientCert?: X509Certificate;
  clientChain?: readonly X509Certificate[];
}

export type EnrollResult =
  | { status: 'issued'; pkcs7: string; serial: string; deviceId: string }
  | { status: 'pending'; retryAfterSeconds: number; requestId: string };

export interface CreateCodeInput {
  tenantId: string;
  deviceId?: string;
  fleet: string;
  /** Number of devices that may enroll with the code; 1 for a device code. Default 1. */
  quota?: number;
  /** Default 7 days. */
  ttlSeconds?: number;
  approval?: boolean;
  createdBy: string;
}

export interface EstService {
  tenantExists(tenantId: string): Promise<boolean>;
  caCerts(tenantId: string): Promise<string>;
  /** Base64 DER CsrAttrs (RFC 7030 §4.5). */
  csrAttrs(): string;
  /** /simpleenroll: first enrollment (code or manufacturer certificate), or renewal with a platform certificate. */
  enroll(auth: EstAuth, csr: string): Promise<EnrollResult>;
  /** /simplereenroll: renewal with the current platform certificate; the old one is revoked after the fleet's grace period. */
  reenroll(auth: EstAuth, csr: string): Promise<EnrollResult>;
  createCode(input: CreateCodeInput): Promise<{ code: string; record: EnrollmentCode }>;
  listCodes(tenantId: string, limit?: number): Promise<EnrollmentCode[]>;
  revokeCode(tenantId: string, id: string, by: string): Promise<EnrollmentCode>;
  listRequests(tenantId: string, status?: EstRequestStatus): Promise<EstRequest[]>;
  decide(tenantId: string, id: string, decision: 'approve' | 'reject', by: string): Promise<EstRequest>;
  listFleetSettings(tenantId: string): Promise<FleetSettings[]>;
  /** Effective settings for a fleet: its own row, else the nearest ancestor's, else the tenant default. */
  fleetSettings(tenantId: string, fleet: string | null): Promise<Omit<FleetSettings, 'updatedAt'>>;
  putFleetSettings(
    tenantId: string,
    fleet: string,
    s: { certDays: number; graceSeconds: number },
    by: string,
  ): Promise<FleetSettings>;
  deleteFleetSettings(tenantId: string, fleet: string, by: string): Promise<void>;
  /** Revokes renewed certificates whose grace period is over; returns how many. Call periodically. */
  sweep(): Promise<number>;
}

export interface EstServiceOptions {
  store: EstStore;
  pki: PkiService;
  devices: Pick<DeviceService, 'find' | 'create' | 'getFleet'>;
  audit: AuditService;
  clock: Clock;
  ids: Ids;
  logger: Logger;
  defaults: { certDays: number; graceSeconds: number };
  /** Failed code attempts allowed per source address and per device id within `rateWindowMs`. Default 10. */
  maxFailures?: number;
  rateWindowMs?: number;
  /** Where failed attempts are counted: the platform passes the limiter every node shares. Default: in memory. */
  limiter?: RateLimiter;
  /** Retry-After sent with 202 while an enrollment awaits approval. Default 60. */
  retryAfterSeconds?: number;
}

const DAY_S = 86_400;
const MAX_CERT_DAYS = 397;
const MAX_GRACE_SECONDS = 30 * DAY_S;
const CODE_PREFIX = 'bwe_';

export function hashCode(code: string): string {
  return createHash('sha256').update(code, 'utf8').digest('hex');
}

interface Source {
  method: EnrollMethod;
  sourceId: string;
  fleet: string;
  approval: boolean;
  /** A code made for exactly this device may re-enroll an existing device. */
  boundToDevice: boolean;
  enrolledVia: string;
  /** Counts the use of a code; false when it is used up meanwhile. */
  consume?: () => Promise<boolean>;
  release?: () => Promise<void>;
}

export function createEstService(opts: EstServiceOptions): EstService {
  const { store, pki, devices, audit, clock, ids } = opts;
  const logger = opts.logger.child({ module: 'est' });
  const maxFailures = opts.maxFailures ?? 10;
  const rateWindowMs = opts.rateWindowMs ?? 15 * 60_000;
  const retryAfterSeconds = opts.retryAfterSeconds ?? 60;
  // Failed attempts per key (`ip:...`, `dev:...`): a bucket of `maxFailures` refilled over the window,
  // shared by every node through the limiter. The limit is about noise and lock-out, not entropy: guessing
  // a 192-bit code is hopeless anyway.
  const limiter = opts.limiter ?? createMemoryRateLimiter({ clock });
  const failureBucket = { burst: maxFailures, perMinute: (maxFailures * 60_000) / rateWindowMs };
  const bucketKey = (key: string) => `est-failures|${key}`;

  async function limited(key: string): Promise<number | undefined> {
    const r = await limiter.take(bucketKey(key), failureBucket, 0);
    return r.ok ? undefined : r.retryAfterSeconds;
  }

  async function fail(key: string): Promise<void> {
    await limiter.take(bucketKey(key), failureBucket, 1);
  }

  const deny = (auth: EstAuth, action: string, err: unknown, deviceId?: string) => {
    const code = isAppError(err) ? err.code : 'ERR_INTERNAL';
    audit.recordLater({
      tenant: auth.tenantId,
      actor: deviceId ? { type: 'device', id: deviceId } : { type: 'anonymous', id: auth.source },
      action,
      ...(deviceId ? { target: { type: 'device', id: deviceId } } : {}),
      outcome: 'denied',
      reason: isAppError(err) && err.detail ? `${code}: ${err.detail}` : code,
      source: auth.source,
    });
  };

  async function fleetSettings(tenantId: string, fleet: string | null) {
    const rows = await store.listFleetSettings(tenantId);
    const byFleet = new Map(rows.map((r) => [r.fleet, r]));
    const parts = fleet ? fleet.split('/') : [];
    for (let n = parts.length; n >= 0; n--) {
      const row = byFleet.get(parts.slice(0, n).join('/'));
      if (row) return { fleet: row.fleet, certDays: row.certDays, graceSeconds: row.graceSeconds };
    }
    return { fleet: '', ...opts.defaults };
  }

  async function issue(
    auth: EstAuth,
    deviceId: string,
    csr: string,
    fleet: string | null,
    enrolledVia: string | null,
  ) {
    const settings = await fleetSettings(auth.tenantId, fleet);
    return pki.signDeviceCsr({
      tenantId: auth.tenantId,
      deviceId,
      csrPem: csr,
      validityDays: settings.certDays,
      fleet,
      enrolledVia,
    });
  }

  /** First enrollment through a code or a manufacturer certificate. */
  async function admit(auth: EstAuth, deviceId: string, src: Source, csr: string): Promise<EnrollResult> {
    const t = auth.tenantId;
    // The CSR is checked before anything is counted: a bad CSR must not burn a one-time code.
    const { keyType } = await pki.checkDeviceCsr(t, deviceId, csr);
    const device = await devices.find(t, deviceId);
    if (device) {
      if (device.status !== 'active') throw new AppError('ERR_EST_DEVICE_DISABLED');
      const prior = await store.getEstDevice(t, deviceId);
      const sameCredential =
        src.method === 'idevid' && prior?.method === 'idevid' && prior.sourceId === src.sourceId;
      if (!src.boundToDevice && !sameCredential) {
        throw new AppError('ERR_EST_DEVICE_EXISTS', undefined, {
          detail: `device ${deviceId} exists and did not enroll through ${src.enrolledVia}`,
        });
      }
    }
    let request: EstRequest | undefined;
    if (src.approval && !device) {
      request = await store.getRequest(t, deviceId, src.sourceId);
      if (request?.status === 'pending') {
        return { status: 'pending', retryAfterSeconds, requestId: request.id };
      }
      if (request?.status === 'rejected') throw new AppError('ERR_EST_REJECTED');
      if (request?.status !== 'approved') {
        if (src.consume && !(await src.consume())) throw new AppError('ERR_EST_CODE_USED');
        const fresh: EstRequest = {
          id: `req_${ids.token(12)}`,
          tenantId: t,
          deviceId,
          method: src.method,
          sourceId: src.sourceId,
          fleet: src.fleet,
          keyType,
          source: auth.source,
          status: 'pending',
          createdAt: clock.now(),
          decidedAt: null,
          decidedBy: null,
        };
        // `issued` requests are replaced: a quota code may enroll a device again after it was deleted.
        if (request?.status === 'issued') {
          await store.decideRequest(t, request.id, 'issued', 'pending', clock.now(), null);
          fresh.id = request.id;
        } else if (!(await store.insertRequest(fresh))) {
          const raced = await store.getRequest(t, deviceId, src.sourceId);
          return { status: 'pending', retryAfterSeconds, requestId: raced?.id ?? fresh.id };
        }
        await audit.record({
          tenant: t,
          actor: { type: 'device', id: deviceId },
          action: 'est.enroll',
          target: { type: 'device', id: deviceId },
          outcome: 'success',
          reason: 'awaiting approval',
          source: auth.source,
          details: {
            requestId: fresh.id,
            method: src.method,
            via: src.enrolledVia,
            fleet: src.fleet,
            keyType,
          },
        });
        return { status: 'pending', retryAfterSeconds, requestId: fresh.id };
      }
    } else if (src.consume && !(await src.consume())) {
      throw new AppError('ERR_EST_CODE_USED');
    }
    let issued;
    // An existing device stays where it is; a new one is registered just in time into the credential's fleet.
    const fleet = device ? device.fleet : src.fleet;
    try {
      if (!device) {
        try {
          await devices.create(t, deviceId, {}, src.fleet);
        } catch (err) {
          if (isAppError(err) && err.code === 'ERR_DEVICE_EXISTS')
            throw new AppError('ERR_EST_DEVICE_EXISTS');
          throw err;
        }
      }
      issued = await issue(auth, deviceId, csr, fleet, src.enrolledVia);
    } catch (err) {
      // Approved requests keep their approval; a counted code use is given back.
      if (src.release && request?.status !== 'approved') await src.release();
      throw err;
    }
    await store.recordEstDevice({
      tenantId: t,
      deviceId,
      fleet,
      method: src.method,
      sourceId: src.sourceId,
      createdAt: clock.now(),
    });
    if (request) await store.decideRequest(t, request.id, 'approved', 'issued', clock.now(), null);
    await audit.record({
      tenant: t,
      actor: { type: 'device', id: deviceId },
      action: 'est.enroll',
      target: { type: 'certificate', id: issued.serial },
      outcome: 'success',
      source: auth.source,
      details: {
        deviceId,
        method: src.method,
        via: src.enrolledVia,
        fleet,
        keyType: issued.keyType,
        notAfter: new Date(issued.notAfter).toISOString(),
        registered: !device,
      },
    });
    return {
      status: 'issued',
      pkcs7: certsOnlyPkcs7([issued.certificatePem]),
      serial: issued.serial,
      deviceId,
    };
  }

  async function withCode(auth: EstAuth, basic: { username: string; password: string }, csr: string) {
    const t = auth.tenantId;
    const deviceId = basic.username;
    const keys = [`ip:${auth.source}`, `dev:${t}/${deviceId}`];
    for (const k of keys) {
      const wait = await limited(k);
      if (wait !== undefined) {
        throw new AppError('ERR_RATE_LIMITED', undefined, {
          detail: `${k} retry in ${wait}s`,
          retryAfterSeconds: wait,
        });
      }
    }
    const invalid = async (detail: string) => {
      for (const k of keys) await fail(k);
      return new AppError('ERR_EST_CODE_INVALID', undefined, { detail });
    };
    if (!isValidDeviceId(deviceId)) throw await invalid('user name is not a valid device id');
    const hash = hashCode(basic.password);
    const code = basic.password.startsWith(CODE_PREFIX) ? await store.findCodeByHash(hash) : undefined;
    // Found by hash; compared again in constant time so timing says nothing about near misses.
    if (!code || !timingSafeEqual(Buffer.from(code.hash, 'hex'), Buffer.from(hash, 'hex'))) {
      throw await invalid('no such code');
    }
    if (code.tenantId !== t) throw await invalid('code of another tenant');
    if (code.deviceId !== null && code.deviceId !== deviceId)
      throw await invalid(`code is for device ${code.deviceId}`);
    if (code.revokedAt !== null) throw new AppError('ERR_EST_CODE_EXPIRED', undefined, { detail: 'revoked' });
    if (code.expiresAt <= clock.now()) throw new AppError('ERR_EST_CODE_EXPIRED');
    const used = code.used >= code.quota;
    // A code that is used up still identifies an enrollment awaiting approval (the device retries).
    if (used && !(code.approval && (await store.getRequest(t, deviceId, code.id)))) {
      throw new AppError('ERR_EST_CODE_USED');
    }
    return admit(
      auth,
      deviceId,
      {
        method: 'code',
        sourceId: code.id,
        fleet: code.fleet,
        approval: code.approval,
        boundToDevice: code.deviceId !== null,
        enrolledVia: `code:${code.id}`,
        consume: () => store.useCode(code.id, clock.now()),
        release: () => store.releaseCode(code.id),
      },
      csr,
    );
  }

  async function renew(auth: EstAuth, identity: ClientIdentity, csr: string): Promise<EnrollResult> {
    const t = auth.tenantId;
    if (identity.tenantId !== t)
      throw new AppError('ERR_EST_UNKNOWN_CA', undefined, { detail: 'other tenant' });
    const { deviceId, serial } = identity;
    const device = await devices.find(t, deviceId);
    if (!device || device.status !== 'active') throw new AppError('ERR_EST_DEVICE_DISABLED');
    await pki.checkDeviceCsr(t, deviceId, csr);
    if (await store.getSuperseded(t, serial)) throw new AppError('ERR_EST_CERT_SUPERSEDED');
    const old = await pki.getCertificate(t, serial);
    // The device's fleet now (it may have moved since its last certificate).
    const settings = await fleetSettings(t, device.fleet);
    const revokeAt = clock.now() + settings.graceSeconds * 1000;
    // Claim the old certificate first: two concurrent renewals with it cannot both succeed.
    if (!(await store.insertSuperseded({ tenantId: t, serial, deviceId, replacedBy: '', revokeAt }))) {
      throw new AppError('ERR_EST_CERT_SUPERSEDED');
    }
    let issued;
    try {
      issued = await issue(auth, deviceId, csr, device.fleet, old.enrolledVia);
    } catch (err) {
      await store.deleteSuperseded(t, serial);
      throw err;
    }
    await store.setSupersededBy(t, serial, issued.serial);
    await audit.record({
      tenant: t,
      actor: { type: 'device', id: deviceId },
      action: 'est.reenroll',
      target: { type: 'certificate', id: issued.serial },
      outcome: 'success',
      source: auth.source,
      details: {
        deviceId,
        previous: serial,
        keyType: issued.keyType,
        notAfter: new Date(issued.notAfter).toISOString(),
        previousRevokedAt: new Date(revokeAt).toISOString(),
      },
    });
    if (settings.graceSeconds === 0) await sweep();
    return {
      status: 'issued',
      pkcs7: certsOnlyPkcs7([issued.certificatePem]),
      serial: issued.serial,
      deviceId,
    };
  }

  async function sweep(): Promise<number> {
    let n = 0;
    for (const s of await store.listDueSuperseded(clock.now(), 500)) {
      try {
        const c = await pki.revokeCertificate(s.tenantId, s.serial, 'superseded');
        await audit.record({
          tenant: s.tenantId,
          actor: { type: 'system', id: 'est' },
          action: 'cert.revoke',
          target: { type: 'certificate', id: s.serial },
          outcome: 'success',
          reason: 'superseded by renewal',
          details: { deviceId: c.deviceId, replacedBy: s.replacedBy, reason: 'superseded' },
        });
        n++;
      } catch (err) {
        if (!(isAppError(err) && err.code === 'ERR_PKI_CERT_NOT_FOUND')) {
          logger.error({ err: String(err), serial: s.serial }, 'revoking a renewed certificate failed');
          continue;
        }
      }
      await store.deleteSuperseded(s.tenantId, s.serial);
    }
    return n;
  }

  function platformIdentity(cert: X509Certificate): { identity?: ClientIdentity; error?: unknown } {
    try {
      return { identity: pki.identifyClient(cert) };
    } catch (error) {
      return { error };
    }
  }

  async function tenantExists(tenantId: string) {
    return typeof tenantId === 'string' && /^[a-z0-9][a-z0-9-]{0,62}$/.test(tenantId)
      ? store.tenantExists(tenantId)
      : false;
  }

  async function requireTenant(tenantId: string) {
    if (!(await tenantExists(tenantId))) throw new AppError('ERR_EST_TENANT_NOT_FOUND');
  }

  const validInt = (v: unknown, min: number, max: number, path: string): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw new AppError('ERR_VALIDATION', undefined, {
        errors: [{ path, message: `must be an integer from ${min} to ${max}` }],
      });
    }
    return v;
  };

  return {
    tenantExists,

    async caCerts(tenantId) {
      await requireTenant(tenantId);
      return pki.caCertsPkcs7(tenantId);
    },

    csrAttrs: () => Buffer.from(csrAttrsDer()).toString('base64'),

    async enroll(auth, csr) {
      let deviceId: string | undefined = auth.basic?.username;
      try {
        await requireTenant(auth.tenantId);
        if (auth.clientCert) {
          const { identity, error } = platformIdentity(auth.clientCert);
          if (identity) {
            deviceId = identity.deviceId;
            return await renew(auth, identity, csr);
          }
          const ours = !(isAppError(error) && error.code === 'ERR_PKI_UNKNOWN_ISSUER');
          if (ours) {
            // One of our certificates, but revoked, expired...: an enrollment code may still re-enroll.
            if (!auth.basic) throw error;
          } else {
            try {
              const ext = await pki.identifyExternalClient(
                auth.tenantId,
                auth.clientCert,
                auth.clientChain ?? [],
              );
              deviceId = ext.deviceId;
              return await admit(
                auth,
                ext.deviceId,
                {
                  method: 'idevid',
                  sourceId: ext.ca.id,
                  fleet: ext.ca.fleet,
                  approval: ext.ca.approval,
                  boundToDevice: false,
                  enrolledVia: `ca:${ext.ca.id}`,
                },
                csr,
              );
            } catch (err) {
              if (!(isAppError(err) && err.code === 'ERR_EST_UNKNOWN_CA' && auth.basic)) throw err;
            }
          }
        }
        if (!auth.basic) throw new AppError('ERR_EST_AUTH_REQUIRED');
        deviceId = auth.basic.username;
        return await withCode(auth, auth.basic, csr);
      } catch (err) {
        deny(
          auth,
          'est.enroll',
          err,
          deviceId !== undefined && isValidDeviceId(deviceId) ? deviceId : undefined,
        );
        throw err;
      }
    },

    async reenroll(auth, csr) {
      let deviceId: string | undefined;
      try {
        await requireTenant(auth.tenantId);
        if (!auth.clientCert) throw new AppError('ERR_EST_REENROLL_CERT');
        const { identity, error } = platformIdentity(auth.clientCert);
        if (!identity) {
          if (isAppError(error) && error.code === 'ERR_PKI_UNKNOWN_ISSUER')
            throw new AppError('ERR_EST_REENROLL_CERT');
          throw error;
        }
        deviceId = identity.deviceId;
        return await renew(auth, identity, csr);
      } catch (err) {
        deny(auth, 'est.reenroll', err, deviceId);
        throw err;
      }
    },

    async createCode(input) {
      const t = input.tenantId;
      const fleet = checkFleet(input.fleet);
      if (fleet !== '') await devices.getFleet(t, fleet);
      if (input.deviceId !== undefined && !isValidDeviceId(input.deviceId)) {
        throw new AppError('ERR_DEVICE_INVALID_ID');
      }
      const quota = input.deviceId !== undefined ? 1 : validInt(input.quota ?? 1, 1, 1_000_000, 'quota');
      const ttl = validInt(input.ttlSeconds ?? 7 * DAY_S, 60, 365 * DAY_S, 'ttlSeconds');
      // 192 bits: guessing is hopeless even without the rate limit.
      const code = `${CODE_PREFIX}${ids.token(24)}`;
      const now = clock.now();
      const record: EnrollmentCode = {
        id: `enc_${ids.token(9)}`,
        tenantId: t,
        hash: hashCode(code),
        deviceId: input.deviceId ?? null,
        fleet,
        quota,
        used: 0,
        approval: input.approval === true,
        expiresAt: now + ttl * 1000,
        revokedAt: null,
        createdBy: input.createdBy,
        createdAt: now,
      };
      await store.insertCode(record);
      return { code, record };
    },

    async listCodes(tenantId, limit = 100) {
      return store.listCodes(tenantId, validInt(limit, 1, 500, 'limit'));
    },

    async revokeCode(tenantId, id) {
      const code = await store.getCode(tenantId, id);
      if (!code) throw new AppError('ERR_EST_CODE_NOT_FOUND');
      await store.revokeCode(tenantId, id, clock.now());
      return (await store.getCode(tenantId, id)) ?? code;
    },

    async listRequests(tenantId, status) {
      return store.listRequests(tenantId, status, 500);
    },

    async decide(tenantId, id, decision, by) {
      const to = decision === 'approve' ? 'approved' : 'rejected';
      if (!(await store.decideRequest(tenantId, id, 'pending', to, clock.now(), by))) {
        throw new AppError('ERR_EST_REQUEST_NOT_FOUND');
      }
      const r = await store.getRequestById(tenantId, id);
      if (!r) throw new AppError('ERR_EST_REQUEST_NOT_FOUND');
      return r;
    },

    listFleetSettings: (tenantId) => store.listFleetSettings(tenantId),
    fleetSettings,

    async putFleetSettings(tenantId, fleetIn, s) {
      const fleet = fleetIn === '' ? '' : checkFleet(fleetIn);
      const row: FleetSettings = {
        fleet,
        certDays: validInt(s.certDays, 1, MAX_CERT_DAYS, 'certDays'),
        graceSeconds: validInt(s.graceSeconds, 0, MAX_GRACE_SECONDS, 'graceSeconds'),
        updatedAt: clock.now(),
      };
      await store.putFleetSettings(tenantId, row);
      return row;
    },

    async deleteFleetSettings(tenantId, fleet) {
      await store.deleteFleetSettings(tenantId, fleet);
    },

    sweep,
  };
}
