// Memory per idle mutual-TLS connection: the broker's RSS holding 10 000 and then 19 000 idle,
// CONNACKed connections (keep-alive 600 s, no traffic), minus its RSS before the first one. 19 000 is
// what the per-process descriptor cap of this machine (20 000) leaves room for; the connections come
// from two load processes, each under its own cap.
import { performance } from 'node:perf_hooks';
import { CpuMeter, sleep } from '../lib/proc.ts';
import type { ClientSpec } from '../lib/generator-protocol.ts';
import type { Generator } from '../lib/generator.ts';
import type { BrokerKind, RunningBroker, Suite, SuiteContext } from '../lib/types.ts';

interface Level {
  connections: number;
  rssMB: number;
  kbPerConnection: number;
  /** Connections opened in this ramp, per second (wall), and the broker's CPU per connection. */
  rampPerSecond: number;
  brokerMsPerConnection: number | null;
  loadCpuPct: number;
  failed: number;
  /** Bulwark only: the Node process's own view (JS heap, memory outside it). */
  node?: { heapUsedMB: number; externalMB: number; arrayBuffersMB: number };
}

export interface MemoryResult {
  broker: string;
  baselineMB: number;
  baselineNode?: Level['node'];
  levels: Level[];
  afterCloseMB: number | null;
}

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

function nodeMemory(m: Record<string, number> | undefined): Level['node'] {
  if (m?.heapUsedMB === undefined) return undefined;
  return {
    heapUsedMB: round(m.heapUsedMB),
    externalMB: round(m.externalMB ?? NaN),
    arrayBuffersMB: round(m.arrayBuffersMB ?? NaN),
  };
}

async function settledRss(b: RunningBroker): Promise<number> {
  // The lowest of a few samples: a connection's last writes and GC can leave RSS briefly higher.
  const xs: number[] = [];
  for (let i = 0; i < 5; i++) {
    await sleep(400);
    xs.push(b.rssKB());
  }
  return Math.min(...xs) / 1024;
}

async function ramp(
  ctx: SuiteContext,
  b: RunningBroker,
  gens: Generator[],
  from: number,
  to: number,
): Promise<{ seconds: number; failed: number; brokerSec: number; loadPct: number; firstError: string }> {
  const fleet = ctx.names.fleet;
  const per = gens.map(() => [] as ClientSpec[]);
  for (let i = from; i < to; i++) {
    const name = fleet[i % fleet.length]!;
    const c = ctx.certs.clients.get(name)!;
    per[i % gens.length]!.push({
      clientId: `${name}.idle${i}`,
      cert: c.cert,
      key: c.key,
      // Several source addresses: more ephemeral ports than one address offers.
      localAddress: `127.0.0.${2 + (i % 8)}`,
    });
  }
  const meter = new CpuMeter({ broker: [b.pid], load: gens.map((g) => g.pid) });
  const t0 = performance.now();
  const results = await Promise.all(
    gens.map((g, k) =>
      g.request<{ connected: number; failed: number; firstError: string }>(
        {
          type: 'connect',
          role: 'idle',
          target: b.target,
          clients: per[k]!,
          concurrency: 64,
          keepAlive: 600,
          timeoutMs: 30_000,
        },
        240_000,
      ),
    ),
  );
  const lap = meter.lap();
  return {
    seconds: (performance.now() - t0) / 1000,
    failed: results.reduce((a, r) => a + r.failed, 0),
    brokerSec: lap.cpuSec.broker ?? NaN,
    loadPct: lap.pct.load ?? NaN,
    firstError: results.find((r) => r.firstError)?.firstError ?? '',
  };
}

export async function measureMemory(
  ctx: SuiteContext,
  kind: BrokerKind,
  levels: number[],
): Promise<MemoryResult> {
  const b = await ctx.startBroker(kind);
  const gens = [await ctx.startGenerator('idle-a'), await ctx.startGenerator('idle-b')];
  try {
    await sleep(1000);
    const baselineMB = await settledRss(b);
    const baselineNode = nodeMemory(await b.metrics?.());
    ctx.log(`  ${kind}: baseline RSS ${round(baselineMB)} MB`);
    const out: Level[] = [];
    let have = 0;
    let next = 0;
    for (const target of levels) {
      const r = await ramp(ctx, b, gens, next, target);
      const opened = target - next - r.failed;
      next = target;
      have += opened;
      const rssMB = await settledRss(b);
      const level: Level = {
        connections: have,
        rssMB: round(rssMB),
        kbPerConnection: round(((rssMB - baselineMB) * 1024) / Math.max(1, have)),
        rampPerSecond: Math.round(opened / r.seconds),
        brokerMsPerConnection: opened > 0 ? round((1000 * r.brokerSec) / opened, 2) : null,
        loadCpuPct: round(r.loadPct),
        failed: r.failed,
      };
      const node = nodeMemory(await b.metrics?.());
      if (node) level.node = node;
      out.push(level);
      ctx.log(
        `  ${kind}: ${have} idle connections, RSS ${level.rssMB} MB → ${level.kbPerConnection} KB each ` +
          `(opened at ${level.rampPerSecond}/s, ${level.brokerMsPerConnection ?? '-'} ms broker CPU each` +
          `${r.failed ? `, ${r.failed} failed: ${r.firstError}` : ''})`,
      );
      if (r.failed > 0.05 * (opened + r.failed)) break;
    }
    await Promise.all(gens.map((g) => g.request({ type: 'close' }, 30_000)));
    await sleep(2000);
    const afterCloseMB = round(b.rssKB() / 1024);
    return {
      broker: b.label,
      baselineMB: round(baselineMB),
      ...(baselineNode ? { baselineNode } : {}),
      levels: out,
      afterCloseMB,
    };
  } finally {
    await Promise.all(gens.map((g) => g.stop()));
    await b.stop();
  }
}

const suite: Suite = {
  name: 'memory',
  description: 'RSS per idle mutual-TLS connection at 10 000 and 19 000 connections (baseline subtracted)',
  order: 30,
  async run(ctx) {
    const levels = ctx.quick ? [1000, 2000] : [10_000, 19_000];
    const out: Record<string, MemoryResult> = {};
    for (const kind of ctx.brokers) out[kind] = await measureMemory(ctx, kind, levels);
    for (let i = 0; i < levels.length; i++) {
      const b = out.bulwark?.levels[i];
      const m = out.mosquitto?.levels[i];
      ctx.figure({
        name: `memory per idle mTLS connection @ ${levels[i]! / 1000}k`,
        unit: 'KB',
        bulwark: b?.kbPerConnection ?? null,
        mosquitto: m?.kbPerConnection ?? null,
        better: 'lower',
        ...(b && b.connections < levels[i]! * 0.99
          ? { note: `Bulwark held only ${b.connections} connections` }
          : m && m.connections < levels[i]! * 0.99
            ? { note: `Mosquitto held only ${m.connections} connections` }
            : {}),
      });
    }
    return out;
  },
};

export default suite;
