// The rate-limit port: one suite for the in-memory limiter and the SQL limiter on SQLite and PostgreSQL
// (token buckets, atomic under concurrency, expiring rows), and two platform nodes on one PostgreSQL
// database sharing the sign-in limit.
import 'reflect-metadata';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { AppError } from '../src/kernel/index.ts';
import {
  checkRateLimits,
  createMemoryRateLimiter,
  fixedClock,
  type Clock,
  type Db,
  type RateLimiter,
} from '../src/kernel/index.ts';
import { migrate } from '../src/infra/database/migrate.ts';
import { createSqlRateLimiter } from '../src/infra/rate-limit/index.ts';
import { backends, dropSchema, pgUrl } from '../../../test/support/db.ts';
import { startPlatform, type Platform } from '../../../test/support/platform.ts';
import { call } from './support/iam-http.ts';

interface Subject {
  name: string;
  skip: string | false;
  make(clock: Clock): Promise<{ limiter: RateLimiter; db?: Db; cleanup(): Promise<void> }>;
}

const subjects: Subject[] = [
  {
    name: 'memory',
    skip: false,
    async make(clock) {
      return { limiter: createMemoryRateLimiter({ clock }), cleanup: async () => {} };
    },
  },
  ...backends.map((b): Subject => ({
    name: `sql (${b.name})`,
    skip: b.skip,
    async make(clock) {
      const opened = await b.open();
      await migrate(opened.db);
      return {
        limiter: createSqlRateLimiter(opened.db, { clock, sweepEveryMs: 60_000 }),
        db: opened.db,
        cleanup: opened.cleanup,
      };
    },
  })),
];

for (const s of subjects) {
  describe(`rate limiter: ${s.name}`, { skip: s.skip }, () => {
    const clock = fixedClock(Date.parse('2026-05-01T00:00:00Z'));
    let limiter: RateLimiter;
    let db: Db | undefined;
    let cleanup: () => Promise<void>;
    before(async () => {
      ({ limiter, db, cleanup } = await s.make(clock));
    });
    after(async () => {
      await cleanup();
    });

    test('a bucket holds `burst`, refills with the clock; a clock stepping back takes nothing away', async () => {
      const spec = { burst: 2, perMinute: 60 };
      const takes = [];
      for (let i = 0; i < 3; i++) takes.push((await limiter.take('k1', spec)).ok);
      assert.deepEqual(takes, [true, true, false]);
      assert.equal((await limiter.take('k1', spec)).retryAfterSeconds, 1);
      clock.advance(1_000);
      assert.equal((await limiter.take('k1', spec)).ok, true);
      clock.advance(-60_000);
      assert.equal((await limiter.take('k1', spec)).ok, false, 'stepping back refilled the bucket');
      clock.advance(60_000);
      await assert.rejects(
        checkRateLimits(limiter, ['k1'], spec),
        (e: AppError) => e.code === 'ERR_RATE_LIMITED' && e.retryAfterSeconds === 1,
      );
      // Other keys are other buckets.
      assert.equal((await limiter.take('k1-other', spec)).ok, true);
      clock.advance(120_000);
    });

    test('retry-after is the time until a token is back; a full bucket never holds more than burst', async () => {
      const spec = { burst: 3, perMinute: 3 };
      for (let i = 0; i < 3; i++) assert.equal((await limiter.take('k2', spec)).ok, true);
      assert.deepEqual(await limiter.take('k2', spec), { ok: false, retryAfterSeconds: 20 });
      clock.advance(10_000);
      assert.deepEqual(await limiter.take('k2', spec), { ok: false, retryAfterSeconds: 10 });
      clock.advance(3_600_000); // an hour later: full, but only `burst` full
      const again = [];
      for (let i = 0; i < 4; i++) again.push((await limiter.take('k2', spec)).ok);
      assert.deepEqual(again, [true, true, true, false]);
    });

    test('cost 0 only looks: counting failures and checking before the next attempt', async () => {
      const spec = { burst: 2, perMinute: 2 };
      assert.equal((await limiter.take('k3', spec, 0)).ok, true);
      assert.equal((await limiter.take('k3', spec, 0)).ok, true, 'looking took nothing');
      await limiter.take('k3', spec, 1);
      assert.equal((await limiter.take('k3', spec, 0)).ok, true);
      await limiter.take('k3', spec, 1);
      const r = await limiter.take('k3', spec, 0);
      assert.deepEqual(r, { ok: false, retryAfterSeconds: 30 });
    });

    test('concurrent takes never hand out more than the bucket holds', async () => {
      const spec = { burst: 10, perMinute: 1 };
      const results = await Promise.all(Array.from({ length: 40 }, () => limiter.take('k4', spec)));
      assert.equal(results.filter((r) => r.ok).length, 10);
    });

    if (s.name !== 'memory') {
      test('rows of buckets that are full again are swept', async () => {
        const count = async () =>
          Number((await db?.get<{ n: unknown }>('SELECT COUNT(*) AS n FROM rate_limits'))?.n ?? -1);
        await limiter.take('k5', { burst: 1, perMinute: 60 });
        assert.ok((await count()) >= 1);
        clock.advance(20 * 60_000); // every bucket above is full again by now
        await limiter.take('k6', { burst: 1, perMinute: 60 }); // triggers the sweep
        const until = Date.now() + 2000;
        while ((await count()) !== 1 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
        assert.equal(await count(), 1, 'only the fresh bucket is left');
        // Keys are stored hashed: addresses and account names do not sit in the table.
        const rows = await db?.all<{ key_hash: string }>('SELECT key_hash FROM rate_limits');
        assert.match(rows?.[0]?.key_hash ?? '', /^[0-9a-f]{64}$/);
      });
    }
  });
}

test('the in-memory limiter bounds its bucket count', async () => {
  const l = createMemoryRateLimiter({ clock: fixedClock(0), maxBuckets: 10 });
  for (let i = 0; i < 100; i++) await l.take(`k${i}`, { burst: 1, perMinute: 1 });
  assert.ok(l.size <= 10);
});

test('bad specs and costs are programming errors, refused loudly', async () => {
  const l = createSqlRateLimiter({} as Db, { clock: fixedClock(0) });
  await assert.rejects(l.take('k', { burst: 0, perMinute: 1 }), /bad rate limit/);
  await assert.rejects(l.take('k', { burst: 1, perMinute: 0 }), /bad rate limit/);
  await assert.rejects(l.take('k', { burst: 1, perMinute: 1 }, 2), /bad rate-limit cost/);
  await assert.rejects(l.take('k', { burst: 1, perMinute: 1 }, -1), /bad rate-limit cost/);
});

describe(
  'two nodes on one PostgreSQL database share the limits',
  { skip: pgUrl ? false : 'PostgreSQL not reachable' },
  () => {
    const schema = `t_${randomBytes(6).toString('hex')}`;
    const masterKey = randomBytes(32).toString('base64');
    let a: Platform;
    let b: Platform;
    before(async () => {
      const opts = {
        postgres: true,
        sharedSchema: schema,
        env: { BULWARK_MASTER_KEY: masterKey },
        iam: { scrypt: { logN: 10, r: 8, p: 1 } },
      };
      a = await startPlatform(opts);
      b = await startPlatform(opts);
    });
    after(async () => {
      await b?.close();
      await a?.close();
      if (pgUrl) await dropSchema(pgUrl, schema);
    });

    test('sign-in attempts for one account through either node count toward one bucket', async () => {
      const login = (p: Platform) =>
        call<{ code: string }>(p.url, p.ca, 'POST', '/api/v1/auth/login', {
          body: { username: 'ghost-shared', password: 'not the password 123' },
        });
      // 10 per account and address: five through each node are all answered on their merits.
      for (let i = 0; i < 5; i++) {
        for (const p of [a, b]) {
          const r = await login(p);
          assert.equal(r.status, 401, JSON.stringify(r.body));
        }
      }
      // Each node alone has seen only five: with per-process buckets both would still let these through.
      for (const p of [a, b]) {
        const r = await login(p);
        assert.equal(r.status, 429, JSON.stringify(r.body));
        assert.equal(r.body.code, 'ERR_RATE_LIMITED');
        assert.match(String(r.headers['retry-after']), /^[1-9]\d*$/);
      }
    });

    test('failed authentications through either node slow the address down on both', async () => {
      const bad = `bwk_${'z'.repeat(43)}`;
      const whoami = (p: Platform) =>
        call<{ code: string }>(p.url, p.ca, 'GET', '/api/v1/whoami', { token: bad });
      // 30 per address (refilled at one per 2 s): twenty through each node. Per-process buckets would
      // answer all forty with 401; shared ones slow down the last ten, less what refilled meanwhile.
      const statuses: number[] = [];
      for (let i = 0; i < 20; i++) for (const p of [a, b]) statuses.push((await whoami(p)).status);
      assert.deepEqual(statuses.slice(0, 30), Array(30).fill(401));
      const slowed = statuses.filter((s) => s === 429).length;
      assert.ok(slowed >= 5, JSON.stringify(statuses));
      assert.equal(statuses.at(-1), 429);
    });
  },
);
