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
  /** Per client, in seq order (the broker appends in increasing seq). */
  readonly #queues = new Map<string, StoredMessage[]>();
  readonly #lastSeq = new Map<string, number>();

  #withSeq(s: StoredSession): StoredSession {
    const out = clone(s);
    const last = this.#lastSeq.get(s.clientId);
    if (last !== undefined) out.lastSeq = last;
    return out;
  }

  async load(clientId: string): Promise<StoredSession | undefined> {
    const s = this.#sessions.get(clientId);
    return s === undefined ? undefined : this.#withSeq(s);
  }

  async list(): Promise<StoredSession[]> {
    return [...this.#sessions.values()].map((s) => this.#withSeq(s));
  }

  async save(session: StoredSession): Promise<void> {
    this.#sessions.set(session.clientId, clone(session));
  }

  async delete(clientId: string): Promise<void> {
    this.#sessions.delete(clientId);
    this.#queues.delete(clientId);
    this.#lastSeq.delete(clientId);
  }

  async enqueue(clientId: string, messages: StoredMessage[]): Promise<void> {
    let q = this.#queues.get(clientId);
    if (q === undefined) {
      q = [];
      this.#queues.set(clientId, q);
    }
    let last = this.#lastSeq.get(clientId) ?? 0;
    for (const m of messages) {
      const seq = m.seq ?? 0;
      if (seq > last) last = seq;
      q.push(m);
    }
    this.#lastSeq.set(clientId, last);
  }

  async fetch(clientId: string, afterSeq: number, max: number): Promise<StoredMessage[]> {
    const q = this.#queues.get(clientId);
    if (q === undefined) return [];
    const out: StoredMessage[] = [];
    for (const m of q) {
      if ((m.seq ?? 0) <= afterSeq) continue;
      out.push(m);
      if (out.length >= max) break;
    }
    return out;
  }

  async ack(clientId: string, seqs: number[]): Promise<void> {
    const q = this.#queues.get(clientId);
    if (q === undefined) return;
    // Acknowledgements mostly come in queue order: take them off the front.
    const gone = new Set(seqs);
    let head = 0;
    while (head < q.length && gone.has(q[head]!.seq ?? 0)) gone.delete(q[head++]!.seq ?? 0);
    if (head > 0) q.splice(0, head);
    const rest = gone.size > 0 ? q.filter((m) => !gone.has(m.seq ?? 0)) : q;
    if (rest.length === 0) this.#queues.delete(clientId);
    else if (rest !== q) this.#queues.set(clientId, rest);
  }
}
