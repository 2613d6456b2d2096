// The telemetry outbox: every message waits here until the platform acknowledged it (PUBACK, sent only
// after the platform committed it). With a state directory it is an append-only file, so messages
// survive a restart of the device process as well as lost connections; they are sent again in order.
//
// File format, one JSON object per line:
//   {"s":<seq>,"t":"<topic>","p":"<payload base64>","ts":<epoch ms>}   a message
//   {"a":<seq>}                                                        message <seq> is done (acknowledged or refused)
// A torn last line (crash mid-write) is ignored. The file is rewritten with only the live messages
// when acknowledgement records dominate it, and truncated when nothing is pending.

import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { syncDir } from './key-store.ts';

export interface OutboxEntry {
  readonly seq: number;
  readonly topic: string;
  readonly payload: Buffer;
  /** When the application handed the message over (epoch ms). */
  readonly ts: number;
}

export interface OutboxOptions {
  /** Cap on the pending messages' size (topic + payload bytes). Default 8 MiB. */
  maxBytes?: number;
  /** When full: refuse the new message (default) or drop the oldest pending ones to make room. */
  whenFull?: 'reject' | 'drop-oldest';
  /** fsync after every append: survives power loss, costs flash writes. Default false (survives process crashes). */
  fsync?: boolean;
}

export class OutboxFullError extends Error {
  override readonly name = 'OutboxFullError';
  readonly code = 'OUTBOX_FULL';
}

export interface Outbox {
  /** Pending messages, oldest first. */
  entries(): IterableIterator<OutboxEntry>;
  get(seq: number): OutboxEntry | undefined;
  readonly count: number;
  readonly bytes: number;
  /**
   * Stores a message; resolves once it is written. Rejects with OutboxFullError when full (whenFull
   * 'reject'); with 'drop-oldest' returns the entries dropped to make room.
   */
  append(topic: string, payload: Buffer, ts: number): Promise<{ entry: OutboxEntry; dropped: OutboxEntry[] }>;
  /** The message is done (acknowledged, or refused for good). */
  remove(seq: number): Promise<void>;
  close(): Promise<void>;
}

const DEFAULT_MAX_BYTES = 8 * 1024 * 1024;
const COMPACT_MIN_FILE_BYTES = 256 * 1024;

const sizeOf = (topic: string, payload: Buffer) => Buffer.byteLength(topic) + payload.length;

function createQueue(options: OutboxOptions) {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  if (!Number.isInteger(maxBytes) || maxBytes < 1024) throw new RangeError('outbox maxBytes must be >= 1024');
  const pending = new Map<number, OutboxEntry>();
  let bytes = 0;
  return {
    pending,
    maxBytes,
    get bytes() {
      return bytes;
    },
    add(e: OutboxEntry) {
      pending.set(e.seq, e);
      bytes += sizeOf(e.topic, e.payload);
    },
    delete(seq: number): boolean {
      const e = pending.get(seq);
      if (!e) return false;
      pending.delete(seq);
      bytes -= sizeOf(e.topic, e.payload);
      return true;
    },
    /** The entries to drop (oldest first) so that `size` more bytes fit, or undefined if it cannot fit. */
    makeRoom(size: number): OutboxEntry[] | undefined {
      if (size > maxBytes) return undefined;
      if (bytes + size <= maxBytes) return [];
      if (options.whenFull !== 'drop-oldest') return undefined;
      const out: OutboxEntry[] = [];
      let freed = 0;
      for (const e of pending.values()) {
        if (bytes - freed + size <= maxBytes) break;
        out.push(e);
        freed += sizeOf(e.topic, e.payload);
      }
      return out;
    },
  };
}

function fullError(size: number, q: { bytes: number; maxBytes: number }): OutboxFullError {
  return new OutboxFullError(
    `outbox full: ${q.bytes} of ${q.maxBytes} bytes pending, ${size} more do not fit`,
  );
}

/** An outbox in memory only: survives lost connections, not a restart. */
export function memoryOutbox(options: OutboxOptions = {}): Outbox {
  const q = createQueue(options);
  let seq = 0;
  return {
    entries: () => q.pending.values(),
    get: (s) => q.pending.get(s),
    get count() {
      return q.pending.size;
    },
    get bytes() {
      return q.bytes;
    },
    async append(topic, payload, ts) {
      const size = sizeOf(topic, payload);
      const dropped = q.makeRoom(size);
      if (!dropped) throw fullError(size, q);
      for (const d of dropped) q.delete(d.seq);
      const entry = { seq: ++seq, topic, payload, ts };
      q.add(entry);
      return { entry, dropped };
    },
    async remove(s) {
      q.delete(s);
    },
    async close() {},
  };
}

/** Reads an outbox file: the pending entries in order, the next sequence number, and where valid data ends. */
export function parseOutboxFile(text: string): {
  entries: OutboxEntry[];
  nextSeq: number;
  validBytes: number;
  skipped: number;
} {
  const live = new Map<number, OutboxEntry>();
  let maxSeq = 0;
  let skipped = 0;
  let offset = 0;
  let validBytes = 0;
  while (offset < text.length) {
    const nl = text.indexOf('\n', offset);
    if (nl < 0) break; // torn last line
    const line = text.slice(offset, nl);
    offset = nl + 1;
    validBytes = Buffer.byteLength(text.slice(0, offset));
    if (line === '') continue;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch {
      skipped++;
      continue;
    }
    if (typeof rec !== 'object' || rec === null) {
      skipped++;
      continue;
    }
    const r = rec as { s?: unknown; t?: unknown; p?: unknown; ts?: unknown; a?: unknown };
    if (typeof r.a === 'number' && Number.isSafeInteger(r.a)) {
      live.delete(r.a);
      maxSeq = Math.max(maxSeq, r.a);
    } else if (
      typeof r.s === 'number' &&
      Number.isSafeInteger(r.s) &&
      r.s > 0 &&
      typeof r.t === 'string' &&
      typeof r.p === 'string' &&
      typeof r.ts === 'number'
    ) {
      live.set(r.s, { seq: r.s, topic: r.t, payload: Buffer.from(r.p, 'base64'), ts: r.ts });
      maxSeq = Math.max(maxSeq, r.s);
    } else {
      skipped++;
    }
  }
  const entries = [...live.values()].sort((a, b) => a.seq - b.seq);
  return { entries, nextSeq: maxSeq + 1, validBytes, skipped };
}

const record = (e: OutboxEntry) =>
  JSON.stringify({ s: e.seq, t: e.topic, p: e.payload.toString('base64'), ts: e.ts }) + '\n';

/** An outbox in an append-only file (mode 0600): survives restarts of the device process. */
export async function fileOutbox(path: string, options: OutboxOptions = {}): Promise<Outbox> {
  const q = createQueue(options);
  let handle: FileHandle = await open(path, 'a+', 0o600);
  const text = (await handle.readFile()).toString('utf8');
  const parsed = parseOutboxFile(text);
  for (const e of parsed.entries) q.add(e);
  let seq = parsed.nextSeq - 1;
  let fileBytes = Buffer.byteLength(text);
  if (parsed.validBytes !== fileBytes) {
    await handle.truncate(parsed.validBytes);
    fileBytes = parsed.validBytes;
  }
  // Writes are serialized so the file keeps the order of calls.
  let chain: Promise<void> = Promise.resolve();
  let closed = false;
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = chain.then(fn);
    chain = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  };
  const write = async (data: string) => {
    await handle.appendFile(data);
    fileBytes += Buffer.byteLength(data);
    if (options.fsync) await handle.sync();
  };
  const compact = async () => {
    if (q.pending.size === 0) {
      await handle.truncate(0);
      fileBytes = 0;
      return;
    }
    // Base64 and JSON make a record ~1.4x its message; rewrite once acknowledgements clearly dominate.
    if (fileBytes < COMPACT_MIN_FILE_BYTES || fileBytes < 4 * q.bytes) return;
    const tmp = `${path}.tmp`;
    await rm(tmp, { force: true });
    const out = await open(tmp, 'wx', 0o600);
    let size = 0;
    try {
      let buf = '';
      for (const e of q.pending.values()) {
        buf += record(e);
        if (buf.length > 64 * 1024) {
          await out.appendFile(buf);
          size += Buffer.byteLength(buf);
          buf = '';
        }
      }
      await out.appendFile(buf);
      size += Buffer.byteLength(buf);
      await out.sync();
    } finally {
      await out.close();
    }
    await rename(tmp, path);
    await syncDir(dirname(path));
    await handle.close();
    handle = await open(path, 'a+', 0o600);
    fileBytes = size;
  };

  return {
    entries: () => q.pending.values(),
    get: (s) => q.pending.get(s),
    get count() {
      return q.pending.size;
    },
    get bytes() {
      return q.bytes;
    },
    append(topic, payload, ts) {
      const size = sizeOf(topic, payload);
      const dropped = q.makeRoom(size);
      if (!dropped) return Promise.reject(fullError(size, q));
      for (const d of dropped) q.delete(d.seq);
      const entry: OutboxEntry = { seq: ++seq, topic, payload, ts };
      q.add(entry);
      return serial(async () => {
        if (closed) throw new Error('outbox closed');
        await write(dropped.map((d) => JSON.stringify({ a: d.seq }) + '\n').join('') + record(entry));
        return { entry, dropped };
      });
    },
    remove(s) {
      if (!q.delete(s)) return Promise.resolve();
      return serial(async () => {
        if (closed) return;
        await write(JSON.stringify({ a: s }) + '\n');
        await compact();
      });
    },
    close() {
      return serial(async () => {
        if (closed) return;
        closed = true;
        await handle.close();
      });
    },
  };
}
