// Orchestrator side of a load process: start it pinned to the load core, send commands, get ticks.
import { fileURLToPath } from 'node:url';
import type { GenCommand, GenEvent, GenTick } from './generator-protocol.ts';
import { spawnPinned } from './proc.ts';
import type { Child } from './proc.ts';

const LOADGEN = fileURLToPath(new URL('./loadgen.ts', import.meta.url));

export class Generator {
  readonly name: string;
  readonly child: Child;
  #seq = 0;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly #tickFns = new Set<(t: GenTick) => void>();

  private constructor(name: string, child: Child) {
    this.name = name;
    this.child = child;
    child.proc.on('message', (m: GenEvent) => {
      if (m.type === 'reply') {
        const p = this.#pending.get(m.seq);
        if (!p) return;
        this.#pending.delete(m.seq);
        if (m.ok) p.resolve(m.result);
        else p.reject(new Error(`${name}: ${m.error}`));
      } else if (m.type === 'tick') {
        for (const f of this.#tickFns) f(m);
      }
    });
    void child.exited.then((code) => {
      for (const p of this.#pending.values()) {
        p.reject(new Error(`${name} exited (${code})\n${child.tail()}`));
      }
      this.#pending.clear();
    });
  }

  get pid(): number {
    return this.child.pid;
  }

  static async start(name: string, cpu: number | undefined): Promise<Generator> {
    const child = spawnPinned(
      name,
      process.execPath,
      // A larger young generation: the generator allocates a buffer per write.
      ['--max-semi-space-size=32', LOADGEN],
      { cpu, ipc: true },
    );
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${name} did not start\n${child.tail()}`)), 15_000);
      child.proc.once('message', (m: GenEvent) => {
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
    return new Generator(name, child);
  }

  request<T = Record<string, unknown>>(cmd: GenCommand, timeoutMs: number): Promise<T> {
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

  onTick(fn: (t: GenTick) => void): () => void {
    this.#tickFns.add(fn);
    return () => this.#tickFns.delete(fn);
  }

  async stop(): Promise<void> {
    if (this.child.proc.connected) {
      await this.request({ type: 'exit' }, 3000).catch(() => {});
    }
    await this.child.stop(2000);
  }
}
