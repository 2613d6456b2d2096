import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { backends } from '../../../test/support/db.ts';
import { isUniqueViolation } from '../src/kernel/index.ts';
import { migrate } from '../src/infra/database/index.ts';
import { toPg } from '../src/infra/database/postgres.ts';

test('placeholders are rewritten for PostgreSQL', () => {
  assert.equal(toPg('SELECT * FROM t WHERE a = ? AND b = ?'), 'SELECT * FROM t WHERE a = $1 AND b = $2');
});

for (const backend of backends) {
  describe(`database (${backend.name})`, { skip: backend.skip }, () => {
    test('migrations are applied once and are idempotent', async () => {
      const { db, cleanup } = await backend.open();
      try {
        assert.deepEqual(await migrate(db), []);
        const rows = await db.all<{ version: number }>(
          'SELECT version FROM schema_migrations ORDER BY version',
        );
        assert.ok(rows.length >= 1);
        assert.equal(typeof rows[0]?.version, 'number');
      } finally {
        await cleanup();
      }
    });

    test('bigint columns come back as numbers and JSON as text', async () => {
      const { db, cleanup } = await backend.open();
      try {
        const ts = 1_790_000_000_123;
        await db.run(
          'INSERT INTO telemetry (tenant_id, device_id, stream, ts, data) VALUES (?, ?, ?, ?, ?)',
          ['t', 'd', '', ts, '{"a":1}'],
        );
        const row = await db.get<{ id: number; ts: number; data: string }>(
          'SELECT id, ts, data FROM telemetry',
        );
        assert.equal(row?.ts, ts);
        assert.equal(typeof row?.id, 'number');
        assert.equal(row?.data, '{"a":1}');
      } finally {
        await cleanup();
      }
    });

    test('a failed transaction changes nothing', async () => {
      const { db, cleanup } = await backend.open();
      try {
        await assert.rejects(
          db.transaction(async (tx) => {
            await tx.run('INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)', ['a', 'A', 1]);
            await tx.run('INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)', ['a', 'A again', 2]);
          }),
          (err) => isUniqueViolation(err),
        );
        assert.equal((await db.all('SELECT * FROM tenants')).length, 0);
      } finally {
        await cleanup();
      }
    });

    test('statements outside a transaction wait for it to finish', async () => {
      const { db, cleanup } = await backend.open();
      try {
        let inside = false;
        const tx = db.transaction(async (t) => {
          inside = true;
          await t.run('INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)', ['x', 'X', 1]);
          await new Promise((r) => setTimeout(r, 20));
          inside = false;
        });
        await new Promise((r) => setImmediate(r));
        const rows = await db.all('SELECT * FROM tenants');
        await tx;
        if (backend.name === 'sqlite') {
          assert.equal(inside, false);
          assert.equal(rows.length, 1);
        }
      } finally {
        await cleanup();
      }
    });
  });
}
