import pg from 'pg';
import type { Db, SqlValue } from '../../kernel/index.ts';

// BIGINT (epoch ms, counters) as JS numbers: all our values are below 2^53.
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === 20) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format as 'text');
  },
};

const placeholderCache = new Map<string, string>();

/** `?` -> `$1..$n`. Our SQL never has `?` inside string literals. */
export function toPg(sql: string): string {
  let out = placeholderCache.get(sql);
  if (out === undefined) {
    let n = 0;
    out = sql.replace(/\?/g, () => `$${++n}`);
    if (placeholderCache.size < 2000) placeholderCache.set(sql, out);
  }
  return out;
}

function params(values: readonly SqlValue[]): unknown[] {
  return values.map((v) => (typeof v === 'boolean' ? (v ? 1 : 0) : typeof v === 'bigint' ? v.toString() : v));
}

interface Queryable {
  query(sql: string, values: unknown[]): Promise<{ rows: unknown[]; rowCount: number | null }>;
}

function over(q: Queryable): Omit<Db, 'transaction' | 'close'> {
  return {
    dialect: 'postgres',
    async all<T>(sql: string, values: readonly SqlValue[] = []) {
      return (await q.query(toPg(sql), params(values))).rows as T[];
    },
    async get<T>(sql: string, values: readonly SqlValue[] = []) {
      return (await q.query(toPg(sql), params(values))).rows[0] as T | undefined;
    },
    async run(sql: string, values: readonly SqlValue[] = []) {
      return { changes: (await q.query(toPg(sql), params(values))).rowCount ?? 0 };
    },
  };
}

export interface PostgresOptions {
  url: string;
  /** Schema to use (created if missing); isolates test runs. */
  schema?: string;
  max?: number;
}

export function openPostgres(opts: PostgresOptions): Db {
  if (opts.schema && !/^[a-z_][a-z0-9_]{0,62}$/.test(opts.schema)) throw new Error(`invalid schema name`);
  const pool = new pg.Pool({
    connectionString: opts.url,
    max: opts.max ?? 10,
    types,
    ...(opts.schema ? { options: `-c search_path=${opts.schema}` } : {}),
  });
  const ready = opts.schema
    ? pool.query(`CREATE SCHEMA IF NOT EXISTS ${opts.schema}`).then(() => undefined)
    : Promise.resolve();
  const base = over({
    query: async (sql, values) => {
      await ready;
      return pool.query(sql, values);
    },
  });
  return {
    ...base,
    async transaction<T>(fn: (tx: Db) => Promise<T>): Promise<T> {
      await ready;
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const tx: Db = {
          ...over(client),
          transaction: (inner) => inner(tx),
          close: () => Promise.reject(new Error('cannot close inside a transaction')),
        };
        const result = await fn(tx);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      } finally {
        client.release();
      }
    },
    async close() {
      await pool.end();
    },
  };
}
