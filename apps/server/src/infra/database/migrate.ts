import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Db } from '../../kernel/index.ts';
import { splitStatements } from './sqlite.ts';

export const MIGRATIONS_DIR = new URL('../../../migrations/', import.meta.url);

const tokens: Record<Db['dialect'], Record<string, string>> = {
  sqlite: { '{{id}}': 'INTEGER PRIMARY KEY AUTOINCREMENT', '{{blob}}': 'BLOB' },
  postgres: { '{{id}}': 'BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY', '{{blob}}': 'BYTEA' },
};

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export function loadMigrations(dir: string | URL = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((file) => ({
      version: Number(file.slice(0, 4)),
      name: file.slice(5, -4),
      sql: readFileSync(typeof dir === 'string' ? join(dir, file) : new URL(file, dir), 'utf8'),
    }));
}

export function render(sql: string, dialect: Db['dialect']): string {
  return sql.replace(/\{\{[a-z]+\}\}/g, (t) => {
    const v = tokens[dialect][t];
    if (v === undefined) throw new Error(`unknown migration token ${t}`);
    return v;
  });
}

/** Applies pending migrations in order, each in its own transaction. Safe for several nodes at once on PostgreSQL. */
export async function migrate(db: Db, migrations = loadMigrations()): Promise<number[]> {
  const applied: number[] = [];
  await db.transaction(async (tx) => {
    if (tx.dialect === 'postgres') await tx.run('SELECT pg_advisory_xact_lock(4242001)');
    await tx.run(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)',
    );
    const done = new Set(
      (await tx.all<{ version: number }>('SELECT version FROM schema_migrations')).map((r) =>
        Number(r.version),
      ),
    );
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      for (const stmt of splitStatements(render(m.sql, tx.dialect))) await tx.run(stmt);
      await tx.run('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [
        m.version,
        m.name,
        Date.now(),
      ]);
      applied.push(m.version);
    }
  });
  return applied;
}
