import type { Db } from '../../kernel/index.ts';
import { openSqlite } from './sqlite.ts';
import { openPostgres } from './postgres.ts';
import { migrate } from './migrate.ts';

export { migrate, loadMigrations } from './migrate.ts';

export interface DatabaseOptions {
  /** `sqlite:/path/to/file.db`, `sqlite::memory:` or `postgres://user@host:5432/db`. */
  url: string;
  /** PostgreSQL schema (isolates test runs). */
  schema?: string;
  migrate?: boolean;
}

/** Opens the database named by `url` and brings its schema up to date. */
export async function openDatabase(opts: DatabaseOptions): Promise<Db> {
  const db = opts.url.startsWith('sqlite:')
    ? openSqlite(opts.url.slice('sqlite:'.length))
    : /^postgres(ql)?:\/\//.test(opts.url)
      ? openPostgres({ url: opts.url, ...(opts.schema ? { schema: opts.schema } : {}) })
      : undefined;
  if (!db) throw new Error(`unsupported database url scheme: ${opts.url.split(':')[0]}`);
  if (opts.migrate !== false) {
    try {
      await migrate(db);
    } catch (err) {
      await db.close().catch(() => {});
      throw err;
    }
  }
  return db;
}
