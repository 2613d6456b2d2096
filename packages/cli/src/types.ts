// Shapes of the REST API (`/api/v1`) as the CLI uses them. The server is the source of truth;
// fields the CLI does not know are kept and passed through untouched (`--json` prints them).

export interface Whoami {
  id: string;
  name: string;
  tenant: string;
  role: string;
  kind: string;
}

export type DeviceStatus = 'active' | 'disabled';

export interface Device {
  id: string;
  tenant: string;
  status: DeviceStatus;
  attributes: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
}

export type CertificateStatus = 'active' | 'revoked';

export interface CertificateSummary {
  serial: string;
  deviceId: string;
  status: CertificateStatus;
  keyType: string;
  notBefore: string;
  notAfter: string;
  revokedAt?: string | null;
  fingerprint256: string;
}

export interface DeviceDetail extends Device {
  certificates: CertificateSummary[];
  connected?: boolean;
}

export interface IssuedCertificate {
  serial: string;
  /** PEM: the device certificate alone. */
  certificate: string;
  /** PEM: the device certificate followed by the issuing CA. */
  chain: string;
  /** PEM: the root CA that clients (and devices) trust. */
  ca: string;
  notBefore: string;
  notAfter: string;
  fingerprint256: string;
  keyType: string;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface TelemetryRow {
  ts: string;
  stream?: string;
  data: Record<string, unknown>;
}

/** Who did something, or what it was done to. Older servers sent a plain string. */
export type AuditParty = string | { type: string; id: string };

export interface AuditEntry {
  seq: number;
  ts: string;
  tenant?: string | null;
  actor: AuditParty;
  action: string;
  target?: AuditParty | null;
  outcome: string;
  reason?: string;
  source?: string;
  details?: Record<string, unknown>;
}

export interface AuditQuery extends PageQuery {
  /** Only entries with this action, e.g. `device.create`. */
  action?: string | undefined;
}

export interface CreateDeviceInput {
  id: string;
  attributes?: Record<string, unknown>;
}

export interface PageQuery {
  limit?: number | undefined;
  cursor?: string | undefined;
}

export interface TelemetryQuery extends PageQuery {
  from?: string | undefined;
  to?: string | undefined;
  stream?: string | undefined;
  order?: 'asc' | 'desc' | undefined;
}
