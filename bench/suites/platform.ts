// The full platform path against Mosquitto's plain delivery: 100 devices, each with its own
// certificate issued by the platform through its REST API, publish 100-byte JSON telemetry at QoS 1 to
// devices/<id>/telemetry. The platform checks each message against the device's compiled policy,
// validates the JSON, group-commits it to SQLite and only then sends the PUBACK, so "done" is the
// PUBACK. Mosquitto runs the same publishers (QoS 1, same ACL as the fan-in suite) with one
// subscriber, and "done" is the delivery. The two take turns at each offered rate.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  connectFanin,
  contestant,
  cpuPerMessage,
  LATENCY_RATE,
  publisherSpecs,
  shortName,
  sweepOptions,
} from '../lib/fanin.ts';
import type { FaninSetup } from '../lib/fanin.ts';
import { sweep } from '../lib/load.ts';
import type { Contestant, SweepResult } from '../lib/load.ts';
import { countTelemetry, enrollDevices, startPlatform } from '../lib/platform.ts';
import type { RunningPlatform } from '../lib/platform.ts';
import type { RunningBroker, Suite } from '../lib/types.ts';

const RATES = [5000, 10_000, 20_000, 30_000, 40_000, 50_000, 65_000];
const QUICK_RATES = [5000, 10_000, 20_000, 40_000, 60_000];

const suite: Suite = {
  name: 'platform',
  description:
    'full platform path (policy, JSON check, SQLite group commit, PUBACK after commit), QoS 1 fan-in vs Mosquitto delivery',
  order: 40,
  async run(ctx) {
    let platform: RunningPlatform | undefined;
    const setups: FaninSetup[] = [];
    try {
      const dataDir = join(ctx.tmpDir, 'platform-data');
      ctx.log('starting the platform (apps/server/src/main.ts) with a fresh data directory…');
      platform = await startPlatform(dataDir, ctx.brokerCpu);
      const devDir = join(ctx.tmpDir, 'platform-devices');
      mkdirSync(devDir, { recursive: true });
      const ids = ctx.names.publishers.map((_, i) => `bench-dev-${String(i).padStart(3, '0')}`);
      ctx.log(
        `enrolling ${ids.length} devices through the API (CSR made here, certificate from the platform CA)…`,
      );
      const devices = await enrollDevices(platform, ids, devDir);
      const platformBroker: RunningBroker = {
        kind: 'bulwark',
        label: platform.label,
        pid: platform.pid,
        target: platform.target,
        rssKB: () => platform!.rssKB(),
        stop: async () => {},
      };
      setups.push(await connectFanin(ctx, platformBroker, platform.target, devices, 1, false));
      let mosquitto: RunningBroker | undefined;
      if (ctx.brokers.includes('mosquitto')) {
        mosquitto = await ctx.startBroker('mosquitto');
        setups.push(await connectFanin(ctx, mosquitto, mosquitto.target, publisherSpecs(ctx), 1, true));
      }
      const ackedByDevice0 = { n: 0 };
      const contestants: Contestant[] = [
        contestant('platform', 'Platform', setups[0]!, 1, 'acked', (run) => {
          ackedByDevice0.n += (run.pub.perPublisherAcked as number[] | undefined)?.[0] ?? 0;
        }),
      ];
      if (mosquitto)
        contestants.push(contestant('mosquitto', shortName.mosquitto, setups[1]!, 1, 'delivered'));
      const sweeps: Record<string, SweepResult> = await sweep(
        { ...sweepOptions(ctx), rates: ctx.quick ? QUICK_RATES : RATES },
        contestants,
      );
      const p = sweeps.platform!;
      const m = sweeps.mosquitto;
      ctx.log(`  → platform: max held ${p.maxHeld}/s (${p.limit})`);
      if (m) ctx.log(`  → Mosquitto: max held ${m.maxHeld}/s (${m.limit})`);
      // Durability spot check: every acknowledged message of one device is in the store.
      const stored = await countTelemetry(platform, ids[0]!);
      const durable = stored >= ackedByDevice0.n;
      ctx.log(
        `  ${ids[0]}: ${ackedByDevice0.n} messages acknowledged, ${stored} stored${durable ? '' : ' ✗ LOST'}`,
      );
      const notes: string[] = ['platform: publish → PUBACK after commit; Mosquitto: publish → delivery'];
      if (!durable)
        notes.push(`platform acknowledged ${ackedByDevice0.n} but stored ${stored} for ${ids[0]}`);
      if (m?.loadBound) notes.push('Mosquitto ran into the load core first: its figure is a lower bound');
      ctx.figure({
        name: 'platform QoS 1 (stored): max rate held',
        unit: 'msg/s',
        bulwark: p.maxHeld,
        mosquitto: m?.maxHeld ?? null,
        better: 'higher',
        bound: { bulwark: p.loadBound, mosquitto: m?.loadBound === true },
        note: notes.join('; '),
      });
      const lat = (r: SweepResult | undefined, q: 'p50ms' | 'p99ms') => r?.latencyAtRate?.[q] ?? null;
      const heldNote = Object.entries(sweeps)
        .filter(([, r]) => r.latencyAtRate && !r.latencyAtRate.held)
        .map(([k]) => `${k} did not hold ${LATENCY_RATE}/s`)
        .join('; ');
      ctx.figure({
        name: 'platform QoS 1 (stored): p50 latency @ 10k/s',
        unit: 'ms',
        bulwark: lat(p, 'p50ms'),
        mosquitto: lat(m, 'p50ms'),
        better: 'lower',
        ...(heldNote ? { note: heldNote } : {}),
      });
      ctx.figure({
        name: 'platform QoS 1 (stored): p99 latency @ 10k/s',
        unit: 'ms',
        bulwark: lat(p, 'p99ms'),
        mosquitto: lat(m, 'p99ms'),
        better: 'lower',
      });
      ctx.figure({
        name: 'platform QoS 1 (stored): CPU per message @ 10k/s',
        unit: 'µs',
        bulwark: cpuPerMessage(p.latencyAtRate),
        mosquitto: cpuPerMessage(m?.latencyAtRate),
        better: 'lower',
      });
      return {
        platform: { label: platform.label, sweep: p, cpuPerMessageUs: cpuPerMessage(p.latencyAtRate) },
        ...(m
          ? {
              mosquitto: {
                label: mosquitto!.label,
                sweep: m,
                cpuPerMessageUs: cpuPerMessage(m.latencyAtRate),
              },
            }
          : {}),
        durability: { device: ids[0], acknowledged: ackedByDevice0.n, stored, ok: durable },
      };
    } finally {
      for (const s of setups) await s.close();
      await platform?.stop();
    }
  },
};

export default suite;
