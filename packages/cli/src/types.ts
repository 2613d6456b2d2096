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

/** A policy attachment point: where a policy applies. */
export type AttachmentTargetType = 'platform' | 'tenant' | 'fleet' | 'group' | 'device';

export interface PolicyStatement {
  sid?: string;
  effect: 'allow' | 'deny';
  actions: string[];
  resources?: string[];
  notResources?: string[];
  conditions?: Record<string, unknown>;
}

export interface Policy {
  id: string;
  builtin: boolean;
  version: number;
  description: string;
  statements: PolicyStatement[];
  attachments: { type: string; id: string }[];
  createdAt: string | null;
  updatedAt: string | null;
  updatedBy: string | null;
}

export interface PolicyInput {
  id?: string;
  description?: string;
  statements: unknown[];
  expectedVersion?: number;
}

export interface PolicyVersionEntry {
  version: number;
  deleted: boolean;
  document: unknown;
  createdAt: string;
  createdBy: string;
}

export interface AttachmentPointRef {
  type: string;
  id: string;
}

export interface Explanation {
  principal: Record<string, unknown>;
  action: string;
  resource: string;
  allowed: boolean;
  outcome: 'allow' | 'deny' | 'implicit-deny' | 'boundary-deny';
  matched: {
    policy: string;
    version: number;
    sid?: string;
    statement: number;
    effect: 'allow' | 'deny';
    attachedAt: AttachmentPointRef[];
  }[];
  evaluated: { policy: string; version: number; attachedAt: AttachmentPointRef[] }[];
  /** People and programs: each permission boundary and whether it lets the request through. */
  boundaries?: {
    boundary: { kind: string; actions?: string[]; fleet?: string; selfOnly?: boolean };
    allowed: boolean;
  }[];
}

export interface ExplainInput {
  principal: { type: 'device' | 'user' | 'service'; id: string };
  action: string;
  resource: string;
  context?: { sourceIp?: string; mfa?: boolean; time?: string };
}

export interface LintFinding {
  rule: string;
  severity: 'high' | 'medium' | 'low';
  statement: number;
  sid?: string;
  message: string;
}

export interface PermissionChange {
  action: string;
  resource: string;
}

export interface PolicyDiff {
  devices: { id: string; gained: PermissionChange[]; lost: PermissionChange[] }[];
  evaluated: number;
  truncated: boolean;
  lint: LintFinding[];
}

export type DiffInput =
  | { document: { description?: string; statements: unknown[] } }
  | { delete: true }
  | { attach: { targetType: AttachmentTargetType; targetId?: string } }
  | { detach: { targetType: AttachmentTargetType; targetId?: string } };

export interface Fleet {
  path: string;
  parent: string | null;
  description: string;
  devices?: number;
  fleets?: number;
  createdAt: string;
  updatedAt: string;
}

export interface Group {
  name: string;
  kind: 'static' | 'dynamic';
  query: string | null;
  description: string;
  builtin?: boolean;
  members?: number;
  createdAt: string | null;
  updatedAt: string | null;
}
