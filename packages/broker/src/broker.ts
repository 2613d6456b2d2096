import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { IPublishPacket, QoS } from 'mqtt-packet';
import { Connection, messagePropertiesOf } from './connection.ts';
import type { Will } from './connection.ts';
import { resolveLimits, SESSION_NEVER_EXPIRES } from './limits.ts';
import { LocalRouter } from './local-router.ts';
import { MemoryRetainedStore } from './memory-retained-store.ts';
import { MemorySessionStore } from './memory-session-store.ts';
import { asBuffer, Message } from './message.ts';
import { ReasonCode } from './reason-codes.ts';
import { Session } from './session.ts';
import type { SessionContext, Subscription } from './session.ts';
import { SubscriptionTree } from './subscription-tree.ts';
import type { MatchVisitor, SharedGroup } from './subscription-tree.ts';
import { isValidTopicName, parseSubscriptionFilter } from './topic.ts';
import type {
  AuthzResult,
  Broker,
  BrokerHooks,
  BrokerLimits,
  BrokerMetrics,
  BrokerOptions,
  ClientHandle,
  Clock,
  ClusterRouter,
  Logger,
  PublishOptions,
  RefusedInfo,
  RetainedStore,
  RoutedMessage,
  SessionStore,
  StoredSession,
  SubscriptionInfo,
  TransportInfo,
} from './types.ts';

const noop = (): void => {};
const silentLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop };
/** setTimeout's largest delay. */
const MAX_TIMER_MS = 2_147_483_647;

/** What connections need from the broker. */
export interface BrokerCore<P> {
  readonly hooks: BrokerHooks<P>;
  readonly limits: Readonly<BrokerLimits>;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly metrics: BrokerMetrics;
  generateClientId(): string;
  attach(
    conn: Connection<P>,
    clientId: string,
    clean: boolean,
    expiry: number,
  ): { session: Session; present: boolean } | Promise<{ session: Session; present: boolean } | undefined>;
  connected(conn: Connection<P>): void;
  detached(conn: Connection<P>, wasOpen: boolean, reason: string, reasonCode: number | undefined): void;
  refused(info: RefusedInfo<P>): void;
  /** Returns a promise when the message must reach the SessionStore before it is acknowledged. */
  routeInbound(conn: Connection<P>, packet: IPublishPacket): Promise<unknown> | undefined;
  subscribe(
    session: Session,
    raw: string,
    filter: string,
    group: string | undefined,
    qos: QoS,
    noLocal: boolean,
    retainAsPublished: boolean,
    retainHandling: 0 | 1 | 2,
    subscriptionId: number,
  ): boolean;
  unsubscribe(session: Session, raw: string): boolean;
  sendRetained(session: Session, filter: string, qos: QoS, ids: number[] | undefined): void;
}

interface PendingWill<P> {
  handle: ClientHandle<P>;
  will: Will;
  timer: NodeJS.Timeout | undefined;
}

/** Collects the sessions a topic matches; per-session merge fields live on the Session. */
class Fanout implements MatchVisitor<Subscription> {
  gen = 0;
  origin: string | undefined = undefined;
  topic = '';
  readonly matched: Session[] = [];
  shared: Subscription[] | undefined = undefined;

  entry(sub: Subscription): void {
    // [MQTT-3.8.3-3] v5 No Local: not back to the publishing client.
    if (sub.noLocal && sub.clientId === this.origin) return;
    const s = sub.session;
    if (s.matchGen !== this.gen) {
      s.matchGen = this.gen;
      s.matchQos = sub.qos;
      s.matchRap = sub.retainAsPublished;
      s.matchIds = sub.ids;
      this.matched.push(s);
      return;
    }
    // 3.1.1 [MQTT-3.3.5-1], v5 [MQTT-3.3.4-2]: overlapping subscriptions: one message with the highest QoS and
    // [MQTT-3.3.4-3] v5 all their subscription identifiers.
    if (sub.qos > s.matchQos) s.matchQos = sub.qos;
    if (sub.retainAsPublished) s.matchRap = true;
    if (sub.subscriptionId !== 0) {
      s.matchIds = s.matchIds === undefined ? sub.ids : [...s.matchIds, sub.subscriptionId];
    }
  }

  group(g: SharedGroup<Subscription>): void {
    // v5 §4.8.2 one member of the share group gets the message: round robin, preferring
    // connected members that keep up.
    const n = g.members.length;
    let pick: Subscription | undefined;
    for (let k = 0; k < n; k++) {
      const i = (g.next + k) % n;
      const m = g.members[i]!;
      const c = m.session.conn;
      if (c !== undefined && !c.congested) {
        pick = m;
        g.next = (i + 1) % n;
        break;
      }
    }
    if (pick === undefined) {
      pick = g.members[g.next % n]!;
      g.next = (g.next + 1) % n;
    }
    (this.shared ??= []).push(pick);
  }
}

export class BrokerImpl<P> implements Broker<P>, BrokerCore<P> {
  readonly hooks: BrokerHooks<P>;
  readonly limits: Readonly<BrokerLimits>;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly metrics: BrokerMetrics;
  readonly #store: SessionStore;
  readonly #retained: RetainedStore;
  readonly #router: ClusterRouter;
  readonly #forwarding: boolean;
  readonly #generateClientId: () => string;
  readonly #sessionContext: SessionContext;
  /** Open (or opening) connections by client id. */
  readonly #connections = new Map<string, Connection<P>>();
  /** Every connection, including those that have not sent CONNECT yet. */
  readonly #all = new Set<Connection<P>>();
  readonly #sessions = new Map<string, Session>();
  /** Store operations of ended sessions still running, by client id. */
  readonly #ending = new Map<string, Promise<unknown>>();
  readonly #tree = new SubscriptionTree<Subscription>();
  /** Raw filters with local subscribers (reference counted), for the cluster router. */
  readonly #interest = new Map<string, number>();
  readonly #wills = new Map<string, PendingWill<P>>();
  readonly #fanout = new Fanout();
  #fanoutBusy = false;
  #gen = 0;
  #closed = false;

  constructor(options: BrokerOptions<P>) {
    if (options === null || typeof options !== 'object' || typeof options.hooks !== 'object') {
      throw new TypeError('createBroker: options.hooks is required');
    }
    const hooks = options.hooks;
    for (const name of ['authenticate', 'authorizePublish', 'authorizeSubscribe'] as const) {
      if (typeof hooks[name] !== 'function')
        throw new TypeError(`createBroker: hooks.${name} must be a function`);
    }
    this.hooks = hooks;
    this.limits = resolveLimits(options.limits);
    this.metrics = this.#createMetrics();
    this.logger = options.logger ?? silentLogger;
    this.clock = options.clock ?? Date;
    this.#store = options.sessions ?? new MemorySessionStore();
    this.#retained = options.retained ?? new MemoryRetainedStore();
    this.#router = options.router ?? new LocalRouter();
    this.#forwarding = !(this.#router instanceof LocalRouter);
    this.#generateClientId = options.generateClientId ?? (() => `auto-${randomUUID()}`);
    this.#sessionContext = {
      store: this.#store,
      clock: this.clock,
      logger: this.logger,
      maxQueued: this.limits.maxQueued,
      metrics: this.metrics,
    };
    this.#router.attach((m) => this.#fromCluster(m), {
      sessionTaken: (clientId) => this.#sessionTaken(clientId),
    });
  }

  #createMetrics(): BrokerMetrics {
    const m = {
      connections: 0,
      messagesIn: 0,
      messagesOut: 0,
      dropped: 0,
      refused: 0,
      sessions: 0,
      subscriptions: 0,
      socketPauses: 0,
    };
    const all = this.#all;
    const sessions = this.#sessions;
    Object.defineProperties(m, {
      pausedSockets: {
        enumerable: true,
        get: () => {
          let n = 0;
          for (const c of all) if (c.paused) n++;
          return n;
        },
      },
      pendingInbound: {
        enumerable: true,
        get: () => {
          let n = 0;
          for (const c of all) n += c.pendingInbound;
          return n;
        },
      },
      queued: {
        enumerable: true,
        get: () => {
          let n = 0;
          for (const s of sessions.values()) n += s.queued + s.storedQueued;
          return n;
        },
      },
      inflight: {
        enumerable: true,
        get: () => {
          let n = 0;
          for (const s of sessions.values()) n += s.inflight.size;
          return n;
        },
      },
    });
    return m as BrokerMetrics;
  }

  // ---- public API --------------------------------------------------------------------------------

  handle(stream: Duplex, transport: TransportInfo): void {
    if (this.#closed) {
      stream.destroy();
      return;
    }
    const conn = new Connection<P>(this, stream, transport);
    this.#all.add(conn);
  }

  async publish(msg: PublishOptions): Promise<void> {
    if (!isValidTopicName(msg.topic, this.limits.maxTopicLevels)) {
      throw new TypeError(`invalid topic name ${JSON.stringify(msg.topic)}`);
    }
    const qos = msg.qos ?? 0;
    if (qos !== 0 && qos !== 1 && qos !== 2) throw new TypeError(`invalid qos ${String(qos)}`);
    const payload = typeof msg.payload === 'string' ? Buffer.from(msg.payload) : msg.payload;
    const props = (msg.properties ?? {}) as NonNullable<IPublishPacket['properties']>;
    const expiry = props.messageExpiryInterval;
    const m = new Message(
      msg.topic,
      payload,
      qos,
      msg.retain === true,
      messagePropertiesOf(props),
      expiry ? this.clock.now() + expiry * 1000 : 0,
      undefined,
    );
    if (m.retain) await this.#retained.set(retainedOf(m));
    const stored = this.#route(m);
    if (this.#forwarding) await this.#router.forward(m.toRouted());
    await stored;
  }

  async restore(): Promise<number> {
    const list = await this.#store.list?.();
    if (list === undefined) return 0;
    const now = this.clock.now();
    let restored = 0;
    for (const stored of list) {
      const id = stored.clientId;
      if (this.#sessions.has(id) || this.#connections.has(id)) continue;
      // A node that crashed never recorded the disconnect: count the expiry from now.
      const since = stored.disconnectedAt ?? now;
      const left =
        stored.expiryInterval === SESSION_NEVER_EXPIRES
          ? Infinity
          : stored.expiryInterval * 1000 - (now - since);
      const s = this.#newSession(id, stored.expiryInterval);
      if (left <= 0) {
        // [MQTT-3.1.2-23] v5 expired while the node was down.
        this.#endSession(s);
        continue;
      }
      this.#restoreSession(s, stored);
      if (left !== Infinity) this.#armExpiry(s, left);
      if (stored.disconnectedAt === undefined) s.save(now);
      restored++;
    }
    return restored;
  }

  /** Subscriptions and in-flight state from the store; queued messages are fetched when the client is back. */
  #restoreSession(s: Session, stored: StoredSession): void {
    s.restoreInflight(stored);
    s.markStoredUnknown();
    const limit = this.limits.maxTopicLevels;
    for (const sub of stored.subscriptions) {
      const f = parseSubscriptionFilter(sub.filter, limit);
      if (f === undefined) continue;
      this.subscribe(
        s,
        sub.filter,
        f.filter,
        f.group,
        sub.qos,
        sub.noLocal,
        sub.retainAsPublished,
        sub.retainHandling,
        sub.subscriptionIdentifier ?? 0,
      );
    }
  }

  getClient(id: string): ClientHandle<P> | undefined {
    const c = this.#connections.get(id);
    return c !== undefined && c.state === 'open' ? c.handle : undefined;
  }

  *clients(): IterableIterator<ClientHandle<P>> {
    for (const c of this.#connections.values())
      if (c.state === 'open' && c.handle !== undefined) yield c.handle;
  }

  subscriptionsOf(clientId: string): SubscriptionInfo[] {
    return this.#sessions.get(clientId)?.storedSubscriptions() ?? [];
  }

  removeSubscriptions(clientId: string, filters: readonly string[]): string[] {
    const session = this.#sessions.get(clientId);
    if (session === undefined) return [];
    const removed: string[] = [];
    for (const raw of filters) if (this.unsubscribe(session, raw)) removed.push(raw);
    // Saved like an UNSUBSCRIBE, so the filters do not come back with the session.
    if (removed.length > 0 && session.expiryInterval > 0 && !session.ended) session.resave();
    return removed;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const closing: Promise<void>[] = [];
    for (const c of [...this.#all]) {
      if (!c.stream.destroyed) {
        closing.push(new Promise<void>((resolve) => c.stream.once('close', () => resolve())));
      }
      // v5 §3.14.2.1 DISCONNECT 0x8B Server shutting down, then close [MQTT-4.13.2-1].
      c.disconnect(ReasonCode.serverShuttingDown, undefined, 'broker closing');
    }
    for (const w of this.#wills.values()) if (w.timer !== undefined) clearTimeout(w.timer);
    this.#wills.clear();
    for (const s of this.#sessions.values()) if (s.expiryTimer !== undefined) clearTimeout(s.expiryTimer);
    await Promise.all(closing);
    // Sessions saved on disconnect (and queued writes) reach the store before close() resolves.
    await Promise.all([...this.#sessions.values()].map((s) => s.idle()));
    await Promise.all(this.#ending.values());
    await this.#router.close?.();
  }

  // ---- connections -------------------------------------------------------------------------------

  generateClientId(): string {
    return this.#generateClientId();
  }

  attach(
    conn: Connection<P>,
    clientId: string,
    clean: boolean,
    expiry: number,
  ): { session: Session; present: boolean } | Promise<{ session: Session; present: boolean } | undefined> {
    const old = this.#connections.get(clientId);
    if (old !== undefined && old !== conn) {
      // 3.1.1 [MQTT-3.1.4-2], v5 [MQTT-3.1.4-3]: the existing connection with this id is closed (v5: 0x8E).
      old.disconnect(ReasonCode.sessionTakenOver, undefined, 'session taken over');
    }
    this.#connections.set(clientId, conn);
    const pendingWill = this.#wills.get(clientId);
    if (pendingWill !== undefined) {
      // [MQTT-3.1.3-9] v5 a new connection before the will delay ends cancels the will, unless the
      // session ends now (clean start), which publishes it.
      if (pendingWill.timer !== undefined) clearTimeout(pendingWill.timer);
      this.#wills.delete(clientId);
      if (clean) this.#publishWill(pendingWill);
    }
    let session = this.#sessions.get(clientId);
    if (this.#forwarding && (expiry > 0 || !clean) && this.#router.claimSession !== undefined) {
      // Only one node may hold (and queue for) a session.
      this.#routerCall(() => this.#router.claimSession!(clientId));
    }
    if (clean) {
      // 3.1.1 [MQTT-3.1.2-6], v5 [MQTT-3.1.2-4]: clean session/start discards any previous session.
      if (session !== undefined) this.#endSession(session);
      session = this.#newSession(clientId, expiry);
      session.remove();
      if (expiry > 0) session.save(undefined);
      return { session, present: false };
    }
    if (session !== undefined) {
      if (session.expiryTimer !== undefined) clearTimeout(session.expiryTimer);
      session.expiryTimer = undefined;
      session.expiryInterval = expiry;
      if (expiry > 0) session.save(undefined);
      return { session, present: true };
    }
    const load = async (): Promise<{ session: Session; present: boolean } | undefined> => {
      await this.#ending.get(clientId);
      const stored = await this.#store.load(clientId);
      if (this.#connections.get(clientId) !== conn || conn.state === 'closed') return undefined;
      const s = this.#sessions.get(clientId) ?? this.#newSession(clientId, expiry);
      s.expiryInterval = expiry;
      if (stored !== undefined) this.#restoreSession(s, stored);
      if (expiry > 0) s.save(undefined);
      else if (stored !== undefined) s.remove();
      return { session: s, present: stored !== undefined };
    };
    return load();
  }

  #newSession(clientId: string, expiry: number): Session {
    const s = new Session(clientId, this.#sessionContext);
    s.expiryInterval = expiry;
    this.#sessions.set(clientId, s);
    this.metrics.sessions = this.#sessions.size;
    return s;
  }

  connected(conn: Connection<P>): void {
    this.metrics.connections++;
    this.#safe('onConnect', () => this.hooks.onConnect?.(conn.handle!));
  }

  detached(conn: Connection<P>, wasOpen: boolean, reason: string, reasonCode: number | undefined): void {
    this.#all.delete(conn);
    if (this.#connections.get(conn.clientId) === conn) this.#connections.delete(conn.clientId);
    if (!wasOpen) return;
    this.metrics.connections--;
    const session = conn.session!;
    if (session.conn === conn) session.detach();
    if (conn.will !== undefined && !conn.normalDisconnect && !this.#closed) {
      this.#scheduleWill(conn.handle!, conn.will, conn.v5, session.expiryInterval);
    }
    if (session.ended) {
      // ended by a takeover (here or on another node): the new owner has the session
    } else if (session.expiryInterval === 0) this.#endSession(session);
    else {
      session.save(this.clock.now());
      if (session.expiryInterval !== SESSION_NEVER_EXPIRES && !this.#closed) {
        this.#armExpiry(session, session.expiryInterval * 1000);
      }
    }
    const info: { reason: string; reasonCode?: number } = { reason };
    if (reasonCode !== undefined) info.reasonCode = reasonCode;
    this.#safe('onDisconnect', () => this.hooks.onDisconnect?.(conn.handle!, info));
  }

  #armExpiry(session: Session, ms: number): void {
    // [MQTT-4.1.0-2] v5 the session is discarded when its expiry interval has passed.
    session.expiryTimer = setTimeout(
      () => {
        session.expiryTimer = undefined;
        if (ms > MAX_TIMER_MS) this.#armExpiry(session, ms - MAX_TIMER_MS);
        else if (session.conn === undefined && this.#sessions.get(session.clientId) === session)
          this.#endSession(session);
      },
      Math.min(ms, MAX_TIMER_MS),
    );
    session.expiryTimer.unref();
  }

  #endSession(session: Session): void {
    session.ended = true;
    if (session.expiryTimer !== undefined) clearTimeout(session.expiryTimer);
    for (const sub of session.subscriptions.values()) this.#removeSubscription(sub);
    session.subscriptions.clear();
    if (this.#sessions.get(session.clientId) === session) {
      this.#sessions.delete(session.clientId);
      this.metrics.sessions = this.#sessions.size;
    }
    session.remove();
    const id = session.clientId;
    const idle = session.idle();
    this.#ending.set(id, idle);
    void idle.then(() => {
      if (this.#ending.get(id) === idle) this.#ending.delete(id);
    });
    // [MQTT-3.1.3-9] v5 the will is published when the session ends, if not before.
    const w = this.#wills.get(id);
    if (w !== undefined && this.#connections.get(id) === undefined) {
      if (w.timer !== undefined) clearTimeout(w.timer);
      this.#wills.delete(id);
      this.#publishWill(w);
    }
  }

  /** Another node took the session over: forget it here without touching the store. */
  #sessionTaken(clientId: string): void {
    const session = this.#sessions.get(clientId);
    if (session === undefined) return;
    session.ended = true;
    if (session.expiryTimer !== undefined) clearTimeout(session.expiryTimer);
    for (const sub of session.subscriptions.values()) this.#removeSubscription(sub);
    session.subscriptions.clear();
    this.#sessions.delete(clientId);
    this.metrics.sessions = this.#sessions.size;
    const conn = this.#connections.get(clientId);
    // [MQTT-3.1.4-3] the session moved to a connection on another node (v5: DISCONNECT 0x8E).
    if (conn !== undefined) conn.disconnect(ReasonCode.sessionTakenOver, undefined, 'session taken over');
    const w = this.#wills.get(clientId);
    if (w !== undefined) {
      // The client is back (elsewhere) before the will delay ended [MQTT-3.1.3-9].
      if (w.timer !== undefined) clearTimeout(w.timer);
      this.#wills.delete(clientId);
    }
  }

  refused(info: RefusedInfo<P>): void {
    this.metrics.refused++;
    this.#safe('onRefused', () => this.hooks.onRefused?.(info));
  }

  #safe(name: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.logger.error({ err }, `${name} hook threw`);
    }
  }

  // ---- wills -------------------------------------------------------------------------------------

  #scheduleWill(handle: ClientHandle<P>, will: Will, v5: boolean, sessionExpiry: number): void {
    // [MQTT-3.1.2-8] the will is published when the connection ends without a normal DISCONNECT;
    // v5 after the Will Delay Interval or when the session ends, whichever comes first.
    const delay = v5 ? Math.min(will.delayInterval, sessionExpiry) : 0;
    const w: PendingWill<P> = { handle, will, timer: undefined };
    if (delay === 0) {
      this.#publishWill(w);
      return;
    }
    w.timer = setTimeout(() => {
      if (this.#wills.get(handle.id) === w) this.#wills.delete(handle.id);
      this.#publishWill(w);
    }, delay * 1000);
    w.timer.unref();
    this.#wills.set(handle.id, w);
  }

  #publishWill(w: PendingWill<P>): void {
    const { will, handle } = w;
    const packet: IPublishPacket = {
      cmd: 'publish',
      topic: will.topic,
      payload: will.payload,
      qos: will.qos,
      retain: will.retain,
      dup: false,
    };
    if (will.properties !== undefined || will.expiryInterval !== 0) {
      packet.properties = { ...will.properties };
      if (will.expiryInterval !== 0) packet.properties.messageExpiryInterval = will.expiryInterval;
    }
    const run = async (): Promise<void> => {
      const a: AuthzResult = await this.hooks.authorizePublish(handle, packet);
      if (a !== true) {
        const info: RefusedInfo<P> = {
          transport: handle.transport,
          clientId: handle.id,
          stage: 'publish',
          reasonCode: a.reasonCode,
          topic: will.topic,
          principal: handle.principal,
        };
        if (a.reasonString !== undefined) info.reasonString = a.reasonString;
        this.refused(info);
        return;
      }
      const r = await this.hooks.onPublish?.(handle, packet);
      if (r !== undefined && r !== null && r.route === false) return;
      const expiresAt = will.expiryInterval !== 0 ? this.clock.now() + will.expiryInterval * 1000 : 0;
      const m = new Message(
        will.topic,
        will.payload,
        will.qos,
        will.retain,
        will.properties,
        expiresAt,
        handle.id,
      );
      if (m.retain) this.#setRetained(m);
      this.#route(m);
      if (this.#forwarding) this.#forward(m, false);
    };
    run().catch((err: unknown) => this.logger.error({ err, clientId: handle.id }, 'will publication failed'));
  }

  // ---- subscriptions -----------------------------------------------------------------------------

  subscribe(
    session: Session,
    raw: string,
    filter: string,
    group: string | undefined,
    qos: QoS,
    noLocal: boolean,
    retainAsPublished: boolean,
    retainHandling: 0 | 1 | 2,
    subscriptionId: number,
  ): boolean {
    const sub: Subscription = {
      clientId: session.clientId,
      filter,
      group,
      session,
      raw,
      qos,
      noLocal,
      retainAsPublished,
      retainHandling,
      subscriptionId,
      ids: subscriptionId === 0 ? undefined : [subscriptionId],
    };
    const existed = session.subscriptions.has(raw);
    // [MQTT-3.8.4-3] a subscription with the same filter replaces the existing one.
    session.subscriptions.set(raw, sub);
    this.#tree.add(sub);
    if (!existed) {
      this.metrics.subscriptions = this.#tree.size;
      const n = this.#interest.get(raw) ?? 0;
      this.#interest.set(raw, n + 1);
      if (n === 0 && this.#forwarding) this.#routerCall(() => this.#router.subscribe(raw));
    }
    return !existed;
  }

  unsubscribe(session: Session, raw: string): boolean {
    const sub = session.subscriptions.get(raw);
    if (sub === undefined) return false;
    session.subscriptions.delete(raw);
    this.#removeSubscription(sub);
    return true;
  }

  #removeSubscription(sub: Subscription): void {
    this.#tree.remove(sub.clientId, sub.filter, sub.group);
    this.metrics.subscriptions = this.#tree.size;
    const n = this.#interest.get(sub.raw) ?? 0;
    if (n <= 1) {
      this.#interest.delete(sub.raw);
      if (this.#forwarding) this.#routerCall(() => this.#router.unsubscribe(sub.raw));
    } else this.#interest.set(sub.raw, n - 1);
  }

  #routerCall(fn: () => void | Promise<void>): void {
    try {
      const r = fn();
      if (r !== undefined)
        r.catch((err: unknown) => this.logger.error({ err }, 'cluster router call failed'));
    } catch (err) {
      this.logger.error({ err }, 'cluster router call failed');
    }
  }

  sendRetained(session: Session, filter: string, qos: QoS, ids: number[] | undefined): void {
    this.#retained
      .match(filter)
      .then(
        (list) => {
          if (session.ended) return;
          const now = this.clock.now();
          const authorize = this.hooks.authorizeDelivery;
          for (const r of list) {
            if (r.expiresAt !== undefined && r.expiresAt <= now) continue;
            if (authorize !== undefined && session.handle !== undefined) {
              if (!authorize(session.handle as ClientHandle<P>, r.topic)) continue;
            }
            const m = new Message(
              r.topic,
              asBuffer(r.payload),
              r.qos,
              true,
              r.properties,
              r.expiresAt ?? 0,
              undefined,
            );
            // [MQTT-3.3.1-8] retained messages sent for a new subscription have RETAIN set.
            session.deliver(m, r.qos < qos ? r.qos : qos, true, ids);
          }
        },
        (err: unknown) => this.logger.error({ err, filter }, 'retained store match failed'),
      )
      .catch((err: unknown) => this.logger.error({ err, filter }, 'retained delivery failed'));
  }

  // ---- routing -----------------------------------------------------------------------------------

  routeInbound(conn: Connection<P>, p: IPublishPacket): Promise<unknown> | undefined {
    if (p.qos === 0 && !p.retain && !this.#forwarding && !this.#fanoutBusy) {
      // Overload: a QoS 0 message that every subscriber would drop is dropped before it is built.
      const f = this.#match(p.topic, conn.clientId);
      if (this.#shedQos0(f)) return undefined;
      return this.#deliver(this.#inboundMessage(conn, p), f);
    }
    const m = this.#inboundMessage(conn, p);
    if (p.retain) this.#setRetained(m);
    const stored = this.#route(m);
    if (!this.#forwarding) return stored;
    // QoS 1/2: the acknowledgement also waits for a durable router to have taken it.
    const forwarded = this.#forward(m, p.qos > 0);
    if (forwarded === undefined) return stored;
    return stored === undefined ? forwarded : Promise.all([stored, forwarded]);
  }

  #inboundMessage(conn: Connection<P>, p: IPublishPacket): Message {
    const props = p.properties;
    let mp = undefined;
    let expiresAt = 0;
    if (conn.v5 && props !== undefined) {
      mp = messagePropertiesOf(props);
      // [MQTT-3.3.2-5] v5
      if (props.messageExpiryInterval) expiresAt = this.clock.now() + props.messageExpiryInterval * 1000;
    }
    const payload = typeof p.payload === 'string' ? Buffer.from(p.payload) : p.payload;
    return new Message(p.topic, payload, p.qos, p.retain, mp, expiresAt, conn.clientId);
  }

  /**
   * True (and the drops counted) when no matching session would take a QoS 0 message now: each is
   * offline (QoS 0 is not kept for it) or has a full queue, as `Session#deliver` would find.
   */
  #shedQos0(f: Fanout): boolean {
    if (f.shared !== undefined) return false;
    const matched = f.matched;
    const max = this.limits.maxQueued;
    const authorize = this.hooks.authorizeDelivery;
    let full = 0;
    for (let i = 0; i < matched.length; i++) {
      const s = matched[i]!;
      if (s.conn === undefined) continue;
      if (s.queued < max) return false;
      if (
        authorize === undefined ||
        s.handle === undefined ||
        authorize(s.handle as ClientHandle<P>, f.topic)
      )
        full++;
    }
    this.metrics.dropped += full;
    matched.length = 0;
    return true;
  }

  #setRetained(m: Message): void {
    // 3.1.1 [MQTT-3.3.1-5] (v5 [MQTT-3.3.1-5]) store (replace) the retained message; an empty payload
    // removes it: 3.1.1 [MQTT-3.3.1-10], v5 [MQTT-3.3.1-6].
    this.#retained
      .set(retainedOf(m))
      .catch((err: unknown) => this.logger.error({ err, topic: m.topic }, 'retained store set failed'));
  }

  /** Hands a message to the cluster; with `wait`, returns the router's promise (rejections included). */
  #forward(m: Message, wait: boolean): Promise<unknown> | undefined {
    let r: void | Promise<unknown>;
    try {
      r = this.#router.forward(m.toRouted());
    } catch (err) {
      this.logger.error({ err }, 'cluster router call failed');
      return undefined;
    }
    if (r === undefined) return undefined;
    if (wait) return r;
    r.catch((err: unknown) => this.logger.error({ err }, 'cluster router call failed'));
    return undefined;
  }

  #fromCluster(r: RoutedMessage): Promise<unknown> | undefined {
    return this.#route(Message.fromStored(r, r.origin));
  }

  /** Delivers to local subscribers; a promise when some persistent session had to store it first. */
  #route(msg: Message): Promise<unknown> | undefined {
    return this.#deliver(msg, this.#match(msg.topic, msg.origin));
  }

  /** The sessions (and shared subscriptions) a topic goes to, for #deliver right after. */
  #match(topic: string, origin: string | undefined): Fanout {
    // The fan-out scratch object is reused unless a hook re-enters routing during delivery.
    const f = this.#fanoutBusy ? new Fanout() : this.#fanout;
    f.gen = ++this.#gen;
    f.origin = origin;
    f.topic = topic;
    f.matched.length = 0;
    f.shared = undefined;
    this.#tree.match(topic, f);
    return f;
  }

  #deliver(msg: Message, f: Fanout): Promise<unknown> | undefined {
    const busy = f !== this.#fanout;
    const matched = f.matched;
    const shared = f.shared as Subscription[] | undefined;
    if (!busy) this.#fanoutBusy = true;
    let stored: Promise<void>[] | undefined;
    try {
      const authorize = this.hooks.authorizeDelivery;
      const topic = msg.topic;
      for (let i = 0; i < matched.length; i++) {
        const s = matched[i]!;
        if (
          authorize !== undefined &&
          s.handle !== undefined &&
          !authorize(s.handle as ClientHandle<P>, topic)
        )
          continue;
        const qos = msg.qos < s.matchQos ? msg.qos : s.matchQos;
        // 3.1.1 [MQTT-3.3.1-9], v5 [MQTT-3.3.1-12]: RETAIN is cleared on forwarding, unless v5 Retain As
        // Published [MQTT-3.3.1-13].
        const w = s.deliver(msg, qos, s.matchRap && msg.retain, s.matchIds);
        if (w !== undefined) (stored ??= []).push(w);
      }
      if (shared !== undefined) {
        for (const sub of shared) {
          const s = sub.session;
          if (
            authorize !== undefined &&
            s.handle !== undefined &&
            !authorize(s.handle as ClientHandle<P>, topic)
          )
            continue;
          const w = s.deliver(
            msg,
            msg.qos < sub.qos ? msg.qos : sub.qos,
            sub.retainAsPublished && msg.retain,
            sub.ids,
          );
          if (w !== undefined) (stored ??= []).push(w);
        }
      }
    } finally {
      matched.length = 0;
      if (!busy) this.#fanoutBusy = false;
    }
    if (stored === undefined) return undefined;
    return stored.length === 1 ? stored[0] : Promise.all(stored);
  }
}

function retainedOf(m: Message): Parameters<RetainedStore['set']>[0] {
  m.keep();
  const r: Parameters<RetainedStore['set']>[0] = { topic: m.topic, payload: m.payload, qos: m.qos };
  if (m.properties !== undefined) r.properties = m.properties;
  if (m.expiresAt !== 0) r.expiresAt = m.expiresAt;
  return r;
}
