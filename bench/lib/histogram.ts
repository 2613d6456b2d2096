// Latency histogram in microseconds: exact below 32 µs, then 32 sub-buckets per power of two (≤ 3 %
// relative error), up to ~35 minutes. Fixed size, mergeable, and small enough to send every second
// from a load process (only non-empty buckets travel).

const SUB_BITS = 5;
const SUB = 1 << SUB_BITS;
const MAX_EXP = 31;
const SIZE = SUB + (MAX_EXP - SUB_BITS + 1) * SUB;

/** Non-empty buckets as [index, count] pairs, and the largest value recorded. */
export interface SparseHistogram {
  b: [number, number][];
  max: number;
}

function indexOf(us: number): number {
  let v = us < 0 ? 0 : Math.floor(us);
  if (v >= 2 ** MAX_EXP) v = 2 ** MAX_EXP - 1;
  if (v < SUB) return v;
  const e = 31 - Math.clz32(v);
  return SUB + (e - SUB_BITS) * SUB + ((v >>> (e - SUB_BITS)) - SUB);
}

/** Middle of the bucket's range. */
function valueOf(index: number): number {
  if (index < SUB) return index;
  const e = Math.floor((index - SUB) / SUB) + SUB_BITS;
  const m = ((index - SUB) % SUB) + SUB;
  const lo = m * 2 ** (e - SUB_BITS);
  return lo + 2 ** (e - SUB_BITS) / 2;
}

export class Histogram {
  readonly counts = new Float64Array(SIZE);
  total = 0;
  max = 0;

  record(us: number): void {
    this.counts[indexOf(us)]!++;
    this.total++;
    if (us > this.max) this.max = us;
  }

  merge(other: Histogram | SparseHistogram): void {
    if (other instanceof Histogram) {
      for (let i = 0; i < SIZE; i++) this.counts[i]! += other.counts[i]!;
      this.total += other.total;
      if (other.max > this.max) this.max = other.max;
      return;
    }
    for (const [i, c] of other.b) {
      this.counts[i]! += c;
      this.total += c;
    }
    if (other.max > this.max) this.max = other.max;
  }

  /** Value (µs) at quantile q in [0, 1]; NaN when empty. */
  quantile(q: number): number {
    if (this.total === 0) return NaN;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let i = 0; i < SIZE; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(valueOf(i), this.max);
    }
    return this.max;
  }

  toSparse(): SparseHistogram {
    const b: [number, number][] = [];
    for (let i = 0; i < SIZE; i++) if (this.counts[i]! > 0) b.push([i, this.counts[i]!]);
    return { b, max: this.max };
  }

  reset(): void {
    this.counts.fill(0);
    this.total = 0;
    this.max = 0;
  }

  static fromSparse(s: SparseHistogram): Histogram {
    const h = new Histogram();
    h.merge(s);
    return h;
  }
}

/** Milliseconds with two decimals, or null when there is no data. */
export function ms(us: number): number | null {
  return Number.isFinite(us) ? Math.round(us / 10) / 100 : null;
}
