/** How bad a finding is; a device cannot choose the severity of what it reports. */
export const SEVERITIES = ['critical', 'high', 'medium', 'low'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** What a finding is about. Stable strings: subscribers and filters switch on them. */
export const FINDING_KINDS = [
  /** The device listens on a socket: devices must only dial out. */
  'listening-port',
  /** The device offers TLS versions below 1.2. */
  'weak-tls-version',
  /** The device supports key types below the platform's minimum (RSA < 2048, DSA...). */
  'weak-key-type',
  /** The device keeps its private key in a file rather than a TPM or secure element. */
  'key-in-software',
  /** The device cannot be updated (`updateMethod: none`). */
  'no-update-method',
  /** The device's report leaves out a security capability (key storage, update method, TLS). */
  'missing-capability',
  /** A policy statement the linter flags (a policy was written). */
  'policy-lint',
  /** The device reported tampering on devices/{id}/events/tamper. */
  'tamper',
] as const;
export type FindingKind = (typeof FINDING_KINDS)[number];

export type FindingStatus = 'open' | 'resolved';

export interface Finding {
  readonly id: string;
  readonly tenant: string;
  /** The device the finding is about; null for findings about the tenant's configuration (policies). */
  readonly deviceId: string | null;
  readonly kind: FindingKind;
  readonly severity: Severity;
  /** One line for people. */
  readonly summary: string;
  readonly details: Readonly<Record<string, unknown>>;
  readonly status: FindingStatus;
  /** Times it was observed (a report that still shows it, a repeated tamper report). */
  readonly occurrences: number;
  readonly firstSeenAt: number;
  readonly lastSeenAt: number;
  readonly resolvedAt: number | null;
  /** Who resolved it: an account id, or `system` when the producer no longer observes it. */
  readonly resolvedBy: string | null;
  readonly resolution: string | null;
  /** What produced it (`device:<id>`, `policy:<id>`, `tamper:<id>`): the scope of automatic resolution. */
  readonly source: string;
  /** Identifies the finding within its tenant: the same problem observed again is the same finding. */
  readonly subject: string;
}

/** One thing a producer observed now. */
export interface Observation {
  readonly subject: string;
  readonly kind: FindingKind;
  readonly severity: Severity;
  readonly summary: string;
  readonly details: Readonly<Record<string, unknown>>;
}

export interface FindingQuery {
  status?: FindingStatus;
  severity?: Severity;
  kind?: FindingKind;
  deviceId?: string;
  limit: number;
  /** Keyset: findings seen before (lastSeenAt, id). */
  before?: { lastSeenAt: number; id: string };
}

export interface PostureStore {
  /** Inserts the finding unless its subject exists; false when it did. */
  insert(f: Finding): Promise<boolean>;
  getById(tenant: string, id: string): Promise<Finding | undefined>;
  getBySubject(tenant: string, subject: string): Promise<Finding | undefined>;
  /**
   * Seen again: refreshes it (severity, summary, details, last seen, occurrences). A resolved finding is
   * opened again; returns 'reopened' then, 'seen' when it was open, undefined when there is none.
   */
  observeAgain(
    tenant: string,
    subject: string,
    o: Observation,
    now: number,
  ): Promise<'reopened' | 'seen' | undefined>;
  /** Resolves the open findings of `source` whose subject is not in `keep`; returns how many. */
  resolveMissing(
    tenant: string,
    source: string,
    keep: readonly string[],
    now: number,
    resolution: string,
  ): Promise<number>;
  /** Resolves the open findings about a device; returns how many. */
  resolveDevice(tenant: string, deviceId: string, now: number, resolution: string): Promise<number>;
  /** Resolves one open finding; false when it was not open. */
  resolve(tenant: string, id: string, now: number, by: string, resolution: string | null): Promise<boolean>;
  list(tenant: string, q: FindingQuery): Promise<Finding[]>;
}
