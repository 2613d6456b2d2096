// In-memory token buckets for sign-in, token, enrollment and other abuse-prone endpoints. Per process:
// behind a load balancer each node limits on its own, which bounds the total at N times the rate.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError, type Clock, type RateLimitSpec } from '../../kernel/index.ts';

export interface RateLimiter {
  /** Takes one token from the bucket `key`; when empty, how long until the next one. */
  take(
    key: string,
    spec: Pick<RateLimitSpec, 'burst' | 'perMinute'>,
  ): { ok: boolean; retryAfterSeconds: number };
  /** Throws ERR_RATE_LIMITED (with Retry-After) when any of the buckets is empty. */
  check(keys: readonly string[], spec: Pick<RateLimitSpec, 'burst' | 'perMinute'>): void;
  readonly size: number;
}

export function createRateLimiter(opts: { clock: Clock; maxBuckets?: number }): RateLimiter {
  const buckets = new Map<string, { tokens: number; at: number }>();
  const max = opts.maxBuckets ?? 100_000;
  const take: RateLimiter['take'] = (key, spec) => {
    const now = opts.clock.now();
    const perMs = spec.perMinute / 60_000;
    let b = buckets.get(key);
    if (!b) {
      if (buckets.size >= max) {
        // Drop the full buckets first (they carry no state worth keeping), then the oldest.
        for (const [k, v] of buckets) {
          if (v.tokens + Math.max(0, now - v.at) * perMs >= spec.burst) buckets.delete(k);
        }
        if (buckets.size >= max) buckets.delete(buckets.keys().next().value as string);
      }
      b = { tokens: spec.burst, at: now };
      buckets.set(key, b);
    }
    // A clock that steps back refills nothing and takes nothing away.
    b.tokens = Math.min(spec.burst, b.tokens + Math.max(0, now - b.at) * perMs);
    b.at = Math.max(b.at, now);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { ok: true, retryAfterSeconds: 0 };
    }
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - b.tokens) / perMs / 1000)) };
  };
  return {
    take,
    check(keys, spec) {
      let wait = 0;
      for (const k of keys) {
        const r = take(k, spec);
        if (!r.ok) wait = Math.max(wait, r.retryAfterSeconds);
      }
      if (wait > 0) throw new AppError('ERR_RATE_LIMITED', undefined, { retryAfterSeconds: wait });
    },
    get size() {
      return buckets.size;
    },
  };
}

/**
 * A Fastify onRequest hook limiting a route per source address (and per account when `account` finds
 * one), for routes registered outside the HttpRoute table (EST enrollment and the like).
 */
export function rateLimitHook(limiter: RateLimiter, name: string, spec: RateLimitSpec) {
  return async (req: FastifyRequest, _reply: FastifyReply) => {
    const account = spec.account?.({ body: req.body, params: (req.params ?? {}) as Record<string, string> });
    const keys = [`${name}|${req.ip}`];
    if (account !== undefined) keys.push(`${name}|${req.ip}|${account}`);
    limiter.check(keys, spec);
  };
}
