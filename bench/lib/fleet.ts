// Orchestrator side of the SDK fleet: load processes (fleet-worker.ts) pinned to the load core, each
// holding a share of the devices, driven over IPC.
import { fileURLToPath } from 'node:url';
import type { FleetCommand, FleetEvent } from './fleet-worker.ts';
import { spawnPinned, type Child } from './proc.ts';

const WORKER = fileURLToPath(new URL('./fleet-worker.ts', import.meta.url));

export class FleetWorker {
  readonly name: string;
  readonly child: Child;
  #seq = 0;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(name: string, child: Child) {
    this.name = name;
    this.child = child;
    child.proc.on('message', (m: FleetEvent) => {
      if (m.type !== 'reply') return;
      const p = this.#pending.get(m.seq);
      if (!p) return;
      this.#pending.delete(m.seq);
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(`${name}: ${m.error}`));
    });
    void child.exited.then((code) => {
      for (const p of this.#pending.values())
        p.reject(new Error(`${name} exited (${code})\n${child.tail()}`));
      this.#pending.clear();
    });
  }

  /** `profileDir`: write a --cpu-prof profile of the load process there (bench --profile). */
  static async start(name: string, cpu: number | undefined, profileDir?: string): Promise<FleetWorker> {
    const args = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, WORKER] : [WORKER];
    const child = spawnPinned(name, process.execPath, args, { cpu, ipc: true });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${name} did not start\n${child.tail()}`)), 30_000);
      child.proc.once('message', (m: FleetEvent) => {
        if (m.type === 'ready') {
          clearTimeout(t);
          resolve();
        }
      });
      void child.exited.then((code) => {
        clearTimeout(t);
        reject(new Error(`${name} exited (${code})\n${child.tail()}`));
      });
    });
    return new FleetWorker(name, child);
  }

  request<T>(cmd: FleetCommand, timeoutMs: number): Promise<T> {
    const seq = ++this.#seq;
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => {
        this.#pending.delete(seq);
        reject(new Error(`${this.name}: ${cmd.type} did not finish within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(seq, {
        resolve: (v) => {
          clearTimeout(t);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
      this.child.proc.send({ seq, cmd });
    });
  }

  async stop(): Promise<void> {
    if (this.child.proc.connected) {
      await this.request({ type: 'exit' }, 15_000).catch(() => {});
      // It exits by itself (and writes its profile, if asked to) right after answering.
      await Promise.race([this.child.exited, new Promise((r) => setTimeout(r, 10_000))]);
    }
    await this.child.stop(3000);
  }
}

/** Counts per `bucketMs` from 0 to the largest value. */
export function histogram(valuesMs: readonly number[], bucketMs: number): number[] {
  let max = 0;
  for (const v of valuesMs) if (v > max) max = v;
  const out = new Array<number>(Math.floor(max / bucketMs) + 1).fill(0);
  for (const v of valuesMs) {
    const i = Math.floor(Math.max(0, v) / bucketMs);
    out[i] = (out[i] ?? 0) + 1;
  }
  return out;
}

/** Nearest-rank quantile of unsorted values; NaN when empty. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;
}
