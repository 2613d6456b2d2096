import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Db } from '../../apps/server/src/kernel/index.ts';
import { openDatabase } from '../../apps/server/src/infra/database/index.ts';

export interface Backend {
  name: 'sqlite' | 'postgres';
  /** Why this backend's tests are skipped, or false when they run. */
  skip: string | false;
  open(): Promise<{ db: Db; url: string; schema?: string; cleanup(): Promise<void> }>;
}

/** PostgreSQL URL for tests; scripts/run-tests.ts sets it after checking the server answers. */
export const pgUrl = process.env.BULWARK_TEST_PG_URL;

export function tempDir(prefix = 'bulwark-test-'): { path: string; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** The same store suite runs against every backend: SQLite always, PostgreSQL when it is reachable. */
export const backends: Backend[] = [
  {
    name: 'sqlite',
    skip: false,
    async open() {
      const dir = tempDir();
      const url = `sqlite:${join(dir.path, 'bulwark.db')}`;
      const db = await openDatabase({ url });
      return {
        db,
        url,
        async cleanup() {
          await db.close();
          dir.cleanup();
        },
      };
    },
  },
  {
    name: 'postgres',
    skip: pgUrl ? false : 'PostgreSQL not reachable (set BULWARK_TEST_PG_URL; CI always runs these)',
    async open() {
      if (!pgUrl) throw new Error('BULWARK_TEST_PG_URL not set');
      const schema = `t_${randomBytes(6).toString('hex')}`;
      const db = await openDatabase({ url: pgUrl, schema });
      return {
        db,
        url: pgUrl,
        schema,
        async cleanup() {
          await db.close();
          await dropSchema(pgUrl, schema);
        },
      };
    },
  },
];

export async function dropSchema(url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
}
