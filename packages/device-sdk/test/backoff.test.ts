import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay, renewalTime } from '../src/index.ts';

/** mulberry32: a small seeded generator, so the schedule is the same on every run. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('full jitter: every delay lies in [0, min(max, base * 2^attempt))', () => {
  const random = seeded(42);
  const opts = { baseMs: 100, maxMs: 5000 };
  for (let attempt = 0; attempt < 200; attempt++) {
    const d = backoffDelay(attempt, opts, random);
    const ceiling = Math.min(opts.maxMs, opts.baseMs * 2 ** attempt);
    assert.ok(d >= 0 && d < ceiling, `attempt ${attempt}: ${d} not in [0, ${ceiling})`);
    assert.ok(Number.isInteger(d));
  }
});

test('the schedule is deterministic for a seed and uses the whole window (no synchronized waves)', () => {
  const a = Array.from({ length: 10 }, (_, i) => backoffDelay(i, { baseMs: 100, maxMs: 5000 }, seeded(7)));
  const b = Array.from({ length: 10 }, (_, i) => backoffDelay(i, { baseMs: 100, maxMs: 5000 }, seeded(7)));
  assert.deepEqual(a, b);
  // 1000 devices at the capped attempt: their delays spread over the window, not in one burst.
  const random = seeded(1);
  const delays = Array.from({ length: 1000 }, () =>
    backoffDelay(30, { baseMs: 1000, maxMs: 60_000 }, random),
  );
  const buckets = new Array<number>(10).fill(0);
  for (const d of delays) buckets[Math.floor(d / 6000)]! += 1;
  for (const n of buckets) assert.ok(n > 50 && n < 150, `bucket of ${n} of 1000: not spread`);
});

test('extreme inputs stay bounded; bad options are refused', () => {
  assert.equal(
    backoffDelay(1e9, { baseMs: 10, maxMs: 100 }, () => 0.999999),
    99,
  );
  assert.equal(
    backoffDelay(-5, { baseMs: 10, maxMs: 100 }, () => 0.5),
    5,
  );
  assert.equal(
    backoffDelay(3, { baseMs: 10, maxMs: 100 }, () => Number.NaN),
    0,
  );
  assert.equal(
    backoffDelay(3, { baseMs: 10, maxMs: 100 }, () => 1),
    0,
    'random() out of [0, 1) treated as 0',
  );
  assert.throws(() => backoffDelay(0, { baseMs: 0 }), RangeError);
  assert.throws(() => backoffDelay(0, { baseMs: 100, maxMs: 10 }), RangeError);
});

test('renewal time: when a third of the lifetime is left, by default', () => {
  const nb = new Date('2026-01-01T00:00:00Z');
  const na = new Date('2026-01-31T00:00:00Z');
  assert.equal(renewalTime(nb, na), Date.parse('2026-01-21T00:00:00Z'));
  assert.equal(renewalTime(nb, na, 0.5), Date.parse('2026-01-16T00:00:00Z'));
});
