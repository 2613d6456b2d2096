/**
 * The rate-limit port: token buckets named by a key (`POST /auth/login|10.0.0.7|alice`). Sign-in, token,
 * enrollment and SSO endpoints and failed authentications all go through it. The platform wires the
 * SQL implementation (infra/rate-limit), so every node of a cluster shares one count; the in-memory
 * one below serves tests and single-process tools.
 */
import { AppError } from './errors.ts';
import type { Clock } from './clock.ts';

/** A token bucket: `burst` requests at once, refilled at `perMinute`. */
export interface BucketSpec {
  readonly burst: number;
  readonly perMinute: number;
}

export interface TakeResult {
  /** The tokens were taken (for cost 0: at least one token is there). */
  readonly ok: boolean;
  /** When not ok: seconds until enough tokens are back (at least 1). */
  readonly retryAfterSeconds: number;
}

export interface RateLimiter {
  /**
   * Takes `cost` tokens (default 1) from the bucket `key`, atomically, or none when there are fewer.
   * Cost 0 only looks: ok when at least one token is there (counting failures, checked before trying).
   */
  take(key: string, spec: BucketSpec, cost?: number): Promise<TakeResult>;
}

/** Takes one token from each bucket; throws ERR_RATE_LIMITED (with Retry-After) when any is empty. */
export async function checkRateLimits(
  limiter: RateLimiter,
  keys: readonly string[],
  spec: BucketSpec,
): Promise<void> {
  let wait = 0;
  for (const k of keys) {
    const r = await limiter.take(k, spec);
    if (!r.ok) wait = Math.max(wait, r.retryAfterSeconds);
  }
  if (wait > 0) throw new AppError('ERR_RATE_LIMITED', undefined, { retryAfterSeconds: wait });
}

/** Tokens in a bucket last seen at `at` with `tokens`, at time `now`. A clock stepping back refills nothing. */
export function refill(tokens: number, at: number, now: number, spec: BucketSpec): number {
  return Math.min(spec.burst, tokens + Math.max(0, now - at) * (spec.perMinute / 60_000));
}

/** Seconds until `tokens` grows to `need` at the spec's rate; at least 1. */
export function secondsUntil(tokens: number, need: number, spec: BucketSpec): number {
  return Math.max(1, Math.ceil((need - tokens) / (spec.perMinute / 60_000) / 1000));
}

/** Checks a spec once, where it is made: a bucket that never refills or holds nothing is a bug. */
export function assertBucketSpec(spec: BucketSpec): void {
  if (!(spec.burst >= 1) || !(spec.perMinute > 0)) throw new Error(`bad rate limit ${JSON.stringify(spec)}`);
}

/**
 * Buckets in this process only: behind a load balancer each node would limit on its own. For tests and
 * single-process use; the platform uses the SQL limiter.
 */
export function createMemoryRateLimiter(opts: {
  clock: Clock;
  maxBuckets?: number;
}): RateLimiter & { readonly size: number } {
  const buckets = new Map<string, { tokens: number; at: number }>();
  const max = opts.maxBuckets ?? 100_000;
  return {
    async take(key, spec, cost = 1) {
      const now = opts.clock.now();
      let b = buckets.get(key);
      if (!b) {
        if (buckets.size >= max) {
          // Drop the full buckets first (they carry no state worth keeping), then the oldest.
          for (const [k, v] of buckets)
            if (refill(v.tokens, v.at, now, spec) >= spec.burst) buckets.delete(k);
          if (buckets.size >= max) buckets.delete(buckets.keys().next().value as string);
        }
        b = { tokens: spec.burst, at: now };
        buckets.set(key, b);
      }
      b.tokens = refill(b.tokens, b.at, now, spec);
      b.at = Math.max(b.at, now);
      const need = Math.max(cost, 1);
      if (b.tokens >= need) {
        b.tokens -= cost;
        return { ok: true, retryAfterSeconds: 0 };
      }
      return { ok: false, retryAfterSeconds: secondsUntil(b.tokens, need, spec) };
    },
    get size() {
      return buckets.size;
    },
  };
}
