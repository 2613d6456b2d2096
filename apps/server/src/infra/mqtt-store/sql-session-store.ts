// The broker's SessionStore on the platform database (SQLite or PostgreSQL, one query layer).
// Writes from all sessions are group-committed: the calls made within one event-loop turn run in one
// transaction, in the order they were made (the broker issues each session's calls one after the
// other, so per-session order is kept), and every caller resolves when that transaction commits.
import type {
  MessageProperties,
  SessionStore,
  StoredInflight,
  StoredMessage,
  StoredSession,
  StoredSubscription,
} from '@bulwark/broker';
import type { Clock, Db, SqlValue } from '../../kernel/index.ts';

export interface SqlSessionStoreOptions {
  /** This node's id: `list()` returns the sessions this node saved last. */
  node: string;
  clock: Clock;
}

interface QueueRow {
  seq: number;
  topic: string;
  payload: Uint8Array;
  qos: number;
  retain: number;
  properties: string | null;
  expires_at: number | null;
  subscription_ids: string | null;
}

interface SessionRow {
  client_id: string;
  expiry_interval: number;
  subscriptions: string;
  inflight: string;
  awaiting_release: string;
  disconnected_at: number | null;
  last_seq: number | null;
}

/** Properties as JSON: correlation data (binary) as base64. */
export function propertiesToJson(p: MessageProperties | undefined): string | null {
  if (p === undefined) return null;
  const { correlationData, ...rest } = p;
  return JSON.stringify(
    correlationData === undefined
      ? rest
      : { ...rest, correlationData: Buffer.from(correlationData).toString('base64') },
  );
}

export function propertiesFromJson(s: string | null): MessageProperties | undefined {
  if (s === null) return undefined;
  const p = JSON.parse(s) as MessageProperties & { correlationData?: string };
  if (typeof p.correlationData === 'string') {
    return { ...p, correlationData: Buffer.from(p.correlationData, 'base64') };
  }
  return p as MessageProperties;
}

function fromRow(r: QueueRow): StoredMessage {
  const m: StoredMessage = {
    seq: Number(r.seq),
    topic: r.topic,
    payload: Buffer.from(r.payload),
    qos: Number(r.qos) as StoredMessage['qos'],
    retain: Number(r.retain) === 1,
  };
  const props = propertiesFromJson(r.properties);
  if (props !== undefined) m.properties = props;
  if (r.expires_at !== null) m.expiresAt = Number(r.expires_at);
  if (r.subscription_ids !== null) m.subscriptionIds = JSON.parse(r.subscription_ids) as number[];
  return m;
}

interface InflightJson extends Omit<StoredInflight, 'payload' | 'properties'> {
  payload: string;
  properties?: string;
}

function inflightToJson(list: StoredInflight[]): string {
  return JSON.stringify(
    list.map((i): InflightJson => {
      const { payload, properties, ...rest } = i;
      const out: InflightJson = { ...rest, payload: Buffer.from(payload).toString('base64') };
      const p = propertiesToJson(properties);
      if (p !== null) out.properties = p;
      return out;
    }),
  );
}

function inflightFromJson(s: string): StoredInflight[] {
  return (JSON.parse(s) as InflightJson[]).map((i) => {
    const { payload, properties, ...rest } = i;
    const out: StoredInflight = { ...rest, payload: Buffer.from(payload, 'base64') };
    const p = propertiesFromJson(properties ?? null);
    if (p !== undefined) out.properties = p;
    return out;
  });
}

function sessionFromRow(r: SessionRow): StoredSession {
  const s: StoredSession = {
    clientId: r.client_id,
    expiryInterval: Number(r.expiry_interval),
    subscriptions: JSON.parse(r.subscriptions) as StoredSubscription[],
    inflight: inflightFromJson(r.inflight),
    awaitingRelease: JSON.parse(r.awaiting_release) as number[],
  };
  if (r.disconnected_at !== null) s.disconnectedAt = Number(r.disconnected_at);
  if (r.last_seq !== null) s.lastSeq = Number(r.last_seq);
  return s;
}

const SESSION_COLUMNS = `s.client_id, s.expiry_interval, s.subscriptions, s.inflight, s.awaiting_release,
  s.disconnected_at, (SELECT MAX(q.seq) FROM mqtt_queue q WHERE q.client_id = s.client_id) AS last_seq`;

const INSERT_ROW = '(?, ?, ?, ?, ?, ?, ?, ?, ?)';

type Write = (tx: Db) => Promise<void>;

export function createSqlSessionStore(db: Db, opts: SqlSessionStoreOptions): SessionStore {
  let pending: { write: Write; resolve: () => void; reject: (err: unknown) => void }[] = [];
  let scheduled = false;
  let running: Promise<void> = Promise.resolve();

  const commit = async (batch: typeof pending): Promise<void> => {
    try {
      await db.transaction(async (tx) => {
        for (const w of batch) await w.write(tx);
      });
      for (const w of batch) w.resolve();
    } catch (err) {
      if (batch.length === 1) {
        batch[0]!.reject(err);
        return;
      }
      // One bad write must not fail the others: retry them one by one.
      for (const w of batch) {
        await db.transaction((tx) => w.write(tx)).then(w.resolve, w.reject);
      }
    }
  };

  const write = (w: Write): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      pending.push({ write: w, resolve, reject });
      if (scheduled) return;
      scheduled = true;
      setImmediate(() => {
        scheduled = false;
        const batch = pending;
        pending = [];
        // Transactions one after the other, so a later batch never overtakes an earlier one.
        running = running.then(() => commit(batch));
      });
    });

  return {
    async load(clientId) {
      const r = await db.get<SessionRow>(
        `SELECT ${SESSION_COLUMNS} FROM mqtt_sessions s WHERE s.client_id = ?`,
        [clientId],
      );
      return r === undefined ? undefined : sessionFromRow(r);
    },

    async list() {
      const rows = await db.all<SessionRow>(
        `SELECT ${SESSION_COLUMNS} FROM mqtt_sessions s WHERE s.node = ? ORDER BY s.client_id`,
        [opts.node],
      );
      return rows.map(sessionFromRow);
    },

    save(session) {
      const params: SqlValue[] = [
        session.clientId,
        opts.node,
        session.expiryInterval,
        JSON.stringify(session.subscriptions),
        inflightToJson(session.inflight),
        JSON.stringify(session.awaitingRelease),
        session.disconnectedAt ?? null,
        opts.clock.now(),
      ];
      return write(async (tx) => {
        await tx.run(
          `INSERT INTO mqtt_sessions (client_id, node, expiry_interval, subscriptions, inflight, awaiting_release, disconnected_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (client_id) DO UPDATE SET node = excluded.node, expiry_interval = excluded.expiry_interval,
             subscriptions = excluded.subscriptions, inflight = excluded.inflight,
             awaiting_release = excluded.awaiting_release, disconnected_at = excluded.disconnected_at,
             updated_at = excluded.updated_at`,
          params,
        );
      });
    },

    delete(clientId) {
      return write(async (tx) => {
        await tx.run('DELETE FROM mqtt_queue WHERE client_id = ?', [clientId]);
        await tx.run('DELETE FROM mqtt_sessions WHERE client_id = ?', [clientId]);
      });
    },

    enqueue(clientId, messages) {
      if (messages.length === 0) return Promise.resolve();
      const rows: SqlValue[][] = messages.map((m) => [
        clientId,
        m.seq ?? 0,
        m.topic,
        m.payload,
        m.qos,
        m.retain ? 1 : 0,
        propertiesToJson(m.properties),
        m.expiresAt ?? null,
        m.subscriptionIds === undefined ? null : JSON.stringify(m.subscriptionIds),
      ]);
      return write(async (tx) => {
        for (let i = 0; i < rows.length; i += 200) {
          const chunk = rows.slice(i, i + 200);
          await tx.run(
            `INSERT INTO mqtt_queue (client_id, seq, topic, payload, qos, retain, properties, expires_at, subscription_ids)
             VALUES ${chunk.map(() => INSERT_ROW).join(', ')}`,
            chunk.flat(),
          );
        }
      });
    },

    async fetch(clientId, afterSeq, max) {
      const rows = await db.all<QueueRow>(
        `SELECT seq, topic, payload, qos, retain, properties, expires_at, subscription_ids FROM mqtt_queue
         WHERE client_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
        [clientId, afterSeq, max],
      );
      return rows.map(fromRow);
    },

    ack(clientId, seqs) {
      if (seqs.length === 0) return Promise.resolve();
      return write(async (tx) => {
        for (let i = 0; i < seqs.length; i += 500) {
          const chunk = seqs.slice(i, i + 500);
          await tx.run(
            `DELETE FROM mqtt_queue WHERE client_id = ? AND seq IN (${chunk.map(() => '?').join(', ')})`,
            [clientId, ...chunk],
          );
        }
      });
    },

    async close() {
      await new Promise<void>((resolve) => setImmediate(resolve));
      await running;
    },
  };
}
