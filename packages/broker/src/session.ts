import type { QoS } from 'mqtt-packet';
import { InflightTable } from './inflight.ts';
import { Message } from './message.ts';
import type { TreeEntry } from './subscription-tree.ts';
import type {
  Clock,
  ClientHandle,
  Logger,
  SessionStore,
  StoredMessage,
  StoredSession,
  StoredSubscription,
} from './types.ts';

/** What a session needs from its live connection. */
export interface SessionConnection {
  readonly congested: boolean;
  /** Outbound in-flight window: min(maxInflight, the client's Receive Maximum). */
  readonly window: number;
  /** Returns false when the packet could not be sent (too large for the client): treat as done. */
  sendPublish(
    msg: Message,
    qos: QoS,
    retain: boolean,
    packetId: number,
    dup: boolean,
    ids: number[] | undefined,
  ): boolean;
  sendPubrel(packetId: number): void;
}

export interface Subscription extends TreeEntry {
  readonly session: Session;
  /** The filter as the client sent it (with `$share/{group}/`). */
  readonly raw: string;
  readonly qos: QoS;
  readonly noLocal: boolean;
  readonly retainAsPublished: boolean;
  readonly retainHandling: 0 | 1 | 2;
  /** 0 when none. */
  readonly subscriptionId: number;
  /** `[subscriptionId]`, shared by every delivery that matches only this subscription. */
  readonly ids: number[] | undefined;
}

/** One outbound message: queued (state 0), PUBLISH sent (1) or PUBREL sent (2). */
export interface Outgoing {
  msg: Message;
  qos: QoS;
  retain: boolean;
  ids: number[] | undefined;
  packetId: number;
  state: 0 | 1 | 2;
  /** Position in the SessionStore queue, 0 when not stored (QoS 0, or a session without expiry). */
  seq: number;
}

export interface SessionContext {
  readonly store: SessionStore;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly maxQueued: number;
  readonly metrics: { dropped: number; [k: string]: number };
}

const STORE_BATCH = 100;
const noop = (): void => {};
/** Takes the place of a QoS 0 message evicted from the queue; skipped by pump(). */
const EVICTED = Object.freeze({}) as Outgoing;

export class Session {
  readonly clientId: string;
  readonly #ctx: SessionContext;
  conn: SessionConnection | undefined = undefined;
  /** Handle of the latest connection, for authorizeDelivery while offline. */
  handle: ClientHandle<unknown> | undefined = undefined;
  /** Keyed by the raw filter. */
  readonly subscriptions = new Map<string, Subscription>();
  /** Seconds; 0 ends the session with the connection. */
  expiryInterval = 0;
  expiryTimer: NodeJS.Timeout | undefined = undefined;
  /** Outbound QoS 1/2 in flight, by packet id (`values()` in send order). */
  readonly inflight = new InflightTable<Outgoing>();
  /** Waiting to be sent (slow consumer or window full). */
  #queue: Outgoing[] = [];
  #queueHead = 0;
  /** EVICTED entries in the queue. */
  #evicted = 0;
  /** QoS 0 messages in the queue, and the first position that may hold one (eviction scans from it). */
  #queuedQos0 = 0;
  #qos0From = 0;
  /** Inbound QoS 2 packet ids with PUBREC sent (or pending) and no PUBREL yet. */
  readonly awaitingRelease = new Set<number>();
  #nextPacketId = 1;
  /**
   * The SessionStore queue holds every unacknowledged QoS 1/2 message of a persistent session. Those
   * with seq <= #cursor are in memory (queued, in flight) or acknowledged; #stored counts the others
   * (-1 when unknown: loaded from the store).
   */
  #stored = 0;
  #storedSeq = 0;
  #cursor = 0;
  #lastSeq = 0;
  #fetching = false;
  #batch: StoredMessage[] | undefined = undefined;
  #batchDone: Promise<void> | undefined = undefined;
  #acks: number[] | undefined = undefined;
  #storeChain: Promise<unknown> = Promise.resolve();
  ended = false;
  /** Epoch ms of the disconnect the session was last saved with, undefined while connected. */
  #disconnectedAt: number | undefined = undefined;

  // Fan-out scratch fields, owned by the router (see Broker#route).
  matchGen = 0;
  matchQos: QoS = 0;
  matchRap = false;
  matchIds: number[] | undefined = undefined;

  constructor(clientId: string, ctx: SessionContext) {
    this.clientId = clientId;
    this.#ctx = ctx;
  }

  get queued(): number {
    return this.#queue.length - this.#queueHead - this.#evicted;
  }

  /** Messages known to wait in the SessionStore queue (0 when unknown after a load). */
  get storedQueued(): number {
    return this.#stored > 0 ? this.#stored : 0;
  }

  /** Runs store operations for this session one after the other, so a fetch sees earlier enqueues. */
  #chain<T>(op: () => Promise<T>): Promise<T> {
    const p = this.#storeChain.then(op);
    this.#storeChain = p.catch((err: unknown) => {
      this.#ctx.logger.error({ err, clientId: this.clientId }, 'session store operation failed');
    });
    return p;
  }

  /** Increasing per session, also across restarts and nodes (seeded from the clock and the store). */
  #nextSeq(): number {
    const now = this.#ctx.clock.now() * 1000;
    const seq = now > this.#lastSeq ? now : this.#lastSeq + 1;
    this.#lastSeq = seq;
    return seq;
  }

  /**
   * Routes a message to this session. Returns a promise when the message had to be stored (QoS 1/2
   * to a session that outlives its connection): it resolves once the store has it.
   */
  deliver(msg: Message, qos: QoS, retain: boolean, ids: number[] | undefined): Promise<void> | undefined {
    const c = this.conn;
    const durable = qos > 0 && this.expiryInterval > 0;
    if (c === undefined) {
      // Offline: QoS 0 is not kept for offline sessions (MQTT 3.1.1 §3.1.2.4 lets the server choose).
      return durable ? this.#enqueueStored(msg, qos, retain, ids) : undefined;
    }
    // Older messages are still in the store: keep the order by queueing behind them.
    if (durable && this.#stored !== 0) return this.#enqueueStored(msg, qos, retain, ids);
    let seq = 0;
    let stored: Promise<void> | undefined;
    if (durable) {
      // Sent at once and kept in the store until the client acknowledges it: a crash cannot lose it.
      msg.keep();
      seq = this.#nextSeq();
      this.#cursor = seq;
      stored = this.#append(msg.toStored(qos, retain, ids, seq));
    }
    if (this.#queueHead === this.#queue.length && !c.congested) {
      if (qos === 0) {
        c.sendPublish(msg, 0, retain, 0, false, ids);
        return undefined;
      }
      if (this.inflight.size < c.window) {
        this.#sendNew({ msg, qos, retain, ids, packetId: 0, state: 0, seq }, c);
        return stored;
      }
    }
    this.#enqueue({ msg, qos, retain, ids, packetId: 0, state: 0, seq });
    return stored;
  }

  #enqueue(o: Outgoing): void {
    o.msg.keep();
    if (this.queued >= this.#ctx.maxQueued) {
      // Full: a QoS 0 message is dropped; a QoS 1/2 one evicts the oldest queued QoS 0 message if any.
      if (o.qos === 0 || !this.#evictQos0()) {
        this.#ctx.metrics.dropped++;
        this.#ack(o.seq);
        return;
      }
    }
    if (o.qos === 0) this.#queuedQos0++;
    this.#queue.push(o);
  }

  /**
   * Drops the oldest queued QoS 0 message. O(1) amortised: nothing to scan when there is none (a QoS
   * 1 fan-in), and the scan resumes where the last one stopped.
   */
  #evictQos0(): boolean {
    if (this.#queuedQos0 === 0) return false;
    const q = this.#queue;
    let i = this.#qos0From > this.#queueHead ? this.#qos0From : this.#queueHead;
    while (i < q.length && q[i]!.qos !== 0) i++;
    // #queuedQos0 > 0 guarantees one at or after #qos0From.
    q[i] = EVICTED;
    this.#evicted++;
    this.#queuedQos0--;
    this.#qos0From = i + 1;
    this.#ctx.metrics.dropped++;
    return true;
  }

  /** The queue is empty again (sent, or handed back to the store). */
  #clearQueue(): void {
    if (this.#queue.length !== 0) this.#queue = [];
    this.#queueHead = 0;
    this.#evicted = 0;
    this.#queuedQos0 = 0;
    this.#qos0From = 0;
  }

  #sendNew(o: Outgoing, c: SessionConnection): void {
    const id = this.#allocatePacketId();
    o.packetId = id;
    o.state = 1;
    this.inflight.set(id, o);
    if (!c.sendPublish(o.msg, o.qos, o.retain, id, false, o.ids)) {
      this.inflight.delete(id);
      this.#ack(o.seq);
    }
  }

  #allocatePacketId(): number {
    const id = this.inflight.allocate(this.#nextPacketId);
    this.#nextPacketId = id === 65_535 ? 1 : id + 1;
    return id;
  }

  /** Sends queued messages while the connection and the window allow. */
  pump(): void {
    const c = this.conn;
    if (c === undefined) return;
    const now = this.#ctx.clock.now();
    while (this.#queueHead < this.#queue.length && !c.congested) {
      const o = this.#queue[this.#queueHead]!;
      if (o === EVICTED) {
        this.#queue[this.#queueHead++] = undefined as unknown as Outgoing;
        this.#evicted--;
        continue;
      }
      if (o.qos > 0 && this.inflight.size >= c.window) break;
      this.#queue[this.#queueHead++] = undefined as unknown as Outgoing;
      if (o.qos === 0) this.#queuedQos0--;
      if (o.msg.expiresAt !== 0 && o.msg.expiresAt <= now) {
        // [MQTT-3.3.2-5] v5 an expired message is not delivered.
        this.#ack(o.seq);
        continue;
      }
      if (o.qos === 0) c.sendPublish(o.msg, 0, o.retain, 0, false, o.ids);
      else this.#sendNew(o, c);
    }
    if (this.#queueHead === this.#queue.length) {
      this.#clearQueue();
      if (this.#stored !== 0 && !this.#fetching) this.#fetchStored();
    } else if (this.#queueHead > 1024) {
      this.#queue = this.#queue.slice(this.#queueHead);
      this.#qos0From = this.#qos0From > this.#queueHead ? this.#qos0From - this.#queueHead : 0;
      this.#queueHead = 0;
    }
  }

  onPuback(packetId: number): void {
    const o = this.inflight.get(packetId);
    // [MQTT-4.3.2-3] only a PUBACK for a QoS 1 message in flight completes it; others are ignored.
    if (o === undefined || o.qos !== 1) return;
    this.inflight.delete(packetId);
    this.#ack(o.seq);
    this.pump();
  }

  /** Returns true when the PUBREC matched a QoS 2 message in flight. */
  onPubrec(packetId: number, reasonCode: number): boolean {
    const o = this.inflight.get(packetId);
    if (o === undefined || o.qos !== 2) return false;
    // The receiver owns the message now; only the PUBREL state remains (kept with the session).
    this.#ack(o.seq);
    o.seq = 0;
    if (reasonCode >= 0x80) {
      // [MQTT-4.4.0-2] v5 a PUBREC with an error code ends the exchange: not retransmitted.
      this.inflight.delete(packetId);
      this.pump();
      return true;
    }
    o.state = 2;
    return true;
  }

  onPubcomp(packetId: number): void {
    const o = this.inflight.get(packetId);
    if (o === undefined || o.state !== 2) return;
    this.inflight.delete(packetId);
    this.pump();
  }

  /** On reconnect with a present session: resend what was in flight, then the queue. */
  resume(c: SessionConnection): void {
    this.conn = c;
    // [MQTT-4.4.0-1] unacknowledged PUBLISH (with DUP) and PUBREL are resent in their original order.
    for (const o of this.inflight.values()) {
      if (o.state === 2) c.sendPubrel(o.packetId);
      else c.sendPublish(o.msg, o.qos, o.retain, o.packetId, true, o.ids);
    }
    this.pump();
  }

  /** The connection went away but the session stays: what was queued in memory is in the store. */
  detach(): void {
    this.conn = undefined;
    let first = 0;
    let n = 0;
    for (let i = this.#queueHead; i < this.#queue.length; i++) {
      const o = this.#queue[i]!;
      if (o === EVICTED || o.seq === 0) continue; // QoS 0 is not kept for offline sessions
      if (first === 0) first = o.seq;
      n++;
    }
    this.#clearQueue();
    this.#rewind(first, n);
  }

  /** Messages from `first` on (n of them) left memory but are still in the store: fetch them again. */
  #rewind(first: number, n: number): void {
    if (n === 0) return;
    this.#cursor = first - 1;
    this.#storedSeq += n;
    if (this.#stored !== -1) this.#stored += n;
  }

  #enqueueStored(
    msg: Message,
    qos: QoS,
    retain: boolean,
    ids: number[] | undefined,
  ): Promise<void> | undefined {
    if (this.#stored >= this.#ctx.maxQueued) {
      this.#ctx.metrics.dropped++;
      return undefined;
    }
    if (this.#stored !== -1) this.#stored++;
    this.#storedSeq++;
    msg.keep();
    return this.#append(msg.toStored(qos, retain, ids, this.#nextSeq()));
  }

  /** Appends to the store queue: one store call per session per tick. */
  #append(m: StoredMessage): Promise<void> {
    if (this.#batch === undefined) {
      const batch: StoredMessage[] = (this.#batch = []);
      const done = new Promise<void>((resolve, reject) => {
        process.nextTick(() => {
          this.#batch = undefined;
          this.#batchDone = undefined;
          this.#chain(() => this.#ctx.store.enqueue(this.clientId, batch)).then(resolve, reject);
        });
      });
      // Failures are logged by #chain; callers that do not wait must not cause an unhandled rejection.
      done.catch(noop);
      this.#batchDone = done;
    }
    this.#batch.push(m);
    return this.#batchDone!;
  }

  /** The message left the session (acknowledged, expired, undeliverable): remove it from the store. */
  #ack(seq: number): void {
    if (seq === 0) return;
    if (this.#acks === undefined) {
      const acks: number[] = (this.#acks = []);
      process.nextTick(() => {
        this.#acks = undefined;
        void this.#chain(() => this.#ctx.store.ack(this.clientId, acks));
      });
    }
    this.#acks.push(seq);
  }

  #fetchStored(): void {
    this.#fetching = true;
    const seqAtIssue = this.#storedSeq;
    const after = this.#cursor;
    const max = Math.max(1, Math.min(STORE_BATCH, this.#ctx.maxQueued));
    // Let this tick's batch reach the store first.
    process.nextTick(() => {
      this.#chain(() => this.#ctx.store.fetch(this.clientId, after, max))
        .then(
          (messages) => {
            this.#fetching = false;
            if (this.ended) return;
            if (messages.length < max) this.#stored = this.#storedSeq - seqAtIssue;
            else if (this.#stored !== -1) this.#stored = Math.max(0, this.#stored - messages.length);
            if (messages.length === 0) {
              if (this.#stored !== 0) this.pump();
              return;
            }
            const last = messages[messages.length - 1]!.seq ?? 0;
            if (last > this.#cursor) this.#cursor = last;
            if (last > this.#lastSeq) this.#lastSeq = last;
            const c = this.conn;
            if (c === undefined) {
              // Went offline meanwhile: they stay in the store.
              this.#rewind(messages[0]!.seq ?? 0, messages.length);
              return;
            }
            // Messages restored as in flight (resent with their packet ids) are also still in the store.
            let inflightSeqs: Set<number> | undefined;
            for (const o of this.inflight.values()) if (o.seq !== 0) (inflightSeqs ??= new Set()).add(o.seq);
            for (const m of messages) {
              const seq = m.seq ?? 0;
              if (inflightSeqs?.has(seq) === true) continue;
              this.#queue.push({
                msg: Message.fromStored(m),
                qos: m.qos,
                retain: m.retain,
                ids: m.subscriptionIds,
                packetId: 0,
                state: 0,
                seq,
              });
            }
            this.pump();
          },
          () => {
            this.#fetching = false;
          },
        )
        .catch((err: unknown) =>
          this.#ctx.logger.error({ err, clientId: this.clientId }, 'queued delivery failed'),
        );
    });
  }

  /** Marks the store as possibly holding queued messages (session loaded from the store). */
  markStoredUnknown(): void {
    this.#stored = -1;
    this.#cursor = 0;
  }

  /** Settles when the store operations issued so far have finished. */
  idle(): Promise<unknown> {
    return this.#storeChain;
  }

  save(disconnectedAt: number | undefined): void {
    this.#disconnectedAt = disconnectedAt;
    const snapshot = this.snapshot(disconnectedAt);
    void this.#chain(() => this.#ctx.store.save(snapshot));
  }

  /** Saves the current state again (after a change of subscriptions), keeping the disconnect time. */
  resave(): void {
    this.save(this.#disconnectedAt);
  }

  remove(): void {
    void this.#chain(() => this.#ctx.store.delete(this.clientId));
  }

  snapshot(disconnectedAt: number | undefined): StoredSession {
    const s: StoredSession = {
      clientId: this.clientId,
      expiryInterval: this.expiryInterval,
      subscriptions: [],
      inflight: [],
      awaitingRelease: [...this.awaitingRelease],
    };
    s.subscriptions = this.storedSubscriptions();
    for (const o of this.inflight.values()) {
      s.inflight.push({
        ...o.msg.toStored(o.qos, o.retain, o.ids, o.seq),
        packetId: o.packetId,
        state: o.state === 2 ? 'pubrel' : 'publish',
      });
    }
    if (disconnectedAt !== undefined) s.disconnectedAt = disconnectedAt;
    return s;
  }

  /** The subscriptions as the SessionStore keeps them. */
  storedSubscriptions(): StoredSubscription[] {
    const out: StoredSubscription[] = [];
    for (const sub of this.subscriptions.values()) {
      const stored: StoredSubscription = {
        filter: sub.raw,
        qos: sub.qos,
        noLocal: sub.noLocal,
        retainAsPublished: sub.retainAsPublished,
        retainHandling: sub.retainHandling,
      };
      if (sub.subscriptionId !== 0) stored.subscriptionIdentifier = sub.subscriptionId;
      out.push(stored);
    }
    return out;
  }

  /** Restores in-flight state from the store. Subscriptions are restored by the broker. */
  restoreInflight(stored: StoredSession): void {
    for (const i of stored.inflight) {
      this.inflight.set(i.packetId, {
        msg: Message.fromStored(i),
        qos: i.qos,
        retain: i.retain,
        ids: i.subscriptionIds,
        packetId: i.packetId,
        state: i.state === 'pubrel' ? 2 : 1,
        seq: i.state === 'pubrel' ? 0 : (i.seq ?? 0),
      });
    }
    for (const id of stored.awaitingRelease) this.awaitingRelease.add(id);
    if (stored.lastSeq !== undefined && stored.lastSeq > this.#lastSeq) this.#lastSeq = stored.lastSeq;
    this.#disconnectedAt = stored.disconnectedAt;
  }
}
