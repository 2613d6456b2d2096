// Releases and the per-tenant TUF repository (root, targets, snapshot, timestamp; consistent snapshots).
//
// Key custody: root and targets keys stay offline by default. The platform prepares the unsigned
// metadata (a root draft from the public keys an operator sends, the next targets listing every release)
// and publishes it once a threshold of valid signatures arrives (`bulwark release sign` signs locally).
// Snapshot and timestamp keys are online, sealed at rest by the KeyProtector, and the refresher re-signs
// them before they expire. So a compromised platform can freeze or replay what was released, for as
// long as the timestamp lives, but cannot make a device install anything the targets keys did not sign.
import { randomUUID } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import type { Metadata, Root } from '@tufjs/models';
import { AppError, type Clock, type Logger } from '../../kernel/index.ts';
import type { KeyProtector } from '../pki/index.ts';
import type { AuditService } from '../audit/index.ts';
import type {
  BlobStore,
  OtaStore,
  PendingMetadata,
  Release,
  ReleaseKind,
  StoredKey,
  TufPublicKey,
  TufRole,
  TufSignature,
} from './model.ts';
import {
  buildRoot,
  buildSnapshot,
  buildTargets,
  buildTimestamp,
  canonical,
  generateEd25519,
  keyIdOf,
  parseRootBody,
  privateKeyFromPkcs8,
  publicKeyOf,
  roleKeys,
  sha256Hex,
  signMetadata,
  verifyEd25519,
  verifyRole,
  withSignatures,
  type TargetEntry,
} from './tuf.ts';

const DAY = 86_400_000;

export interface RepositoryOptions {
  /** Largest artifact accepted, in bytes. */
  maxArtifactBytes: number;
  /** `offline` (default): root and targets keys never reach the platform. `online`: lab mode. */
  signing: 'offline' | 'online';
  rootExpiryDays: number;
  targetsExpiryDays: number;
  snapshotExpiryDays: number;
  timestampExpirySeconds: number;
}

export const DEFAULT_REPOSITORY_OPTIONS: RepositoryOptions = {
  maxArtifactBytes: 256 * 1024 * 1024,
  signing: 'offline',
  rootExpiryDays: 365,
  targetsExpiryDays: 90,
  snapshotExpiryDays: 7,
  timestampExpirySeconds: 86_400,
};

export interface Actor {
  readonly type: 'user' | 'service' | 'system';
  readonly id: string;
}

export interface RoleStatus {
  readonly version: number;
  readonly expires: string;
}

export interface RepositoryStatus {
  readonly initialized: boolean;
  readonly signing: 'offline' | 'online';
  readonly roles: Partial<Record<TufRole, RoleStatus>>;
  readonly onlineKeys: { readonly snapshot: TufPublicKey; readonly timestamp: TufPublicKey };
  readonly pending: readonly PendingView[];
  readonly warnings: readonly string[];
}

export interface PendingView {
  readonly role: 'root' | 'targets';
  readonly version: number;
  /** The JSON `signed` object; its canonical form is what is signed. */
  readonly signed: unknown;
  readonly digest: string;
  /** Keys that may sign and how many must. */
  readonly keyIds: readonly string[];
  readonly threshold: number;
  readonly signedBy: readonly string[];
  /** Targets: what changes compared with the targets devices trust now (for the signer to review). */
  readonly changes?: { readonly added: readonly string[]; readonly removed: readonly string[] };
}

export interface ReleaseInput {
  name: string;
  version: string;
  kind: ReleaseKind;
  artifact: string;
  hardware: string[];
  sbom?: Record<string, unknown>;
  allowDowngrade: boolean;
  notes: string;
}

export interface RepositoryService {
  readonly options: RepositoryOptions;
  status(tenant: string): Promise<RepositoryStatus>;
  /** The unsigned first (or next) root built from the operator's offline public keys. */
  draftRoot(
    tenant: string,
    actor: Actor,
    input: { rootKeys: unknown; targetsKeys: unknown; rootThreshold?: unknown; targetsThreshold?: unknown },
  ): Promise<PendingView>;
  pending(tenant: string): Promise<PendingView[]>;
  /** Adds offline signatures to a draft; publishes it when the threshold is met. */
  sign(
    tenant: string,
    actor: Actor,
    input: { role: 'root' | 'targets'; digest: string; signatures: readonly TufSignature[] },
  ): Promise<{ role: string; version: number; published: boolean; signedBy: string[]; threshold: number }>;
  uploadArtifact(tenant: string, body: AsyncIterable<Uint8Array>): Promise<{ sha256: string; size: number }>;
  createRelease(tenant: string, actor: Actor, input: ReleaseInput): Promise<Release>;
  getRelease(tenant: string, id: string): Promise<Release>;
  listReleases(
    tenant: string,
    opts?: { limit?: number; before?: number; name?: string },
  ): Promise<{ items: Release[]; nextCursor: string | null }>;
  /** Re-signs timestamp (and snapshot) metadata nearing expiry, for every tenant; returns how many. */
  refresh(): Promise<number>;
  /** A metadata file as served: `timestamp.json` or `<version>.<role>.json`. */
  metadataFile(tenant: string, file: string): Promise<string>;
  /** A released target by its consistent-snapshot path `<dir>/<sha256>.<name>`. */
  targetFile(tenant: string, path: string): Promise<{ sha256: string; size: number; release: Release }>;
  readonly blobs: BlobStore;
}

const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const VERSION = /^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$/;
const HARDWARE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}(@[A-Za-z0-9._-]{1,64})?$/;
const SHA256 = /^[0-9a-f]{64}$/;
const HEX_KEY = /^[0-9a-f]{64}$/;

export function validateRelease(v: unknown): ReleaseInput {
  const problems: { path: string; message: string }[] = [];
  const bad = (path: string, message: string) => problems.push({ path, message });
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new AppError('ERR_RELEASE_INVALID');
  const r = v as Record<string, unknown>;
  for (const k of Object.keys(r))
    if (!['name', 'version', 'kind', 'artifact', 'hardware', 'sbom', 'allowDowngrade', 'notes'].includes(k))
      bad(k, 'unknown field');
  if (typeof r.name !== 'string' || !NAME.test(r.name)) bad('name', 'must match [a-z0-9][a-z0-9._-]{0,63}');
  if (typeof r.version !== 'string' || !VERSION.test(r.version))
    bad('version', 'must match [0-9A-Za-z][0-9A-Za-z.+_-]{0,63}');
  const kind = r.kind ?? 'firmware';
  if (kind !== 'firmware' && kind !== 'software') bad('kind', 'must be firmware or software');
  if (typeof r.artifact !== 'string' || !SHA256.test(r.artifact))
    bad('artifact', 'must be the SHA-256 (hex) of an uploaded artifact');
  if (
    !Array.isArray(r.hardware) ||
    r.hardware.length === 0 ||
    r.hardware.length > 64 ||
    r.hardware.some((h) => typeof h !== 'string' || !HARDWARE.test(h))
  ) {
    bad('hardware', 'must list 1 to 64 hardware models (`model` or `model@revision`)');
  }
  if (r.sbom !== undefined) {
    const s = r.sbom as Record<string, unknown>;
    if (typeof s !== 'object' || s === null || Array.isArray(s) || s.bomFormat !== 'CycloneDX')
      bad('sbom', 'must be a CycloneDX JSON document (bomFormat "CycloneDX")');
    else if (typeof s.specVersion !== 'string') bad('sbom.specVersion', 'is required');
  }
  if (r.allowDowngrade !== undefined && typeof r.allowDowngrade !== 'boolean')
    bad('allowDowngrade', 'must be true or false');
  if (r.notes !== undefined && (typeof r.notes !== 'string' || r.notes.length > 2000))
    bad('notes', 'must be a string of at most 2000 characters');
  if (problems.length > 0) {
    throw new AppError('ERR_RELEASE_INVALID', `${problems[0]?.path} ${problems[0]?.message}`, {
      errors: problems,
    });
  }
  return {
    name: r.name as string,
    version: r.version as string,
    kind: kind as ReleaseKind,
    artifact: r.artifact as string,
    hardware: [...new Set(r.hardware as string[])],
    ...(r.sbom !== undefined ? { sbom: r.sbom as Record<string, unknown> } : {}),
    allowDowngrade: r.allowDowngrade === true,
    notes: (r.notes as string | undefined) ?? '',
  };
}

function parseKeys(v: unknown, path: string): TufPublicKey[] {
  if (!Array.isArray(v) || v.length === 0 || v.length > 16)
    throw new AppError('ERR_OTA_ROOT_INVALID', `${path} must list 1 to 16 Ed25519 public keys`);
  const keys = v.map((k: unknown) => {
    const hex = typeof k === 'string' ? k : (k as { keyval?: { public?: unknown } } | null)?.keyval?.public;
    const keytype = typeof k === 'string' ? 'ed25519' : (k as { keytype?: unknown }).keytype;
    if (typeof hex !== 'string' || !HEX_KEY.test(hex) || keytype !== 'ed25519')
      throw new AppError('ERR_OTA_ROOT_INVALID', `${path}: only Ed25519 keys (64 hex digits) are accepted`);
    return publicKeyOf(hex);
  });
  if (new Set(keys.map((k) => k.keyval.public)).size !== keys.length)
    throw new AppError('ERR_OTA_ROOT_INVALID', `${path}: a key is listed twice`);
  return keys;
}

function threshold(v: unknown, keys: number, path: string): number {
  const t = v ?? 1;
  if (!Number.isInteger(t) || (t as number) < 1 || (t as number) > keys)
    throw new AppError('ERR_OTA_ROOT_INVALID', `${path} must be an integer from 1 to ${keys}`);
  return t as number;
}

/** Hardware a release is for matches a device: `model`, or `model@revision` for one revision only. */
export function hardwareMatches(
  list: readonly string[],
  model: string,
  revision: string | undefined,
): boolean {
  return list.some((h) => {
    const at = h.indexOf('@');
    if (at < 0) return h === model;
    return h.slice(0, at) === model && h.slice(at + 1) === revision;
  });
}

export function createRepositoryService(deps: {
  store: OtaStore;
  blobs: BlobStore;
  keys: KeyProtector;
  clock: Clock;
  audit: AuditService;
  logger: Logger;
  options?: Partial<RepositoryOptions>;
}): RepositoryService {
  const { store, blobs, clock, audit, logger } = deps;
  const options: RepositoryOptions = { ...DEFAULT_REPOSITORY_OPTIONS, ...deps.options };
  const signerCache = new Map<string, KeyObject>();
  // Serialises repository writes per tenant on this node (signing, publishing, refreshing).
  const locks = new Map<string, Promise<unknown>>();
  const locked = <T>(tenant: string, fn: () => Promise<T>): Promise<T> => {
    const prev = locks.get(tenant) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => {});
    locks.set(tenant, tail);
    void tail.then(() => {
      if (locks.get(tenant) === tail) locks.delete(tenant);
    });
    return run;
  };

  const system: Actor = { type: 'system', id: 'ota-repository' };

  /** Online keys of a role, made (and sealed) the first time they are needed. */
  const onlineKey = async (tenant: string, role: TufRole): Promise<StoredKey> => {
    const existing = (await store.keys(tenant)).find((k) => k.role === role && k.sealedPrivate !== null);
    if (existing) return existing;
    const k = generateEd25519();
    const sealed = await deps.keys.seal(k.privateKey.export({ format: 'der', type: 'pkcs8' }));
    await store.insertKey(
      tenant,
      { role, keyId: k.keyId, publicHex: k.publicHex, sealedPrivate: sealed },
      clock.now(),
    );
    // Two nodes racing: the first insert wins; everyone uses what is stored.
    const stored = (await store.keys(tenant)).find((x) => x.role === role && x.sealedPrivate !== null);
    if (!stored) throw new AppError('ERR_INTERNAL', undefined, { detail: `no ${role} key after insert` });
    return stored;
  };
  const signer = async (k: StoredKey): Promise<{ keyId: string; key: KeyObject }> => {
    let key = signerCache.get(k.keyId);
    if (!key) {
      if (!k.sealedPrivate)
        throw new AppError('ERR_INTERNAL', undefined, { detail: `${k.role} key is offline` });
      key = privateKeyFromPkcs8(await deps.keys.open(k.sealedPrivate));
      signerCache.set(k.keyId, key);
    }
    return { keyId: k.keyId, key };
  };

  const trustedRoot = async (tenant: string): Promise<Metadata<Root> | undefined> => {
    const r = await store.latestMetadata(tenant, 'root');
    return r && parseRootBody(r.body);
  };

  const targetEntries = async (tenant: string): Promise<{ entries: TargetEntry[]; paths: string[] }> => {
    const releases = await store.releasesForTargets(tenant);
    const entries = releases.map((r): TargetEntry => ({
      path: r.targetPath,
      length: r.size,
      sha256: r.sha256,
      custom: {
        release: r.id,
        name: r.name,
        version: r.version,
        kind: r.kind,
        hardware: [...r.hardware],
        allowDowngrade: r.allowDowngrade,
        ...(r.sbom ? { sbomSha256: sha256Hex(canonical(r.sbom)) } : {}),
      },
    }));
    return { entries, paths: releases.map((r) => r.targetPath) };
  };

  /** New snapshot (pointing at the latest targets) and timestamp, signed with the online keys. */
  const publishSnapshot = async (tenant: string): Promise<void> => {
    const now = clock.now();
    const targets = await store.latestMetadata(tenant, 'targets');
    if (!targets) return;
    const snap = await store.latestMetadata(tenant, 'snapshot');
    const version = (snap?.version ?? 0) + 1;
    const expires = now + options.snapshotExpiryDays * DAY;
    const body = signMetadata(buildSnapshot(version, expires, targets), [
      await signer(await onlineKey(tenant, 'snapshot')),
    ]);
    await store.insertMetadata(tenant, { role: 'snapshot', version, body, expiresAt: expires }, now);
    await publishTimestamp(tenant);
  };
  const publishTimestamp = async (tenant: string): Promise<void> => {
    const now = clock.now();
    const snap = await store.latestMetadata(tenant, 'snapshot');
    if (!snap) return;
    const ts = await store.latestMetadata(tenant, 'timestamp');
    const version = (ts?.version ?? 0) + 1;
    const expires = now + options.timestampExpirySeconds * 1000;
    const body = signMetadata(buildTimestamp(version, expires, snap), [
      await signer(await onlineKey(tenant, 'timestamp')),
    ]);
    await store.insertMetadata(tenant, { role: 'timestamp', version, body, expiresAt: expires }, now);
  };

  /** The next targets metadata (every release), as a draft for offline signing or signed online. */
  const stageTargets = async (tenant: string, actor: Actor): Promise<void> => {
    const root = await trustedRoot(tenant);
    if (!root) return;
    const now = clock.now();
    const latest = await store.latestMetadata(tenant, 'targets');
    const version = (latest?.version ?? 0) + 1;
    const expires = now + options.targetsExpiryDays * DAY;
    const { entries, paths } = await targetEntries(tenant);
    const signed = buildTargets(version, expires, entries);
    if (options.signing === 'online') {
      const body = signMetadata(signed, [await signer(await onlineKey(tenant, 'targets'))]);
      await store.insertMetadata(tenant, { role: 'targets', version, body, expiresAt: expires }, now);
      await store.publishReleases(tenant, paths, now);
      await publishSnapshot(tenant);
      audit.recordLater({
        tenant,
        actor,
        action: 'ota.targets.sign-online',
        target: { type: 'tuf-metadata', id: `${version}.targets.json` },
        outcome: 'success',
        details: { targets: paths.length },
      });
      return;
    }
    const text = canonical(signed.toJSON());
    await store.setPending(tenant, {
      role: 'targets',
      version,
      signed: text,
      digest: sha256Hex(text),
      signatures: [],
      createdAt: now,
    });
  };

  /** Lab mode: the platform makes and holds every key, and signs the first root itself. */
  const ensureOnlineRoot = async (tenant: string): Promise<void> => {
    if (options.signing !== 'online' || (await store.latestMetadata(tenant, 'root'))) return;
    const now = clock.now();
    const roles = {} as Record<TufRole, StoredKey>;
    for (const role of ['root', 'targets', 'snapshot', 'timestamp'] as const)
      roles[role] = await onlineKey(tenant, role);
    const expires = now + options.rootExpiryDays * DAY;
    const signed = buildRoot({
      version: 1,
      expires,
      keys: {
        root: [publicKeyOf(roles.root.publicHex)],
        targets: [publicKeyOf(roles.targets.publicHex)],
        snapshot: [publicKeyOf(roles.snapshot.publicHex)],
        timestamp: [publicKeyOf(roles.timestamp.publicHex)],
      },
      thresholds: { root: 1, targets: 1, snapshot: 1, timestamp: 1 },
    });
    const body = signMetadata(signed, [await signer(roles.root)]);
    await store.insertMetadata(tenant, { role: 'root', version: 1, body, expiresAt: expires }, now);
    audit.recordLater({
      tenant,
      actor: system,
      action: 'ota.root.publish',
      target: { type: 'tuf-metadata', id: '1.root.json' },
      outcome: 'success',
      reason: 'online signing (lab mode): the platform holds the root and targets keys',
    });
    await stageTargets(tenant, system);
  };

  const pendingView = async (tenant: string, p: PendingMetadata): Promise<PendingView> => {
    const signedObj = JSON.parse(p.signed) as Record<string, unknown>;
    let keyIds: string[] = [];
    let thr = 1;
    let changes: PendingView['changes'];
    if (p.role === 'root') {
      const next = parseRootBody(JSON.stringify({ signed: signedObj, signatures: [] }));
      const mine = roleKeys(next.signed, 'root');
      keyIds = mine.keyIds;
      thr = mine.threshold;
      const prev = await trustedRoot(tenant);
      if (prev) keyIds = [...new Set([...keyIds, ...roleKeys(prev.signed, 'root').keyIds])];
    } else {
      const root = await trustedRoot(tenant);
      if (root) ({ keyIds, threshold: thr } = roleKeys(root.signed, 'targets'));
      const current = await store.latestMetadata(tenant, 'targets');
      const before = new Set(
        current
          ? Object.keys((JSON.parse(current.body) as { signed: { targets: object } }).signed.targets)
          : [],
      );
      const after = new Set(Object.keys((signedObj as { targets: object }).targets));
      changes = {
        added: [...after].filter((t) => !before.has(t)),
        removed: [...before].filter((t) => !after.has(t)),
      };
    }
    return {
      role: p.role,
      version: p.version,
      signed: signedObj,
      digest: p.digest,
      keyIds,
      threshold: thr,
      signedBy: p.signatures.map((s) => s.keyid),
      ...(changes ? { changes } : {}),
    };
  };

  /** Keys whose signatures count for a draft, and whether the collected ones reach every threshold. */
  const thresholdsMet = async (
    tenant: string,
    p: PendingMetadata,
    valid: Set<string>,
  ): Promise<{ met: boolean; threshold: number }> => {
    if (p.role === 'targets') {
      const root = await trustedRoot(tenant);
      if (!root) throw new AppError('ERR_OTA_REPOSITORY_UNINITIALIZED');
      const { keyIds, threshold: t } = roleKeys(root.signed, 'targets');
      return { met: keyIds.filter((k) => valid.has(k)).length >= t, threshold: t };
    }
    // A new root is signed by a threshold of its own root keys and of the root it replaces (§5.3.4).
    const next = parseRootBody(JSON.stringify({ signed: JSON.parse(p.signed), signatures: [] }));
    const mine = roleKeys(next.signed, 'root');
    let met = mine.keyIds.filter((k) => valid.has(k)).length >= mine.threshold;
    const prev = await trustedRoot(tenant);
    if (prev) {
      const old = roleKeys(prev.signed, 'root');
      met = met && old.keyIds.filter((k) => valid.has(k)).length >= old.threshold;
    }
    return { met, threshold: mine.threshold };
  };

  const keyHex = async (tenant: string, p: PendingMetadata): Promise<Map<string, string>> => {
    const out = new Map<string, string>();
    const add = (root: Root, role: TufRole) => {
      for (const id of roleKeys(root, role).keyIds) {
        const k = root.keys[id];
        if (k) out.set(id, String(k.keyVal.public));
      }
    };
    const prev = await trustedRoot(tenant);
    if (p.role === 'targets') {
      if (prev) add(prev.signed, 'targets');
    } else {
      add(parseRootBody(JSON.stringify({ signed: JSON.parse(p.signed), signatures: [] })).signed, 'root');
      if (prev) add(prev.signed, 'root');
    }
    return out;
  };

  const publish = async (tenant: string, actor: Actor, p: PendingMetadata, sigs: TufSignature[]) => {
    const now = clock.now();
    const md = withSignatures(p.role, JSON.parse(p.signed), sigs);
    if (p.role === 'root') {
      const next = md as Metadata<Root>;
      verifyRole(next, 'root', next);
      const prev = await trustedRoot(tenant);
      if (prev) verifyRole(prev, 'root', next);
      const expires = Date.parse(next.signed.expires);
      await store.insertMetadata(
        tenant,
        { role: 'root', version: p.version, body: JSON.stringify(md.toJSON()), expiresAt: expires },
        now,
      );
      await store.deletePending(tenant, 'root', p.digest);
      // Record the offline public keys the root names (status display; the root itself is the authority).
      for (const role of ['root', 'targets'] as const) {
        await store.deleteKeys(tenant, role);
        for (const id of roleKeys(next.signed, role).keyIds) {
          const k = next.signed.keys[id];
          if (k)
            await store.insertKey(
              tenant,
              { role, keyId: id, publicHex: String(k.keyVal.public), sealedPrivate: null },
              now,
            );
        }
      }
      await audit.record({
        tenant,
        actor,
        action: 'ota.root.publish',
        target: { type: 'tuf-metadata', id: `${p.version}.root.json` },
        outcome: 'success',
        details: { signedBy: sigs.map((s) => s.keyid) },
      });
      if (!(await store.latestMetadata(tenant, 'targets'))) await stageTargets(tenant, actor);
      return;
    }
    const root = await trustedRoot(tenant);
    if (!root) throw new AppError('ERR_OTA_REPOSITORY_UNINITIALIZED');
    verifyRole(root, 'targets', md);
    const signed = JSON.parse(p.signed) as { expires: string; targets: Record<string, unknown> };
    await store.insertMetadata(
      tenant,
      {
        role: 'targets',
        version: p.version,
        body: JSON.stringify(md.toJSON()),
        expiresAt: Date.parse(signed.expires),
      },
      now,
    );
    await store.deletePending(tenant, 'targets', p.digest);
    await store.publishReleases(tenant, Object.keys(signed.targets), now);
    await publishSnapshot(tenant);
    await audit.record({
      tenant,
      actor,
      action: 'ota.targets.publish',
      target: { type: 'tuf-metadata', id: `${p.version}.targets.json` },
      outcome: 'success',
      details: { targets: Object.keys(signed.targets).length, signedBy: sigs.map((s) => s.keyid) },
    });
  };

  return {
    options,
    blobs,
    async status(tenant) {
      await ensureOnlineRoot(tenant);
      const roles: Partial<Record<TufRole, RoleStatus>> = {};
      const warnings: string[] = [];
      const now = clock.now();
      for (const role of ['root', 'targets', 'snapshot', 'timestamp'] as const) {
        const m = await store.latestMetadata(tenant, role);
        if (!m) continue;
        roles[role] = { version: m.version, expires: new Date(m.expiresAt).toISOString() };
        if (m.expiresAt <= now)
          warnings.push(`${role} metadata expired: devices refuse it until it is re-signed`);
        else if ((role === 'root' || role === 'targets') && m.expiresAt - now < 14 * DAY)
          warnings.push(`${role} metadata expires within 14 days: sign a new version (bulwark release sign)`);
      }
      const pending = await Promise.all((await store.pending(tenant)).map((p) => pendingView(tenant, p)));
      return {
        initialized: roles.root !== undefined,
        signing: options.signing,
        roles,
        onlineKeys: {
          snapshot: publicKeyOf((await onlineKey(tenant, 'snapshot')).publicHex),
          timestamp: publicKeyOf((await onlineKey(tenant, 'timestamp')).publicHex),
        },
        pending,
        warnings,
      };
    },

    draftRoot(tenant, actor, input) {
      return locked(tenant, async () => {
        if (options.signing === 'online')
          throw new AppError('ERR_OTA_ROOT_INVALID', 'online signing: the platform manages the root itself');
        const rootKeys = parseKeys(input.rootKeys, 'rootKeys');
        const targetsKeys = parseKeys(input.targetsKeys, 'targetsKeys');
        const now = clock.now();
        const prev = await store.latestMetadata(tenant, 'root');
        const version = (prev?.version ?? 0) + 1;
        const expires = now + options.rootExpiryDays * DAY;
        const signed = buildRoot({
          version,
          expires,
          keys: {
            root: rootKeys,
            targets: targetsKeys,
            snapshot: [publicKeyOf((await onlineKey(tenant, 'snapshot')).publicHex)],
            timestamp: [publicKeyOf((await onlineKey(tenant, 'timestamp')).publicHex)],
          },
          thresholds: {
            root: threshold(input.rootThreshold, rootKeys.length, 'rootThreshold'),
            targets: threshold(input.targetsThreshold, targetsKeys.length, 'targetsThreshold'),
            snapshot: 1,
            timestamp: 1,
          },
        });
        const text = canonical(signed.toJSON());
        const p: PendingMetadata = {
          role: 'root',
          version,
          signed: text,
          digest: sha256Hex(text),
          signatures: [],
          createdAt: now,
        };
        await store.setPending(tenant, p);
        audit.recordLater({
          tenant,
          actor,
          action: 'ota.root.draft',
          target: { type: 'tuf-metadata', id: `${version}.root.json` },
          outcome: 'success',
          details: { rootKeys: rootKeys.map(keyIdOf), targetsKeys: targetsKeys.map(keyIdOf) },
        });
        return pendingView(tenant, p);
      });
    },

    async pending(tenant) {
      await ensureOnlineRoot(tenant);
      return Promise.all((await store.pending(tenant)).map((p) => pendingView(tenant, p)));
    },

    sign(tenant, actor, input) {
      return locked(tenant, async () => {
        const p = (await store.pending(tenant)).find((x) => x.role === input.role);
        if (!p)
          throw new AppError(
            'ERR_RELEASE_NOTHING_TO_SIGN',
            `No ${input.role} metadata is waiting for signatures`,
          );
        if (p.digest !== input.digest) {
          throw new AppError(
            'ERR_RELEASE_DRAFT_STALE',
            `The ${input.role} metadata changed (now ${p.digest.slice(0, 12)}…); fetch it again and sign that`,
          );
        }
        if (!Array.isArray(input.signatures) || input.signatures.length === 0 || input.signatures.length > 32)
          throw new AppError('ERR_RELEASE_SIGNATURE_INVALID', 'signatures must list 1 to 32 signatures');
        const keys = await keyHex(tenant, p);
        const bytes = Buffer.from(p.signed, 'utf8');
        const collected = new Map(p.signatures.map((s) => [s.keyid, s]));
        for (const s of input.signatures) {
          const hex = typeof s?.keyid === 'string' ? keys.get(s.keyid) : undefined;
          if (!hex) {
            audit.recordLater({
              tenant,
              actor,
              action: `ota.${input.role}.sign`,
              outcome: 'denied',
              reason: `key ${String(s?.keyid).slice(0, 16)} may not sign ${input.role}`,
            });
            throw new AppError(
              'ERR_RELEASE_SIGNATURE_INVALID',
              `key ${String(s?.keyid)} may not sign ${input.role} metadata`,
            );
          }
          if (typeof s.sig !== 'string' || !verifyEd25519(hex, bytes, s.sig)) {
            audit.recordLater({
              tenant,
              actor,
              action: `ota.${input.role}.sign`,
              outcome: 'denied',
              reason: `invalid signature by ${s.keyid.slice(0, 16)}`,
            });
            throw new AppError(
              'ERR_RELEASE_SIGNATURE_INVALID',
              `the signature by key ${s.keyid} does not verify`,
            );
          }
          collected.set(s.keyid, { keyid: s.keyid, sig: s.sig });
        }
        const sigs = [...collected.values()];
        const { met, threshold: t } = await thresholdsMet(tenant, p, new Set(collected.keys()));
        if (!met) {
          if (!(await store.setPendingSignatures(tenant, p.role, p.digest, sigs)))
            throw new AppError('ERR_RELEASE_DRAFT_STALE');
          return {
            role: p.role,
            version: p.version,
            published: false,
            signedBy: [...collected.keys()],
            threshold: t,
          };
        }
        await publish(tenant, actor, p, sigs);
        return {
          role: p.role,
          version: p.version,
          published: true,
          signedBy: [...collected.keys()],
          threshold: t,
        };
      });
    },

    async uploadArtifact(_tenant, body) {
      return blobs.put(body, { maxBytes: options.maxArtifactBytes });
    },

    async createRelease(tenant, actor, input) {
      const blob = await blobs.stat(input.artifact);
      if (!blob) throw new AppError('ERR_RELEASE_ARTIFACT_NOT_FOUND');
      await ensureOnlineRoot(tenant);
      const now = clock.now();
      const release: Release = {
        tenant,
        id: randomUUID(),
        name: input.name,
        version: input.version,
        kind: input.kind,
        targetPath: `${input.name}/${input.version}`,
        sha256: input.artifact,
        size: blob.size,
        hardware: input.hardware,
        sbom: input.sbom ?? null,
        allowDowngrade: input.allowDowngrade,
        notes: input.notes,
        state: 'unsigned',
        createdBy: actor.id,
        createdAt: now,
        publishedAt: null,
      };
      await store.insertRelease(release);
      await locked(tenant, () => stageTargets(tenant, actor));
      return (await store.getRelease(tenant, release.id)) ?? release;
    },

    async getRelease(tenant, id) {
      const r = await store.getRelease(tenant, id);
      if (!r) throw new AppError('ERR_RELEASE_NOT_FOUND', `Release ${id} not found`);
      return r;
    },

    async listReleases(tenant, opts = {}) {
      const limit = Math.min(Math.max(opts.limit ?? 50, 1), 500);
      const rows = await store.listReleases(tenant, {
        limit: limit + 1,
        ...(opts.before !== undefined ? { before: opts.before } : {}),
        ...(opts.name !== undefined ? { name: opts.name } : {}),
      });
      const items = rows.slice(0, limit);
      const last = items[items.length - 1];
      return { items, nextCursor: rows.length > limit && last ? String(last.createdAt) : null };
    },

    async refresh() {
      let n = 0;
      const now = clock.now();
      for (const tenant of await store.repositoryTenants()) {
        try {
          await locked(tenant, async () => {
            const snap = await store.latestMetadata(tenant, 'snapshot');
            const ts = await store.latestMetadata(tenant, 'timestamp');
            // Re-signed at half their lifetime, so a missed run or two never lets them lapse.
            if (snap && snap.expiresAt - now < (options.snapshotExpiryDays * DAY) / 2) {
              await publishSnapshot(tenant);
              n++;
            } else if (ts && ts.expiresAt - now < (options.timestampExpirySeconds * 1000) / 2) {
              await publishTimestamp(tenant);
              n++;
            }
          });
        } catch (err) {
          logger.error({ err: String(err), tenant }, 'TUF timestamp refresh failed');
        }
      }
      return n;
    },

    async metadataFile(tenant, file) {
      if (file === 'timestamp.json') {
        const ts = await store.latestMetadata(tenant, 'timestamp');
        if (!ts) throw new AppError('ERR_OTA_NOT_FOUND');
        return ts.body;
      }
      const m = /^([1-9]\d{0,9})\.(root|snapshot|targets)\.json$/.exec(file);
      if (!m?.[1] || !m[2]) throw new AppError('ERR_OTA_NOT_FOUND');
      const md = await store.metadata(tenant, m[2] as TufRole, Number(m[1]));
      if (!md) throw new AppError('ERR_OTA_NOT_FOUND');
      return md.body;
    },

    async targetFile(tenant, path) {
      // Consistent snapshots (spec §5.7.3): `<dir>/<sha256>.<name>`.
      const slash = path.lastIndexOf('/');
      const base = path.slice(slash + 1);
      const m = /^([0-9a-f]{64})\.(.+)$/.exec(base);
      if (slash <= 0 || !m?.[1] || !m[2]) throw new AppError('ERR_OTA_NOT_FOUND');
      const release = await store.releaseWithBlob(tenant, m[1]);
      if (!release || release.targetPath !== `${path.slice(0, slash)}/${m[2]}`) {
        // Same bytes may be released under several paths: look for this exact one.
        const exact = await store.findRelease(tenant, path.slice(0, slash), m[2]);
        if (!exact || exact.sha256 !== m[1] || exact.state !== 'published')
          throw new AppError('ERR_OTA_NOT_FOUND');
        return { sha256: exact.sha256, size: exact.size, release: exact };
      }
      return { sha256: release.sha256, size: release.size, release };
    },
  };
}
