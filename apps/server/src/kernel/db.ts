/**
 * The persistence port every module's store.ts is written against. One query layer for SQLite and
 * PostgreSQL: SQL uses `?` placeholders (rewritten to `$n` for PostgreSQL), integers for time
 * (epoch milliseconds), TEXT for JSON and 0/1 for booleans, so the same statements run on both.
 */
export type SqlValue = string | number | bigint | boolean | null | Uint8Array;

export interface Db {
  readonly dialect: 'sqlite' | 'postgres';
  all<T = Record<string, unknown>>(sql: string, params?: readonly SqlValue[]): Promise<T[]>;
  get<T = Record<string, unknown>>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined>;
  run(sql: string, params?: readonly SqlValue[]): Promise<{ changes: number }>;
  /** Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: Db) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** True when `err` is a unique-constraint violation on either dialect. */
export function isUniqueViolation(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { code?: unknown; errcode?: unknown; message?: unknown };
  if (e.code === '23505') return true; // PostgreSQL unique_violation
  return typeof e.message === 'string' && e.message.includes('UNIQUE constraint failed');
}
