import { AppError } from './errors.ts';

/** Opaque keyset-pagination cursors: base64url JSON, validated on the way back in. */
export function encodeCursor(value: Record<string, string | number>): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

export function decodeCursor<T extends Record<string, string | number>>(
  cursor: string,
  keys: readonly (keyof T & string)[],
): T {
  try {
    if (cursor.length > 512) throw new Error('too long');
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as Record<string, unknown>;
    for (const k of keys) {
      if (typeof v[k] !== 'string' && typeof v[k] !== 'number') throw new Error(`missing ${k}`);
    }
    return v as T;
  } catch {
    throw new AppError('ERR_PAGE_CURSOR');
  }
}
