// Cluster events between server nodes that share one database: revocations and CA changes reach every
// node within milliseconds. PostgreSQL: LISTEN/NOTIFY on a channel derived from the schema. The embedded
// default (SQLite, one process) uses the in-process hub; tests also use it to join two instances.
import { createHash, randomUUID } from 'node:crypto';
import pg from 'pg';
import type { Logger } from '../../kernel/index.ts';
import type { ClusterEvents } from '../../modules/pki/index.ts';

type Handler = (message: Record<string, unknown>) => void;

/** PostgreSQL's NOTIFY payload limit is 8000 bytes. */
export const MAX_PAYLOAD_BYTES = 7900;

class Subscribers {
  private readonly handlers = new Map<string, Set<Handler>>();
  private readonly resync = new Set<() => void>();
  private readonly logger: Logger | undefined;
  constructor(logger: Logger | undefined) {
    this.logger = logger;
  }

  subscribe(channel: string, handler: Handler): () => void {
    let set = this.handlers.get(channel);
    if (!set) this.handlers.set(channel, (set = new Set()));
    set.add(handler);
    return () => set.delete(handler);
  }

  onResync(listener: () => void): () => void {
    this.resync.add(listener);
    return () => this.resync.delete(listener);
  }

  deliver(channel: string, message: Record<string, unknown>): void {
    for (const h of this.handlers.get(channel) ?? []) {
      try {
        h(message);
      } catch (err) {
        this.logger?.error({ err: String(err), channel }, 'cluster event handler failed');
      }
    }
  }

  resynced(): void {
    for (const l of this.resync) l();
  }
}

/** Joins the in-process nodes that share it. */
export interface LocalHub {
  readonly members: Set<{ nodeId: string; receive(channel: string, message: Record<string, unknown>): void }>;
}

export function createLocalHub(): LocalHub {
  return { members: new Set() };
}

/** In-process cluster events: every node on the same hub receives the others' messages. */
export function createLocalClusterEvents(hub: LocalHub = createLocalHub(), logger?: Logger): ClusterEvents {
  const nodeId = randomUUID();
  const subs = new Subscribers(logger);
  const member = {
    nodeId,
    receive: (channel: string, message: Record<string, unknown>) =>
      setImmediate(() => subs.deliver(channel, structuredClone(message))),
  };
  hub.members.add(member);
  return {
    nodeId,
    async publish(channel, message) {
      for (const m of hub.members) if (m.nodeId !== nodeId) m.receive(channel, message);
    },
    subscribe: (channel, handler) => subs.subscribe(channel, handler),
    onResync: (listener) => subs.onResync(listener),
    async close() {
      hub.members.delete(member);
    },
  };
}

export interface PostgresClusterOptions {
  url: string;
  /** Nodes share events only within one schema (test runs use one schema each). */
  schema?: string;
  logger: Logger;
  /** Reconnect backoff bounds, ms. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/** The NOTIFY channel for a schema: an identifier, at most 63 bytes, the same on every node. */
export function channelFor(schema: string | undefined): string {
  return `bulwark_events_${createHash('sha256')
    .update(schema ?? 'public')
    .digest('hex')
    .slice(0, 16)}`;
}

/**
 * Cluster events over PostgreSQL LISTEN/NOTIFY. One dedicated connection listens; notifications are
 * sent through a small pool so a publisher is not blocked while the listener reconnects. After a
 * reconnect `onResync` listeners run: notifications sent meanwhile are lost, state must be reloaded.
 */
export async function createPostgresClusterEvents(opts: PostgresClusterOptions): Promise<ClusterEvents> {
  const nodeId = randomUUID();
  const channel = channelFor(opts.schema);
  const logger = opts.logger.child({ component: 'cluster' });
  const subs = new Subscribers(logger);
  const pool = new pg.Pool({ connectionString: opts.url, max: 2 });
  pool.on('error', (err) => logger.warn({ err: String(err) }, 'cluster publish connection error'));
  const minBackoff = opts.minBackoffMs ?? 100;
  const maxBackoff = opts.maxBackoffMs ?? 5000;
  let closed = false;
  let listener: pg.Client | undefined;
  let retry: NodeJS.Timeout | undefined;
  let backoff = minBackoff;

  const onNotification = (n: pg.Notification) => {
    if (n.channel !== channel || !n.payload) return;
    let parsed: { o?: unknown; c?: unknown; m?: unknown };
    try {
      parsed = JSON.parse(n.payload) as typeof parsed;
    } catch {
      return;
    }
    if (parsed.o === nodeId || typeof parsed.c !== 'string' || typeof parsed.m !== 'object' || !parsed.m)
      return;
    subs.deliver(parsed.c, parsed.m as Record<string, unknown>);
  };

  async function connect(): Promise<void> {
    const client = new pg.Client({ connectionString: opts.url });
    client.on('notification', onNotification);
    client.on('error', (err) => {
      logger.warn({ err: String(err) }, 'cluster listener connection lost');
      reconnect(client);
    });
    client.on('end', () => reconnect(client));
    await client.connect();
    await client.query(`LISTEN ${channel}`);
    listener = client;
  }

  function reconnect(client: pg.Client): void {
    if (closed || listener !== client) return;
    listener = undefined;
    client.removeAllListeners('end');
    void client.end().catch(() => {});
    const attempt = () => {
      retry = undefined;
      if (closed) return;
      connect().then(
        () => {
          backoff = minBackoff;
          logger.info({}, 'cluster listener reconnected');
          subs.resynced();
        },
        (err: unknown) => {
          logger.warn({ err: String(err), retryMs: backoff }, 'cluster listener reconnect failed');
          backoff = Math.min(backoff * 2, maxBackoff);
          retry = setTimeout(attempt, backoff);
          retry.unref();
        },
      );
    };
    retry = setTimeout(attempt, backoff);
    retry.unref();
  }

  await connect();
  return {
    nodeId,
    async publish(name, message) {
      const payload = JSON.stringify({ o: nodeId, c: name, m: message });
      if (Buffer.byteLength(payload) > MAX_PAYLOAD_BYTES)
        throw new Error(`cluster event too large for NOTIFY`);
      await pool.query('SELECT pg_notify($1, $2)', [channel, payload]);
    },
    subscribe: (name, handler) => subs.subscribe(name, handler),
    onResync: (l) => subs.onResync(l),
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      const l = listener;
      listener = undefined;
      if (l) {
        l.removeAllListeners('end');
        await l.end().catch(() => {});
      }
      await pool.end().catch(() => {});
    },
  };
}
