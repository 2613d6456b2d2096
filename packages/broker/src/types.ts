import type { Duplex } from 'node:stream';
import type { IConnectPacket, IPublishPacket, QoS, UserProperties } from 'mqtt-packet';

export type { QoS };

/** Whatever the transport knows about the peer; opaque to the broker and handed back to hooks. */
export interface TransportInfo {
  remoteAddress?: string | undefined;
  remotePort?: number | undefined;
  [k: string]: unknown;
}

export interface ClientHandle<P> {
  /** MQTT client identifier (the assigned one when the server assigned it). */
  readonly id: string;
  /** Whatever `authenticate()` returned. */
  readonly principal: P;
  readonly protocolVersion: 3 | 4 | 5;
  readonly transport: TransportInfo;
  /** v5: sends DISCONNECT with the reason code, then closes; 3.1/3.1.1: closes. */
  disconnect(reasonCode?: number, reasonString?: string): void;
}

/** `reasonCode` is in MQTT 5 terms; 3.1.1 clients get the matching CONNACK return code. */
export type AuthenticateResult<P> =
  | { ok: true; principal: P; assignedClientId?: string }
  | { ok: false; reasonCode: number; reasonString?: string };

export type AuthzResult = true | { ok: false; reasonCode: number; reasonString?: string };

/** One step of MQTT 5 enhanced authentication (AUTH packets), see `BrokerHooks.authenticateEnhanced`. */
export type EnhancedAuthResult<P> =
  AuthenticateResult<P> | { ok: 'continue'; data?: Buffer; state?: unknown };

export interface EnhancedAuthContext {
  connect: IConnectPacket;
  transport: TransportInfo;
  /** Authentication Method of the CONNECT. */
  method: string;
  /** Authentication Data of the packet being answered (CONNECT or AUTH). */
  data: Buffer | undefined;
  /** 0 for the CONNECT, then 1, 2, ... for each AUTH packet of the exchange. */
  step: number;
  /** Whatever the previous step returned as `state`. */
  state: unknown;
  /** True when the client started re-authentication (AUTH 0x19) on a live connection. */
  reauthenticate: boolean;
}

export interface RefusedInfo<P> {
  transport: TransportInfo;
  clientId?: string;
  stage: 'connect' | 'publish' | 'subscribe';
  reasonCode: number;
  reasonString?: string;
  topic?: string;
  principal?: P;
}

export interface BrokerHooks<P> {
  authenticate(ctx: {
    connect: IConnectPacket;
    transport: TransportInfo;
  }): AuthenticateResult<P> | Promise<AuthenticateResult<P>>;
  authorizePublish(client: ClientHandle<P>, packet: IPublishPacket): AuthzResult | Promise<AuthzResult>;
  authorizeSubscribe(client: ClientHandle<P>, filter: string, qos: QoS): AuthzResult | Promise<AuthzResult>;
  /** Sync, called per delivery; false = not delivered to that client. */
  authorizeDelivery?(client: ClientHandle<P>, topic: string): boolean;
  /**
   * An authorized inbound PUBLISH, before it is acknowledged and before it is routed. For QoS 1/2 the
   * PUBACK/PUBREC waits for the returned promise. A rejection carrying `mqttReasonCode` (and optional
   * `mqttReasonString`) is reported to v5 clients in the PUBACK/PUBREC (QoS 0: DISCONNECT); 3.1.1 clients
   * are disconnected. `{ route: false }` acknowledges without delivering to subscribers.
   */
  onPublish?(
    client: ClientHandle<P>,
    packet: IPublishPacket,
  ): void | { route?: boolean } | Promise<void | { route?: boolean }>;
  onConnect?(client: ClientHandle<P>): void;
  onDisconnect?(client: ClientHandle<P>, info: { reason: string; reasonCode?: number }): void;
  onRefused?(info: RefusedInfo<P>): void;
  /**
   * MQTT 5 enhanced authentication. Called when a CONNECT carries an Authentication Method (step 0) and
   * for every AUTH packet that follows. Without this hook such a CONNECT is refused with 0x8C.
   * The final `{ ok: true }` replaces `authenticate()` for that connection.
   */
  authenticateEnhanced?(ctx: EnhancedAuthContext): EnhancedAuthResult<P> | Promise<EnhancedAuthResult<P>>;
}

export interface BrokerLimits {
  /** Largest packet accepted from a client, in bytes (fixed header included). Default 256 KiB. */
  maxPacketSize: number;
  /**
   * Receive Maximum announced in CONNACK: inbound QoS 1/2 publishes a client may have unacknowledged;
   * a v5 client exceeding it is disconnected (0x93, [MQTT-3.3.4-7]). Default 64.
   */
  receiveMaximum: number;
  /**
   * When more than this many inbound publishes (any QoS) of one client wait for authorization,
   * `onPublish` or their turn to be acknowledged, the broker stops reading that client's stream until
   * they drain back to it; at most maxPendingInbound + 1 are pending per client. Independent
   * of the advertised Receive Maximum, so clients that ignore it (MQTT.js, 3.1.1 clients) are slowed
   * down, not disconnected. Default: `receiveMaximum`.
   */
  maxPendingInbound: number;
  /** Outbound QoS 1/2 publishes in flight per client (also capped by the client's Receive Maximum). Default 64. */
  maxInflight: number;
  /** Messages queued per client (slow consumer or offline session). Default 1000. */
  maxQueued: number;
  /**
   * Bytes written to a client's stream and not yet flushed above which the client counts as a slow
   * consumer: further messages wait in its queue (bounded by maxQueued). Default 1 MiB.
   */
  maxBufferedBytes: number;
  /** Largest keep-alive (seconds) a v5 client gets; larger or 0 is overridden by Server Keep Alive. Default 0 = no cap. */
  keepAliveMax: number;
  /** A connection that sends no CONNECT within this time is closed. Default 10 000 ms. */
  connectTimeoutMs: number;
  /** Topic aliases a v5 client may use towards the broker. Default 32. */
  topicAliasMaximum: number;
  /** If set, every v5 client gets this Server Keep Alive (seconds). Default undefined. */
  serverKeepAlive: number | undefined;
  /** Upper bound on the session expiry interval (seconds); 0xFFFFFFFF = never expires. Default 0xFFFFFFFF. */
  maxSessionExpiryInterval: number;
  /** Subscriptions per client. Default 1000. */
  maxSubscriptionsPerClient: number;
  /** Levels in a topic name or filter. Default 64. */
  maxTopicLevels: number;
  /** Largest client identifier in bytes. Default 256. */
  maxClientIdLength: number;
}

/** A subscription as the SessionStore persists it. */
export interface StoredSubscription {
  /** Full filter as subscribed, `$share/{group}/{filter}` included. */
  filter: string;
  qos: QoS;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: 0 | 1 | 2;
  subscriptionIdentifier?: number;
}

/** A client's subscription as `Broker.subscriptionsOf` reports it. */
export type SubscriptionInfo = StoredSubscription;

/** Publish properties kept with a message (MQTT 5); topic alias and subscription ids are per delivery. */
export interface MessageProperties {
  payloadFormatIndicator?: boolean;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Buffer;
  userProperties?: UserProperties;
}

export interface StoredMessage {
  /**
   * Position in the client's queue, assigned by the broker: increasing per client, unique per client.
   * The store keeps messages ordered by it and removes them by it (`ack`).
   */
  seq?: number;
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  properties?: MessageProperties;
  /** Epoch milliseconds (broker clock) after which the message is not delivered. */
  expiresAt?: number;
  /** Subscription identifiers to send with this delivery (v5). */
  subscriptionIds?: number[];
}

/** An outbound QoS 1/2 message sent but not yet fully acknowledged. */
export interface StoredInflight extends StoredMessage {
  packetId: number;
  /** 'publish': waiting for PUBACK/PUBREC; 'pubrel': PUBREL sent, waiting for PUBCOMP. */
  state: 'publish' | 'pubrel';
}

export interface StoredSession {
  clientId: string;
  /** Seconds; 0xFFFFFFFF = never expires. */
  expiryInterval: number;
  subscriptions: StoredSubscription[];
  /** Outbound messages in flight when the client went away, in send order. */
  inflight: StoredInflight[];
  /** Inbound QoS 2 packet ids received (PUBREC sent) and not yet released. */
  awaitingRelease: number[];
  /** Epoch ms of the last disconnect, undefined while connected. */
  disconnectedAt?: number;
  /** Highest `seq` the store holds or has held for this client (filled in by `load`/`list`), so new ones follow. */
  lastSeq?: number;
}

/**
 * Session persistence port. The broker keeps live state in memory and uses the store to keep sessions
 * and message queues across restarts, crashes and reconnects to another node. All methods are async.
 *
 * Every QoS 1/2 message for a session that outlives its connection is appended (`enqueue`) before the
 * publisher is acknowledged, whether the client is online (it is also sent at once) or not, and stays
 * until the client has acknowledged it (`ack`: PUBACK, or PUBREC for QoS 2) or it was discarded
 * (expired, too large for the client). So what a crash can lose is only what was never acknowledged
 * to its publisher.
 */
export interface SessionStore {
  /** The session with `lastSeq`, or undefined. */
  load(clientId: string): Promise<StoredSession | undefined>;
  /**
   * Sessions this node should hold at start-up (with `lastSeq`): the broker's `restore()` reloads them,
   * so messages for offline subscribers are queued again after a restart. A store shared by several
   * nodes returns only those last saved by this node.
   */
  list?(): Promise<StoredSession[]>;
  /** Insert or replace the session (subscriptions, expiry, in-flight state); this node now holds it. */
  save(session: StoredSession): Promise<void>;
  /** Remove the session and everything queued for it. */
  delete(clientId: string): Promise<void>;
  /** Append messages (each with `seq`) to the client's queue. */
  enqueue(clientId: string, messages: StoredMessage[]): Promise<void>;
  /** Up to `max` queued messages with `seq` greater than `afterSeq`, in `seq` order; nothing is removed. */
  fetch(clientId: string, afterSeq: number, max: number): Promise<StoredMessage[]>;
  /** Removes the queued messages with these `seq`s (acknowledged by the client, or discarded). */
  ack(clientId: string, seqs: number[]): Promise<void>;
  close?(): Promise<void>;
}

export interface RetainedMessage {
  topic: string;
  payload: Buffer;
  qos: QoS;
  properties?: MessageProperties;
  expiresAt?: number;
}

/** Retained message port. */
export interface RetainedStore {
  /** Store or replace the retained message for its topic; an empty payload removes it [MQTT-3.3.1-10]. */
  set(message: RetainedMessage): Promise<void>;
  /** Retained messages whose topic matches the (non-shared) filter. */
  match(filter: string): Promise<RetainedMessage[]>;
  close?(): Promise<void>;
}

/** A message crossing nodes. */
export interface RoutedMessage {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  properties?: MessageProperties;
  expiresAt?: number;
  /** Client id of the publisher (for No Local); absent for server-originated messages. */
  origin?: string;
}

/**
 * Cluster routing port. The broker announces its interest in topic filters (reference counted: one
 * `subscribe` when the first local subscriber appears, one `unsubscribe` when the last one goes) and
 * hands every locally published message to `forward`; the router delivers it to the nodes with a
 * matching interest, which pass it to the callback given to `attach`.
 */
export interface ClusterRouter {
  /**
   * `deliver` routes a message from another node; when it returns a promise, the message has been
   * stored for persistent sessions once it resolves (a durable router acknowledges its queue then).
   * `events.sessionTaken` is called when another node took over a session (see `claimSession`).
   */
  attach(
    deliver: (message: RoutedMessage) => void | Promise<unknown>,
    events?: { sessionTaken(clientId: string): void },
  ): void;
  subscribe(filter: string): void | Promise<void>;
  unsubscribe(filter: string): void | Promise<void>;
  /** A promise when the message goes to another node durably: QoS 1/2 acknowledgements wait for it. */
  forward(message: RoutedMessage): void | Promise<unknown>;
  /**
   * A client connected to this node with a session that outlives its connection: every other node
   * drops its copy (and its connection, v5 DISCONNECT 0x8E), so only one node queues for the session.
   */
  claimSession?(clientId: string): void | Promise<void>;
  close?(): Promise<void>;
}

export interface Logger {
  debug(o: object, m?: string): void;
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
  error(o: object, m?: string): void;
}

export interface Clock {
  now(): number;
}

export interface BrokerOptions<P> {
  hooks: BrokerHooks<P>;
  limits?: Partial<BrokerLimits>;
  sessions?: SessionStore;
  retained?: RetainedStore;
  router?: ClusterRouter;
  clock?: Clock;
  logger?: Logger;
  /** Makes client identifiers for clients that send an empty one. Default: `crypto.randomUUID()` based. */
  generateClientId?: () => string;
}

/**
 * Counters (monotonic) and gauges (current values). Gauges marked "computed" are read from live state
 * when accessed (O(connections) or O(sessions)), so they cost nothing on the message path.
 */
export interface BrokerMetrics {
  /** Gauge: open connections (CONNACK sent). */
  connections: number;
  /** Counter: PUBLISH packets received from clients. */
  messagesIn: number;
  /** Counter: PUBLISH packets sent to clients. */
  messagesOut: number;
  /** Counter: messages not delivered because a queue was full or a packet too large for the client. */
  dropped: number;
  /** Counter: refused connects, publishes and subscriptions. */
  refused: number;
  /** Gauge: sessions held by this node (connected or not). */
  sessions: number;
  /** Gauge: subscriptions held by this node. */
  subscriptions: number;
  /** Counter: times a client's stream was paused because maxPendingInbound publishes were waiting. */
  socketPauses: number;
  /** Gauge, computed: client streams currently paused for back-pressure. */
  readonly pausedSockets: number;
  /** Gauge, computed: inbound publishes waiting for onPublish or their acknowledgement. */
  readonly pendingInbound: number;
  /** Gauge, computed: messages waiting for clients (in memory, plus those known to be in the SessionStore). */
  readonly queued: number;
  /** Gauge, computed: outbound QoS 1/2 messages sent and not yet acknowledged. */
  readonly inflight: number;
  [k: string]: number;
}

export interface PublishOptions {
  topic: string;
  payload: Buffer | string;
  qos?: QoS;
  retain?: boolean;
  properties?: object;
}

export interface Broker<P> {
  /**
   * Reloads the sessions the SessionStore lists (`list()`): their subscriptions are live again, so
   * messages for offline subscribers are queued while they are away, and expiry timers resume. Call
   * once before accepting connections. Returns how many sessions were restored.
   */
  restore(): Promise<number>;
  /** Start MQTT on an accepted connection. */
  handle(stream: Duplex, transport: TransportInfo): void;
  /**
   * Server-originated message (commands to devices). Not subject to authorizePublish/onPublish.
   * Resolves once it is stored for the persistent sessions it goes to.
   */
  publish(msg: PublishOptions): Promise<void>;
  getClient(id: string): ClientHandle<P> | undefined;
  /**
   * The subscriptions of the session this node holds for `clientId` (connected or not), `[]` when it
   * holds none. Shared subscriptions carry their full `$share/{group}/{filter}`.
   */
  subscriptionsOf(clientId: string): SubscriptionInfo[];
  /**
   * Removes subscriptions of the session this node holds for `clientId`, as if the client had
   * unsubscribed (no packet is sent: MQTT has none for this), e.g. those a tightened policy no longer
   * allows. `filters` are matched exactly as subscribed (`$share/{group}/{filter}` for shared ones).
   * A session that outlives its connection is saved to the SessionStore without them, so they do not
   * come back when the client reconnects or the node restarts. Messages already queued or in flight
   * for the client stay. Returns the filters actually removed.
   */
  removeSubscriptions(clientId: string, filters: readonly string[]): string[];
  clients(): IterableIterator<ClientHandle<P>>;
  readonly metrics: BrokerMetrics;
  /** v5 clients get DISCONNECT 0x8B; all sockets closed. */
  close(): Promise<void>;
}
