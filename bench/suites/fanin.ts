// Telemetry fan-in: 100 publishers → 1 subscriber, 100-byte payloads, mutual TLS 1.3, QoS 0 and 1.
// Highest offered rate held without backlog, and publish → deliver latency at 10 000 msg/s.
import { faninAll, LATENCY_RATE } from '../lib/fanin.ts';
import type { FaninResult } from '../lib/fanin.ts';
import type { Suite, SuiteContext } from '../lib/types.ts';

function boundNote(r: FaninResult | undefined, kind: string): string | undefined {
  if (!r?.sweep.loadBound) return undefined;
  return r.sweep.limit.startsWith('every step held')
    ? `${kind} held every step of the ladder: its figure is a lower bound`
    : `${kind} ran into the load core (generator) first: its figure is a lower bound`;
}

const suite: Suite = {
  name: 'fanin',
  description:
    '100 publishers → 1 subscriber, 100-byte payloads, mutual TLS, QoS 0 and 1: highest rate held, latency at 10 000 msg/s',
  order: 10,
  async run(ctx: SuiteContext) {
    const out: Record<string, Record<string, FaninResult>> = {};
    for (const qos of [0, 1] as const) {
      const byBroker = await ctx.memo(`fanin:qos${qos}`, () => faninAll(ctx, qos));
      out[`qos${qos}`] = byBroker;
      const b = byBroker.bulwark;
      const m = byBroker.mosquitto;
      const notes = [boundNote(b, 'Bulwark'), boundNote(m, 'Mosquitto')].filter(Boolean).join('; ');
      ctx.figure({
        name: `fan-in QoS ${qos}: max rate held`,
        unit: 'msg/s',
        bulwark: b?.sweep.maxHeld ?? null,
        mosquitto: m?.sweep.maxHeld ?? null,
        better: 'higher',
        bound: { bulwark: b?.sweep.loadBound === true, mosquitto: m?.sweep.loadBound === true },
        ...(notes ? { note: notes } : {}),
      });
      const lat = (r: FaninResult | undefined, q: 'p50ms' | 'p99ms') => r?.sweep.latencyAtRate?.[q] ?? null;
      const heldNote = [b, m]
        .filter((r) => r?.sweep.latencyAtRate && !r.sweep.latencyAtRate.held)
        .map((r) => `${r!.broker.split(' ')[0]} did not hold ${LATENCY_RATE}/s`)
        .join('; ');
      ctx.figure({
        name: `fan-in QoS ${qos}: p50 latency @ 10k/s`,
        unit: 'ms',
        bulwark: lat(b, 'p50ms'),
        mosquitto: lat(m, 'p50ms'),
        better: 'lower',
        ...(heldNote ? { note: heldNote } : {}),
      });
      ctx.figure({
        name: `fan-in QoS ${qos}: p99 latency @ 10k/s`,
        unit: 'ms',
        bulwark: lat(b, 'p99ms'),
        mosquitto: lat(m, 'p99ms'),
        better: 'lower',
      });
      ctx.figure({
        name: `fan-in QoS ${qos}: broker CPU per message @ 10k/s`,
        unit: 'µs',
        bulwark: b?.cpuPerMessageUs ?? null,
        mosquitto: m?.cpuPerMessageUs ?? null,
        better: 'lower',
      });
    }
    return out;
  },
};

export default suite;
