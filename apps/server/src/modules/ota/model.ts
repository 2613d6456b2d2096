// Safe remote updates: releases (artifacts with version and compatible hardware), the per-tenant TUF
// repository that signs them, and campaigns that roll them out in waves. Types and ports only.
import type { Readable } from 'node:stream';
import type { CampaignPlan } from './scheduler.ts';

export const TUF_ROLES = ['root', 'targets', 'snapshot', 'timestamp'] as const;
export type TufRole = (typeof TUF_ROLES)[number];

/** A TUF public key as it appears in root metadata (Ed25519, hex). */
export interface TufPublicKey {
  readonly keytype: 'ed25519';
  readonly scheme: 'ed25519';
  readonly keyval: { readonly public: string };
}

export interface TufSignature {
  readonly keyid: string;
  readonly sig: string;
}

export type ReleaseKind = 'firmware' | 'software';
export type ReleaseState = 'unsigned' | 'published';

export interface Release {
  readonly tenant: string;
  readonly id: string;
  /** Component name, e.g. `sensor-fw` (firmware) or the software package name. */
  readonly name: string;
  readonly version: string;
  readonly kind: ReleaseKind;
  /** TUF target path: `<name>/<version>`. */
  readonly targetPath: string;
  readonly sha256: string;
  readonly size: number;
  /** Compatible hardware: `model` or `model@revision`. */
  readonly hardware: readonly string[];
  /** CycloneDX JSON, when given. */
  readonly sbom: Record<string, unknown> | null;
  /** Signed into the target's custom data: devices accept it even when it is older than what they run. */
  readonly allowDowngrade: boolean;
  readonly notes: string;
  readonly state: ReleaseState;
  readonly createdBy: string;
  readonly createdAt: number;
  readonly publishedAt: number | null;
}

export interface StoredKey {
  readonly role: TufRole;
  readonly keyId: string;
  readonly publicHex: string;
  /** Sealed PKCS#8 private key (online roles only). */
  readonly sealedPrivate: string | null;
}

export interface StoredMetadata {
  readonly role: TufRole;
  readonly version: number;
  readonly body: string;
  readonly expiresAt: number;
}

export interface PendingMetadata {
  readonly role: 'root' | 'targets';
  readonly version: number;
  /** Canonical JSON of the `signed` part: exactly the bytes the offline keys sign. */
  readonly signed: string;
  /** SHA-256 (hex) of `signed`: a signer names what it signed, so a changed draft is detected. */
  readonly digest: string;
  /** Valid signatures collected so far. */
  readonly signatures: readonly TufSignature[];
  readonly createdAt: number;
}

export type CampaignState =
  'running' | 'awaiting-approval' | 'paused' | 'completed' | 'aborted' | 'cancelled';
export const ACTIVE_CAMPAIGN_STATES: readonly CampaignState[] = ['running', 'awaiting-approval', 'paused'];

export type CampaignTarget =
  | { readonly type: 'fleet'; readonly fleet: string }
  | { readonly type: 'group'; readonly group: string }
  | { readonly type: 'query'; readonly query: string }
  | { readonly type: 'devices'; readonly devices: readonly string[] };

export interface Campaign {
  readonly tenant: string;
  readonly id: string;
  readonly name: string;
  readonly releaseId: string;
  readonly target: CampaignTarget;
  readonly plan: CampaignPlan;
  readonly state: CampaignState;
  readonly stateReason: string | null;
  /** Current wave (0 = canary). */
  readonly wave: number;
  readonly waveCount: number;
  /** Highest wave an operator approved (waves with approval wait until this reaches them). */
  readonly approvedWave: number;
  /** Failures of the current wave already seen by an operator who resumed: not counted again. */
  readonly failuresAcknowledged: number;
  readonly total: number;
  readonly excluded: number;
  readonly revision: number;
  readonly createdBy: string;
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** A device's place in a campaign. `pending` -> `notified` -> downloading... -> succeeded | failed. */
export type AssignmentState =
  | 'excluded'
  | 'pending'
  | 'notified'
  | 'downloading'
  | 'installing'
  | 'rebooting'
  | 'succeeded'
  | 'failed'
  | 'rolled-back'
  | 'cancelled';

export const IN_PROGRESS: readonly AssignmentState[] = ['notified', 'downloading', 'installing', 'rebooting'];
export const FAILED: readonly AssignmentState[] = ['failed', 'rolled-back'];

export interface Assignment {
  readonly deviceId: string;
  readonly wave: number;
  readonly ord: number;
  readonly state: AssignmentState;
  readonly reason: string | null;
  readonly fromVersion: string | null;
  readonly version: string | null;
  readonly health: string | null;
  readonly progress: number | null;
  readonly notifiedAt: number | null;
  readonly updatedAt: number;
}

export interface WaveCounts {
  readonly total: number;
  readonly pending: number;
  readonly active: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly cancelled: number;
}

/** Content-addressed storage of artifacts (a filesystem under the data dir by default). */
export interface BlobStore {
  /** Streams `body` in, hashing as it goes; refuses (and keeps nothing) past `maxBytes`. */
  put(body: AsyncIterable<Uint8Array>, opts: { maxBytes: number }): Promise<{ sha256: string; size: number }>;
  stat(sha256: string): Promise<{ size: number } | undefined>;
  /** Bytes `start` to `end` inclusive (the whole blob without a range). */
  get(sha256: string, range?: { start: number; end: number }): Readable;
}

export interface OtaStore {
  // releases
  insertRelease(r: Release): Promise<void>;
  getRelease(tenant: string, id: string): Promise<Release | undefined>;
  findRelease(tenant: string, name: string, version: string): Promise<Release | undefined>;
  listReleases(tenant: string, opts: { limit: number; before?: number; name?: string }): Promise<Release[]>;
  /** Releases signed or waiting for a signature: what the next targets metadata lists. */
  releasesForTargets(tenant: string): Promise<Release[]>;
  publishReleases(tenant: string, targetPaths: readonly string[], at: number): Promise<void>;
  releaseWithBlob(tenant: string, sha256: string): Promise<Release | undefined>;

  // TUF repository
  keys(tenant: string): Promise<StoredKey[]>;
  insertKey(tenant: string, key: StoredKey, at: number): Promise<void>;
  deleteKeys(tenant: string, role: TufRole): Promise<void>;
  latestMetadata(tenant: string, role: TufRole): Promise<StoredMetadata | undefined>;
  metadata(tenant: string, role: TufRole, version: number): Promise<StoredMetadata | undefined>;
  insertMetadata(tenant: string, m: StoredMetadata, at: number): Promise<void>;
  pending(tenant: string): Promise<PendingMetadata[]>;
  setPending(tenant: string, p: PendingMetadata): Promise<void>;
  /** Replaces the collected signatures of the draft with this digest; false when the draft changed. */
  setPendingSignatures(
    tenant: string,
    role: 'root' | 'targets',
    digest: string,
    signatures: readonly TufSignature[],
  ): Promise<boolean>;
  deletePending(tenant: string, role: 'root' | 'targets', digest: string): Promise<boolean>;
  /** Tenants whose repository has a timestamp (the refresher's work list). */
  repositoryTenants(): Promise<string[]>;

  // campaigns
  insertCampaign(c: Campaign, assignments: readonly Assignment[]): Promise<void>;
  getCampaign(tenant: string, id: string): Promise<Campaign | undefined>;
  listCampaigns(
    tenant: string,
    opts: { limit: number; before?: number; state?: string },
  ): Promise<Campaign[]>;
  activeCampaigns(): Promise<{ tenant: string; id: string }[]>;
  /** Compare-and-set on `revision`: false when another writer changed the campaign first. */
  updateCampaign(c: Campaign, expectedRevision: number): Promise<boolean>;
  waveCounts(tenant: string, campaignId: string, wave: number): Promise<WaveCounts>;
  countByState(tenant: string, campaignId: string): Promise<Record<string, number>>;
  countInProgress(tenant: string, campaignId: string): Promise<number>;
  countNotifiedSince(tenant: string, campaignId: string, since: number): Promise<number>;
  /** Up to `limit` pending devices of `wave`, in wave order, moved to `notified` (only those still pending). */
  claimPending(
    tenant: string,
    campaignId: string,
    wave: number,
    limit: number,
    at: number,
  ): Promise<Assignment[]>;
  getAssignment(tenant: string, campaignId: string, deviceId: string): Promise<Assignment | undefined>;
  updateAssignment(
    tenant: string,
    campaignId: string,
    deviceId: string,
    from: readonly AssignmentState[],
    patch: {
      state: AssignmentState;
      reason?: string | null;
      version?: string | null;
      health?: string | null;
      progress?: number | null;
    },
    at: number,
  ): Promise<boolean>;
  listAssignments(
    tenant: string,
    campaignId: string,
    opts: { limit: number; afterId?: string; state?: string; wave?: number },
  ): Promise<Assignment[]>;
  /** In-progress devices notified before `before` (they missed their deadline). */
  overdue(tenant: string, campaignId: string, before: number, limit: number): Promise<Assignment[]>;
  /** Moves every assignment in `from` to `to`; returns the devices moved. */
  bulkState(
    tenant: string,
    campaignId: string,
    from: readonly AssignmentState[],
    to: AssignmentState,
    reason: string,
    at: number,
  ): Promise<string[]>;
  /** Devices in an active campaign (other than `exceptCampaign`) that are not done yet. */
  busyDevices(tenant: string, deviceIds: readonly string[], exceptCampaign?: string): Promise<Set<string>>;
}
