// Connection establishment: full and resumed mutual-TLS 1.3 handshakes (ECDSA P-256 certificates on
// both sides) followed by MQTT CONNECT/CONNACK, as fast as the broker accepts them. The figure is per
// broker core: connections completed per CPU-second the broker used, which does not depend on how
// fast the (Node) client side is or on what else runs on the machine; the wall-clock rate is kept too.
import { Histogram, ms } from '../lib/histogram.ts';
import type { HsTick } from '../lib/generator-protocol.ts';
import { SecondSampler } from '../lib/load.ts';
import { nowUs } from '../lib/mqtt-wire.ts';
import { sleep } from '../lib/proc.ts';
import type { RunningBroker, Suite, SuiteContext } from '../lib/types.ts';

const CONCURRENCY = 32;

export interface HandshakeResult {
  broker: string;
  mode: 'full' | 'resumed';
  seconds: number;
  completed: number;
  failed: number;
  /** Share of connections that really resumed a session (resumed mode). */
  resumedShare: number;
  wallPerSecond: number;
  brokerCpuPct: number;
  loadCpuPct: number;
  brokerMsPerConnection: number | null;
  perBrokerCore: number | null;
  connectP50ms: number | null;
  connectP99ms: number | null;
  /** Percent of the time the broker waited for its core (other work on the machine). */
  brokerWait: number;
  firstError?: string;
}

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

export async function measureHandshakes(
  ctx: SuiteContext,
  broker: RunningBroker,
  mode: 'full' | 'resumed',
): Promise<HandshakeResult> {
  const gen = await ctx.startGenerator(`handshakes-${broker.kind}`);
  try {
    const seconds = ctx.quick ? 3 : 4;
    const clients = ctx.names.fleet.map((name, i) => {
      const c = ctx.certs.clients.get(name)!;
      return { clientId: name, cert: c.cert, key: c.key, localAddress: `127.0.0.${10 + (i % 8)}` };
    });
    const startAtUs = nowUs() + 500_000;
    const ticks: HsTick[] = [];
    const off = gen.onTick((t) => {
      if (t.kind === 'hs') ticks.push(t);
    });
    const sampler = new SecondSampler({ broker: [broker.pid], load: [gen.pid] }, broker.pid, startAtUs);
    sampler.start(seconds);
    let r: { firstError?: string };
    try {
      r = await gen.request(
        {
          type: 'handshakes',
          target: broker.target,
          clients,
          mode,
          concurrency: CONCURRENCY,
          startAtUs,
          seconds,
        },
        (seconds + 60) * 1000,
      );
    } finally {
      off();
      sampler.stop();
    }
    // The first second is warm-up (resumed mode: getting the first tickets); the last tick may be partial.
    const measured = ticks.filter((t) => t.idx >= 1 && t.idx < seconds);
    const samples = sampler.samples.slice(1, seconds).filter(Boolean);
    const n = samples.length;
    const completed = measured.reduce((a, t) => a + t.completed, 0);
    const resumed = measured.reduce((a, t) => a + t.resumed, 0);
    const failed = ticks.reduce((a, t) => a + t.failed, 0);
    const brokerSec = samples.reduce((a, s) => a + (s.cpuSec.broker ?? 0), 0);
    const loadSec = samples.reduce((a, s) => a + (s.cpuSec.load ?? 0), 0);
    const hist = new Histogram();
    for (const t of measured) hist.merge(t.latency);
    const wait = samples.reduce((a, s) => a + (s.waitPct.broker ?? 0), 0) / Math.max(1, n);
    const res: HandshakeResult = {
      broker: broker.label,
      mode,
      seconds: n,
      completed,
      failed,
      resumedShare: completed ? round(resumed / completed, 3) : 0,
      wallPerSecond: n ? Math.round(completed / n) : 0,
      brokerCpuPct: n ? round((100 * brokerSec) / n) : NaN,
      loadCpuPct: n ? round((100 * loadSec) / n) : NaN,
      brokerMsPerConnection: completed ? round((1000 * brokerSec) / completed, 3) : null,
      perBrokerCore: brokerSec > 0 ? Math.round(completed / brokerSec) : null,
      connectP50ms: ms(hist.quantile(0.5)),
      connectP99ms: ms(hist.quantile(0.99)),
      brokerWait: round(wait),
      ...(r.firstError ? { firstError: r.firstError } : {}),
    };
    ctx.log(
      `  ${broker.kind.padEnd(10)} ${mode.padEnd(8)} ${res.wallPerSecond}/s wall, broker ${res.brokerCpuPct} % CPU ` +
        `= ${res.perBrokerCore ?? '-'}/s per broker core (${res.brokerMsPerConnection ?? '-'} ms each), ` +
        `load ${res.loadCpuPct} %, resumed ${Math.round(res.resumedShare * 100)} %, ` +
        `p50 ${res.connectP50ms ?? '-'} ms${failed ? `, ${failed} failed (${r.firstError ?? ''})` : ''}` +
        (res.brokerWait > 5 ? ` [broker waited for its core ${res.brokerWait} % of the time]` : ''),
    );
    return res;
  } finally {
    await gen.stop();
  }
}

const suite: Suite = {
  name: 'handshakes',
  description:
    'full and resumed mutual-TLS 1.3 handshakes (ECDSA P-256) + MQTT CONNECT per second per broker core',
  order: 20,
  async run(ctx) {
    const brokers: RunningBroker[] = [];
    for (const kind of ctx.brokers) brokers.push(await ctx.startBroker(kind));
    const out: Record<string, Record<string, HandshakeResult>> = { full: {}, resumed: {} };
    // Two rounds, the brokers taking turns, so that whatever else the machine does hits them alike;
    // the better round counts (noise only ever makes a broker slower).
    const rounds: Record<string, Record<string, HandshakeResult[]>> = { full: {}, resumed: {} };
    try {
      for (const mode of ['full', 'resumed'] as const) {
        for (let round = 0; round < (ctx.quick ? 1 : 2); round++) {
          for (const b of brokers) {
            (rounds[mode]![b.kind] ??= []).push(await measureHandshakes(ctx, b, mode));
            await sleep(300);
          }
        }
        for (const [kind, list] of Object.entries(rounds[mode]!)) {
          out[mode]![kind] = list.reduce((best, r) =>
            (r.perBrokerCore ?? 0) > (best.perBrokerCore ?? 0) ? r : best,
          );
        }
      }
    } finally {
      for (const b of brokers) await b.stop();
    }
    for (const mode of ['full', 'resumed'] as const) {
      const b = out[mode]!.bulwark;
      const m = out[mode]!.mosquitto;
      const notes: string[] = [];
      for (const r of [b, m]) {
        if (r && mode === 'resumed' && r.resumedShare < 0.95) {
          notes.push(
            `${r.broker.split(' ')[0]} resumed only ${Math.round(r.resumedShare * 100)} % of sessions`,
          );
        }
        if (r && r.failed > 0) notes.push(`${r.broker.split(' ')[0]}: ${r.failed} connections failed`);
      }
      ctx.figure({
        name: `${mode} mTLS handshakes + CONNECT per broker core`,
        unit: 'conn/s',
        bulwark: b?.perBrokerCore ?? null,
        mosquitto: m?.perBrokerCore ?? null,
        better: 'higher',
        ...(notes.length ? { note: notes.join('; ') } : {}),
      });
    }
    return { best: out, rounds };
  },
};

export default suite;
