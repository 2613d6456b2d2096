// Child processes pinned to a core, and what /proc says about them (CPU time, RSS, per-core load).
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess, StdioOptions } from 'node:child_process';
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { performance } from 'node:perf_hooks';

/** Clock ticks per second of /proc/<pid>/stat times (sysconf(_SC_CLK_TCK), 100 on Linux). */
export const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number.parseInt(r.stdout ?? '', 10);
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

export function hasCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0;
}

export const cores = (() => {
  try {
    return readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('processor')).length;
  } catch {
    return 1;
  }
})();

const canPin = hasCommand('taskset') && cores >= 2;

/** How the measured processes are scheduled; see setScheduling. */
let scheduling: { kind: 'normal' } | { kind: 'nice'; value: number } | { kind: 'rt'; priority: number } = {
  kind: 'normal',
};

/**
 * How the measured processes (brokers, load processes) are scheduled. On a machine where
 * other work keeps the cores busy, a woken broker waits for the running task's time slice (several
 * ms) before it can answer, even at nice -20 (EEVDF): handshake rates and latencies then measure the
 * scheduler, not the broker. `rt` (SCHED_RR) makes our processes preempt other work at once; the
 * kernel's RT throttling still leaves 5 % of each core to everything else. Needs root/CAP_SYS_NICE.
 */
export function setScheduling(s: typeof scheduling): boolean {
  if (s.kind === 'normal') return true;
  // Only the children get it (nice(1) or chrt(1) at spawn): the orchestrator, and any suite computing
  // in it, stay at normal priority. Check that we are allowed.
  const r =
    s.kind === 'nice'
      ? spawnSync('nice', ['-n', String(s.value), 'true'], { encoding: 'utf8' })
      : spawnSync('chrt', ['-r', String(s.priority), 'true'], { encoding: 'utf8' });
  if (r.status !== 0 || /cannot set/i.test(r.stderr ?? '')) return false;
  scheduling = s;
  return true;
}

/** The current scheduling, for the results file. */
export function schedulingLabel(): string {
  if (scheduling.kind === 'nice') return `nice ${scheduling.value}`;
  if (scheduling.kind === 'rt') return `SCHED_RR priority ${scheduling.priority}`;
  return 'normal (SCHED_OTHER, nice 0)';
}

/** Pins a running process (all its threads) to one core. */
export function pinSelf(cpu: number): boolean {
  if (!canPin) return false;
  return spawnSync('taskset', ['-a', '-p', '-c', String(cpu), String(process.pid)]).status === 0;
}

export interface Child {
  readonly name: string;
  readonly pid: number;
  readonly proc: ChildProcess;
  readonly exited: Promise<number | null>;
  /** Last lines of stderr (and stdout when not piped elsewhere), for error messages. */
  tail(): string;
  /** SIGTERM, then SIGKILL after `graceMs`. Resolves when the process has exited. */
  stop(graceMs?: number): Promise<void>;
}

const running = new Set<Child>();

/** Every child still running (for cleanup on exit or timeout). */
export function runningChildren(): Child[] {
  return [...running];
}

/** Kills every child this process started (by pid, SIGKILL). */
export function killAllChildren(): void {
  for (const c of running) {
    try {
      process.kill(c.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  running.clear();
}

export interface SpawnOptions {
  /** Core to pin to with taskset; undefined = not pinned. */
  cpu?: number | undefined;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  ipc?: boolean;
  /** Called with each stdout line. */
  onLine?: (line: string) => void;
}

export function spawnPinned(name: string, cmd: string, args: string[], opts: SpawnOptions = {}): Child {
  const pinned = canPin && opts.cpu !== undefined;
  let argv = [cmd, ...args];
  if (pinned) argv = ['taskset', '-c', String(opts.cpu), ...argv];
  // Through nice(1)/chrt(1), so that every thread of the child has it from the start.
  if (scheduling.kind === 'rt') argv = ['chrt', '-r', String(scheduling.priority), ...argv];
  if (scheduling.kind === 'nice') argv = ['nice', '-n', String(scheduling.value), ...argv];
  const file = argv.shift()!;
  const stdio: StdioOptions = ['ignore', 'pipe', 'pipe'];
  if (opts.ipc) stdio.push('ipc');
  const proc = spawn(file, argv, { stdio, env: opts.env ?? process.env, cwd: opts.cwd });
  if (proc.pid === undefined) throw new Error(`could not start ${name} (${cmd})`);
  const lines: string[] = [];
  const keep = (l: string) => {
    lines.push(l);
    if (lines.length > 40) lines.shift();
  };
  let outBuf = '';
  proc.stdout!.setEncoding('utf8').on('data', (s: string) => {
    outBuf += s;
    let i: number;
    while ((i = outBuf.indexOf('\n')) >= 0) {
      const line = outBuf.slice(0, i);
      outBuf = outBuf.slice(i + 1);
      keep(line);
      opts.onLine?.(line);
    }
  });
  let errBuf = '';
  proc.stderr!.setEncoding('utf8').on('data', (s: string) => {
    errBuf += s;
    let i: number;
    while ((i = errBuf.indexOf('\n')) >= 0) {
      keep(errBuf.slice(0, i));
      errBuf = errBuf.slice(i + 1);
    }
  });
  const exited = new Promise<number | null>((resolve) => {
    proc.once('exit', (code) => {
      running.delete(child);
      resolve(code);
    });
  });
  const child: Child = {
    name,
    pid: proc.pid,
    proc,
    exited,
    tail: () => lines.join('\n'),
    async stop(graceMs = 5000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      try {
        process.kill(proc.pid!, 'SIGTERM');
      } catch {
        return;
      }
      const t = setTimeout(() => {
        try {
          process.kill(proc.pid!, 'SIGKILL');
        } catch {
          // gone
        }
      }, graceMs);
      await exited;
      clearTimeout(t);
    },
  };
  running.add(child);
  return child;
}

/** Resolves with the first stdout line matching `re`; rejects on exit or timeout. */
export function waitForLine(
  child: Child,
  re: RegExp,
  timeoutMs: number,
  lines: { on(fn: (l: string) => void): void },
): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let done = false;
    const t = setTimeout(() => {
      if (done) return;
      done = true;
      reject(new Error(`${child.name}: not ready within ${timeoutMs} ms\n${child.tail()}`));
    }, timeoutMs);
    lines.on((l) => {
      const m = re.exec(l);
      if (m && !done) {
        done = true;
        clearTimeout(t);
        resolve(m);
      }
    });
    void child.exited.then((code) => {
      if (done) return;
      done = true;
      clearTimeout(t);
      reject(new Error(`${child.name} exited (${code}) before it was ready\n${child.tail()}`));
    });
  });
}

/** A line fan-out usable as `onLine` and by waitForLine. */
export function lineHub(): { emit: (l: string) => void; on(fn: (l: string) => void): void } {
  const fns: ((l: string) => void)[] = [];
  return {
    emit: (l) => {
      for (const f of fns) f(l);
    },
    on: (f) => {
      fns.push(f);
    },
  };
}

/** CPU seconds (user + system, all threads) of a process, NaN when it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // After "(comm) ": state is field 3, utime field 14, stime field 15.
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/**
 * Seconds the main thread of a process spent runnable but waiting for a CPU (schedstat run_delay),
 * minus the CPU time of the process's other threads (a Node process's GC and libuv threads share the
 * pinned core with its main thread): about the time other work on the core took from it.
 */
export function foreignWaitSeconds(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/schedstat`, 'utf8').trim().split(/\s+/);
    const wait = Number(f[1]) / 1e9;
    const main = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
    const m = main.slice(main.lastIndexOf(')') + 2).split(' ');
    const mainCpu = (Number(m[11]) + Number(m[12])) / CLK_TCK;
    return wait - Math.max(0, cpuSeconds(pid) - mainCpu);
  } catch {
    return NaN;
  }
}

/** VmRSS and VmHWM in KiB. */
export function memory(pid: number): { rssKB: number; hwmKB: number } {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const get = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
    return { rssKB: get('VmRSS'), hwmKB: get('VmHWM') };
  } catch {
    return { rssKB: NaN, hwmKB: NaN };
  }
}

/** Percent of each core busy over `ms` (whoever used it): how busy the machine is before we start. */
export async function coreBusy(ms: number): Promise<number[]> {
  const a = coreTimes();
  await sleep(ms);
  const b = coreTimes();
  return b.map((c, i) => {
    const p = a[i];
    return p && c.total > p.total ? Math.round((100 * (c.busy - p.busy)) / (c.total - p.total)) : NaN;
  });
}

/** Busy and total jiffies per core from /proc/stat. */
export function coreTimes(): { busy: number; total: number }[] {
  const out: { busy: number; total: number }[] = [];
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const v = m[2]!.split(/\s+/).map(Number);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    out[Number(m[1])] = { busy: total - idle, total };
  }
  return out;
}

interface MeterReading {
  t: number;
  cpu: Record<string, number>;
  wait: Record<string, number>;
  cores: { busy: number; total: number }[];
}

/**
 * Measures CPU use of some processes and of each core between two calls of `lap()`: percent of one
 * core (100 = one core fully busy).
 */
export class CpuMeter {
  readonly #pids: Record<string, number[]>;
  #last: MeterReading;

  constructor(pids: Record<string, number[]>) {
    this.#pids = pids;
    this.#last = this.#read();
  }

  #read(): MeterReading {
    const cpu: Record<string, number> = {};
    const wait: Record<string, number> = {};
    for (const [k, list] of Object.entries(this.#pids)) {
      cpu[k] = list.reduce((a, p) => a + cpuSeconds(p), 0);
      wait[k] = list.reduce((a, p) => a + foreignWaitSeconds(p), 0);
    }
    return { t: performance.now(), cpu, wait, cores: coreTimes() };
  }

  /**
   * Since the previous lap: CPU percent and seconds per group, percent of the time the groups' main
   * threads waited for a CPU while runnable, and busy percent per core.
   */
  lap(): {
    seconds: number;
    pct: Record<string, number>;
    cpuSec: Record<string, number>;
    waitPct: Record<string, number>;
    corePct: number[];
  } {
    const now = this.#read();
    const dt = (now.t - this.#last.t) / 1000;
    const pct: Record<string, number> = {};
    const cpuSec: Record<string, number> = {};
    const waitPct: Record<string, number> = {};
    for (const k of Object.keys(now.cpu)) {
      cpuSec[k] = now.cpu[k]! - this.#last.cpu[k]!;
      pct[k] = dt > 0 ? (100 * cpuSec[k]) / dt : NaN;
      waitPct[k] = dt > 0 ? Math.max(0, (100 * (now.wait[k]! - this.#last.wait[k]!)) / dt) : NaN;
    }
    const corePct = now.cores.map((c, i) => {
      const p = this.#last.cores[i];
      if (!p || c.total === p.total) return NaN;
      return (100 * (c.busy - p.busy)) / (c.total - p.total);
    });
    this.#last = now;
    return { seconds: dt, pct, cpuSec, waitPct, corePct };
  }
}

/** A TCP port free on 127.0.0.1 right now (the broker binds it next; a rare race is retried by callers). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** True when something listens on 127.0.0.1:port (read from /proc/net/tcp, no connection made). */
export function isListening(port: number): boolean {
  const hex = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  try {
    return readFileSync('/proc/net/tcp', 'utf8')
      .split('\n')
      .some((l) => {
        const f = l.trim().split(/\s+/);
        return f[1] === hex && f[3] === '0A';
      });
  } catch {
    return false;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * One bench at a time on a machine: two runs would measure each other. Takes a lock file holding this
 * process's pid; when another live bench holds it, waits (saying so) up to `waitMs`. Returns a release
 * function, or undefined when the wait ran out.
 */
export async function benchLock(
  file: string,
  waitMs: number,
  say: (m: string) => void,
): Promise<(() => void) | undefined> {
  const deadline = Date.now() + waitMs;
  let told = false;
  for (;;) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
      return () => {
        try {
          if (readFileSync(file, 'utf8') === String(process.pid)) unlinkSync(file);
        } catch {
          // already gone
        }
      };
    } catch {
      let holder: number;
      try {
        holder = Number(readFileSync(file, 'utf8'));
      } catch {
        continue;
      }
      let alive: boolean;
      try {
        process.kill(holder, 0);
        alive = Number.isInteger(holder) && holder > 0;
      } catch {
        alive = false;
      }
      if (!alive) {
        // Left behind by a run that was killed.
        try {
          unlinkSync(file);
        } catch {
          // someone else took it over
        }
        continue;
      }
      if (Date.now() > deadline) return undefined;
      if (!told) {
        say(`another bench run (pid ${holder}) is using the machine; waiting for it to finish…`);
        told = true;
      }
      await sleep(2000);
    }
  }
}
