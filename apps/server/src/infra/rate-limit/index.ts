// The rate-limit port on the platform's database: one row per token bucket, taken from with one atomic
// upsert, so every node sharing the database (PostgreSQL) shares the count, and the embedded default
// (SQLite) needs nothing else. Keys are stored as SHA-256: they carry addresses and account names.
import { createHash } from 'node:crypto';
import {
  assertBucketSpec,
  secondsUntil,
  type BucketSpec,
  type Clock,
  type Db,
  type RateLimiter,
  type SqlValue,
} from '../../kernel/index.ts';

export interface SqlRateLimiterOptions {
  clock: Clock;
  /** How often rows of buckets that are full again (they carry nothing) are deleted. Default 60 s. */
  sweepEveryMs?: number;
  /** Told when the background sweep fails (it is tried again on the next interval). */
  onSweepError?: (err: unknown) => void;
}

/**
 * One statement: a bucket nobody used yet is inserted full, minus this take. On conflict the bucket is
 * refilled for the time since its last take (never beyond `burst`; a clock stepping back refills
 * nothing) and the tokens are taken only when there are enough. SET expressions all see the row as it
 * was before the update (PostgreSQL and SQLite alike), so `tokens` and `ok` are decided from one state,
 * and the row lock (PostgreSQL) or the single writer (SQLite) makes the read-modify-write atomic.
 */
function takeStatement(
  keyHash: string,
  spec: BucketSpec,
  cost: number,
  now: number,
  expiresAt: number,
): { sql: string; params: SqlValue[] } {
  const params: SqlValue[] = [];
  // PostgreSQL infers a parameter's type from its neighbours (an integer next to `at`): cast them.
  const p = (v: SqlValue, type?: 'BIGINT' | 'DOUBLE PRECISION') => {
    params.push(v);
    return type ? `CAST(? AS ${type})` : '?';
  };
  const num = (v: number) => p(v, 'DOUBLE PRECISION');
  const time = (v: number) => p(v, 'BIGINT');
  const perMs = spec.perMinute / 60_000;
  const available = () =>
    `rate_limits.tokens + (CASE WHEN ${time(now)} > rate_limits.at THEN ${time(now)} - rate_limits.at ELSE 0 END) * ${num(perMs)}`;
  const refilled = () =>
    `(CASE WHEN ${available()} > ${num(spec.burst)} THEN ${num(spec.burst)} ELSE ${available()} END)`;
  const need = Math.max(cost, 1);
  const sql = `INSERT INTO rate_limits (key_hash, tokens, at, expires_at, ok)
VALUES (${p(keyHash)}, ${p(spec.burst - cost)}, ${p(now)}, ${p(expiresAt)}, 1)
ON CONFLICT (key_hash) DO UPDATE SET
  tokens = CASE WHEN ${refilled()} >= ${num(need)} THEN ${refilled()} - ${num(cost)} ELSE ${refilled()} END,
  ok = CASE WHEN ${refilled()} >= ${num(need)} THEN 1 ELSE 0 END,
  at = CASE WHEN ${time(now)} > rate_limits.at THEN ${time(now)} ELSE rate_limits.at END,
  expires_at = CASE WHEN ${time(expiresAt)} > rate_limits.expires_at THEN ${time(expiresAt)} ELSE rate_limits.expires_at END
RETURNING tokens, ok`;
  return { sql, params };
}

export function createSqlRateLimiter(db: Db, opts: SqlRateLimiterOptions): RateLimiter {
  const sweepEveryMs = opts.sweepEveryMs ?? 60_000;
  let lastSweep = opts.clock.now();
  const sweep = (now: number) => {
    lastSweep = now;
    db.run('DELETE FROM rate_limits WHERE expires_at < ?', [now]).catch((err: unknown) =>
      opts.onSweepError?.(err),
    );
  };
  return {
    async take(key, spec, cost = 1) {
      assertBucketSpec(spec);
      if (!(cost >= 0 && cost <= spec.burst)) throw new Error(`bad rate-limit cost ${cost}`);
      const now = opts.clock.now();
      if (now - lastSweep >= sweepEveryMs) sweep(now);
      // Full again after at most this long (from empty): from then on the row holds nothing.
      const expiresAt = now + Math.ceil(spec.burst / (spec.perMinute / 60_000));
      const hash = createHash('sha256').update(key).digest('hex');
      const { sql, params } = takeStatement(hash, spec, cost, now, expiresAt);
      const row = await db.get<{ tokens: unknown; ok: unknown }>(sql, params);
      if (Number(row?.ok) === 1) return { ok: true, retryAfterSeconds: 0 };
      return {
        ok: false,
        retryAfterSeconds: secondsUntil(Number(row?.tokens ?? 0), Math.max(cost, 1), spec),
      };
    },
  };
}
