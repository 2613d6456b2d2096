import { randomBytes, randomUUID } from 'node:crypto';

/** Randomness is a port too: tests may pass a deterministic source. */
export interface Ids {
  uuid(): string;
  token(bytes?: number): string;
  serial(): string;
}

export const randomIds: Ids = {
  uuid: () => randomUUID(),
  token: (bytes = 32) => randomBytes(bytes).toString('base64url'),
  // 16 random bytes, top bit cleared so the DER INTEGER is positive (RFC 5280 §4.1.2.2).
  serial: () => {
    const b = randomBytes(16);
    b[0] = ((b[0] ?? 0) & 0x7f) | 0x10;
    return b.toString('hex');
  },
};
