// At-rest protection of private keys (CA keys today): AES-256-GCM envelope encryption under a 32-byte
// master key that never touches the database.
//
// Sealed form (one line, base64url fields):   bwk1.<kid>.<wrapIv>.<wrappedDek>.<iv>.<ciphertext>
//   - a fresh 256-bit data key (DEK) per seal encrypts the plaintext (AES-256-GCM, 96-bit IV, tag appended);
//   - the master key (KEK) wraps the DEK the same way;
//   - `bwk1.<kid>` is the additional authenticated data of both, so the header cannot be altered;
//   - `kid` names the master key (a hash of it), so after a rotation old envelopes are still opened with
//     the previous key and re-wrapping a DEK never needs the plaintext.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { AppError, type Logger } from '../../kernel/index.ts';
import type { KeyProtector } from '../../modules/pki/index.ts';

const VERSION = 'bwk1';
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface KeyProtectorOptions {
  /** Base64 of a 32-byte master key (e.g. from the environment). Takes precedence over `file`. */
  base64?: string;
  /** Master key file (base64 text). Created with mode 0600 and a fresh random key when missing. */
  file?: string;
  /** Earlier master keys (base64), still accepted by open() after a rotation; seal() uses the current one. */
  previous?: readonly string[];
  logger?: Logger;
  /** Randomness port, for tests; default node:crypto randomBytes. */
  random?: (bytes: number) => Uint8Array;
}

export interface MasterKeyProtector extends KeyProtector {
  /** Id of the current master key, as written into new envelopes. */
  readonly keyId: string;
  /** Id of the master key an envelope was sealed with (undefined when it is not an envelope of ours). */
  keyIdOf(sealed: string): string | undefined;
}

function masterKeyError(detail: string, cause?: unknown): AppError {
  return new AppError('ERR_PKI_MASTER_KEY', undefined, { detail, cause });
}

/** Decodes a base64 (or base64url) master key and insists on exactly 32 bytes. */
export function decodeMasterKey(text: string): Buffer {
  const compact = text.trim();
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(compact)) throw masterKeyError('master key is not base64');
  const key = Buffer.from(compact.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (key.length !== KEY_BYTES)
    throw masterKeyError(`master key must be ${KEY_BYTES} bytes, got ${key.length}`);
  return key;
}

export function masterKeyId(key: Uint8Array): string {
  return createHash('sha256')
    .update('bulwark master key id\0')
    .update(key)
    .digest()
    .subarray(0, 8)
    .toString('base64url');
}

/** Reads the master key file, or creates it (0600, exclusive create) when it does not exist. */
export async function loadOrCreateMasterKeyFile(
  path: string,
  random: (bytes: number) => Uint8Array = randomBytes,
  logger?: Logger,
): Promise<Buffer> {
  let text: string | undefined;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw masterKeyError(`cannot read ${path}`, err);
  }
  if (text === undefined) {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const fresh = Buffer.from(random(KEY_BYTES));
    try {
      // 'wx': never overwrite a key another process created meanwhile (losing it loses every CA key).
      await writeFile(path, fresh.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
      await chmod(path, 0o600); // the umask may have narrowed it further, never widened; be explicit
      logger?.warn(
        { path },
        'created a new master key file: back it up, CA keys cannot be recovered without it',
      );
      return Buffer.from(fresh);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST')
        throw masterKeyError(`cannot create ${path}`, err);
      text = await readFile(path, 'utf8');
    } finally {
      fresh.fill(0);
    }
  }
  if (process.platform !== 'win32') {
    const { mode } = await stat(path);
    if ((mode & 0o077) !== 0) {
      throw masterKeyError(
        `${path} is accessible by group or others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`,
      );
    }
  }
  return decodeMasterKey(text);
}

function gcmSeal(key: Uint8Array, iv: Uint8Array, plain: Uint8Array, aad: Buffer): Buffer {
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  return Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
}

function gcmOpen(key: Uint8Array, iv: Uint8Array, sealed: Buffer, aad: Buffer): Buffer {
  if (iv.length !== IV_BYTES || sealed.length < TAG_BYTES) throw new Error('malformed');
  const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  decipher.setAAD(aad);
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  return Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES)), decipher.final()]);
}

const B64URL = /^[A-Za-z0-9_-]*$/;

function parseEnvelope(sealed: string): { kid: string; fields: Buffer[]; aad: Buffer } | undefined {
  if (typeof sealed !== 'string') return undefined;
  const parts = sealed.split('.');
  if (parts.length !== 6 || parts[0] !== VERSION || !parts.every((p) => B64URL.test(p))) return undefined;
  const kid = parts[1] ?? '';
  return {
    kid,
    fields: parts.slice(2).map((p) => Buffer.from(p, 'base64url')),
    aad: Buffer.from(`${VERSION}.${kid}`),
  };
}

/** A KeyProtector over master keys held in this process's memory. */
export function keyProtectorFromKeys(
  current: Uint8Array,
  previous: readonly Uint8Array[] = [],
  random: (bytes: number) => Uint8Array = randomBytes,
): MasterKeyProtector {
  const keys = new Map<string, Buffer>();
  for (const k of [current, ...previous]) keys.set(masterKeyId(k), Buffer.from(k));
  const keyId = masterKeyId(current);
  const kek = keys.get(keyId) as Buffer;
  return {
    keyId,
    keyIdOf: (sealed) => parseEnvelope(sealed)?.kid,
    async seal(plain) {
      const aad = Buffer.from(`${VERSION}.${keyId}`);
      const dek = Buffer.from(random(KEY_BYTES));
      try {
        const wrapIv = random(IV_BYTES);
        const iv = random(IV_BYTES);
        const wrapped = gcmSeal(kek, wrapIv, dek, aad);
        const ct = gcmSeal(dek, iv, plain, aad);
        return [VERSION, keyId, wrapIv, wrapped, iv, ct]
          .map((f) => (typeof f === 'string' ? f : Buffer.from(f).toString('base64url')))
          .join('.');
      } finally {
        dek.fill(0);
      }
    },
    async open(sealed) {
      const env = parseEnvelope(sealed);
      if (!env) throw new AppError('ERR_PKI_CA_KEY', undefined, { detail: 'not a sealed key envelope' });
      const key = keys.get(env.kid);
      if (!key) {
        throw new AppError('ERR_PKI_CA_KEY', undefined, {
          detail: `sealed with master key ${env.kid}, which is not loaded (current ${keyId})`,
        });
      }
      const [wrapIv, wrapped, iv, ct] = env.fields as [Buffer, Buffer, Buffer, Buffer];
      let dek: Buffer | undefined;
      try {
        dek = gcmOpen(key, wrapIv, wrapped, env.aad);
        if (dek.length !== KEY_BYTES) throw new Error('bad data key length');
        return new Uint8Array(gcmOpen(dek, iv, ct, env.aad));
      } catch (cause) {
        throw new AppError('ERR_PKI_CA_KEY', undefined, {
          detail: 'sealed key does not authenticate (tampered, or wrong master key)',
          cause,
        });
      } finally {
        dek?.fill(0);
      }
    },
  };
}

/**
 * The platform's KeyProtector: master key from `base64` (environment) or from `file` (created on first
 * start), plus optional previous keys for rotation.
 */
export async function createKeyProtector(opts: KeyProtectorOptions): Promise<MasterKeyProtector> {
  const random = opts.random ?? randomBytes;
  let current: Buffer;
  if (opts.base64 !== undefined) current = decodeMasterKey(opts.base64);
  else if (opts.file !== undefined) current = await loadOrCreateMasterKeyFile(opts.file, random, opts.logger);
  else throw masterKeyError('no master key configured (file or base64)');
  const previous = (opts.previous ?? []).map(decodeMasterKey);
  const protector = keyProtectorFromKeys(current, previous, random);
  current.fill(0);
  for (const p of previous) p.fill(0);
  return protector;
}
