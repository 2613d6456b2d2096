// One open-loop load run (publishers in one load process, the subscriber in another, both on the load
// core), sampled once per second with the broker's CPU and RSS; and the step sweep that finds the
// highest offered rate a broker holds.
import type { Generator } from './generator.ts';
import type { LoadStep, PubTick, SubTick } from './generator-protocol.ts';
import { Histogram, ms } from './histogram.ts';
import { nowUs } from './mqtt-wire.ts';
import { CpuMeter, memory } from './proc.ts';

export interface Second {
  idx: number;
  offered: number;
  sent: number;
  blocked: number;
  acked: number;
  delivered: number;
  /** publish → deliver (subscriber) */
  latency: Histogram;
  /** publish → PUBACK (publisher) */
  ackLatency: Histogram;
  brokerCpu: number;
  loadCpu: number;
  /** Percent of the second the broker's main thread was runnable but not running (others had its core). */
  brokerWait: number;
  /** Busy percent of each core, whoever used it (other work on the machine shows here). */
  corePct: number[];
  brokerRssMB: number;
  closes: number;
}

export interface LoadSpec {
  pubGen: Generator;
  subGen?: Generator | undefined;
  brokerPid: number;
  qos: 0 | 1;
  payloadBytes: number;
  /** QoS 1 in-flight window per publisher. */
  window: number;
  /** QoS 0: per-socket buffered bytes past which the publisher skips (open loop, no queue at the source). */
  writeCap: number;
  steps: LoadStep[];
  drainMs: number;
}

export interface LoadRun {
  seconds: Second[];
  pub: Record<string, unknown>;
  sub: Record<string, unknown> | undefined;
}

export interface CpuSample {
  /** CPU percent per process group (100 = one core). */
  pct: Record<string, number>;
  cpuSec: Record<string, number>;
  /** Percent of the second the group's main threads waited for a CPU while runnable. */
  waitPct: Record<string, number>;
  corePct: number[];
  rssMB: number;
}

/**
 * Samples CPU (per process group and per core) and the broker's RSS at the one-second boundaries
 * after `startAtUs`, the same boundaries the load processes count in: `samples[i]` covers second i.
 */
export class SecondSampler {
  readonly samples: CpuSample[] = [];
  readonly #meter: CpuMeter;
  readonly #rssPid: number;
  readonly #startAtUs: number;
  #timer: NodeJS.Timeout | undefined = undefined;
  #k = 0;

  constructor(groups: Record<string, number[]>, rssPid: number, startAtUs: number) {
    this.#meter = new CpuMeter(groups);
    this.#rssPid = rssPid;
    this.#startAtUs = startAtUs;
  }

  start(seconds: number): void {
    const arm = (): void => {
      const next = this.#startAtUs + this.#k * 1e6;
      this.#timer = setTimeout(
        () => {
          const lap = this.#meter.lap();
          if (this.#k > 0) {
            this.samples[this.#k - 1] = {
              pct: lap.pct,
              cpuSec: lap.cpuSec,
              waitPct: lap.waitPct,
              corePct: lap.corePct,
              rssMB: memory(this.#rssPid).rssKB / 1024,
            };
          }
          this.#k++;
          if (this.#k <= seconds) arm();
        },
        Math.max(0, (next - nowUs()) / 1000),
      );
    };
    arm();
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
  }
}

export async function runLoad(spec: LoadSpec): Promise<LoadRun> {
  const total = spec.steps.reduce((a, s) => a + s.seconds, 0);
  const startAtUs = nowUs() + 300_000;
  const endAtUs = startAtUs + total * 1e6;
  const pubTicks = new Map<number, PubTick>();
  const subTicks = new Map<number, SubTick>();
  const offPub = spec.pubGen.onTick((t) => {
    if (t.kind === 'pub') pubTicks.set(t.idx, t);
  });
  const offSub = spec.subGen?.onTick((t) => {
    if (t.kind === 'sub') subTicks.set(t.idx, t);
  });
  const loadPids = [spec.pubGen.pid, ...(spec.subGen ? [spec.subGen.pid] : [])];
  const sampler = new SecondSampler({ broker: [spec.brokerPid], load: loadPids }, spec.brokerPid, startAtUs);
  sampler.start(total + Math.ceil(spec.drainMs / 1000));
  try {
    const timeout = (total + 30) * 1000 + spec.drainMs;
    const [pub, sub] = await Promise.all([
      spec.pubGen.request(
        {
          type: 'publish',
          qos: spec.qos,
          payloadBytes: spec.payloadBytes,
          window: spec.window,
          writeCap: spec.writeCap,
          startAtUs,
          steps: spec.steps,
          drainMs: spec.drainMs,
        },
        timeout,
      ),
      spec.subGen?.request({ type: 'count', startAtUs, endAtUs, drainMs: spec.drainMs }, timeout),
    ]);
    const seconds: Second[] = [];
    for (let i = 0; i < total; i++) {
      const p = pubTicks.get(i);
      const s = subTicks.get(i);
      const c = sampler.samples[i];
      seconds.push({
        idx: i,
        offered: p?.offered ?? 0,
        sent: p?.sent ?? 0,
        blocked: p?.blocked ?? 0,
        acked: p?.acked ?? 0,
        delivered: s?.delivered ?? 0,
        latency: s ? Histogram.fromSparse(s.latency) : new Histogram(),
        ackLatency: p ? Histogram.fromSparse(p.ackLatency) : new Histogram(),
        brokerCpu: c?.pct.broker ?? NaN,
        loadCpu: c?.pct.load ?? NaN,
        brokerWait: c?.waitPct.broker ?? NaN,
        corePct: c?.corePct ?? [],
        brokerRssMB: c?.rssMB ?? NaN,
        closes: (p?.closes ?? 0) + (s?.closes ?? 0),
      });
    }
    return { seconds, pub, sub };
  } finally {
    sampler.stop();
    offPub();
    offSub?.();
  }
}

export interface StepResult {
  rate: number;
  seconds: number;
  /** Per second, over the measured seconds (the first second of a step is warm-up). */
  offered: number;
  sent: number;
  /** Deliveries (subscriber) or acknowledgements (publishers, platform path): what "held" is judged on. */
  completed: number;
  delivered: number;
  acked: number;
  p50ms: number | null;
  p99ms: number | null;
  maxMs: number | null;
  /** p50 of each measured second, to see a latency that keeps growing. */
  p50PerSecond: (number | null)[];
  brokerCpu: number;
  loadCpu: number;
  core0: number;
  core1: number;
  brokerRssMB: number;
  /**
   * Percent of the time the broker's main thread was ready to run but another task had its core
   * (schedstat run_delay): other work on a shared machine, or the broker's own helper threads.
   */
  brokerWait: number;
  held: boolean;
  why: string;
}

/** CPU percent from which a core counts as saturated (sampling is per second, at 1 % resolution). */
export const SATURATED = 88;

/** A step whose p50 is above this has a standing queue: not held. */
export const P50_LIMIT_MS = 20;

/** Broker wait (percent) above which a failed step, or the latency step, is run again rather than believed. */
export const WAIT_LIMIT = 5;

const avg = (xs: number[]): number => {
  const v = xs.filter((x) => Number.isFinite(x));
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
};
const r1 = (x: number): number => Math.round(x * 10) / 10;

/**
 * Judges one step. Held = the publishers wrote ≥ 98 % of the offered rate, ≥ 98 % of it was delivered
 * (or acknowledged), and there was no backlog: the p50 of the last measured second is at most twice
 * that of the first plus 2 ms (a growing queue), and the step's p50 is at most 20 ms (a standing one).
 */
export function evaluate(
  rate: number,
  secs: Second[],
  measure: 'delivered' | 'acked',
  warmup = 1,
): StepResult {
  const m = secs.slice(Math.min(warmup, Math.max(0, secs.length - 1)));
  const n = m.length;
  const sum = (f: (s: Second) => number) => m.reduce((a, s) => a + f(s), 0) / n;
  const hist = new Histogram();
  for (const s of m) hist.merge(measure === 'delivered' ? s.latency : s.ackLatency);
  const p50s = m.map((s) => ms((measure === 'delivered' ? s.latency : s.ackLatency).quantile(0.5)));
  const offered = sum((s) => s.offered);
  const sent = sum((s) => s.sent);
  const delivered = sum((s) => s.delivered);
  const acked = sum((s) => s.acked);
  const completed = measure === 'delivered' ? delivered : acked;
  const first = p50s[0] ?? null;
  const last = p50s[p50s.length - 1] ?? null;
  const reasons: string[] = [];
  if (sent < 0.98 * offered)
    reasons.push(`publishers wrote ${Math.round((100 * sent) / offered)} % of offered`);
  if (completed < 0.98 * offered) {
    reasons.push(`${measure} ${Math.round((100 * completed) / offered)} % of offered`);
  }
  if (first !== null && last !== null && last > 2 * first + 2)
    reasons.push(`p50 climbing ${first} → ${last} ms`);
  const p50 = ms(hist.quantile(0.5));
  if (p50 !== null && p50 > P50_LIMIT_MS) reasons.push(`p50 ${p50} ms`);
  if (m.some((s) => s.closes > 0)) reasons.push('connections closed');
  const brokerCpu = avg(m.map((s) => s.brokerCpu));
  const loadCpu = avg(m.map((s) => s.loadCpu));
  const core0 = avg(m.map((s) => s.corePct[0] ?? NaN));
  const core1 = avg(m.map((s) => s.corePct[1] ?? NaN));
  const brokerWait = avg(m.map((s) => s.brokerWait));
  return {
    rate,
    seconds: secs.length,
    offered: Math.round(offered),
    sent: Math.round(sent),
    completed: Math.round(completed),
    delivered: Math.round(delivered),
    acked: Math.round(acked),
    p50ms: p50,
    p99ms: ms(hist.quantile(0.99)),
    maxMs: ms(hist.max),
    p50PerSecond: p50s,
    brokerCpu: r1(brokerCpu),
    loadCpu: r1(loadCpu),
    core0: r1(core0),
    core1: r1(core1),
    brokerRssMB: r1(avg(m.map((s) => s.brokerRssMB))),
    brokerWait: r1(brokerWait),
    held: reasons.length === 0,
    why: reasons.join('; '),
  };
}

export interface SweepResult {
  /** Highest offered rate held; 0 when not even the lowest step was held. */
  maxHeld: number;
  /** Why the next step failed, with who was the bottleneck. */
  limit: string;
  /**
   * maxHeld is only a lower bound: the load core saturated at the failed step, or every step of the
   * ladder was held.
   */
  loadBound: boolean;
  latencyAtRate: StepResult | undefined;
  /** Steps re-run because other work took one of our cores. */
  rerunsForNoise: number;
  steps: StepResult[];
}

/** One of the systems compared in a sweep. */
export interface Contestant {
  key: string;
  label: string;
  run(rate: number, seconds: number): Promise<StepResult>;
}

export interface SweepOptions {
  rates: readonly number[];
  stepSeconds: number;
  /** The step at this rate runs `latencySeconds` long: its latency is the reported one. */
  latencyRate: number;
  latencySeconds: number;
  /** Lets a backlog drain before a step is repeated. */
  pause(ms: number): Promise<void>;
  log(message: string): void;
  /** Re-runs allowed per contestant for steps disturbed by other work on the machine. */
  maxDisturbed?: number;
  /** Run an unexplained failed step once more before believing it (default true). */
  retryFailures?: boolean;
}

function stepLine(label: string, s: StepResult): string {
  return (
    `${label.padEnd(10)} ${String(s.rate).padStart(7)}/s → ${String(s.completed).padStart(7)}/s ` +
    `p50 ${s.p50ms ?? '-'} ms p99 ${s.p99ms ?? '-'} ms, broker CPU ${s.brokerCpu} %, load CPU ${s.loadCpu} %` +
    (s.held ? '' : `  ✗ ${s.why}`) +
    (s.brokerWait > WAIT_LIMIT ? ` [broker waited for its core ${s.brokerWait} % of the time]` : '')
  );
}

interface State {
  c: Contestant;
  steps: StepResult[];
  maxHeld: number;
  failed: StepResult | undefined;
  latency: StepResult | undefined;
  disturbedLeft: number;
  reruns: number;
}

/**
 * Steps the offered rate up, the contestants taking turns at each rate (so that whatever else the
 * machine is doing hits them alike), until each has a step it does not hold. The machine is shared:
 * a step during which other work took the broker's core is run again after a pause when it failed or
 * is the latency step (at most `maxDisturbed` times per contestant), and a failure that neither
 * saturated core explains is run once more before it counts. Then one step halfway between the last
 * held and the failed rate narrows each answer.
 */
export async function sweep(
  o: SweepOptions,
  contestants: Contestant[],
): Promise<Record<string, SweepResult>> {
  const states: State[] = contestants.map((c) => ({
    c,
    steps: [],
    maxHeld: 0,
    failed: undefined,
    latency: undefined,
    disturbedLeft: o.maxDisturbed ?? 2,
    reruns: 0,
  }));
  const once = async (st: State, rate: number): Promise<StepResult> => {
    const secs = rate === o.latencyRate ? o.latencySeconds : o.stepSeconds;
    const s = await st.c.run(rate, secs);
    st.steps.push(s);
    o.log(stepLine(st.c.label, s));
    if (rate === o.latencyRate && (s.held || st.latency === undefined)) st.latency = s;
    return s;
  };
  const step = async (st: State, rate: number, retry: boolean): Promise<StepResult> => {
    let s = await once(st, rate);
    let retried = !retry || o.retryFailures === false;
    for (;;) {
      const noisy = s.brokerWait > WAIT_LIMIT && (!s.held || rate === o.latencyRate);
      // A failure with neither core saturated has no explanation in this run: look again once.
      const unexplained = !s.held && s.brokerCpu < SATURATED && s.loadCpu < SATURATED;
      if (noisy && st.disturbedLeft > 0) {
        st.disturbedLeft--;
        st.reruns++;
        o.log(
          `  ${st.c.label}: the broker waited for its core ${s.brokerWait} % of the time, running the step again`,
        );
      } else if (unexplained && !retried) retried = true;
      else return s;
      await o.pause(noisy ? 3000 : 1500);
      s = await once(st, rate);
    }
  };
  for (const rate of o.rates) {
    const active = states.filter((st) => st.failed === undefined);
    if (active.length === 0) break;
    for (const st of active) {
      const s = await step(st, rate, true);
      if (s.held) st.maxHeld = rate;
      else {
        st.failed = s;
        await o.pause(1500);
      }
    }
  }
  for (const st of states) {
    if (st.failed === undefined) continue;
    const lo = st.maxHeld;
    const hi = st.failed.rate;
    const mid = Math.round((lo === 0 ? hi / 2 : (lo + hi) / 2) / 500) * 500;
    if (mid > lo && mid < hi && mid >= 500) {
      const s = await step(st, mid, false);
      if (s.held) st.maxHeld = mid;
      else st.failed = s;
      await o.pause(1500);
    }
  }
  const out: Record<string, SweepResult> = {};
  for (const st of states) {
    const f = st.failed;
    let limit = 'every step held: the ladder ends there';
    if (f !== undefined) {
      const broker = f.brokerCpu >= SATURATED;
      const load = f.loadCpu >= SATURATED;
      const who =
        broker && load
          ? `both cores saturated (broker ${f.brokerCpu} %, load ${f.loadCpu} %)`
          : broker
            ? `broker core saturated (${f.brokerCpu} %)`
            : load
              ? `load core saturated (${f.loadCpu} %): the broker figure is a lower bound`
              : `neither core saturated (broker ${f.brokerCpu} %, load ${f.loadCpu} %)`;
      limit = `at ${f.rate}/s: ${f.why}; ${who}`;
    }
    out[st.c.key] = {
      maxHeld: st.maxHeld,
      limit,
      loadBound: f === undefined || f.loadCpu >= SATURATED,
      latencyAtRate: st.latency,
      rerunsForNoise: st.reruns,
      steps: st.steps,
    };
  }
  return out;
}
