// A fleet of 10 000 SDK devices (--quick: 1 000) against the real platform (apps/server/src/main.ts on
// the broker core, embedded SQLite): every device is a full @bulwark/device client with its own key and
// certificate, run in several load processes on the load core (bench/lib/fleet-worker.ts).
//  1. EST enrollment: every device makes its key and CSR and enrolls with one fleet code
//     (simpleenroll over HTTPS, 32 at a time): devices enrolled per second.
//  2. The fleet connects (64 at a time) and each device publishes once.
//  3. Reconnect storms: the network drops every connection at the same instant; the SDK reconnects
//     with its default backoff (1 s doubling to 60 s) and each device publishes again. Settled = every
//     device connected again and one telemetry message of each acknowledged (stored). Three storms:
//     TLS session resumption + full jitter (the SDK's defaults), full handshakes + full jitter, and
//     resumption without jitter (every device waits the top of its backoff window: the herd).
// No Mosquitto counterpart: the ratio column stays empty.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FleetWorker, histogram, quantile } from '../lib/fleet.ts';
import type { ConnectResult, EnrollResult, StormResult } from '../lib/fleet-worker.ts';
import { startPlatform, type RunningPlatform } from '../lib/platform.ts';
import { cpuSeconds, sleep } from '../lib/proc.ts';
import type { Suite, SuiteContext } from '../lib/types.ts';

/** A process may hold 20 000 open files here; one event loop per 2 500 devices is also plenty. */
const DEVICES_PER_WORKER = 2500;
const ENROLL_CONCURRENCY = 32;
const CONNECT_CONCURRENCY = 64;

interface StormSpec {
  key: string;
  label: string;
  resumption: boolean;
  jitter: boolean;
}

const STORMS: StormSpec[] = [
  { key: 'resumedJitter', label: 'TLS resumption, full jitter', resumption: true, jitter: true },
  { key: 'fullJitter', label: 'full handshakes, full jitter', resumption: false, jitter: true },
  { key: 'resumedNoJitter', label: 'TLS resumption, no jitter', resumption: true, jitter: false },
];

const s1 = (ms: number) => Math.round(ms / 100) / 10;

interface CpuUse {
  /** Share of one core over the phase. */
  platform: number;
  load: number;
  platformSeconds: number;
}

/** CPU used by the platform and by the load processes over a phase. */
function cpuMeter(platform: RunningPlatform, workers: FleetWorker[]): () => CpuUse {
  const read = () => ({
    at: performance.now(),
    platform: cpuSeconds(platform.pid),
    load: workers.reduce((a, w) => a + cpuSeconds(w.child.pid), 0),
  });
  const start = read();
  return () => {
    const end = read();
    const wall = (end.at - start.at) / 1000;
    const share = (x: number) => Math.round((x / wall) * 100) / 100;
    return {
      platform: share(end.platform - start.platform),
      load: share(end.load - start.load),
      platformSeconds: Math.round((end.platform - start.platform) * 100) / 100,
    };
  };
}

/** A one-line sparkline of counts per bucket (at most 80 characters: buckets merged), for the log. */
function spark(buckets: readonly number[]): string {
  const per = Math.ceil(buckets.length / 80);
  const counts: number[] = [];
  for (let i = 0; i < buckets.length; i += per) {
    counts.push(buckets.slice(i, i + per).reduce((a, c) => a + c, 0));
  }
  const bars = '▁▂▃▄▅▆▇█';
  const max = Math.max(1, ...counts);
  return counts.map((c) => (c === 0 ? ' ' : bars[Math.min(7, Math.floor((c / max) * 7.999))])).join('');
}

async function enrollFleet(
  ctx: SuiteContext,
  p: RunningPlatform,
  workers: FleetWorker[],
  ids: string[],
  stateRoot: string,
): Promise<Record<string, unknown>> {
  const code = await p.api<{ code: string }>('POST', '/api/v1/enrollment-codes', {
    quota: ids.length,
    ttlSeconds: 7200,
  });
  if (code.status !== 201) throw new Error(`enrollment code: ${code.status} ${JSON.stringify(code.body)}`);
  const ca = readFileSync(p.target.ca, 'utf8');
  const per = Math.ceil(ids.length / workers.length);
  const cpu = cpuMeter(p, workers);
  const results = await Promise.all(
    workers.map((w, k) =>
      w.request<EnrollResult>(
        {
          type: 'enroll',
          url: `https://127.0.0.1:${p.httpPort}`,
          ca,
          servername: 'localhost',
          code: code.body.code,
          stateRoot,
          ids: ids.slice(k * per, (k + 1) * per),
          concurrency: Math.ceil(ENROLL_CONCURRENCY / workers.length),
        },
        7 * 60_000,
      ),
    ),
  );
  const busy = cpu();
  const enrolled = results.reduce((a, r) => a + r.enrolled, 0);
  const failed = results.reduce((a, r) => a + r.failed, 0);
  const startedAt = Math.min(...results.map((r) => r.startedAt));
  const done = results.flatMap((r) => r.doneAt.map((t) => t - startedAt));
  const seconds = Math.max(...done) / 1000;
  const perSecond = Math.round(enrolled / seconds);
  const perSecondHistogram = histogram(done, 1000);
  ctx.log(
    `  enrolled ${enrolled}/${ids.length} over EST in ${seconds.toFixed(1)} s: ${perSecond}/s` +
      `${failed ? ` (${failed} failed: ${results.flatMap((r) => r.errors)[0]})` : ''}`,
  );
  ctx.log(`  enrollments per second: ${spark(perSecondHistogram)} (peak ${Math.max(...perSecondHistogram)})`);
  ctx.log(`  CPU (share of a core): platform ${busy.platform}, load processes ${busy.load}`);
  if (failed > 0)
    throw new Error(`${failed} enrollments failed: ${results.flatMap((r) => r.errors).join('; ')}`);
  return {
    devices: ids.length,
    enrolled,
    seconds: Math.round(seconds * 10) / 10,
    perSecond,
    concurrency: ENROLL_CONCURRENCY,
    perSecondHistogram,
    cpu: busy,
  };
}

async function storm(
  ctx: SuiteContext,
  platform: RunningPlatform,
  workers: FleetWorker[],
  spec: StormSpec,
  devices: number,
  quick: boolean,
) {
  const timeoutMs = quick ? 60_000 : 150_000;
  const cutAt = Date.now() + 1000;
  const pending = Promise.all(
    workers.map((w) =>
      w.request<StormResult>(
        { type: 'storm', cutAt, resumption: spec.resumption, jitter: spec.jitter, timeoutMs },
        timeoutMs + 30_000,
      ),
    ),
  );
  await sleep(Math.max(0, cutAt - Date.now()));
  const cpu = cpuMeter(platform, workers);
  const results = await pending;
  const busy = cpu();
  const connected = results.flatMap((r) => r.connectedMs);
  const acked = results.flatMap((r) => r.ackedMs);
  const attempts = results.flatMap((r) => r.attemptsMs);
  const resumed = results.reduce((a, r) => a + r.resumed, 0);
  const settled = acked.length === devices;
  const connectsPerSecond = histogram(connected, 1000);
  const attemptsPerSecond = histogram(attempts, 1000);
  const connectsPer100ms = histogram(connected, 100);
  const r = {
    cutAt: new Date(cutAt).toISOString(),
    endedAt: new Date().toISOString(),
    resumption: spec.resumption,
    jitter: spec.jitter,
    settled,
    settleSeconds: settled ? s1(Math.max(...acked)) : null,
    allConnectedSeconds: connected.length === devices ? s1(Math.max(...connected)) : null,
    reconnected: connected.length,
    publishedAgain: acked.length,
    reconnectP50Seconds: s1(quantile(connected, 0.5)),
    reconnectP90Seconds: s1(quantile(connected, 0.9)),
    resumedShare: connected.length ? Math.round((resumed / connected.length) * 1000) / 1000 : 0,
    connectionAttempts: attempts.length,
    failedAttempts: attempts.length - connected.length,
    peakConnectsPerSecond: Math.max(0, ...connectsPerSecond),
    connectsPerSecond,
    attemptsPerSecond,
    connectsPer100ms,
    cpu: busy,
    platformCpuMsPerReconnect: Math.round((busy.platformSeconds * 1000 * 100) / devices) / 100,
    // The SDK devices used most of the load core: they, not the platform, set the pace.
    loadBound: busy.load >= 0.85,
    sdkWarnings: results.reduce((a, x) => a + x.warnings, 0),
    sampleWarnings: [...new Set(results.flatMap((x) => x.sampleWarnings))].slice(0, 5),
  };
  ctx.log(
    `  storm (${spec.label}): ${settled ? `settled in ${r.settleSeconds} s` : `NOT settled: ${acked.length}/${devices} published again`}` +
      `; p50 ${r.reconnectP50Seconds} s, p90 ${r.reconnectP90Seconds} s; resumed ${Math.round(r.resumedShare * 100)} %; ` +
      `${r.connectionAttempts} attempts (${r.failedAttempts} failed); peak ${r.peakConnectsPerSecond} connects/s`,
  );
  ctx.log(`    connects per second:       ${spark(connectsPerSecond)}`);
  ctx.log(`    attempts per second:       ${spark(attemptsPerSecond)}`);
  ctx.log(`    connects per 100 ms:       ${spark(connectsPer100ms)}`);
  ctx.log(`    CPU (share of a core): platform ${busy.platform}, load processes ${busy.load}`);
  if (r.sampleWarnings.length)
    ctx.log(`    SDK warnings (${r.sdkWarnings}): ${r.sampleWarnings.join(' | ')}`);
  return r;
}

const suite: Suite = {
  name: 'platform-fleet',
  description:
    'SDK fleet of 10k devices: EST enrollment rate, reconnect storm settle time with and without TLS resumption and jitter',
  order: 45,
  async run(ctx) {
    const n = ctx.quick ? 1000 : 10_000;
    const ids = Array.from({ length: n }, (_, i) => `fleet-dev-${String(i).padStart(5, '0')}`);
    // Device state (keys, certificates) in memory-backed storage when there is some: the SDK fsyncs
    // its files, and 10 000 fsyncs would measure the disk.
    const stateRoot = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'bulwark-fleet-'));
    const workers: FleetWorker[] = [];
    let platform: RunningPlatform | undefined;
    try {
      ctx.log('platform-fleet: starting the platform (apps/server/src/main.ts) with a fresh data directory…');
      platform = await startPlatform(
        join(ctx.tmpDir, 'fleet-data'),
        ctx.brokerCpu,
        {},
        ctx.profile ? join(ctx.artefactsDir, 'profiles', 'platform-fleet') : undefined,
      );
      const count = Math.max(2, Math.ceil(n / DEVICES_PER_WORKER));
      const loadProfiles = ctx.profile ? join(ctx.artefactsDir, 'profiles', 'fleet-load') : undefined;
      if (loadProfiles) mkdirSync(loadProfiles, { recursive: true });
      for (let k = 0; k < count; k++) {
        workers.push(await FleetWorker.start(`fleet-${k}`, ctx.loadCpu, loadProfiles));
      }
      ctx.log(
        `platform-fleet: ${n} SDK devices in ${count} load processes; EST enrollment, ${ENROLL_CONCURRENCY} at a time…`,
      );
      const enrollment = await enrollFleet(ctx, platform, workers, ids, stateRoot);
      ctx.figure({
        name: `EST enrollment rate (fleet of ${n / 1000}k, SDK devices)`,
        unit: 'devices/s',
        bulwark: enrollment.perSecond as number,
        mosquitto: null,
        better: 'higher',
      });

      ctx.log(`platform-fleet: connecting the fleet (${CONNECT_CONCURRENCY} at a time)…`);
      const connectCpu = cpuMeter(platform, workers);
      const connects = await Promise.all(
        workers.map((w) =>
          w.request<ConnectResult>(
            {
              type: 'connect',
              mqttUrl: `mqtts://127.0.0.1:${platform!.target.port}`,
              servername: 'localhost',
              concurrency: Math.ceil(CONNECT_CONCURRENCY / workers.length),
              timeoutMs: 60_000,
            },
            6 * 60_000,
          ),
        ),
      );
      const connectBusy = connectCpu();
      const connected = connects.reduce((a, c) => a + c.connected, 0);
      const connectSeconds =
        (Math.max(...connects.map((c) => c.endedAt)) - Math.min(...connects.map((c) => c.startedAt))) / 1000;
      ctx.log(
        `  ${connected}/${n} connected in ${connectSeconds.toFixed(1)} s (${Math.round(connected / connectSeconds)}/s)`,
      );
      if (connected !== n) throw new Error(`only ${connected} of ${n} devices connected`);
      ctx.figure({
        name: `fleet of ${n / 1000}k: first connections (${CONNECT_CONCURRENCY} at a time)`,
        unit: 'conn/s',
        bulwark: Math.round(connected / connectSeconds),
        mosquitto: null,
        better: 'higher',
      });
      await sleep(2000);

      const storms: Record<string, unknown> = {};
      for (const spec of STORMS) {
        ctx.log(`platform-fleet: reconnect storm, ${spec.label}: every connection drops at once…`);
        const r = await storm(ctx, platform, workers, spec, n, ctx.quick);
        storms[spec.key] = r;
        ctx.figure({
          name: `reconnect storm ${n / 1000}k: settle time, ${spec.label}`,
          unit: 's',
          bulwark: r.settleSeconds,
          mosquitto: null,
          better: 'lower',
          bound: { bulwark: r.loadBound },
          ...(r.settled
            ? r.loadBound
              ? {
                  note: `the SDK devices kept the load core ${Math.round(r.cpu.load * 100)} % busy (platform ${Math.round(r.cpu.platform * 100)} %): an upper bound`,
                }
              : {}
            : { note: `${r.publishedAgain}/${n} devices published again within the time limit` }),
        });
        ctx.figure({
          name: `reconnect storm ${n / 1000}k: platform CPU per reconnect, ${spec.label}`,
          unit: 'ms',
          bulwark: r.platformCpuMsPerReconnect,
          mosquitto: null,
          better: 'lower',
        });
        ctx.figure({
          name: `reconnect storm ${n / 1000}k: peak connects/s, ${spec.label}`,
          unit: 'conn/s',
          bulwark: r.peakConnectsPerSecond,
          mosquitto: null,
          better: 'higher',
        });
        await sleep(3000);
      }
      return {
        devices: n,
        loadProcesses: workers.length,
        driver:
          'full @bulwark/device clients (MQTT.js, own key and certificate each) in load processes on the load core',
        enrollment,
        connect: {
          seconds: Math.round(connectSeconds * 10) / 10,
          perSecond: Math.round(connected / connectSeconds),
          concurrency: CONNECT_CONCURRENCY,
          cpu: connectBusy,
        },
        storms,
        platformRssMB: Math.round(platform.rssKB() / 1024),
      };
    } finally {
      await Promise.all(workers.map((w) => w.stop().catch(() => {})));
      await platform?.stop();
      rmSync(stateRoot, { recursive: true, force: true });
    }
  },
};

export default suite;
