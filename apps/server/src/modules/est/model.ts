// EST enrollment (RFC 7030): enrollment codes, first-enrollment records, approvals, per-fleet
// certificate settings and renewals waiting for their grace period.

/** An operator-made enrollment code. Only its SHA-256 hash is stored; the code itself is shown once. */
export interface EnrollmentCode {
  id: string;
  tenantId: string;
  hash: string;
  /** Bound to one device id (one-time), or null: a fleet code with a quota, for new devices only. */
  deviceId: string | null;
  fleet: string;
  quota: number;
  used: number;
  /** Devices enrolling with it wait for an operator's approval. */
  approval: boolean;
  expiresAt: number;
  revokedAt: number | null;
  createdBy: string;
  createdAt: number;
}

export type EnrollMethod = 'code' | 'idevid';

/** How a device first enrolled over EST. */
export interface EstDevice {
  tenantId: string;
  deviceId: string;
  fleet: string;
  method: EnrollMethod;
  /** Enrollment code id or external CA id. */
  sourceId: string;
  createdAt: number;
}

export type EstRequestStatus = 'pending' | 'approved' | 'rejected' | 'issued';

export interface EstRequest {
  id: string;
  tenantId: string;
  deviceId: string;
  method: EnrollMethod;
  sourceId: string;
  fleet: string;
  keyType: string;
  source: string | null;
  status: EstRequestStatus;
  createdAt: number;
  decidedAt: number | null;
  decidedBy: string | null;
}

export interface FleetSettings {
  /** '' is the tenant default. */
  fleet: string;
  certDays: number;
  graceSeconds: number;
  updatedAt: number;
}

export interface Superseded {
  tenantId: string;
  serial: string;
  deviceId: string;
  replacedBy: string;
  revokeAt: number;
}

export interface EstStore {
  tenantExists(tenantId: string): Promise<boolean>;
  insertCode(code: EnrollmentCode): Promise<void>;
  findCodeByHash(hash: string): Promise<EnrollmentCode | undefined>;
  getCode(tenantId: string, id: string): Promise<EnrollmentCode | undefined>;
  listCodes(tenantId: string, limit: number): Promise<EnrollmentCode[]>;
  /** Counts one use if the code is still usable at `now`; false when revoked, expired or used up. */
  useCode(id: string, now: number): Promise<boolean>;
  /** Gives a use back (issuance failed after the code was counted). */
  releaseCode(id: string): Promise<void>;
  revokeCode(tenantId: string, id: string, at: number): Promise<boolean>;
  getEstDevice(tenantId: string, deviceId: string): Promise<EstDevice | undefined>;
  /** Inserts unless the device has a record already. */
  recordEstDevice(d: EstDevice): Promise<void>;
  getRequest(tenantId: string, deviceId: string, sourceId: string): Promise<EstRequest | undefined>;
  getRequestById(tenantId: string, id: string): Promise<EstRequest | undefined>;
  insertRequest(r: EstRequest): Promise<boolean>;
  listRequests(tenantId: string, status: EstRequestStatus | undefined, limit: number): Promise<EstRequest[]>;
  /** Moves a request from `from` to `to`; false when it was not in `from`. */
  decideRequest(
    tenantId: string,
    id: string,
    from: EstRequestStatus,
    to: EstRequestStatus,
    at: number,
    by: string | null,
  ): Promise<boolean>;
  listFleetSettings(tenantId: string): Promise<FleetSettings[]>;
  putFleetSettings(tenantId: string, s: FleetSettings): Promise<void>;
  deleteFleetSettings(tenantId: string, fleet: string): Promise<boolean>;
  /** False when the serial is already superseded (a second renewal with the same certificate). */
  insertSuperseded(s: Superseded): Promise<boolean>;
  getSuperseded(tenantId: string, serial: string): Promise<Superseded | undefined>;
  setSupersededBy(tenantId: string, serial: string, replacedBy: string): Promise<void>;
  deleteSuperseded(tenantId: string, serial: string): Promise<void>;
  listDueSuperseded(now: number, limit: number): Promise<Superseded[]>;
}
