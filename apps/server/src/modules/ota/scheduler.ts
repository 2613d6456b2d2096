// The campaign scheduler's decisions, as pure functions of the campaign, its counters and the time:
// waves (canary first), concurrency, rate limit, maintenance windows, approvals, failure thresholds.
// campaigns.ts does the I/O (claims devices, publishes notices, records state) around these.
import { AppError } from '../../kernel/index.ts';
import type { CampaignState, WaveCounts } from './model.ts';

export const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export type Day = (typeof DAYS)[number];

/** `count` devices, or grow to `percent` of the eligible devices (cumulative) by the end of the wave. */
export interface WaveSpec {
  readonly count?: number;
  readonly percent?: number;
}

/** UTC time of day `HH:MM`-`HH:MM` (wrapping past midnight when from > to), optionally on some days. */
export interface MaintenanceWindow {
  readonly from: string;
  readonly to: string;
  readonly days?: readonly Day[];
}

export interface CampaignPlan {
  /** Canary first, then growing waves; devices left after the last one form a final wave. */
  readonly waves: readonly WaveSpec[];
  /** Devices updating at once (notified, not yet succeeded or failed). */
  readonly maxConcurrent: number;
  /** New notifications per minute. */
  readonly ratePerMinute: number;
  /** Empty: any time. Otherwise notifications go out only inside one of these windows. */
  readonly windows: readonly MaintenanceWindow[];
  /** `each-wave`: every wave after the canary waits for an operator's approval. */
  readonly approval: 'none' | 'each-wave';
  /** A wave whose failed devices exceed this share of the wave (percent) triggers `onFailure`. */
  readonly failureThresholdPercent: number;
  readonly onFailure: 'pause' | 'abort';
  /** On abort, failed devices are told to roll back. */
  readonly rollbackOnAbort: boolean;
  /** A notified device that has not succeeded or failed after this long counts as failed. */
  readonly deviceTimeoutSeconds: number;
  /** Devices running a newer version are targeted too (audited); otherwise the campaign is refused. */
  readonly allowDowngrade: boolean;
}

export const DEFAULT_PLAN: CampaignPlan = {
  waves: [{ count: 1 }, { percent: 10 }, { percent: 50 }, { percent: 100 }],
  maxConcurrent: 100,
  ratePerMinute: 600,
  windows: [],
  approval: 'none',
  failureThresholdPercent: 10,
  onFailure: 'abort',
  rollbackOnAbort: true,
  deviceTimeoutSeconds: 3600,
  allowDowngrade: false,
};

const LIMITS = { waves: 20, maxConcurrent: 1_000_000, ratePerMinute: 1_000_000, windows: 14 };
const HHMM = /^([01]\d|2[0-3]):[0-5]\d$/;

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Validates a plan (untrusted input) over the defaults; lists every problem at once. */
export function validatePlan(input: unknown): CampaignPlan {
  const problems: { path: string; message: string }[] = [];
  const bad = (path: string, message: string) => problems.push({ path: `plan.${path}`, message });
  if (input !== undefined && !isObject(input)) {
    throw new AppError('ERR_CAMPAIGN_INVALID', 'plan must be an object');
  }
  const v = (input ?? {}) as Record<string, unknown>;
  const known = Object.keys(DEFAULT_PLAN);
  for (const k of Object.keys(v)) if (!known.includes(k)) bad(k, 'unknown field');
  const int = (k: keyof CampaignPlan, min: number, max: number): number => {
    const x = v[k] ?? DEFAULT_PLAN[k];
    if (!Number.isInteger(x) || (x as number) < min || (x as number) > max) {
      bad(k, `must be an integer from ${min} to ${max}`);
      return min;
    }
    return x as number;
  };
  const waves: WaveSpec[] = [];
  const rawWaves = v.waves ?? DEFAULT_PLAN.waves;
  if (!Array.isArray(rawWaves) || rawWaves.length === 0 || rawWaves.length > LIMITS.waves) {
    bad('waves', `must be a list of 1 to ${LIMITS.waves} waves`);
  } else {
    let lastPercent = 0;
    rawWaves.forEach((w: unknown, i) => {
      const keys = isObject(w) ? Object.keys(w) : [];
      if (!isObject(w) || keys.length !== 1 || !['count', 'percent'].includes(keys[0] as string)) {
        bad(`waves[${i}]`, 'must be {count: N} or {percent: P}');
        return;
      }
      if (w.count !== undefined) {
        if (!Number.isInteger(w.count) || (w.count as number) < 1 || (w.count as number) > 10_000_000)
          bad(`waves[${i}].count`, 'must be an integer from 1');
        else waves.push({ count: w.count as number });
      } else {
        const p = w.percent;
        if (typeof p !== 'number' || !(p > 0) || p > 100) bad(`waves[${i}].percent`, 'must be in (0, 100]');
        else if (p < lastPercent) bad(`waves[${i}].percent`, 'waves grow: percentages are cumulative');
        else {
          lastPercent = p;
          waves.push({ percent: p });
        }
      }
    });
  }
  const windows: MaintenanceWindow[] = [];
  const rawWindows = v.windows ?? [];
  if (!Array.isArray(rawWindows) || rawWindows.length > LIMITS.windows) {
    bad('windows', `must be a list of at most ${LIMITS.windows} windows`);
  } else {
    rawWindows.forEach((w: unknown, i) => {
      if (!isObject(w) || typeof w.from !== 'string' || typeof w.to !== 'string') {
        bad(`windows[${i}]`, 'must be {from: "HH:MM", to: "HH:MM", days?: [...]}');
        return;
      }
      if (!HHMM.test(w.from)) bad(`windows[${i}].from`, 'must be HH:MM (UTC)');
      if (!HHMM.test(w.to)) bad(`windows[${i}].to`, 'must be HH:MM (UTC)');
      if (w.from === w.to) bad(`windows[${i}]`, 'is empty (from = to)');
      const days = w.days;
      if (
        days !== undefined &&
        (!Array.isArray(days) || days.length === 0 || days.some((d) => !DAYS.includes(d as Day)))
      ) {
        bad(`windows[${i}].days`, `must be a non-empty list of ${DAYS.join(', ')}`);
      }
      for (const k of Object.keys(w))
        if (!['from', 'to', 'days'].includes(k)) bad(`windows[${i}].${k}`, 'unknown field');
      windows.push({
        from: w.from,
        to: w.to,
        ...(Array.isArray(days) ? { days: days as Day[] } : {}),
      });
    });
  }
  const oneOf = <T extends string>(k: keyof CampaignPlan, values: readonly T[]): T => {
    const x = v[k] ?? DEFAULT_PLAN[k];
    if (!values.includes(x as T)) bad(k, `must be one of ${values.join(', ')}`);
    return x as T;
  };
  const bool = (k: keyof CampaignPlan): boolean => {
    const x = v[k] ?? DEFAULT_PLAN[k];
    if (typeof x !== 'boolean') bad(k, 'must be true or false');
    return x === true;
  };
  const threshold = v.failureThresholdPercent ?? DEFAULT_PLAN.failureThresholdPercent;
  if (typeof threshold !== 'number' || !(threshold >= 0) || threshold > 100)
    bad('failureThresholdPercent', 'must be a number from 0 to 100');
  const plan: CampaignPlan = {
    waves,
    maxConcurrent: int('maxConcurrent', 1, LIMITS.maxConcurrent),
    ratePerMinute: int('ratePerMinute', 1, LIMITS.ratePerMinute),
    windows,
    approval: oneOf('approval', ['none', 'each-wave'] as const),
    failureThresholdPercent: threshold as number,
    onFailure: oneOf('onFailure', ['pause', 'abort'] as const),
    rollbackOnAbort: bool('rollbackOnAbort'),
    deviceTimeoutSeconds: int('deviceTimeoutSeconds', 10, 30 * 86_400),
    allowDowngrade: bool('allowDowngrade'),
  };
  if (problems.length > 0) {
    throw new AppError('ERR_CAMPAIGN_INVALID', `${problems[0]?.path} ${problems[0]?.message}`, {
      errors: problems,
    });
  }
  return plan;
}

/** Sizes of the waves for `total` devices: empty waves dropped, the rest after the last wave added. */
export function waveSizes(total: number, waves: readonly WaveSpec[]): number[] {
  const sizes: number[] = [];
  let reached = 0;
  for (const w of waves) {
    if (reached >= total) break;
    const goal =
      w.count !== undefined ? reached + w.count : Math.ceil((total * (w.percent ?? 100)) / 100 - 1e-9);
    const size = Math.min(total, goal) - reached;
    if (size <= 0) continue;
    sizes.push(size);
    reached += size;
  }
  if (reached < total) sizes.push(total - reached);
  return sizes;
}

const minutesOf = (hhmm: string): number => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/** True when `now` (epoch ms) is inside one of the windows, or when there are none. */
export function inWindow(windows: readonly MaintenanceWindow[], now: number): boolean {
  if (windows.length === 0) return true;
  const d = new Date(now);
  const minute = d.getUTCHours() * 60 + d.getUTCMinutes();
  const today = DAYS[(d.getUTCDay() + 6) % 7] as Day;
  const yesterday = DAYS[(d.getUTCDay() + 5) % 7] as Day;
  return windows.some((w) => {
    const from = minutesOf(w.from);
    const to = minutesOf(w.to);
    if (from < to) return minute >= from && minute < to && (!w.days || w.days.includes(today));
    // Wraps past midnight: the part after midnight belongs to the window that opened the day before.
    if (minute >= from) return !w.days || w.days.includes(today);
    return minute < to && (!w.days || w.days.includes(yesterday));
  });
}

/** Failed devices a wave of `size` tolerates before the threshold action. */
export function tolerated(size: number, percent: number): number {
  return Math.floor((size * percent) / 100 + 1e-9);
}

export interface SchedulerInput {
  readonly state: CampaignState;
  readonly plan: CampaignPlan;
  readonly wave: number;
  readonly waveCount: number;
  readonly approvedWave: number;
  readonly failuresAcknowledged: number;
  /** The current wave's counters. */
  readonly counts: WaveCounts;
  /** Devices in progress across the campaign. */
  readonly inProgress: number;
  /** Notifications sent in the last 60 s. */
  readonly notifiedLastMinute: number;
  readonly now: number;
}

export type Step =
  | { readonly kind: 'idle'; readonly reason: string }
  | { readonly kind: 'notify'; readonly count: number }
  | {
      readonly kind: 'threshold';
      readonly action: 'pause' | 'abort';
      readonly failed: number;
      readonly size: number;
    }
  | { readonly kind: 'advance'; readonly to: number; readonly awaitApproval: boolean }
  | { readonly kind: 'complete' };

/** What the campaign should do next. Called again after every step until it answers `idle`. */
export function nextStep(c: SchedulerInput): Step {
  if (c.state !== 'running') return { kind: 'idle', reason: c.state };
  const { counts, plan } = c;
  // Threshold first: a failing wave stops notifying at once, not when it finishes.
  const failed = counts.failed - c.failuresAcknowledged;
  if (failed > 0 && failed > tolerated(counts.total, plan.failureThresholdPercent)) {
    return { kind: 'threshold', action: plan.onFailure, failed: counts.failed, size: counts.total };
  }
  if (counts.pending === 0 && counts.active === 0) {
    if (c.wave + 1 >= c.waveCount) return { kind: 'complete' };
    const to = c.wave + 1;
    return { kind: 'advance', to, awaitApproval: plan.approval === 'each-wave' && to > c.approvedWave };
  }
  if (counts.pending === 0) return { kind: 'idle', reason: 'wave in progress' };
  if (!inWindow(plan.windows, c.now)) return { kind: 'idle', reason: 'outside maintenance windows' };
  const budget = Math.min(
    counts.pending,
    plan.maxConcurrent - c.inProgress,
    plan.ratePerMinute - c.notifiedLastMinute,
  );
  if (budget <= 0) {
    return {
      kind: 'idle',
      reason: c.inProgress >= plan.maxConcurrent ? 'at maximum concurrency' : 'rate limited',
    };
  }
  return { kind: 'notify', count: budget };
}
