// npm run bench [-- --quick] [-- --only fanin,handshakes] [-- --profile]
//
// Measures the Bulwark broker side by side with Mosquitto in the same run on this machine: the broker
// under test pinned to one core, the load processes to the other. Every suite in bench/suites/ runs
// (or those named with --only); the figures are printed as a Bulwark/Mosquitto ratio table and written
// to bench/results/<timestamp>.json. Method and caveats: docs/performance.md.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, freemem, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { brokerAtRef, bulwarkVersion, mosquittoPath, mosquittoVersion, startBroker } from './lib/brokers.ts';
import { makeCerts } from './lib/certs.ts';
import { summariseProfile } from './lib/cpuprofile.ts';
import type { ProfileSummary } from './lib/cpuprofile.ts';
import { Generator } from './lib/generator.ts';
import {
  benchLock,
  coreBusy,
  cores,
  hasCommand,
  killAllChildren,
  pinSelf,
  schedulingLabel,
  setScheduling,
} from './lib/proc.ts';
import { formatFigures } from './lib/report.ts';
import type { Figure, RunningBroker, Suite, SuiteContext } from './lib/types.ts';

const BENCH_DIR = fileURLToPath(new URL('.', import.meta.url));
const SUITES_DIR = join(BENCH_DIR, 'suites');
const RESULTS_DIR = join(BENCH_DIR, 'results');
/** No suite may run longer than this, whatever happens (the whole run aims at ≤ 6 minutes). */
const SUITE_HARD_LIMIT_MS = 8 * 60_000;

const HELP = `Usage: npm run bench [-- options]

Measures the Bulwark MQTT broker side by side with Mosquitto (same machine, same run, same load
generator): broker pinned to CPU 0, load processes to CPU 1. Writes bench/results/<timestamp>.json.
The platform suites (platform-fleet: 10k SDK devices, EST enrollment, reconnect storms; platform-api:
API latency with 1M devices and 10M telemetry rows on SQLite and PostgreSQL) have no Mosquitto
counterpart: their ratio cells stay empty.

Options:
  --quick              short steps and small counts (a smoke run, about three minutes)
  --only a,b           run only these suites (see --list)
  --brokers a,b        bulwark and/or mosquitto (default: both; Mosquitto is skipped if not installed)
  --profile            run the Bulwark broker with --cpu-prof and print its hot spots
  --broker-ref REF     measure packages/broker as it was at git commit REF (before/after a change;
                       the platform suite still uses the working tree)
  --rt                 run brokers and load processes with SCHED_RR (chrt): on a machine where other
                       work keeps the cores busy, the only way to measure the broker rather than the
                       scheduler (needs root or CAP_SYS_NICE; that other work gets ~5 % of a busy core)
  --nice=N             run them at niceness N instead (helps less: see docs/performance.md)
  --out FILE           write the JSON there instead of bench/results/<timestamp>.json
  --list               list the suites and exit
  -h, --help           this text

Prerequisites: Linux, 2+ cores, mosquitto (apt-get install mosquitto), taskset (util-linux).
See docs/performance.md.`;

async function loadSuites(): Promise<Suite[]> {
  const files = readdirSync(SUITES_DIR)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && !f.startsWith('_'))
    .sort();
  const suites: Suite[] = [];
  for (const f of files) {
    const mod = (await import(pathToFileURL(join(SUITES_DIR, f)).href)) as { default?: Suite; suite?: Suite };
    const s = mod.default ?? mod.suite;
    if (!s || typeof s.name !== 'string' || typeof s.run !== 'function') {
      throw new Error(`bench/suites/${f} does not export a suite ({ name, description, run })`);
    }
    suites.push(s);
  }
  const names = new Set<string>();
  for (const s of suites) {
    if (names.has(s.name)) throw new Error(`two suites are called ${s.name}`);
    names.add(s.name);
  }
  return suites.sort((a, b) => (a.order ?? 100) - (b.order ?? 100) || a.name.localeCompare(b.name));
}

function sh(cmd: string): string {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8' });
  return (r.stdout ?? '').trim();
}

function machine(): Record<string, unknown> {
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    freeMemoryGiB: Math.round((freemem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    os: sh('. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"'),
    node: process.versions.node,
    nodeOpenssl: process.versions.openssl,
    systemOpenssl: sh('openssl version'),
    mosquitto: mosquittoVersion(),
    bulwarkBroker: bulwarkVersion(),
    nofileLimit: sh('ulimit -n'),
    loadAverageAtStart: loadavg(),
    git: {
      commit: sh('git rev-parse --short HEAD'),
      brokerDirty: sh('git status --porcelain packages/broker') !== '',
    },
  };
}

function timestamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-');
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      brokers: { type: 'string' },
      profile: { type: 'boolean', default: false },
      nice: { type: 'string', default: '0' },
      'broker-ref': { type: 'string' },
      rt: { type: 'boolean', default: false },
      out: { type: 'string' },
      list: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    allowPositionals: false,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const all = await loadSuites();
  if (values.list) {
    for (const s of all)
      console.log(`${s.name.padEnd(14)} ${s.description}${s.optional ? ' (only with --only)' : ''}`);
    return 0;
  }
  // Optional suites (diagnostics) run only when named.
  let selected = all.filter((s) => !s.optional);
  if (values.only) {
    const wanted = values.only
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const unknown = wanted.filter((w) => !all.some((s) => s.name === w));
    if (unknown.length) {
      console.error(
        `bench: unknown suite(s) ${unknown.join(', ')}; available: ${all.map((s) => s.name).join(', ')}`,
      );
      return 2;
    }
    selected = all.filter((s) => wanted.includes(s.name));
  }
  let brokers: ('bulwark' | 'mosquitto')[] = ['bulwark', 'mosquitto'];
  if (values.brokers) {
    const w = values.brokers.split(',').map((s) => s.trim());
    const bad = w.filter((b) => b !== 'bulwark' && b !== 'mosquitto');
    if (bad.length) {
      console.error(`bench: unknown broker(s) ${bad.join(', ')}; use bulwark and/or mosquitto`);
      return 2;
    }
    brokers = brokers.filter((b) => w.includes(b));
  }
  if (brokers.includes('mosquitto') && !mosquittoPath()) {
    console.error(
      'bench: mosquitto is not installed (apt-get install mosquitto): measuring Bulwark alone, no ratios',
    );
    brokers = brokers.filter((b) => b !== 'mosquitto');
  }

  const nice = Number(values.nice);
  if (!Number.isInteger(nice) || nice < -20 || nice > 19) {
    console.error('bench: --nice takes an integer from -20 to 19');
    return 2;
  }
  if (values.rt && nice !== 0) {
    console.error('bench: --rt and --nice exclude each other');
    return 2;
  }
  const sched = values.rt
    ? ({ kind: 'rt', priority: 10 } as const)
    : nice !== 0
      ? ({ kind: 'nice', value: nice } as const)
      : ({ kind: 'normal' } as const);
  if (!setScheduling(sched)) {
    console.error(
      `bench: not allowed to change scheduling (${values.rt ? '--rt' : '--nice'} needs root or CAP_SYS_NICE)`,
    );
    return 2;
  }
  const pinned = cores >= 2 && hasCommand('taskset');
  const brokerCpu = pinned ? 0 : undefined;
  const loadCpu = pinned ? 1 : undefined;
  if (!pinned) {
    console.error('bench: fewer than 2 cores or no taskset: nothing is pinned, figures are not comparable');
  } else if (!values.rt) {
    // The orchestrator stays off the broker's core too. (With --rt it cannot disturb the broker, and
    // is better off taking spare time wherever there is some than starving behind the load processes.)
    pinSelf(1);
  }
  if (cores > 2) {
    console.error(`bench: ${cores} cores; the broker gets core 0 and the load core 1, the rest stay unused`);
  }

  let brokerModule: { module: string; sha: string } | undefined;
  if (values['broker-ref']) {
    try {
      brokerModule = brokerAtRef(values['broker-ref']);
    } catch (err) {
      console.error(`bench: ${(err as Error).message}`);
      return 2;
    }
  }
  const release = await benchLock(join(tmpdir(), 'bulwark-bench.lock'), 15 * 60_000, (m) =>
    console.error(`bench: ${m}`),
  );
  if (!release) {
    console.error('bench: gave up waiting for the other bench run (15 minutes)');
    return 3;
  }
  process.on('exit', release);
  const started = new Date();
  // Before anything runs: the commit and the broker's state are those of the code measured.
  const machineAtStart = machine();
  const runId = timestamp();
  const tmp = mkdtempSync(join(tmpdir(), 'bulwark-bench-'));
  const artefactsDir = join(RESULTS_DIR, runId);
  const t0 = performance.now();
  const log = (m: string) => {
    const s = ((performance.now() - t0) / 1000).toFixed(0).padStart(4);
    console.log(`[${s}s] ${m}`);
  };
  const cleanup = () => {
    killAllChildren();
    rmSync(tmp, { recursive: true, force: true });
  };
  const onSignal = (sig: string) => {
    console.error(`\nbench: ${sig}, stopping every process it started`);
    cleanup();
    process.exit(130);
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));

  try {
    const publishers = Array.from({ length: 100 }, (_, i) => `pub-${String(i).padStart(3, '0')}`);
    const fleet = Array.from({ length: 64 }, (_, i) => `fleet-${String(i).padStart(2, '0')}`);
    const reader = 'bench-sub';
    log(
      `bench ${runId}: suites ${selected.map((s) => s.name).join(', ')}; brokers ${brokers.join(', ')}${values.quick ? ' (quick)' : ''}`,
    );
    const busyBefore = await coreBusy(1000);
    log(
      `scheduling: ${schedulingLabel()}; cores busy before the run: ${busyBefore.map((b) => `${b} %`).join(', ')}`,
    );
    if (!values.rt && busyBefore.some((b) => b > 20)) {
      log(
        '⚠ other work is using the cores: wake-up latency will be measured along with the brokers ' +
          '(consider --rt, see docs/performance.md)',
      );
    }
    log('making the test PKI (ECDSA P-256 CA, server and 165 client certificates)…');
    const certs = await makeCerts(join(tmp, 'certs'), [...publishers, reader, ...fleet]);

    const memo = new Map<string, Promise<unknown>>();
    const figures: (Figure & { suite: string })[] = [];
    const results: Record<string, unknown> = {};
    const profiles: Record<string, ProfileSummary[]> = {};

    for (const suite of selected) {
      log(`── ${suite.name}: ${suite.description}`);
      const generators: Generator[] = [];
      const running: RunningBroker[] = [];
      const profileDir = values.profile ? join(artefactsDir, 'profiles', suite.name) : undefined;
      const ctx: SuiteContext = {
        quick: values.quick,
        brokers,
        certs,
        names: { publishers, reader, fleet },
        tmpDir: tmp,
        artefactsDir,
        profile: values.profile,
        brokerCpu,
        loadCpu,
        log,
        async startBroker(kind) {
          const b = await startBroker(kind, {
            certs,
            dir: join(tmp, 'brokers'),
            cpu: brokerCpu,
            profileDir: kind === 'bulwark' ? profileDir : undefined,
            brokerModule: brokerModule?.module,
            brokerLabel: brokerModule ? `at ${brokerModule.sha}` : undefined,
          });
          running.push(b);
          return b;
        },
        async startGenerator(name) {
          const g = await Generator.start(name, loadCpu);
          generators.push(g);
          return g;
        },
        memo<T>(key: string, fn: () => Promise<T>): Promise<T> {
          let p = memo.get(key) as Promise<T> | undefined;
          if (!p) {
            p = fn();
            memo.set(key, p);
            // A failed measurement may be tried again by a later suite.
            p.catch(() => memo.delete(key));
          }
          return p;
        },
        figure(f) {
          figures.push({ suite: suite.name, ...f });
        },
      };
      const s0 = performance.now();
      let timer: NodeJS.Timeout | undefined;
      try {
        const result = await Promise.race([
          suite.run(ctx),
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () => reject(new Error(`suite did not finish within ${SUITE_HARD_LIMIT_MS / 60_000} minutes`)),
              SUITE_HARD_LIMIT_MS,
            );
          }),
        ]);
        results[suite.name] = {
          description: suite.description,
          seconds: Math.round((performance.now() - s0) / 1000),
          result,
        };
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        log(`✗ ${suite.name} failed: ${message}`);
        results[suite.name] = {
          description: suite.description,
          seconds: Math.round((performance.now() - s0) / 1000),
          error: message,
        };
      } finally {
        if (timer) clearTimeout(timer);
        await Promise.all(generators.map((g) => g.stop().catch(() => {})));
        await Promise.all(running.map((b) => b.stop().catch(() => {})));
      }
      if (profileDir && existsSync(profileDir)) {
        profiles[suite.name] = readdirSync(profileDir)
          .filter((f) => f.endsWith('.cpuprofile'))
          .map((f) => summariseProfile(join(profileDir, f)));
      }
    }

    const seconds = Math.round((performance.now() - t0) / 1000);
    const doc = {
      runId,
      startedAt: started.toISOString(),
      seconds,
      options: {
        quick: values.quick,
        only: values.only ?? null,
        brokers,
        profile: values.profile,
        scheduling: schedulingLabel(),
        brokerRef: brokerModule?.sha ?? null,
      },
      machine: { ...machineAtStart, loadAverageAtEnd: loadavg(), pinned, coresBusyBeforeRun: busyBefore },
      figures,
      suites: results,
      ...(values.profile ? { profiles } : {}),
    };
    const out = values.out ?? join(RESULTS_DIR, `${runId}.json`);
    mkdirSync(RESULTS_DIR, { recursive: true });
    writeFileSync(out, JSON.stringify(doc, null, 2) + '\n');

    console.log('');
    console.log(formatFigures(figures, doc.machine));
    if (values.profile) {
      for (const [name, list] of Object.entries(profiles)) {
        for (const p of list) {
          console.log(`\nBulwark broker profile (${name}, ${p.busyMs} ms busy) — self time:`);
          for (const f of p.topFunctions.slice(0, 12)) {
            console.log(`  ${String(f.selfPct).padStart(5)} %  ${f.name}  ${f.where}`);
          }
        }
      }
    }
    console.log(`\nbench: ${seconds} s; results in ${out}`);
    const failed = Object.values(results).some((r) => (r as { error?: string }).error !== undefined);
    return failed ? 1 : 0;
  } finally {
    cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    killAllChildren();
    process.exit(1);
  },
);
