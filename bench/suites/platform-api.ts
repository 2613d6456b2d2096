// REST API latency with a large fleet: 1 000 000 registered devices in 100 fleets and 10 000 000
// telemetry rows (10 000 devices with 1 000 rows each), on the embedded SQLite default and on
// PostgreSQL (--quick: 100 000 devices, 1 000 000 rows). The real platform (apps/server/src/main.ts, on
// the broker core) makes its database (migrations, tenant, owner token) and is stopped; the rows are
// then made in bulk by the database itself, in the platform's own tables, and the platform is started
// again on them. One client on the load core sends one request at a time over a kept-alive HTTPS
// connection: device lookup, a page of a fleet's device list at a random position, the latest 100
// telemetry rows of a device, and one hour of a device's telemetry. No Mosquitto counterpart.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { startPlatform, type RunningPlatform } from '../lib/platform.ts';
import {
  activeDevice,
  activeDevices,
  deviceId,
  fleetPath,
  MEASURED_QUERIES,
  postgresPlans,
  ROW_INTERVAL_MS,
  scratchDatabase,
  seedPostgres,
  seedSqlite,
  sqlitePlans,
  type SeedPlan,
} from '../lib/seed.ts';
import type { Suite, SuiteContext } from '../lib/types.ts';

const PG_ADMIN_URL = process.env.BULWARK_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

interface Endpoint {
  name: string;
  path(random: () => number): string;
  /** What a correct answer holds (a wrong one fails the suite rather than being timed). */
  check(body: unknown): boolean;
}

/** mulberry32: the same request sequence on both backends and in every run. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const items = (body: unknown) => (body as { items?: unknown[] } | undefined)?.items?.length ?? -1;

function endpoints(plan: SeedPlan): Endpoint[] {
  const pick = (r: () => number, n: number) => Math.min(n - 1, Math.floor(r() * n));
  const hours = Math.floor((plan.rowsPerDevice * ROW_INTERVAL_MS) / 3_600_000);
  return [
    {
      name: 'device lookup',
      path: (r) => `/api/v1/devices/${deviceId(pick(r, plan.devices))}`,
      check: (b) => typeof (b as { id?: unknown }).id === 'string',
    },
    {
      // A page of 100 at a random position in the fleet (the cursor of device i, as the API makes it).
      name: 'fleet listing',
      path: (r) => {
        const i = pick(r, plan.devices - plan.fleets * 200);
        const cursor = Buffer.from(JSON.stringify({ createdAt: plan.baseMs + i, id: deviceId(i) })).toString(
          'base64url',
        );
        return `/api/v1/devices?fleet=${fleetPath(i % plan.fleets)}&limit=100&cursor=${cursor}`;
      },
      check: (b) => items(b) === 100,
    },
    {
      name: 'telemetry latest 100',
      path: (r) =>
        `/api/v1/devices/${deviceId(activeDevice(plan, pick(r, activeDevices(plan))))}/telemetry?limit=100&order=desc`,
      check: (b) => items(b) === 100,
    },
    {
      name: 'telemetry 1 hour',
      path: (r) => {
        const from = plan.telemetryStartMs + pick(r, hours) * 3_600_000;
        const q = `from=${new Date(from).toISOString()}&to=${new Date(from + 3_599_999).toISOString()}`;
        return `/api/v1/devices/${deviceId(activeDevice(plan, pick(r, activeDevices(plan))))}/telemetry?${q}&limit=100`;
      },
      check: (b) => items(b) === 60,
    },
  ];
}

interface Measured {
  requests: number;
  p50ms: number;
  p90ms: number;
  p99ms: number;
  maxMs: number;
  meanMs: number;
}

async function measure(p: RunningPlatform, e: Endpoint, n: number, warmup: number): Promise<Measured> {
  const r = seeded(0x5eed);
  const times: number[] = [];
  for (let k = 0; k < warmup + n; k++) {
    const path = e.path(r);
    const t0 = performance.now();
    const res = await p.api('GET', path);
    const ms = performance.now() - t0;
    if (res.status !== 200 || !e.check(res.body)) {
      throw new Error(
        `${e.name}: GET ${path} answered ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`,
      );
    }
    if (k >= warmup) times.push(ms);
  }
  times.sort((a, b) => a - b);
  const round = (x: number) => Math.round(x * 100) / 100;
  // Nearest rank.
  const q = (x: number) => round(times[Math.max(0, Math.ceil(x * times.length) - 1)] ?? NaN);
  return {
    requests: n,
    p50ms: q(0.5),
    p90ms: q(0.9),
    p99ms: q(0.99),
    maxMs: q(1),
    meanMs: round(times.reduce((a, b) => a + b, 0) / times.length),
  };
}

const compact = (n: number) =>
  n >= 1_000_000 ? `${n / 1_000_000}M` : n >= 1000 ? `${n / 1000}k` : String(n);

async function backend(
  ctx: SuiteContext,
  kind: 'SQLite' | 'PostgreSQL',
  plan: SeedPlan,
  requests: number,
): Promise<Record<string, unknown>> {
  const dataDir = join(ctx.tmpDir, `platform-api-${kind.toLowerCase()}`);
  const scratch =
    kind === 'PostgreSQL' ? await scratchDatabase(PG_ADMIN_URL, `bulwark_bench_${process.pid}`) : undefined;
  const settings: Record<string, string> = scratch ? { BULWARK_DATABASE_URL: scratch.url } : {};
  let platform: RunningPlatform | undefined;
  try {
    ctx.log(`platform-api ${kind}: the platform makes its database (migrations, tenant, owner token)…`);
    platform = await startPlatform(dataDir, ctx.brokerCpu, settings);
    await platform.stop();
    platform = undefined;
    const sqliteFile = join(dataDir, 'bulwark.db');
    let lastShown = 0;
    const progress = (what: string, done: number, total: number) => {
      if (done === total || performance.now() - lastShown > 10_000) {
        lastShown = performance.now();
        ctx.log(`  seeding ${what}: ${compact(done)}/${compact(total)}`);
      }
    };
    ctx.log(
      `platform-api ${kind}: seeding ${compact(plan.devices)} devices in ${plan.fleets} fleets and ${compact(plan.telemetryRows)} telemetry rows…`,
    );
    const t0 = performance.now();
    const seedSeconds = scratch
      ? await seedPostgres(scratch.url, plan, progress)
      : seedSqlite(sqliteFile, plan, progress);
    const seeding = Math.round((performance.now() - t0) / 100) / 10;
    const plans = scratch
      ? await postgresPlans(scratch.url, plan, MEASURED_QUERIES)
      : sqlitePlans(sqliteFile, plan, MEASURED_QUERIES);
    for (const [name, text] of Object.entries(plans)) ctx.log(`  plan ${name}: ${text}`);
    ctx.log(`platform-api ${kind}: seeded in ${seeding} s; starting the platform on it…`);
    platform = await startPlatform(dataDir, ctx.brokerCpu, settings);
    const results: Record<string, Measured> = {};
    for (const e of endpoints(plan)) {
      const m = await measure(platform, e, requests, Math.min(100, requests));
      results[e.name] = m;
      ctx.log(`  ${e.name}: p50 ${m.p50ms} ms, p99 ${m.p99ms} ms (${m.requests} requests)`);
      const label = `API ${kind} (${compact(plan.devices)} devices, ${compact(plan.telemetryRows)} rows): ${e.name}`;
      ctx.figure({ name: `${label} p50`, unit: 'ms', bulwark: m.p50ms, mosquitto: null, better: 'lower' });
      ctx.figure({ name: `${label} p99`, unit: 'ms', bulwark: m.p99ms, mosquitto: null, better: 'lower' });
    }
    return { seedSeconds: { ...seedSeconds, total: seeding }, queryPlans: plans, latency: results };
  } finally {
    await platform?.stop();
    await scratch
      ?.drop()
      .catch((err: unknown) => ctx.log(`  could not drop the scratch database: ${String(err)}`));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const suite: Suite = {
  name: 'platform-api',
  description:
    'REST API latency p50/p99 (device lookup, fleet listing, telemetry queries) with 1M devices and 10M telemetry rows, SQLite and PostgreSQL',
  order: 46,
  async run(ctx) {
    const plan: SeedPlan = {
      tenant: 'default',
      devices: ctx.quick ? 100_000 : 1_000_000,
      fleets: 100,
      telemetryRows: ctx.quick ? 1_000_000 : 10_000_000,
      rowsPerDevice: 1000,
      baseMs: Date.UTC(2026, 0, 1),
      telemetryStartMs: Date.UTC(2026, 5, 1),
    };
    const requests = ctx.quick ? 300 : 1000;
    const out: Record<string, unknown> = {
      plan: { ...plan, devicesWithTelemetry: activeDevices(plan), requestsPerEndpoint: requests },
      client: 'one request at a time over one kept-alive HTTPS connection, from the load core',
    };
    out.sqlite = await backend(ctx, 'SQLite', plan, requests);
    try {
      out.postgres = await backend(ctx, 'PostgreSQL', plan, requests);
    } catch (err) {
      // A machine without PostgreSQL still gets the SQLite figures.
      const message = err instanceof Error ? err.message : String(err);
      ctx.log(`platform-api PostgreSQL: ${message}`);
      out.postgres = { error: message };
    }
    return out;
  },
};

export default suite;
