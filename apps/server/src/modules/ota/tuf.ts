// TUF metadata (spec 1.0.x) built and checked with @tufjs/models; Ed25519 keys with node:crypto.
// Signatures are over the canonical JSON of `signed` (the OLPC canonical form TUF uses).
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
} from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { canonicalize } from '@tufjs/canonical-json';
import {
  MetaFile,
  Metadata,
  MetadataKind,
  Root,
  Signature,
  Snapshot,
  TargetFile,
  Targets,
  Timestamp,
} from '@tufjs/models';
import { AppError } from '../../kernel/index.ts';
import type { TufPublicKey, TufRole, TufSignature } from './model.ts';

export const SPEC_VERSION = '1.0.31';

export const sha256Hex = (data: string | Uint8Array): string =>
  createHash('sha256').update(data).digest('hex');

/** Canonical JSON text of a JSON value (what TUF signatures cover). */
export function canonical(value: unknown): string {
  return Buffer.from(canonicalize(value as Parameters<typeof canonicalize>[0])).toString('utf8');
}

export function publicKeyOf(hex: string): TufPublicKey {
  return { keytype: 'ed25519', scheme: 'ed25519', keyval: { public: hex } };
}

/** TUF key id: hex SHA-256 of the canonical JSON of the public key object. */
export function keyIdOf(key: TufPublicKey): string {
  return sha256Hex(canonical(key));
}

export function ed25519PublicHex(key: KeyObject): string {
  const jwk = createPublicKey(key).export({ format: 'jwk' });
  return Buffer.from(String(jwk.x), 'base64url').toString('hex');
}

export function generateEd25519(): { privateKey: KeyObject; publicHex: string; keyId: string } {
  const { privateKey } = generateKeyPairSync('ed25519');
  const publicHex = ed25519PublicHex(privateKey);
  return { privateKey, publicHex, keyId: keyIdOf(publicKeyOf(publicHex)) };
}

export function privateKeyFromPkcs8(der: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' });
}

export function verifyEd25519(publicHex: string, data: Uint8Array, sigHex: string): boolean {
  if (!/^[0-9a-f]{64}$/.test(publicHex) || !/^[0-9a-f]{128}$/.test(sigHex)) return false;
  const key = createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicHex, 'hex').toString('base64url') },
    format: 'jwk',
  });
  return verify(null, data, key, Buffer.from(sigHex, 'hex'));
}

/** RFC 3339 without fractions, as TUF metadata writes `expires`. */
export const tufTime = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

type AnySigned = Root | Targets | Snapshot | Timestamp;

export function signMetadata(
  signed: AnySigned,
  signers: readonly { keyId: string; key: KeyObject }[],
): string {
  const md = new Metadata(signed);
  for (const s of signers) {
    md.sign(
      (bytes) => new Signature({ keyID: s.keyId, sig: sign(null, bytes, s.key).toString('hex') }),
      true,
    );
  }
  return JSON.stringify(md.toJSON());
}

export function buildRoot(input: {
  version: number;
  expires: number;
  keys: Record<TufRole, readonly TufPublicKey[]>;
  thresholds: Record<TufRole, number>;
}): Root {
  const keys: Record<string, TufPublicKey> = {};
  const roles: Record<string, { keyids: string[]; threshold: number }> = {};
  for (const role of ['root', 'targets', 'snapshot', 'timestamp'] as const) {
    const ids = input.keys[role].map((k) => {
      const id = keyIdOf(k);
      keys[id] = { keytype: k.keytype, scheme: k.scheme, keyval: { public: k.keyval.public } };
      return id;
    });
    roles[role] = { keyids: ids, threshold: input.thresholds[role] };
  }
  return Root.fromJSON({
    _type: 'root',
    spec_version: SPEC_VERSION,
    version: input.version,
    expires: tufTime(input.expires),
    consistent_snapshot: true,
    keys,
    roles,
  } as never);
}

export interface TargetEntry {
  readonly path: string;
  readonly length: number;
  readonly sha256: string;
  readonly custom: Record<string, unknown>;
}

export function buildTargets(version: number, expires: number, entries: readonly TargetEntry[]): Targets {
  const t = new Targets({ version, specVersion: SPEC_VERSION, expires: tufTime(expires) });
  for (const e of entries) {
    t.addTarget(
      new TargetFile({
        path: e.path,
        length: e.length,
        hashes: { sha256: e.sha256 },
        unrecognizedFields: { custom: e.custom as never },
      }),
    );
  }
  return t;
}

export function buildSnapshot(version: number, expires: number, targets: { version: number; body: string }) {
  return new Snapshot({
    version,
    specVersion: SPEC_VERSION,
    expires: tufTime(expires),
    meta: {
      'targets.json': new MetaFile({
        version: targets.version,
        length: Buffer.byteLength(targets.body),
        hashes: { sha256: sha256Hex(targets.body) },
      }),
    },
  });
}

export function buildTimestamp(
  version: number,
  expires: number,
  snapshot: { version: number; body: string },
) {
  return new Timestamp({
    version,
    specVersion: SPEC_VERSION,
    expires: tufTime(expires),
    snapshotMeta: new MetaFile({
      version: snapshot.version,
      length: Buffer.byteLength(snapshot.body),
      hashes: { sha256: sha256Hex(snapshot.body) },
    }),
  });
}

/** Parses signed root metadata (untrusted input): structure only, no signature check. */
export function parseRoot(json: unknown): Metadata<Root> {
  try {
    return Metadata.fromJSON(MetadataKind.Root, json as never);
  } catch (err) {
    throw new AppError('ERR_OTA_ROOT_INVALID', `malformed root metadata: ${(err as Error).message}`);
  }
}

export function parseRootBody(body: string): Metadata<Root> {
  return parseRoot(JSON.parse(body));
}

/**
 * Checks that `md` carries a threshold of valid signatures of `role` keys as `root` lists them
 * (python-tuf's verify_delegate). Throws ERR_RELEASE_SIGNATURE_INVALID otherwise.
 */
export function verifyRole(root: Metadata<Root>, role: TufRole, md: Metadata<AnySigned>): void {
  try {
    root.verifyDelegate(role, md);
  } catch (err) {
    throw new AppError('ERR_RELEASE_SIGNATURE_INVALID', `${role}: ${(err as Error).message}`);
  }
}

/** Wraps an unsigned `signed` object and offline signatures into Metadata of `role`. */
export function withSignatures(
  role: 'root' | 'targets',
  signed: unknown,
  signatures: readonly TufSignature[],
): Metadata<Root> | Metadata<Targets> {
  const json = { signed, signatures } as never;
  try {
    return role === 'root'
      ? Metadata.fromJSON(MetadataKind.Root, json)
      : Metadata.fromJSON(MetadataKind.Targets, json);
  } catch (err) {
    throw new AppError('ERR_RELEASE_SIGNATURE_INVALID', `malformed signatures: ${(err as Error).message}`);
  }
}

/** The key ids a root lists for `role`, and its threshold. */
export function roleKeys(root: Root, role: TufRole): { keyIds: string[]; threshold: number } {
  const r = root.roles[role];
  return { keyIds: r ? [...r.keyIDs] : [], threshold: r?.threshold ?? 1 };
}
