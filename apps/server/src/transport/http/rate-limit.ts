// Rate limits for routes registered outside the HttpRoute table (the table's own routes are limited by
// app.ts from their `rateLimit`). The buckets live behind the RateLimiter port (kernel/rate-limit.ts):
// the platform passes the SQL limiter, so every node shares them.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { checkRateLimits, type RateLimiter, type RateLimitSpec } from '../../kernel/index.ts';

/**
 * A Fastify onRequest hook limiting a route per source address (and per account when `account` finds
 * one), for routes registered outside the HttpRoute table (EST enrollment and the like).
 */
export function rateLimitHook(limiter: RateLimiter, name: string, spec: RateLimitSpec) {
  return async (req: FastifyRequest, _reply: FastifyReply) => {
    const account = spec.account?.({ body: req.body, params: (req.params ?? {}) as Record<string, string> });
    const keys = [`${name}|${req.ip}`];
    if (account !== undefined) keys.push(`${name}|${req.ip}|${account}`);
    await checkRateLimits(limiter, keys, spec);
  };
}
