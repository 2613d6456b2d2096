import type { SessionStore, StoredMessage, StoredSession } from './types.ts';

/** Deep copy that keeps Buffers as Buffers (structuredClone turns them into Uint8Arrays). */
function clone<T>(v: T): T {
  if (Buffer.isBuffer(v)) return Buffer.from(v) as T;
  if (Array.isArray(v)) return v.map(clone) as T;
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = clone(x);
    return out as T;
  }
  return v;
}

/** In-memory SessionStore: the default for a single node; nothing survives a restart. */
export class MemorySessionStore implements SessionStore {
  readonly #sessions = new Map<string, StoredSession>();
  readonly #queues = new Map<string, StoredMessage[]>();

  async load(clientId: string): Promise<StoredSession | undefined> {
    const s = this.#sessions.get(clientId);
    return s === undefined ? undefined : clone(s);
  }

  async save(session: StoredSession): Promise<void> {
    this.#sessions.set(session.clientId, clone(session));
  }

  async delete(clientId: string): Promise<void> {
    this.#sessions.delete(clientId);
    this.#queues.delete(clientId);
  }

  async enqueue(clientId: string, messages: StoredMessage[]): Promise<void> {
    let q = this.#queues.get(clientId);
    if (q === undefined) {
      q = [];
      this.#queues.set(clientId, q);
    }
    for (const m of messages) q.push(m);
  }

  async dequeue(clientId: string, max: number): Promise<StoredMessage[]> {
    const q = this.#queues.get(clientId);
    if (q === undefined) return [];
    const out = q.splice(0, max);
    if (q.length === 0) this.#queues.delete(clientId);
    return out;
  }
}
