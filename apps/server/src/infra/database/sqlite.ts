import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Db, SqlValue } from '../../kernel/index.ts';

type Bindable = null | number | bigint | string | Uint8Array;

function bind(params: readonly SqlValue[]): Bindable[] {
  return params.map((p) => (typeof p === 'boolean' ? (p ? 1 : 0) : p));
}

/**
 * node:sqlite is synchronous and has one connection, so an async transaction must not interleave with
 * other statements: a transaction holds a lock that every other caller waits for.
 */
export function openSqlite(path: string): Db {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new DatabaseSync(path);
  db.exec('PRAGMA journal_mode = WAL');
  // FULL: a committed transaction survives power loss, not only a process kill. Group commit amortizes it.
  db.exec('PRAGMA synchronous = FULL');
  db.exec('PRAGMA foreign_keys = ON');
  db.exec('PRAGMA busy_timeout = 5000');
  const statements = new Map<string, StatementSync>();
  const prepare = (sql: string): StatementSync => {
    let st = statements.get(sql);
    if (!st) {
      st = db.prepare(sql);
      statements.set(sql, st);
    }
    return st;
  };

  let lock: Promise<void> = Promise.resolve();
  let locked = false;

  const direct: Omit<Db, 'transaction' | 'close'> = {
    dialect: 'sqlite',
    async all<T>(sql: string, params: readonly SqlValue[] = []) {
      return prepare(sql).all(...bind(params)) as T[];
    },
    async get<T>(sql: string, params: readonly SqlValue[] = []) {
      return prepare(sql).get(...bind(params)) as T | undefined;
    },
    async run(sql: string, params: readonly SqlValue[] = []) {
      const r = prepare(sql).run(...bind(params));
      return { changes: Number(r.changes) };
    },
  };

  const waitUnlocked = async (): Promise<void> => {
    while (locked) await lock;
  };

  const outside: Db = {
    dialect: 'sqlite',
    async all(sql, params) {
      await waitUnlocked();
      return direct.all(sql, params);
    },
    async get(sql, params) {
      await waitUnlocked();
      return direct.get(sql, params);
    },
    async run(sql, params) {
      await waitUnlocked();
      return direct.run(sql, params);
    },
    async transaction<T>(fn: (tx: Db) => Promise<T>): Promise<T> {
      // Check and take the lock in the same microtask: awaiting waitUnlocked() adds a hop in which a
      // second waiter also sees the lock free, and both BEGIN ("cannot start a transaction within a transaction").
      while (locked) await lock;
      locked = true;
      let release!: () => void;
      lock = new Promise<void>((r) => (release = r));
      const tx: Db = {
        ...direct,
        transaction: (inner) => inner(tx),
        close: () => Promise.reject(new Error('cannot close inside a transaction')),
      };
      db.exec('BEGIN IMMEDIATE');
      try {
        const result = await fn(tx);
        db.exec('COMMIT');
        return result;
      } catch (err) {
        db.exec('ROLLBACK');
        throw err;
      } finally {
        locked = false;
        release();
      }
    },
    async close() {
      await waitUnlocked();
      statements.clear();
      db.close();
    },
  };
  return outside;
}

/** Runs a script of several statements (migrations). */
export function execScript(db: Db, sql: string): Promise<void> {
  return db.transaction(async (tx) => {
    for (const stmt of splitStatements(sql)) await tx.run(stmt);
  });
}

export function splitStatements(sql: string): string[] {
  return sql
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('--'))
    .join('\n')
    .split(';')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}
