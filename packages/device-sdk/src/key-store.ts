// Where the device's private key lives. The SDK only ever asks a KeyStore to make a key, sign bytes
// and hand node:tls what it needs for the handshake, so a TPM or secure element can replace the file.

import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { chmod, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { SecureContextOptions } from 'node:tls';
import { signatureHash } from './csr.ts';

export const KEY_TYPES = ['p256', 'p384', 'ed25519'] as const;
export type KeyType = (typeof KEY_TYPES)[number];

/** What node:tls needs to use the key: PEM for a file key, or an OpenSSL engine reference for hardware. */
export type TlsKeyOptions = Pick<SecureContextOptions, 'key' | 'privateKeyEngine' | 'privateKeyIdentifier'>;

export interface DeviceKey {
  readonly keyType: KeyType;
  /** DER SubjectPublicKeyInfo. */
  publicKeyDer(): Buffer;
  /** The X.509 signature value over `data`: DER ECDSA-Sig-Value for ECDSA, 64 bytes for Ed25519. */
  sign(data: Buffer): Promise<Buffer>;
  tlsKey(): TlsKeyOptions;
}

export interface KeyStore {
  /** Reported in the capability report, e.g. `file`, `tpm`, `secure-element`. */
  readonly storage: string;
  /** The current key, or undefined when the device has none yet. */
  load(): Promise<DeviceKey | undefined>;
  /** Makes a new key. It is staged: `load()` keeps returning the old key until `commit()`. */
  generate(keyType: KeyType): Promise<DeviceKey>;
  /** Makes a staged key the current one (after its certificate arrived). */
  commit(key: DeviceKey): Promise<void>;
}

export class KeyFileError extends Error {
  override readonly name = 'KeyFileError';
}

function keyTypeOf(key: KeyObject): KeyType {
  if (key.asymmetricKeyType === 'ed25519') return 'ed25519';
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1') return 'p256';
    if (curve === 'secp384r1') return 'p384';
  }
  throw new KeyFileError(
    `unsupported key type ${key.asymmetricKeyType ?? '?'}; the SDK uses P-256, P-384 or Ed25519`,
  );
}

/** A software key held in memory (the file key store's keys, and handy in tests). */
export function softwareKey(privateKey: KeyObject): DeviceKey & { readonly pem: string } {
  const keyType = keyTypeOf(privateKey);
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  return {
    keyType,
    pem,
    publicKeyDer: () => Buffer.from(spki),
    sign: async (data) => sign(signatureHash(keyType), data, privateKey),
    tlsKey: () => ({ key: pem }),
  };
}

export function generateSoftwareKey(keyType: KeyType): DeviceKey & { readonly pem: string } {
  const { privateKey } =
    keyType === 'ed25519'
      ? generateKeyPairSync('ed25519')
      : generateKeyPairSync('ec', { namedCurve: keyType === 'p256' ? 'P-256' : 'P-384' });
  return softwareKey(privateKey);
}

/**
 * The private key in a PKCS#8 PEM file with mode 0600. A key file that other users can read is refused:
 * the key may already be copied, and silently tightening the mode would hide that.
 */
export function fileKeyStore(path: string): KeyStore {
  const staged = `${path}.new`;
  const keys = new WeakMap<DeviceKey, string>();
  return {
    storage: 'file',
    async load() {
      let info;
      try {
        info = await stat(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
      if ((info.mode & 0o077) !== 0) {
        throw new KeyFileError(
          `${path} is readable by other users (mode ${(info.mode & 0o777).toString(8)}); ` +
            'treat the key as exposed, or `chmod 600` it if you are sure it is not',
        );
      }
      let key: KeyObject;
      try {
        key = createPrivateKey(await readFile(path, 'utf8'));
      } catch (err) {
        throw new KeyFileError(`${path} holds no usable private key: ${(err as Error).message}`);
      }
      return softwareKey(key);
    },
    async generate(keyType) {
      const key = generateSoftwareKey(keyType);
      await rm(staged, { force: true });
      await writeFileDurably(staged, key.pem, 0o600);
      keys.set(key, staged);
      return key;
    },
    async commit(key) {
      if (keys.get(key) !== staged) throw new KeyFileError('commit() takes a key made by this store');
      await rename(staged, path);
      await syncDir(dirname(path));
      keys.delete(key);
    },
  };
}

/** Writes a new file with its final mode from the first byte, fsyncs it, and refuses to follow an existing one. */
export async function writeFileDurably(path: string, data: string | Buffer, mode: number): Promise<void> {
  const handle = await open(path, 'wx', mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await chmod(path, mode);
}

/** Replaces `path` atomically (write `path.tmp`, fsync, rename). */
export async function replaceFile(path: string, data: string | Buffer, mode: number): Promise<void> {
  const tmp = `${path}.tmp`;
  await rm(tmp, { force: true });
  await writeFileDurably(tmp, data, mode);
  await rename(tmp, path);
  await syncDir(dirname(path));
}

export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch {
    // Some file systems cannot fsync a directory; the rename is still atomic.
  } finally {
    await handle.close();
  }
}
