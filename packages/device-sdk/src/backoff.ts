// Reconnect schedule: exponential backoff with full jitter. A fleet that lost the platform at the same
// moment spreads its reconnects uniformly over the window instead of arriving in waves
// (see "Exponential Backoff And Jitter", AWS Architecture Blog, 2015: "Full Jitter").

export interface BackoffOptions {
  /** Upper bound of the first delay, in ms. Default 1000. */
  baseMs?: number;
  /** Cap of every delay, in ms. Default 60 000. */
  maxMs?: number;
}

export const DEFAULT_BACKOFF: Required<BackoffOptions> = { baseMs: 1000, maxMs: 60_000 };

/**
 * The delay before reconnect attempt `attempt` (0 for the first retry): uniform in
 * [0, min(maxMs, baseMs * 2^attempt)). `random` returns values in [0, 1), like Math.random.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const { baseMs, maxMs } = resolveBackoff(options);
  const n = Math.max(0, Math.floor(attempt));
  // 2^n overflows to Infinity for large n; min() keeps the ceiling finite.
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(n, 1024));
  const r = random();
  const unit = r >= 0 && r < 1 ? r : 0;
  return Math.floor(unit * ceiling);
}

export function resolveBackoff(options: BackoffOptions = {}): Required<BackoffOptions> {
  const baseMs = options.baseMs ?? DEFAULT_BACKOFF.baseMs;
  const maxMs = options.maxMs ?? DEFAULT_BACKOFF.maxMs;
  if (!Number.isFinite(baseMs) || baseMs <= 0)
    throw new RangeError('backoff.baseMs must be a positive number');
  if (!Number.isFinite(maxMs) || maxMs < baseMs)
    throw new RangeError('backoff.maxMs must be >= backoff.baseMs');
  return { baseMs, maxMs };
}
