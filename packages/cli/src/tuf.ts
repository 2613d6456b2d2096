// Offline TUF signing for `bulwark release keygen|sign`: Ed25519 key files that never leave this
// machine, the canonical JSON that TUF signatures cover, and key ids.

import { createHash, createPrivateKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { CliError } from './errors.ts';

export const KEY_ROLES = ['root', 'targets'] as const;
export type KeyRole = (typeof KEY_ROLES)[number];

/** A key file as `release keygen` writes it (JSON, mode 0600). */
export interface TufKeyFile {
  readonly type: 'bulwark-tuf-key';
  readonly role: KeyRole;
  readonly keytype: 'ed25519';
  readonly scheme: 'ed25519';
  readonly keyid: string;
  readonly public: string;
  /** PKCS#8 PEM. */
  readonly private: string;
}

export interface LoadedKey {
  readonly file: string;
  readonly role: KeyRole;
  readonly keyid: string;
  readonly publicHex: string;
  readonly key: KeyObject;
}

/**
 * Canonical JSON as TUF uses it (OLPC: keys sorted, no whitespace, integers only, only `"` and `\`
 * escaped in strings); the same as @tufjs/canonical-json.
 */
export function canonicalJson(v: unknown): string {
  if (typeof v === 'string') return `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  if (typeof v === 'boolean' || v === null) return JSON.stringify(v);
  if (typeof v === 'number') {
    if (!Number.isInteger(v))
      throw new CliError('the metadata contains a non-integer number: refusing to sign');
    return JSON.stringify(v);
  }
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${canonicalJson(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  throw new CliError(`cannot encode ${typeof v} in canonical JSON`);
}

export const sha256Hex = (s: string | Buffer): string => createHash('sha256').update(s).digest('hex');

export function keyIdOf(publicHex: string): string {
  return sha256Hex(canonicalJson({ keytype: 'ed25519', scheme: 'ed25519', keyval: { public: publicHex } }));
}

export function generateKeyFile(role: KeyRole): TufKeyFile {
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  const publicHex = Buffer.from(String(jwk.x), 'base64url').toString('hex');
  return {
    type: 'bulwark-tuf-key',
    role,
    keytype: 'ed25519',
    scheme: 'ed25519',
    keyid: keyIdOf(publicHex),
    public: publicHex,
    private: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
  };
}

export async function loadKeyFile(file: string): Promise<LoadedKey> {
  let text: string;
  try {
    const s = await stat(file);
    if ((s.mode & 0o077) !== 0)
      throw new CliError(
        `${file} is readable by others (mode ${(s.mode & 0o777).toString(8)}); chmod 600 it`,
      );
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`cannot read key file ${file}: ${(err as Error).message}`);
  }
  let k: TufKeyFile;
  try {
    k = JSON.parse(text) as TufKeyFile;
  } catch {
    throw new CliError(`${file} is not a key file made by 'bulwark release keygen'`);
  }
  if (k.type !== 'bulwark-tuf-key' || !KEY_ROLES.includes(k.role) || k.keytype !== 'ed25519')
    throw new CliError(`${file} is not a key file made by 'bulwark release keygen'`);
  const key = createPrivateKey(k.private);
  const jwk = key.export({ format: 'jwk' });
  const publicHex = Buffer.from(String(jwk.x), 'base64url').toString('hex');
  if (publicHex !== k.public || keyIdOf(publicHex) !== k.keyid)
    throw new CliError(`${file}: the private key does not match the public key recorded in the file`);
  return { file, role: k.role, keyid: k.keyid, publicHex, key };
}

export function signCanonical(text: string, key: LoadedKey): { keyid: string; sig: string } {
  return { keyid: key.keyid, sig: sign(null, Buffer.from(text, 'utf8'), key.key).toString('hex') };
}
