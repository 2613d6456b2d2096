// Past saturation: 100 publishers → 1 subscriber at QoS 0, offered far above what a broker core can
// route (open loop: a publisher skips a message while 64 KiB are unsent in its socket), for a while.
// A broker that degrades well keeps delivering at about its capacity and sheds the excess, with its
// memory flat; one that does not sees delivery collapse or RSS climb.
import { connectFanin, PAYLOAD_BYTES, publisherSpecs, shortName, WRITE_CAP } from '../lib/fanin.ts';
import { runLoad } from '../lib/load.ts';
import { sleep } from '../lib/proc.ts';
import type { BrokerKind, Suite, SuiteContext } from '../lib/types.ts';

const OFFERED = 300_000;

interface OverloadResult {
  broker: string;
  offered: number;
  seconds: number;
  /** Per second: messages the publishers managed to write, messages delivered, broker CPU and RSS. */
  written: number[];
  delivered: number[];
  brokerCpu: number[];
  rssMB: number[];
  loadCpu: number[];
  /** Mean delivered per second after the first second, and over the first and second half of that. */
  deliveredMean: number;
  firstHalf: number;
  secondHalf: number;
  rssStartMB: number;
  /** RSS growth from the end of the second second to the end: after the initial jump, does it level off? */
  rssGrowthAfterRampMB: number;
  rssMaxMB: number;
  rssEndMB: number;
  rssAfterDrainMB: number;
  flat: boolean;
  verdict: string;
  brokerMetrics?: Record<string, number>;
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
const r1 = (x: number) => Math.round(x * 10) / 10;

async function measure(ctx: SuiteContext, kind: BrokerKind): Promise<OverloadResult> {
  const broker = await ctx.startBroker(kind);
  try {
    const setup = await connectFanin(ctx, broker, broker.target, publisherSpecs(ctx), 0, true);
    try {
      const seconds = ctx.quick ? 4 : 7;
      const run = await runLoad({
        pubGen: setup.pubGen,
        subGen: setup.subGen,
        brokerPid: broker.pid,
        qos: 0,
        payloadBytes: PAYLOAD_BYTES,
        window: 100,
        writeCap: WRITE_CAP,
        steps: [{ rate: OFFERED, seconds }],
        drainMs: 3000,
      });
      await sleep(2000);
      const s = run.seconds;
      const after = s.slice(1);
      const half = Math.floor(after.length / 2);
      const delivered = s.map((x) => x.delivered);
      const rss = s.map((x) => r1(x.brokerRssMB));
      const firstHalf = mean(after.slice(0, half).map((x) => x.delivered));
      const secondHalf = mean(after.slice(half).map((x) => x.delivered));
      const rssStart = rss[0] ?? NaN;
      const rssEnd = rss.at(-1) ?? NaN;
      const growth = rssEnd - rssStart;
      const lateGrowth = rssEnd - (rss[1] ?? rssStart);
      const stableRate = secondHalf >= 0.8 * firstHalf;
      const stableRss = growth <= Math.max(20, 0.2 * rssStart);
      const metrics = await broker.metrics?.();
      const res: OverloadResult = {
        broker: broker.label,
        offered: OFFERED,
        seconds,
        written: s.map((x) => x.sent),
        delivered,
        brokerCpu: s.map((x) => r1(x.brokerCpu)),
        rssMB: rss,
        loadCpu: s.map((x) => r1(x.loadCpu)),
        deliveredMean: Math.round(mean(after.map((x) => x.delivered))),
        firstHalf: Math.round(firstHalf),
        secondHalf: Math.round(secondHalf),
        rssStartMB: rssStart,
        rssGrowthAfterRampMB: r1(lateGrowth),
        rssMaxMB: Math.max(...rss),
        rssEndMB: rssEnd,
        rssAfterDrainMB: r1(broker.rssKB() / 1024),
        flat: stableRate && stableRss,
        verdict:
          `${stableRate ? 'delivery steady' : 'delivery fell'} (${Math.round(firstHalf)} → ${Math.round(secondHalf)}/s), ` +
          `${stableRss ? 'RSS flat' : 'RSS grew'} (${rssStart} → ${rssEnd} MB` +
          `${stableRss ? '' : `, ${r1(lateGrowth)} MB of it after the first 2 s`})`,
        ...(metrics ? { brokerMetrics: metrics } : {}),
      };
      ctx.log(
        `  ${shortName[kind].padEnd(10)} written ${Math.round(mean(after.map((x) => x.sent)))}/s, delivered ` +
          `${res.deliveredMean}/s, broker CPU ${r1(mean(after.map((x) => x.brokerCpu)))} %, load CPU ` +
          `${r1(mean(after.map((x) => x.loadCpu)))} %: ${res.verdict}`,
      );
      return res;
    } finally {
      await setup.close();
    }
  } finally {
    await broker.stop();
  }
}

const suite: Suite = {
  name: 'overload',
  description: 'open-loop overload past saturation (QoS 0 fan-in): delivered rate and broker RSS over time',
  order: 50,
  async run(ctx) {
    const out: Record<string, OverloadResult> = {};
    for (const kind of ctx.brokers) out[kind] = await measure(ctx, kind);
    const b = out.bulwark;
    const m = out.mosquitto;
    ctx.figure({
      name: 'overload: delivered rate (sustained)',
      unit: 'msg/s',
      bulwark: b?.deliveredMean ?? null,
      mosquitto: m?.deliveredMean ?? null,
      better: 'higher',
      note: [b, m]
        .filter((r) => r !== undefined)
        .map((r) => `${r.broker.split(' ')[0]}: ${r.verdict}`)
        .join('; '),
    });
    ctx.figure({
      name: 'overload: broker RSS growth',
      unit: 'MB',
      bulwark: b ? r1(b.rssEndMB - b.rssStartMB) : null,
      mosquitto: m ? r1(m.rssEndMB - m.rssStartMB) : null,
      better: 'lower',
      resolution: 5,
    });
    return out;
  },
};

export default suite;
