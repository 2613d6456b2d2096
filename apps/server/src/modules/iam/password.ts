// Local account passwords: scrypt (RFC 7914) from node:crypto, N=2^17, r=8, p=1 (128 MiB of memory per
// hash, the OWASP recommendation for scrypt), a 16-byte salt and a 32-byte key. The encoded form names
// its parameters so they can be raised later: `scrypt$<logN>$<r>$<p>$<salt b64url>$<key b64url>`.
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { AppError } from '../../kernel/index.ts';

export interface ScryptParams {
  readonly logN: number;
  readonly r: number;
  readonly p: number;
}

export const DEFAULT_SCRYPT: ScryptParams = { logN: 17, r: 8, p: 1 };
const KEY_BYTES = 32;

function scrypt(password: string, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  const N = 2 ** params.logN;
  const opts: ScryptOptions = { N, r: params.r, p: params.p, maxmem: 256 * N * params.r };
  return new Promise((resolve, reject) =>
    scryptCb(password.normalize('NFC'), salt, KEY_BYTES, opts, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  );
}

export async function hashPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, params);
  return `scrypt$${params.logN}$${params.r}$${params.p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

/** Constant-time comparison of the derived key; false for any malformed stored hash. */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  const parts = encoded.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [logN, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  if (![logN, r, p].every(Number.isInteger) || logN < 10 || logN > 20 || r < 1 || r > 32 || p < 1 || p > 16)
    return false;
  const salt = Buffer.from(parts[4] ?? '', 'base64url');
  const want = Buffer.from(parts[5] ?? '', 'base64url');
  if (salt.length < 16 || want.length !== KEY_BYTES) return false;
  const got = await scrypt(password, salt, { logN, r, p });
  return timingSafeEqual(got, want);
}

// The most common passwords of at least 12 characters in public breach corpora; the length rule
// already rules out the rest of the usual top lists.
const COMMON = new Set([
  '123456789012',
  '1234567890123',
  '12345678901234',
  '123123123123',
  '111111111111',
  '000000000000',
  'qwertyuiopas',
  'qwerty123456',
  '1q2w3e4r5t6y',
  'password1234',
  'password12345',
  'password123!',
  'passwordpassword',
  'iloveyou1234',
  'administrator',
  'administrator1',
  'admin1234567',
  'letmein12345',
  'welcome12345',
  'welcome123456',
  'changeme1234',
  'changemechangeme',
  'qwertyqwerty',
  'abcdefghijkl',
  'abc123abc123',
  'trustno1trustno1',
  'football1234',
  'baseball1234',
  'superman1234',
  'sunshine1234',
  'princess1234',
  'monkey123456',
  'dragon123456',
  'master123456',
  'correcthorsebatterystaple',
  'bulwarkbulwark',
  'bulwark12345',
]);

export const PASSWORD_MIN = 12;
export const PASSWORD_MAX = 256;

/** Length 12-256, not a common password, not the user name (NIST SP 800-63B §5.1.1.2). */
export function checkPasswordPolicy(password: string, userName: string): void {
  const lower = password.toLowerCase();
  const chars = [...password].length;
  const weak =
    chars < PASSWORD_MIN ||
    chars > PASSWORD_MAX ||
    COMMON.has(lower) ||
    /^(.)\1*$/.test(password) ||
    (userName.length >= 3 && lower.includes(userName.toLowerCase()));
  if (weak) throw new AppError('ERR_AUTH_PASSWORD_WEAK');
}
