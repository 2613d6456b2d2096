// The telemetry fan-in scenario: N publishers (each its own certificate and client id, publishing on
// devices/<id>/telemetry) and one subscriber on devices/+/telemetry, all over mutual TLS.
import { performance } from 'node:perf_hooks';
import type { Generator } from './generator.ts';
import type { ClientSpec, Target } from './generator-protocol.ts';
import { evaluate, runLoad, sweep } from './load.ts';
import type { Contestant, LoadRun, StepResult, SweepOptions, SweepResult } from './load.ts';
import { sleep } from './proc.ts';
import type { BrokerKind, RunningBroker, SuiteContext } from './types.ts';

export const PAYLOAD_BYTES = 100;
/** QoS 1: unacknowledged publishes per publisher (the reference harness used 100). */
export const PUBLISHER_WINDOW = 100;
/** QoS 0: a publisher skips a message while this much is unsent in its socket (open loop, no queue). */
export const WRITE_CAP = 64 * 1024;
export const LATENCY_RATE = 10_000;

export interface FaninSetup {
  broker: RunningBroker;
  pubGen: Generator;
  subGen: Generator | undefined;
  connectSeconds: number;
  close(): Promise<void>;
}

export function publisherSpecs(ctx: SuiteContext): ClientSpec[] {
  return ctx.names.publishers.map((name) => {
    const c = ctx.certs.clients.get(name)!;
    return { clientId: name, cert: c.cert, key: c.key, topic: `devices/${name}/telemetry` };
  });
}

/** Connects publishers (and the subscriber, unless `subscriber` is false) to a running broker. */
export async function connectFanin(
  ctx: SuiteContext,
  broker: RunningBroker,
  target: Target,
  publishers: ClientSpec[],
  qos: 0 | 1,
  subscriber: boolean,
): Promise<FaninSetup> {
  const pubGen = await ctx.startGenerator('publishers');
  const subGen = subscriber ? await ctx.startGenerator('subscriber') : undefined;
  const t0 = performance.now();
  if (subGen) {
    const r = ctx.certs.clients.get(ctx.names.reader)!;
    await subGen.request(
      {
        type: 'connect',
        role: 'sub',
        target,
        clients: [{ clientId: ctx.names.reader, cert: r.cert, key: r.key }],
        concurrency: 1,
        keepAlive: 600,
        timeoutMs: 10_000,
      },
      20_000,
    );
    await subGen.request({ type: 'subscribe', filter: 'devices/+/telemetry', qos }, 10_000);
  }
  const c = await pubGen.request<{ connected: number; failed: number; firstError: string }>(
    {
      type: 'connect',
      role: 'pub',
      target,
      clients: publishers,
      concurrency: 20,
      keepAlive: 600,
      timeoutMs: 15_000,
    },
    60_000,
  );
  if (c.failed > 0) throw new Error(`${c.failed} publishers could not connect: ${c.firstError}`);
  return {
    broker,
    pubGen,
    subGen,
    connectSeconds: (performance.now() - t0) / 1000,
    async close() {
      await Promise.all([pubGen.stop(), subGen?.stop()]);
    },
  };
}

export interface FaninResult {
  broker: string;
  qos: 0 | 1;
  publishers: number;
  sweep: SweepResult;
  /** Broker CPU per message at the latency rate, µs. */
  cpuPerMessageUs: number | null;
  /** The broker's own counters at the end (Bulwark only). */
  brokerMetrics?: Record<string, number>;
}

/** Offered rates stepped through; one more step halfway narrows the answer after the first failure. */
export function rates(qos: 0 | 1, quick: boolean): number[] {
  if (quick) return qos === 0 ? [10_000, 40_000, 80_000, 120_000, 160_000] : [10_000, 20_000, 40_000, 60_000];
  // The first step also warms the brokers up (JIT) before the 10 000 msg/s latency step.
  return qos === 0
    ? [5000, 10_000, 25_000, 50_000, 75_000, 100_000, 125_000, 150_000, 175_000, 200_000]
    : [5000, 10_000, 20_000, 30_000, 40_000, 50_000, 65_000];
}

export function sweepOptions(ctx: SuiteContext): SweepOptions {
  return {
    rates: [],
    stepSeconds: ctx.quick ? 2 : 3,
    latencyRate: LATENCY_RATE,
    latencySeconds: ctx.quick ? 3 : 5,
    log: (m) => ctx.log(`  ${m}`),
    pause: sleep,
    retryFailures: !ctx.quick,
  };
}

/** A sweep contestant driving one connected fan-in setup; `measure` = what counts as done. */
export function contestant(
  key: string,
  label: string,
  setup: FaninSetup,
  qos: 0 | 1,
  measure: 'delivered' | 'acked',
  onRun?: (run: LoadRun) => void,
): Contestant {
  return {
    key,
    label,
    run: async (rate, seconds): Promise<StepResult> => {
      const run = await runLoad({
        pubGen: setup.pubGen,
        subGen: setup.subGen,
        brokerPid: setup.broker.pid,
        qos,
        payloadBytes: PAYLOAD_BYTES,
        window: PUBLISHER_WINDOW,
        writeCap: WRITE_CAP,
        steps: [{ rate, seconds }],
        drainMs: 3000,
      });
      onRun?.(run);
      return evaluate(rate, run.seconds, measure);
    },
  };
}

export function cpuPerMessage(s: StepResult | undefined): number | null {
  if (!s || !Number.isFinite(s.brokerCpu) || s.completed === 0) return null;
  return Math.round(((s.brokerCpu / 100) * 1e6) / s.completed);
}

export const shortName: Record<BrokerKind, string> = {
  bulwark: 'Bulwark',
  mosquitto: 'Mosquitto',
  'node-tls': 'node:tls',
};

/**
 * The fan-in measurement at one QoS: every broker started fresh and connected, then swept with the
 * brokers taking turns at each offered rate.
 */
export async function faninAll(ctx: SuiteContext, qos: 0 | 1): Promise<Record<string, FaninResult>> {
  const setups: FaninSetup[] = [];
  try {
    for (const kind of ctx.brokers) {
      const broker = await ctx.startBroker(kind);
      ctx.log(
        `${broker.label}: connecting ${ctx.names.publishers.length} publishers and 1 subscriber (QoS ${qos})`,
      );
      setups.push(await connectFanin(ctx, broker, broker.target, publisherSpecs(ctx), qos, true));
    }
    const sweeps = await sweep(
      { ...sweepOptions(ctx), rates: rates(qos, ctx.quick) },
      setups.map((s) => contestant(s.broker.kind, shortName[s.broker.kind], s, qos, 'delivered')),
    );
    const out: Record<string, FaninResult> = {};
    for (const s of setups) {
      const r = sweeps[s.broker.kind]!;
      ctx.log(`  → ${shortName[s.broker.kind]} QoS ${qos}: max held ${r.maxHeld}/s (${r.limit})`);
      const metrics = await s.broker.metrics?.();
      out[s.broker.kind] = {
        broker: s.broker.label,
        qos,
        publishers: ctx.names.publishers.length,
        sweep: r,
        cpuPerMessageUs: cpuPerMessage(r.latencyAtRate),
        ...(metrics ? { brokerMetrics: metrics } : {}),
      };
    }
    return out;
  } finally {
    for (const s of setups) {
      await s.close();
      await s.broker.stop();
    }
  }
}
