import type { Duplex } from 'node:stream';
import mqtt from 'mqtt-packet';
import type {
  IAuthPacket,
  IConnackPacket,
  IConnectPacket,
  IDisconnectPacket,
  IPublishPacket,
  ISubscribePacket,
  IUnsubscribePacket,
  Packet,
  QoS,
} from 'mqtt-packet';
import type { BrokerCore } from './broker.ts';
import { SESSION_NEVER_EXPIRES } from './limits.ts';
import {
  encodePubcomp,
  encodePuback,
  encodePubrec,
  encodePubrel,
  packetIdOffset,
  PINGRESP,
  PUBACK,
  PUBCOMP,
  PUBREC,
  PUBREL,
} from './message.ts';
import type { Message } from './message.ts';
import { PacketReader } from './packet-reader.ts';
import { ReasonCode, toV3ConnackCode } from './reason-codes.ts';
import type { Session, SessionConnection } from './session.ts';
import { isValidTopicName, parseSubscriptionFilter } from './topic.ts';
import type {
  AuthenticateResult,
  AuthzResult,
  ClientHandle,
  EnhancedAuthResult,
  MessageProperties,
  TransportInfo,
} from './types.ts';

const generate = mqtt.generate;

type State = 'new' | 'auth' | 'connecting' | 'open' | 'closed';

/** An inbound PUBLISH waiting for its turn to be acknowledged and routed [MQTT-4.6.0-2]. */
interface InboundSlot {
  packet: IPublishPacket;
  done: boolean;
  reasonCode: number;
  reasonString: string | undefined;
  route: boolean;
  /** Refused by authorizePublish (a QoS 0 refusal is a silent drop), not by onPublish. */
  refused: boolean;
  /** Handed to the router (or nothing to route). */
  routed: boolean;
  /** Routed, and the SessionStore write its acknowledgement waits for is still running. */
  waiting: boolean;
}

export interface Will {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  properties: MessageProperties | undefined;
  expiryInterval: number;
  delayInterval: number;
}

interface ConnectionError extends Error {
  mqttReasonCode?: unknown;
  mqttReasonString?: unknown;
}

function isThenable<T>(v: unknown): v is PromiseLike<T> {
  return v !== null && typeof v === 'object' && typeof (v as { then?: unknown }).then === 'function';
}

/**
 * Input bytes one connection may consume per event-loop turn. libuv reads a readable socket up to 32
 * times (64 KiB each) per readiness, and each chunk is routed before the next: with many publishers
 * holding megabytes in their sockets, one turn took seconds, the subscribers' sockets were serviced
 * once per turn and delivery fell to 0 (the open-loop overload stall). Past the budget a connection
 * stops reading until the next turn, so every socket, writes included, gets its turn.
 */
const READ_BUDGET = 32 * 1024;
/** Event-loop turns, counted by one setImmediate per turn while some connection is reading. */
let turn = 0;
let turnCounting = false;
function nextTurn(): void {
  turn++;
  turnCounting = false;
}
function currentTurn(): number {
  if (!turnCounting) {
    turnCounting = true;
    setImmediate(nextTurn);
  }
  return turn;
}

const kConnection = Symbol('bulwark.connection');
type OwnedStream = Duplex & { [kConnection]?: Connection<unknown> };

function resumeAfterYield(c: Connection<unknown>): void {
  c.resumeReading();
}

/**
 * Output of every connection is collected during an event-loop turn and written once at its end (one
 * setImmediate for all connections): a subscriber fed by many publishers gets one write, one TLS
 * record batch and one syscall per turn instead of one per publisher read, and small packets (PUBACK,
 * PUBLISH) go through `Writable` once per batch rather than once each.
 */
let flushing: Connection<unknown>[] = [];
let flushScheduled = false;
function flushAll(): void {
  flushScheduled = false;
  const list = flushing;
  flushing = [];
  for (let i = 0; i < list.length; i++) list[i]!.flush();
}

/** Stands for a 4-byte acknowledgement in Connection#out (see there). */
const ACK_ENTRY = Buffer.alloc(4);
/** Marks a Message in Connection#out, written as a PUBLISH without properties when flushed. */
const PUBLISH_ENTRY = 1 << 24;
const P_V5 = 1 << 23;
const P_DUP = 1 << 22;
const P_RETAIN = 1 << 21;
/** Buffers at least this large are written as they are, not copied into a batch. */
const WRITE_AS_IS = 16 * 1024;
/** Largest batch buffer. */
const BATCH_MAX = 64 * 1024;

/** What hooks see of a connection. */
class Handle<P> implements ClientHandle<P> {
  readonly id: string;
  readonly protocolVersion: 3 | 4 | 5;
  readonly transport: TransportInfo;
  readonly #conn: Connection<P>;

  constructor(conn: Connection<P>, id: string) {
    this.#conn = conn;
    this.id = id;
    this.protocolVersion = conn.version;
    this.transport = conn.transport;
  }

  /** A getter: re-authentication (AUTH 0x19) may replace the principal. */
  get principal(): P {
    return this.#conn.principal as P;
  }

  disconnect(reasonCode?: number, reasonString?: string): void {
    this.#conn.disconnect(reasonCode, reasonString);
  }
}

export class Connection<P> implements SessionConnection {
  readonly core: BrokerCore<P>;
  readonly stream: Duplex;
  readonly transport: TransportInfo;
  readonly #reader: PacketReader;
  state: State = 'new';
  version: 3 | 4 | 5 = 4;
  v5 = false;
  clientId = '';
  principal: P | undefined = undefined;
  handle: ClientHandle<P> | undefined = undefined;
  session: Session | undefined = undefined;
  will: Will | undefined = undefined;
  /** True when the client ended with DISCONNECT 0x00: the will is discarded [MQTT-3.1.2-10]. */
  normalDisconnect = false;
  /**
   * Output of this turn, written by flush(), `#outLen[i]` bytes each. `#outMeta[i]`: 0 = `#out[i]` as
   * is; < 0 = `#out[i]` is a shared encoded PUBLISH, sent with packet id `-meta`; for ACK_ENTRY,
   * `type << 16 | packet id`; PUBLISH_ENTRY | flags | qos << 16 | packet id = `#out[i]` is a Message
   * to encode into the batch (no buffer of its own).
   */
  #out: (Buffer | Message)[] = [];
  #outMeta: number[] = [];
  #outLen: number[] = [];
  #outBytes = 0;
  /** The last topic name of an inbound PUBLISH found valid: a device rarely changes its topic. */
  #validTopic: string | undefined = undefined;
  window = 64;
  #blocked = 0;
  #paused = false;
  /** Out of READ_BUDGET for this turn: reading resumes on the next one. */
  #yielded = false;
  #budget = READ_BUDGET;
  #turn = -1;
  #keepAliveMs = 0;
  #lastSeen = 0;
  #timer: NodeJS.Timeout | undefined = undefined;
  #connectTimer: NodeJS.Timeout | undefined = undefined;
  /** Inbound publishes not yet acknowledged/routed, in arrival order; bounded by maxPendingInbound. */
  #slots: InboundSlot[] = [];
  /** The first #routedSlots slots have been routed. */
  #routedSlots = 0;
  /** v5 Receive Maximum accounting: QoS 1 until PUBACK, QoS 2 until PUBCOMP. */
  #inflightIn = 0;
  #aliasesIn: Map<number, string> | undefined = undefined;
  #aliasesOut: Map<string, number> | undefined = undefined;
  #aliasOutMax = 0;
  #clientMaxPacketSize = 0;
  #problemInfo = true;
  #connectExpiry = 0;
  #connect: IConnectPacket | undefined = undefined;
  #authMethod: string | undefined = undefined;
  #authStep = 0;
  #authState: unknown = undefined;
  #reauth = false;
  #controlOpts: { protocolVersion: number; properties?: { maximumPacketSize: number } } = {
    protocolVersion: 4,
  };

  constructor(core: BrokerCore<P>, stream: Duplex, transport: TransportInfo) {
    this.core = core;
    this.stream = stream;
    this.transport = transport;
    this.#reader = new PacketReader(core.limits.maxPacketSize);
    this.window = core.limits.maxInflight;
    const sock = stream as Duplex & { setNoDelay?: (v: boolean) => void };
    if (typeof sock.setNoDelay === 'function') sock.setNoDelay(true);
    // Shared listeners that find the connection on the stream: no closures per connection.
    (stream as OwnedStream)[kConnection] = this as Connection<unknown>;
    stream.on('data', Connection.#onStreamData);
    stream.on('drain', Connection.#onStreamDrain);
    stream.on('end', Connection.#onStreamEnd);
    stream.on('close', Connection.#onStreamClose);
    stream.on('error', Connection.#onStreamError);
    // A connection that does not send CONNECT in reasonable time is closed (a SHOULD of the spec, no id).
    this.#connectTimer = setTimeout(Connection.#connectTimeout, core.limits.connectTimeoutMs, this);
    this.#connectTimer.unref();
  }

  static #onStreamData(this: OwnedStream, chunk: Buffer): void {
    this[kConnection]!.#onData(chunk);
  }

  static #onStreamDrain(this: OwnedStream): void {
    this[kConnection]!.session?.pump();
  }

  static #onStreamEnd(this: OwnedStream): void {
    this[kConnection]!.close('client closed the connection');
  }

  static #onStreamClose(this: OwnedStream): void {
    this[kConnection]!.close('connection closed');
  }

  static #onStreamError(this: OwnedStream, err: Error): void {
    this[kConnection]!.close(`socket error: ${err.message}`);
  }

  static #connectTimeout(c: Connection<unknown>): void {
    c.#connectTimer = undefined;
    if (c.state === 'new' || c.state === 'auth') c.close('CONNECT timeout');
  }

  static #keepAliveTimeout(c: Connection<unknown>): void {
    c.#checkKeepAlive();
  }

  // ---- reading ---------------------------------------------------------------------------------

  #onData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    this.#reader.push(chunk);
    this.#drain();
  }

  #drain(): void {
    let seen = false;
    while (this.#blocked === 0 && !this.#paused && !this.#yielded && this.state !== 'closed') {
      if (this.#budget <= 0) {
        const t = currentTurn();
        if (t === this.#turn) {
          this.#yieldTurn();
          return;
        }
        this.#turn = t;
        this.#budget = READ_BUDGET;
      }
      let r: ReturnType<PacketReader['next']>;
      try {
        r = this.#reader.next();
      } catch (err) {
        r = { kind: 'malformed', message: err instanceof Error ? err.message : 'undecodable packet' };
      }
      if (r === undefined) return;
      if (!('cmd' in r)) {
        if (r.kind === 'too-large') {
          // [MQTT-3.2.2-15] v5 packet larger than the Maximum Packet Size: DISCONNECT 0x95.
          this.protocolFailure(ReasonCode.packetTooLarge, r.message);
        } else if (this.state === 'new' && r.message === 'Invalid protocol version') {
          // [MQTT-3.1.2-2] unsupported protocol level: CONNACK 0x01, then close.
          this.write(Buffer.from([0x20, 0x02, 0x00, 0x01]));
          this.close('unsupported protocol version');
        } else {
          // [MQTT-4.8.0-1] [MQTT-4.13.1-1] v5 malformed packet: close (v5: DISCONNECT 0x81).
          this.protocolFailure(ReasonCode.malformedPacket, r.message);
        }
        return;
      }
      if (!seen) {
        // Keep alive counts complete packets [MQTT-3.1.2-24], not bytes: a client trickling one
        // packet does not stay connected. One clock reading per batch of packets.
        seen = true;
        this.#lastSeen = this.core.clock.now();
      }
      this.#budget -= this.#reader.frameSize;
      try {
        this.#onPacket(r);
      } catch (err) {
        this.#internalError(err);
      }
      if (this.#slots.length > this.core.limits.maxPendingInbound) this.#pauseReading();
    }
  }

  /**
   * Back-pressure: more than maxPendingInbound publishes wait for authorization, onPublish or their
   * acknowledgement (the one beyond the limit is read, so that a v5 client exceeding a Receive Maximum
   * equal to the limit is still detected [MQTT-3.3.4-7]). Stop reading
   * (the socket, and the bytes already buffered) until some complete; the client's own writes then
   * block in TCP. Independent of Receive Maximum, which a client may not honour.
   */
  #pauseReading(): void {
    if (this.#paused || this.state === 'closed') return;
    this.#paused = true;
    this.core.metrics.socketPauses++;
    this.stream.pause();
  }

  #yieldTurn(): void {
    if (this.#reader.buffered === 0) {
      // Nothing left to parse: the socket is read again next turn anyway, no need to stop it.
      this.#budget = 0;
      return;
    }
    this.#yielded = true;
    this.stream.pause();
    setImmediate(resumeAfterYield, this);
  }

  /** @internal the next turn after a yield. */
  resumeReading(): void {
    this.#yielded = false;
    if (this.state === 'closed') return;
    if (!this.#paused) this.stream.resume();
    this.#drain();
  }

  get paused(): boolean {
    return this.#paused;
  }

  /** Inbound publishes waiting to be acknowledged or routed. */
  get pendingInbound(): number {
    return this.#slots.length;
  }

  /** A bug must cost one connection, never the process. */
  #internalError(err: unknown): void {
    this.core.logger.error(
      { err, clientId: this.clientId, transport: this.transport },
      'internal error on connection',
    );
    if (this.state === 'open')
      this.disconnect(ReasonCode.implementationSpecificError, undefined, 'internal error');
    else this.close('internal error');
  }

  /** Wraps a promise continuation so that a throw closes this connection instead of going unhandled. */
  #guard<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void {
    return (...args: A) => {
      try {
        fn(...args);
      } catch (err) {
        this.#internalError(err);
      }
    };
  }

  #block(): void {
    this.#blocked++;
  }

  #unblock(): void {
    this.#blocked--;
    if (this.#blocked === 0) this.#drain();
  }

  #onPacket(packet: Packet): void {
    if (this.state === 'new') {
      // [MQTT-3.1.0-1] the first packet from the client must be CONNECT.
      if (packet.cmd !== 'connect') {
        this.close(`first packet was ${packet.cmd}, not CONNECT`);
        return;
      }
      this.#handleConnect(packet);
      return;
    }
    if (this.state === 'auth') {
      if (packet.cmd === 'auth') this.#handleAuth(packet);
      else this.protocolFailure(ReasonCode.protocolError, `${packet.cmd} during authentication`);
      return;
    }
    switch (packet.cmd) {
      case 'publish':
        this.#handlePublish(packet);
        return;
      case 'puback':
        this.session!.onPuback(packet.messageId!);
        return;
      case 'pubrec':
        this.#handlePubrec(packet.messageId!, packet.reasonCode ?? 0);
        return;
      case 'pubrel':
        this.#handlePubrel(packet.messageId!);
        return;
      case 'pubcomp':
        this.session!.onPubcomp(packet.messageId!);
        return;
      case 'subscribe':
        this.#handleSubscribe(packet);
        return;
      case 'unsubscribe':
        this.#handleUnsubscribe(packet);
        return;
      case 'pingreq':
        // [MQTT-3.12.4-1]
        this.write(PINGRESP);
        return;
      case 'disconnect':
        this.#handleDisconnect(packet);
        return;
      case 'auth':
        this.#handleAuth(packet);
        return;
      case 'connect':
        // [MQTT-3.1.0-2] a second CONNECT is a protocol violation.
        this.protocolFailure(ReasonCode.protocolError, 'second CONNECT');
        return;
      default:
        // CONNACK, SUBACK, UNSUBACK, PINGRESP only go from server to client.
        this.protocolFailure(ReasonCode.protocolError, `unexpected ${packet.cmd} from client`);
    }
  }

  // ---- CONNECT ---------------------------------------------------------------------------------

  #handleConnect(p: IConnectPacket): void {
    this.state = 'connecting';
    this.#connect = p;
    const version = p.protocolVersion ?? 4;
    this.version = version;
    this.v5 = version === 5;
    this.#controlOpts = { protocolVersion: version };
    // [MQTT-3.1.2-1] protocol name and level go together: MQIsdp/3, MQTT/4, MQTT/5.
    if ((p.protocolId === 'MQIsdp') !== (version === 3)) {
      this.#refuse(ReasonCode.unsupportedProtocolVersion, 'protocol name does not match the level');
      return;
    }
    const limits = this.core.limits;
    const will = p.will;
    if (will !== undefined) {
      // 3.1.1 [MQTT-3.1.2-14], v5 [MQTT-3.1.2-12]: will QoS 3 is malformed.
      if ((will.qos ?? 0) > 2) {
        this.close('will QoS 3');
        return;
      }
      // 3.1.1 [MQTT-4.7.1-1], v5 [MQTT-4.7.0-1]: the will topic is a topic name, without wildcards.
      if (!isValidTopicName(will.topic, limits.maxTopicLevels)) {
        this.#refuse(ReasonCode.topicNameInvalid, 'invalid will topic');
        return;
      }
    }
    const clientId = p.clientId;
    if (Buffer.byteLength(clientId) > limits.maxClientIdLength) {
      this.#refuse(ReasonCode.clientIdentifierNotValid, 'client identifier too long');
      return;
    }
    // [MQTT-3.1.3-8] 3.1.1: an empty client id needs CleanSession=1. 3.1 requires a client id.
    if (clientId === '' && (version === 3 || (version === 4 && !p.clean))) {
      this.#refuse(ReasonCode.clientIdentifierNotValid, 'empty client identifier without clean session');
      return;
    }
    const props = p.properties;
    if (this.v5 && props !== undefined) {
      // v5 §3.1.2.11.3, §3.1.2.11.4: Receive Maximum or Maximum Packet Size 0 is a protocol error.
      if (props.receiveMaximum === 0 || props.maximumPacketSize === 0) {
        this.#refuse(ReasonCode.protocolError, 'receiveMaximum or maximumPacketSize is 0');
        return;
      }
      if (props.receiveMaximum !== undefined)
        this.window = Math.min(limits.maxInflight, props.receiveMaximum);
      if (props.maximumPacketSize !== undefined) {
        this.#clientMaxPacketSize = props.maximumPacketSize;
        this.#controlOpts = {
          protocolVersion: 5,
          properties: { maximumPacketSize: props.maximumPacketSize },
        };
      }
      if (props.topicAliasMaximum !== undefined && props.topicAliasMaximum > 0) {
        this.#aliasOutMax = props.topicAliasMaximum;
      }
      // [MQTT-3.1.2-29] v5
      if (props.requestProblemInformation === false) this.#problemInfo = false;
      if (props.authenticationMethod !== undefined) {
        this.#authMethod = props.authenticationMethod;
        if (this.core.hooks.authenticateEnhanced === undefined) {
          this.#refuse(ReasonCode.badAuthenticationMethod, 'authentication method not supported');
          return;
        }
        this.#block();
        this.#runEnhanced(props.authenticationData);
        return;
      }
    }
    this.#block();
    let result: AuthenticateResult<P> | PromiseLike<AuthenticateResult<P>>;
    try {
      result = this.core.hooks.authenticate({ connect: p, transport: this.transport });
    } catch (err) {
      this.#authError(err);
      return;
    }
    if (isThenable<AuthenticateResult<P>>(result)) {
      result.then(
        this.#guard((r: AuthenticateResult<P>) => this.#authenticated(r)),
        this.#guard((err: unknown) => this.#authError(err)),
      );
    } else this.#authenticated(result);
  }

  #authError(err: unknown): void {
    this.core.logger.error({ err, transport: this.transport }, 'authenticate hook failed');
    // Refuse (and close) before unblocking, so packets queued behind the CONNECT are never processed.
    this.#refuse(ReasonCode.unspecifiedError, undefined);
    this.#unblock();
  }

  #runEnhanced(data: Buffer | undefined): void {
    const hook = this.core.hooks.authenticateEnhanced!;
    let r: EnhancedAuthResult<P> | PromiseLike<EnhancedAuthResult<P>>;
    try {
      r = hook({
        connect: this.#connect!,
        transport: this.transport,
        method: this.#authMethod!,
        data,
        step: this.#authStep,
        state: this.#authState,
        reauthenticate: this.#reauth,
      });
    } catch (err) {
      this.#enhancedResult({ ok: false, reasonCode: ReasonCode.unspecifiedError }, err);
      return;
    }
    if (isThenable<EnhancedAuthResult<P>>(r)) {
      r.then(
        this.#guard((v: EnhancedAuthResult<P>) => this.#enhancedResult(v, undefined)),
        this.#guard((err: unknown) =>
          this.#enhancedResult({ ok: false, reasonCode: ReasonCode.unspecifiedError }, err),
        ),
      );
    } else this.#enhancedResult(r, undefined);
  }

  #enhancedResult(r: EnhancedAuthResult<P>, err: unknown): void {
    if (err !== undefined) this.core.logger.error({ err }, 'authenticateEnhanced hook failed');
    if (this.state === 'closed') return;
    if (r.ok === 'continue') {
      const auth: IAuthPacket = {
        cmd: 'auth',
        reasonCode: ReasonCode.continueAuthentication,
        properties: { authenticationMethod: this.#authMethod! },
      };
      if (r.data !== undefined) auth.properties!.authenticationData = r.data;
      this.#authState = r.state;
      this.#authStep++;
      if (!this.#reauth) this.state = 'auth';
      this.write(generate(auth, this.#controlOpts));
      this.#unblock();
      return;
    }
    if (this.#reauth) {
      this.#reauth = false;
      this.#unblock();
      if (r.ok) {
        // v5 §4.12.1 successful re-authentication: AUTH 0x00.
        this.principal = r.principal;
        this.write(
          generate(
            { cmd: 'auth', reasonCode: 0, properties: { authenticationMethod: this.#authMethod! } },
            this.#controlOpts,
          ),
        );
      } else {
        this.disconnect(r.reasonCode, r.reasonString);
      }
      return;
    }
    this.state = 'connecting';
    this.#authenticated(r);
  }

  #handleAuth(p: IAuthPacket): void {
    // [MQTT-4.12.0-5] [MQTT-4.12.0-7] v5 AUTH only after a CONNECT with a method, and with that method.
    if (
      !this.v5 ||
      this.#authMethod === undefined ||
      p.properties?.authenticationMethod !== this.#authMethod
    ) {
      this.protocolFailure(ReasonCode.protocolError, 'unexpected AUTH');
      return;
    }
    if (this.state === 'auth') {
      if (p.reasonCode !== ReasonCode.continueAuthentication) {
        this.protocolFailure(ReasonCode.protocolError, 'AUTH reason code during authentication');
        return;
      }
    } else if (p.reasonCode === ReasonCode.reauthenticate) {
      this.#reauth = true;
      this.#authStep = 0;
      this.#authState = undefined;
    } else if (p.reasonCode !== ReasonCode.continueAuthentication || !this.#reauth) {
      this.protocolFailure(ReasonCode.protocolError, 'unexpected AUTH reason code');
      return;
    }
    this.#block();
    this.#runEnhanced(p.properties?.authenticationData);
  }

  #authenticated(r: AuthenticateResult<P>): void {
    if (this.state === 'closed') return;
    if (!r.ok) {
      this.#refuse(r.reasonCode, r.reasonString);
      this.#unblock();
      return;
    }
    const p = this.#connect!;
    const limits = this.core.limits;
    let clientId = r.assignedClientId ?? p.clientId;
    if (clientId === '') clientId = this.core.generateClientId();
    const assigned = clientId !== p.clientId;
    this.clientId = clientId;
    this.principal = r.principal;
    // Keep alive [MQTT-3.1.2-21..24], Server Keep Alive [MQTT-3.2.2-21] v5.
    let keepAlive = p.keepalive ?? 0;
    let serverKeepAlive: number | undefined;
    if (this.v5) {
      if (limits.serverKeepAlive !== undefined) serverKeepAlive = limits.serverKeepAlive;
      else if (limits.keepAliveMax > 0 && (keepAlive === 0 || keepAlive > limits.keepAliveMax)) {
        serverKeepAlive = limits.keepAliveMax;
      }
      if (serverKeepAlive !== undefined) keepAlive = serverKeepAlive;
    }
    this.#keepAliveMs = keepAlive * 1500;
    // Session expiry: v5 property (default 0), 3.1.1 CleanSession=0 means a session that outlives the connection.
    let expiry = this.v5 ? (p.properties?.sessionExpiryInterval ?? 0) : p.clean ? 0 : SESSION_NEVER_EXPIRES;
    let expiryCapped = false;
    if (expiry > limits.maxSessionExpiryInterval) {
      expiry = limits.maxSessionExpiryInterval;
      expiryCapped = true;
    }
    this.#connectExpiry = expiry;
    if (p.will !== undefined) {
      const wp = p.will.properties;
      this.will = {
        topic: p.will.topic,
        payload: typeof p.will.payload === 'string' ? Buffer.from(p.will.payload) : p.will.payload,
        qos: p.will.qos ?? 0,
        retain: p.will.retain ?? false,
        properties: wp === undefined ? undefined : messagePropertiesOf(wp),
        expiryInterval: wp?.messageExpiryInterval ?? 0,
        delayInterval: wp?.willDelayInterval ?? 0,
      };
    }
    const handle = new Handle<P>(this, clientId);
    this.handle = handle;
    const attached = this.core.attach(this, clientId, p.clean !== false, expiry);
    const finish = (res: { session: Session; present: boolean } | undefined): void => {
      if (res === undefined || this.state === 'closed') {
        if (this.state !== 'closed') this.close('superseded during connect');
        return;
      }
      this.session = res.session;
      this.#inflightIn = res.session.awaitingRelease.size;
      res.session.handle = handle as ClientHandle<unknown>;
      this.state = 'open';
      if (this.#connectTimer !== undefined) clearTimeout(this.#connectTimer);
      this.#connectTimer = undefined;
      // Only re-authentication (v5 AUTH 0x19) needs the CONNECT again; idle connections do not keep it.
      if (this.#authMethod === undefined) this.#connect = undefined;
      const connack: IConnackPacket = {
        cmd: 'connack',
        // 3.1.1 [MQTT-3.2.2-1] [MQTT-3.2.2-2], v5 [MQTT-3.2.2-2] [MQTT-3.2.2-3]: session present only when resumed.
        sessionPresent: res.present,
      };
      if (this.v5) {
        connack.reasonCode = 0;
        const props: NonNullable<IConnackPacket['properties']> = {
          receiveMaximum: limits.receiveMaximum,
          maximumPacketSize: limits.maxPacketSize,
          topicAliasMaximum: limits.topicAliasMaximum,
          retainAvailable: true,
          wildcardSubscriptionAvailable: true,
          sharedSubscriptionAvailable: true,
          subscriptionIdentifiersAvailable: true,
        };
        // [MQTT-3.2.2-16] v5 the server tells the client the identifier it assigned.
        if (assigned) props.assignedClientIdentifier = clientId;
        if (serverKeepAlive !== undefined) props.serverKeepAlive = serverKeepAlive;
        if (expiryCapped) props.sessionExpiryInterval = expiry;
        if (this.#authMethod !== undefined) props.authenticationMethod = this.#authMethod;
        connack.properties = props;
      } else {
        connack.returnCode = 0;
      }
      this.write(generate(connack, this.#controlOpts));
      this.#startKeepAlive();
      this.core.connected(this);
      res.session.resume(this);
      this.#unblock();
    };
    if (isThenable<{ session: Session; present: boolean } | undefined>(attached)) {
      attached.then(this.#guard(finish), (err: unknown) => {
        this.core.logger.error({ err, clientId }, 'session attach failed');
        this.#refuse(ReasonCode.unspecifiedError, undefined);
        this.#unblock();
      });
    } else finish(attached);
  }

  /** CONNACK with a failure code, then close (3.1.1 [MQTT-3.2.2-5], v5 [MQTT-3.2.2-7]). */
  #refuse(reasonCode: number, reasonString: string | undefined): void {
    if (this.state === 'closed') return;
    const info: Parameters<NonNullable<typeof this.core.hooks.onRefused>>[0] = {
      transport: this.transport,
      stage: 'connect',
      reasonCode,
    };
    if (this.#connect?.clientId) info.clientId = this.#connect.clientId;
    if (reasonString !== undefined) info.reasonString = reasonString;
    this.core.refused(info);
    const connack: IConnackPacket = { cmd: 'connack', sessionPresent: false };
    if (this.v5) {
      connack.reasonCode = reasonCode;
      if (reasonString !== undefined && this.#problemInfo) connack.properties = { reasonString };
    } else connack.returnCode = toV3ConnackCode(reasonCode);
    try {
      this.write(generate(connack, this.#controlOpts));
    } catch {
      // unencodable reason string: close without CONNACK
    }
    this.close(`connect refused (0x${reasonCode.toString(16)})`);
  }

  // ---- keep alive --------------------------------------------------------------------------------

  #startKeepAlive(): void {
    if (this.#keepAliveMs === 0) return;
    this.#timer = setTimeout(Connection.#keepAliveTimeout, this.#keepAliveMs, this);
    this.#timer.unref();
  }

  #checkKeepAlive(): void {
    if (this.state === 'closed') return;
    const idle = this.core.clock.now() - this.#lastSeen;
    if (idle >= this.#keepAliveMs) {
      // 3.1.1 [MQTT-3.1.2-24], v5 [MQTT-3.1.2-22]: nothing received within 1.5 x Keep Alive: disconnect (v5: 0x8D).
      this.disconnect(ReasonCode.keepAliveTimeout, undefined, 'keep alive timeout');
      return;
    }
    this.#timer = setTimeout(Connection.#keepAliveTimeout, this.#keepAliveMs - idle, this);
    this.#timer.unref();
  }

  // ---- PUBLISH from the client -------------------------------------------------------------------

  #handlePublish(p: IPublishPacket): void {
    const core = this.core;
    core.metrics.messagesIn++;
    const qos = p.qos;
    // [MQTT-3.3.1-2] DUP must be 0 for QoS 0.
    if (qos === 0 && p.dup) {
      this.protocolFailure(ReasonCode.malformedPacket, 'DUP set on a QoS 0 PUBLISH');
      return;
    }
    const props = p.properties;
    if (this.v5 && props !== undefined) {
      const alias = props.topicAlias;
      if (alias !== undefined) {
        // [MQTT-3.3.2-8] [MQTT-3.3.2-9] v5 alias 0 or above our Topic Alias Maximum.
        if (alias === 0 || alias > core.limits.topicAliasMaximum) {
          this.protocolFailure(ReasonCode.topicAliasInvalid, 'topic alias out of range');
          return;
        }
        if (p.topic === '') {
          const t = this.#aliasesIn?.get(alias);
          if (t === undefined) {
            this.protocolFailure(ReasonCode.protocolError, 'unknown topic alias');
            return;
          }
          p.topic = t;
        } else {
          (this.#aliasesIn ??= new Map()).set(alias, p.topic);
        }
      }
      // [MQTT-3.3.4-6] v5 a PUBLISH from a client must not carry a Subscription Identifier.
      if (props.subscriptionIdentifier !== undefined) {
        this.protocolFailure(ReasonCode.protocolError, 'subscription identifier in PUBLISH');
        return;
      }
    }
    // [MQTT-3.3.2-1] [MQTT-3.3.2-2] [MQTT-4.7.3-1] a valid topic name, without wildcards.
    if (p.topic !== this.#validTopic) {
      if (!isValidTopicName(p.topic, core.limits.maxTopicLevels)) {
        this.protocolFailure(ReasonCode.topicNameInvalid, 'invalid topic name');
        return;
      }
      this.#validTopic = p.topic;
    }
    if (qos > 0) {
      const id = p.messageId!;
      if (qos === 2 && this.session!.awaitingRelease.has(id)) {
        // v5 [MQTT-4.3.3-10] (3.1.1 [MQTT-4.3.3-2]): a QoS 2 PUBLISH again before PUBREL: PUBREC, not routed again.
        if (this.#slots.length === 0) this.#writeAck(PUBREC, id);
        else if (!this.#slots.some((s) => s.packet.messageId === id && s.packet.qos === 2)) {
          this.#slots.push({
            packet: p,
            done: true,
            reasonCode: -1,
            reasonString: undefined,
            route: false,
            refused: false,
            routed: true,
            waiting: false,
          });
        }
        return;
      }
      // [MQTT-3.3.4-7] v5 more unacknowledged QoS 1/2 publishes than our Receive Maximum.
      if (this.v5 && this.#inflightIn >= core.limits.receiveMaximum) {
        this.protocolFailure(ReasonCode.receiveMaximumExceeded, 'receive maximum exceeded');
        return;
      }
      this.#inflightIn++;
      if (qos === 2) this.session!.awaitingRelease.add(id);
    }
    let authz: AuthzResult | PromiseLike<AuthzResult>;
    try {
      authz = core.hooks.authorizePublish(this.handle!, p);
    } catch (err) {
      this.#settle(this.#slot(p), err, undefined);
      return;
    }
    if (isThenable<AuthzResult>(authz)) {
      const slot = this.#slot(p);
      authz.then(
        this.#guard((a: AuthzResult) => this.#authorized(slot, a)),
        this.#guard((err: unknown) => this.#settle(slot, err, undefined)),
      );
      return;
    }
    if (authz !== true) {
      this.#publishRefused(p, authz);
      this.#done(p, authz.reasonCode, authz.reasonString, false, true);
      return;
    }
    const hook = core.hooks.onPublish;
    if (hook === undefined) {
      this.#done(p, 0, undefined, true, false);
      return;
    }
    let r: ReturnType<NonNullable<typeof hook>>;
    try {
      r = hook(this.handle!, p);
    } catch (err) {
      this.#settle(this.#slot(p), err, undefined);
      return;
    }
    if (isThenable<void | { route?: boolean }>(r)) {
      const slot = this.#slot(p);
      r.then(
        this.#guard((v: void | { route?: boolean }) => this.#settle(slot, undefined, v)),
        this.#guard((err: unknown) => this.#settle(slot, err, undefined)),
      );
      return;
    }
    this.#done(p, 0, undefined, !(r !== undefined && r.route === false), false);
  }

  /** A publish decided synchronously: acknowledged at once unless earlier ones or a store write wait. */
  #done(
    p: IPublishPacket,
    reasonCode: number,
    reasonString: string | undefined,
    route: boolean,
    refused: boolean,
  ): void {
    if (this.#slots.length === 0 && route && reasonCode === 0) {
      // The common case, without a slot: routed, then acknowledged at once unless a store write must come first.
      const stored = this.state === 'closed' ? undefined : this.core.routeInbound(this, p);
      if (stored === undefined || p.qos === 0) {
        if (p.qos !== 0 && this.state !== 'closed') {
          this.#writeAck(p.qos === 1 ? PUBACK : PUBREC, p.messageId!);
          if (p.qos === 1) this.#inflightIn--;
        }
        return;
      }
      const slot = this.#newSlot(p, true, 0, undefined, true, false);
      slot.routed = true;
      this.#slots.push(slot);
      this.#waitStored(slot, stored);
      return;
    }
    const slot = this.#newSlot(p, true, reasonCode, reasonString, route, refused);
    if (this.#slots.length > 0) {
      this.#slots.push(slot);
      return;
    }
    this.#routeSlot(slot);
    if (slot.waiting) this.#slots.push(slot);
    else this.#acknowledge(slot);
  }

  #newSlot(
    p: IPublishPacket,
    done: boolean,
    reasonCode: number,
    reasonString: string | undefined,
    route: boolean,
    refused: boolean,
  ): InboundSlot {
    return { packet: p, done, reasonCode, reasonString, route, refused, routed: false, waiting: false };
  }

  #slot(p: IPublishPacket): InboundSlot {
    const slot = this.#newSlot(p, false, 0, undefined, true, false);
    this.#slots.push(slot);
    return slot;
  }

  /** Routes an accepted publish; its acknowledgement waits when persistent sessions must store it first. */
  #routeSlot(slot: InboundSlot): void {
    slot.routed = true;
    if (!slot.route || slot.reasonCode !== 0 || this.state === 'closed') return;
    const stored = this.core.routeInbound(this, slot.packet);
    if (stored === undefined || slot.packet.qos === 0) return;
    this.#waitStored(slot, stored);
  }

  #waitStored(slot: InboundSlot, stored: Promise<unknown>): void {
    slot.waiting = true;
    stored.then(
      this.#guard(() => {
        slot.waiting = false;
        this.#completeSlots();
      }),
      this.#guard((err: unknown) => {
        this.core.logger.error(
          { err, clientId: this.clientId },
          'storing a message for offline sessions failed',
        );
        slot.waiting = false;
        slot.reasonCode = ReasonCode.unspecifiedError;
        slot.reasonString = 'not stored';
        this.#completeSlots();
      }),
    );
  }

  #authorized(slot: InboundSlot, a: AuthzResult): void {
    if (this.state === 'closed') return;
    if (a !== true) {
      this.#publishRefused(slot.packet, a);
      slot.reasonCode = a.reasonCode;
      slot.reasonString = a.reasonString;
      slot.route = false;
      slot.refused = true;
      slot.done = true;
      this.#completeSlots();
      return;
    }
    const hook = this.core.hooks.onPublish;
    if (hook === undefined) {
      this.#settle(slot, undefined, undefined);
      return;
    }
    try {
      const r = hook(this.handle!, slot.packet);
      if (isThenable<void | { route?: boolean }>(r)) {
        r.then(
          this.#guard((v: void | { route?: boolean }) => this.#settle(slot, undefined, v)),
          this.#guard((err: unknown) => this.#settle(slot, err, undefined)),
        );
      } else this.#settle(slot, undefined, r);
    } catch (err) {
      this.#settle(slot, err, undefined);
    }
  }

  #publishRefused(p: IPublishPacket, a: { reasonCode: number; reasonString?: string }): void {
    const info: Parameters<NonNullable<typeof this.core.hooks.onRefused>>[0] = {
      transport: this.transport,
      clientId: this.clientId,
      stage: 'publish',
      reasonCode: a.reasonCode,
      topic: p.topic,
      principal: this.principal as P,
    };
    if (a.reasonString !== undefined) info.reasonString = a.reasonString;
    this.core.refused(info);
  }

  #settle(slot: InboundSlot, err: unknown, v: void | { route?: boolean } | undefined): void {
    if (err !== undefined) {
      const e = err as ConnectionError;
      const code = typeof e?.mqttReasonCode === 'number' ? e.mqttReasonCode : ReasonCode.unspecifiedError;
      if (typeof e?.mqttReasonCode !== 'number') {
        this.core.logger.error({ err, clientId: this.clientId }, 'publish hook failed');
      }
      slot.reasonCode = code < 0x80 ? ReasonCode.unspecifiedError : code;
      slot.reasonString = typeof e?.mqttReasonString === 'string' ? e.mqttReasonString : undefined;
      slot.route = false;
    } else if (v !== undefined && v !== null && v.route === false) {
      slot.route = false;
    }
    slot.done = true;
    this.#completeSlots();
  }

  /** Routes, then acknowledges, finished publishes in the order they were received [MQTT-4.6.0-2]. */
  #completeSlots(): void {
    const slots = this.#slots;
    let r = this.#routedSlots;
    while (r < slots.length && slots[r]!.done && this.state !== 'closed') {
      const s = slots[r++]!;
      if (!s.routed) this.#routeSlot(s);
    }
    this.#routedSlots = r;
    let n = 0;
    while (n < slots.length && slots[n]!.done && !slots[n]!.waiting && this.state !== 'closed') {
      const s = slots[n++]!;
      if (s.reasonCode === -1) this.#writeAck(PUBREC, s.packet.messageId!);
      else this.#acknowledge(s);
    }
    if (n > 0) {
      slots.splice(0, n);
      this.#routedSlots = Math.max(0, this.#routedSlots - n);
    }
    if (this.#paused && slots.length <= this.core.limits.maxPendingInbound && this.state !== 'closed') {
      this.#paused = false;
      if (!this.#yielded) this.stream.resume();
      this.#drain();
    }
  }

  /** PUBACK/PUBREC for a routed publish (or the refusal); 3.1.1 refusals close the connection. */
  #acknowledge(slot: InboundSlot): void {
    if (this.state === 'closed') return;
    const { packet: p, reasonCode, reasonString, refused: refusedByAuthz } = slot;
    const qos = p.qos;
    if (reasonCode >= 0x80 && !this.v5) {
      // [MQTT-3.3.5-2] 3.1.1 has no way to refuse a PUBLISH: close the connection.
      this.close(`publish refused (0x${reasonCode.toString(16)})`);
      return;
    }
    if (qos === 0) {
      // A QoS 0 publish can only be refused by disconnecting; authorization refusals are silent drops.
      if (reasonCode >= 0x80 && !refusedByAuthz) {
        this.disconnect(reasonCode, reasonString);
      }
      return;
    }
    const id = p.messageId!;
    if (reasonCode === 0) this.#writeAck(qos === 1 ? PUBACK : PUBREC, id);
    else if (reasonString !== undefined && this.#problemInfo) {
      this.write(
        generate(
          { cmd: qos === 1 ? 'puback' : 'pubrec', messageId: id, reasonCode, properties: { reasonString } },
          this.#controlOpts,
        ),
      );
    } else this.write(qos === 1 ? encodePuback(id, reasonCode) : encodePubrec(id, reasonCode));
    if (qos === 1 || reasonCode >= 0x80) {
      // [MQTT-4.3.3-9] v5 after a PUBREC with an error code, the packet id is free for a new message.
      if (qos === 2) this.session!.awaitingRelease.delete(id);
      this.#inflightIn--;
    }
  }

  #handlePubrel(id: number): void {
    // [MQTT-4.3.3-11] [MQTT-4.3.3-12] PUBREL releases the packet id; PUBCOMP even when unknown (v5: 0x92).
    const known = this.session!.awaitingRelease.delete(id);
    if (known) this.#inflightIn--;
    if (known || !this.v5) this.#writeAck(PUBCOMP, id);
    else this.write(encodePubcomp(id, ReasonCode.packetIdentifierNotFound));
  }

  #handlePubrec(id: number, reasonCode: number): void {
    const known = this.session!.onPubrec(id, reasonCode);
    if (reasonCode >= 0x80) return;
    // v5 [MQTT-4.3.3-4] (3.1.1 [MQTT-4.3.3-1]): answer PUBREC with PUBREL (v5: 0x92 when the id is unknown).
    if (known || !this.v5) this.#writeAck(PUBREL, id);
    else this.write(encodePubrel(id, ReasonCode.packetIdentifierNotFound));
  }

  // ---- SUBSCRIBE / UNSUBSCRIBE -------------------------------------------------------------------

  #handleSubscribe(p: ISubscribePacket): void {
    const core = this.core;
    const limits = core.limits;
    const session = this.session!;
    const subId = p.properties?.subscriptionIdentifier;
    if (subId !== undefined && (typeof subId !== 'number' || subId === 0)) {
      // v5 §3.8.2.1.2: a Subscription Identifier of 0, or more than one, is a protocol error.
      this.protocolFailure(ReasonCode.protocolError, 'invalid subscription identifier');
      return;
    }
    const n = p.subscriptions.length;
    if (n === 0) {
      // 3.1.1 [MQTT-3.8.3-3], v5 [MQTT-3.8.3-2]: at least one topic filter.
      this.protocolFailure(ReasonCode.protocolError, 'SUBSCRIBE without topic filters');
      return;
    }
    const codes: number[] = new Array<number>(n).fill(0);
    const parsed: (ReturnType<typeof parseSubscriptionFilter> | undefined)[] = new Array(n);
    let pending: PromiseLike<void>[] | undefined;
    let added = 0;
    for (let i = 0; i < n; i++) {
      const s = p.subscriptions[i]!;
      const f = parseSubscriptionFilter(s.topic, limits.maxTopicLevels);
      if (f === undefined) {
        if (!this.v5) {
          // [MQTT-4.7.1-1..3] 3.1.1: an invalid filter is a protocol violation.
          this.close(`invalid topic filter ${JSON.stringify(s.topic)}`);
          return;
        }
        codes[i] = ReasonCode.topicFilterInvalid;
        continue;
      }
      if (f.group !== undefined && s.nl === true) {
        // [MQTT-3.8.3-4] v5 No Local on a shared subscription.
        this.protocolFailure(ReasonCode.protocolError, 'no local on a shared subscription');
        return;
      }
      if (
        !session.subscriptions.has(s.topic) &&
        session.subscriptions.size + ++added > limits.maxSubscriptionsPerClient
      ) {
        codes[i] = this.v5 ? ReasonCode.quotaExceeded : 0x80;
        continue;
      }
      parsed[i] = f;
      let a: AuthzResult | PromiseLike<AuthzResult>;
      try {
        a = core.hooks.authorizeSubscribe(this.handle!, s.topic, s.qos);
      } catch (err) {
        core.logger.error({ err, clientId: this.clientId }, 'authorizeSubscribe hook failed');
        a = { ok: false, reasonCode: ReasonCode.unspecifiedError };
      }
      if (isThenable<AuthzResult>(a)) {
        (pending ??= []).push(
          a.then(
            (v) => this.#subscribeDecision(codes, i, s.topic, v),
            (err: unknown) => {
              core.logger.error({ err, clientId: this.clientId }, 'authorizeSubscribe hook failed');
              this.#subscribeDecision(codes, i, s.topic, {
                ok: false,
                reasonCode: ReasonCode.unspecifiedError,
              });
            },
          ),
        );
      } else this.#subscribeDecision(codes, i, s.topic, a);
    }
    if (pending === undefined) {
      this.#applySubscribe(p, codes, parsed, subId ?? 0);
      return;
    }
    // Later packets wait, so a PUBLISH sent after SUBSCRIBE sees the subscription.
    this.#block();
    Promise.all(pending).then(
      this.#guard(() => {
        if (this.state === 'closed') return;
        this.#applySubscribe(p, codes, parsed, subId ?? 0);
        this.#unblock();
      }),
      this.#guard(() => this.#unblock()),
    );
  }

  #subscribeDecision(codes: number[], i: number, filter: string, a: AuthzResult): void {
    if (a === true) return;
    // v5 0x87 (or the hook's code) per filter; 3.1.1 0x80 [MQTT-3.9.3-2].
    codes[i] = this.v5 ? (a.reasonCode >= 0x80 ? a.reasonCode : ReasonCode.notAuthorized) : 0x80;
    const info: Parameters<NonNullable<typeof this.core.hooks.onRefused>>[0] = {
      transport: this.transport,
      clientId: this.clientId,
      stage: 'subscribe',
      reasonCode: a.reasonCode,
      topic: filter,
      principal: this.principal as P,
    };
    if (a.reasonString !== undefined) info.reasonString = a.reasonString;
    this.core.refused(info);
  }

  #applySubscribe(
    p: ISubscribePacket,
    codes: number[],
    parsed: (ReturnType<typeof parseSubscriptionFilter> | undefined)[],
    subId: number,
  ): void {
    const session = this.session!;
    const retainedFor: { filter: string; qos: QoS; rap: boolean; ids: number[] | undefined }[] = [];
    for (let i = 0; i < codes.length; i++) {
      const f = parsed[i];
      if (codes[i] !== 0 || f === undefined) continue;
      const s = p.subscriptions[i]!;
      const qos = s.qos;
      const rh = (s.rh ?? 0) as 0 | 1 | 2;
      const isNew = this.core.subscribe(
        session,
        s.topic,
        f.filter,
        f.group,
        qos,
        s.nl === true,
        s.rap === true,
        rh,
        subId,
      );
      // v5 [MQTT-3.8.4-7] the granted QoS.
      codes[i] = qos;
      // [MQTT-3.3.1-9] v5 Retain Handling: 0 always, 1 only for a new subscription, 2 never;
      // retained messages are not sent for shared subscriptions.
      if (f.group === undefined && (rh === 0 || (rh === 1 && isNew))) {
        retainedFor.push({ filter: f.filter, qos, rap: true, ids: subId === 0 ? undefined : [subId] });
      }
    }
    if (session.expiryInterval > 0) session.save(undefined);
    // [MQTT-3.8.4-1] [MQTT-3.8.4-2] SUBACK with the same packet id, one code per filter (3.1.1
    // [MQTT-3.8.4-5], v5 [MQTT-3.8.4-6]).
    this.write(generate({ cmd: 'suback', messageId: p.messageId!, granted: codes }, this.#controlOpts));
    for (const r of retainedFor) this.core.sendRetained(session, r.filter, r.qos, r.ids);
  }

  #handleUnsubscribe(p: IUnsubscribePacket): void {
    const session = this.session!;
    if (p.unsubscriptions.length === 0) {
      // [MQTT-3.10.3-2]
      this.protocolFailure(ReasonCode.protocolError, 'UNSUBSCRIBE without topic filters');
      return;
    }
    const codes: number[] = [];
    for (const raw of p.unsubscriptions) {
      const existed = this.core.unsubscribe(session, raw);
      codes.push(existed ? 0 : ReasonCode.noSubscriptionExisted);
    }
    if (session.expiryInterval > 0) session.save(undefined);
    // [MQTT-3.10.4-4] [MQTT-3.10.4-5]
    if (this.v5) {
      this.write(generate({ cmd: 'unsuback', messageId: p.messageId!, granted: codes }, this.#controlOpts));
    } else {
      const b = Buffer.allocUnsafe(4);
      b[0] = 0xb0;
      b[1] = 2;
      b.writeUInt16BE(p.messageId!, 2);
      this.write(b);
    }
  }

  // ---- DISCONNECT --------------------------------------------------------------------------------

  #handleDisconnect(p: IDisconnectPacket): void {
    const rc = p.reasonCode ?? 0;
    if (this.v5) {
      const expiry = p.properties?.sessionExpiryInterval;
      if (expiry !== undefined) {
        // v5 §3.14.2.2.2 a session expiry of 0 at CONNECT cannot be raised at DISCONNECT.
        if (this.#connectExpiry === 0 && expiry !== 0) {
          this.protocolFailure(ReasonCode.protocolError, 'session expiry raised at DISCONNECT');
          return;
        }
        this.session!.expiryInterval = Math.min(expiry, this.core.limits.maxSessionExpiryInterval);
      }
    }
    // [MQTT-3.1.2-10] [MQTT-3.14.4-3] the will is discarded, unless v5 0x04 asks for it.
    this.normalDisconnect = rc !== ReasonCode.disconnectWithWill;
    // The server closes without sending anything (v5 §3.14.4).
    this.close('client disconnected', rc);
  }

  // ---- writing -----------------------------------------------------------------------------------

  write(buf: Buffer): void {
    if (this.state === 'closed') return;
    this.#queueOut(buf, 0, buf.length);
  }

  /** PUBACK, PUBREC, PUBREL or PUBCOMP with reason code 0: no buffer of its own until the batch. */
  #writeAck(type: number, packetId: number): void {
    if (this.state === 'closed') return;
    this.#queueOut(ACK_ENTRY, (type << 16) | packetId, 4);
  }

  #queueOut(entry: Buffer | Message, meta: number, size: number): void {
    if (this.#out.length === 0) {
      flushing.push(this as Connection<unknown>);
      if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(flushAll);
      }
    }
    this.#out.push(entry);
    this.#outMeta.push(meta);
    this.#outLen.push(size);
    this.#outBytes += size;
  }

  /** @internal writes this turn's output: small packets copied into one buffer, large ones as they are. */
  flush(): void {
    const entries = this.#out;
    const n = entries.length;
    if (n === 0) return;
    const meta = this.#outMeta;
    const lens = this.#outLen;
    const stream = this.stream;
    if (!stream.destroyed && stream.writable) {
      if (n === 1 && meta[0] === 0) stream.write(entries[0] as Buffer);
      else {
        stream.cork();
        let i = 0;
        while (i < n) {
          if (lens[i]! >= WRITE_AS_IS && meta[i] === 0) {
            stream.write(entries[i++] as Buffer);
            continue;
          }
          let size = 0;
          let j = i;
          while (j < n) {
            const len = lens[j]!;
            if (len >= WRITE_AS_IS && meta[j] === 0) break;
            if (size > 0 && size + len > BATCH_MAX) break;
            size += len;
            j++;
          }
          const out = Buffer.allocUnsafe(size);
          let o = 0;
          for (; i < j; i++) {
            const e = entries[i]!;
            const m = meta[i]!;
            if (m >= PUBLISH_ENTRY) {
              o = (e as Message).writePlain(
                out,
                o,
                ((m >> 16) & 3) as QoS,
                (m & P_RETAIN) !== 0,
                (m & P_DUP) !== 0,
                m & 0xffff,
                (m & P_V5) !== 0,
              );
            } else if (e === ACK_ENTRY) {
              out[o] = m >>> 16;
              out[o + 1] = 2;
              out[o + 2] = (m >> 8) & 0xff;
              out[o + 3] = m & 0xff;
              o += 4;
            } else {
              const b = e as Buffer;
              out.set(b, o);
              if (m < 0) out.writeUInt16BE(-m, o + packetIdOffset(b));
              o += b.length;
            }
          }
          stream.write(out);
        }
        stream.uncork();
      }
    }
    entries.length = 0;
    meta.length = 0;
    lens.length = 0;
    this.#outBytes = 0;
  }

  /**
   * A slow consumer: more unflushed bytes than maxBufferedBytes. (Not the stream's own high-water
   * mark: 'drain' cannot fire while the event loop is busy reading publishers, so that would make
   * every subscriber look slow under load.)
   */
  get congested(): boolean {
    return this.stream.writableLength + this.#outBytes > this.core.limits.maxBufferedBytes;
  }

  sendPublish(
    msg: Message,
    qos: QoS,
    retain: boolean,
    packetId: number,
    dup: boolean,
    ids: number[] | undefined,
  ): boolean {
    let alias = 0;
    let aliasNew = false;
    if (this.#aliasOutMax > 0) {
      const aliases = (this.#aliasesOut ??= new Map());
      const a = aliases.get(msg.topic);
      if (a !== undefined) alias = a;
      else if (aliases.size < this.#aliasOutMax) {
        alias = aliases.size + 1;
        aliasNew = true;
      }
    }
    const v5 = this.v5;
    if (alias === 0 && (!v5 || (ids === undefined && msg.properties === undefined && msg.expiresAt === 0))) {
      // Without properties: encoded straight into this turn's batch when flushed.
      const size = msg.plainSize(qos, v5);
      if (size !== 0 && size < WRITE_AS_IS) {
        if (this.#clientMaxPacketSize !== 0 && size > this.#clientMaxPacketSize) {
          // [MQTT-3.1.2-25] v5 never send a packet larger than the client's Maximum Packet Size: drop it.
          this.core.metrics.dropped++;
          return false;
        }
        if (this.state !== 'closed') {
          const flags = (v5 ? P_V5 : 0) | (dup ? P_DUP : 0) | (retain ? P_RETAIN : 0);
          this.#queueOut(msg, PUBLISH_ENTRY | flags | (qos << 16) | packetId, size);
        }
        this.core.metrics.messagesOut++;
        return true;
      }
    }
    // The encoding shared by every delivery of the message, or one for this delivery only.
    const shared = dup || alias !== 0 ? undefined : msg.shared(qos, retain, v5, ids);
    const buf =
      shared ?? msg.encode(qos, retain, dup, packetId, v5, ids, alias, aliasNew, this.core.clock.now());
    if (this.#clientMaxPacketSize !== 0 && buf.length > this.#clientMaxPacketSize) {
      // [MQTT-3.1.2-25] v5 never send a packet larger than the client's Maximum Packet Size: drop it.
      this.core.metrics.dropped++;
      return false;
    }
    if (aliasNew) this.#aliasesOut!.set(msg.topic, alias);
    if (this.state !== 'closed')
      this.#queueOut(buf, shared !== undefined && qos > 0 ? -packetId : 0, buf.length);
    this.core.metrics.messagesOut++;
    return true;
  }

  sendPubrel(packetId: number): void {
    this.#writeAck(PUBREL, packetId);
  }

  // ---- closing -----------------------------------------------------------------------------------

  /** Protocol violation: v5 gets DISCONNECT with the reason once connected; then the connection closes. */
  protocolFailure(reasonCode: number, reason: string): void {
    this.core.logger.debug(
      { clientId: this.clientId, transport: this.transport, reasonCode, reason },
      'protocol failure',
    );
    if (this.state === 'open') this.disconnect(reasonCode, undefined, reason);
    else this.close(reason, reasonCode);
  }

  /** Server-initiated disconnect (v5: DISCONNECT with the reason code [MQTT-4.13.2-1]). */
  disconnect(reasonCode?: number, reasonString?: string, why?: string): void {
    if (this.state === 'closed') return;
    const rc = reasonCode ?? ReasonCode.administrativeAction;
    if (this.v5 && this.state === 'open') {
      const packet: IDisconnectPacket = { cmd: 'disconnect', reasonCode: rc };
      if (reasonString !== undefined) packet.properties = { reasonString };
      try {
        this.write(generate(packet, this.#controlOpts));
      } catch {
        this.write(generate({ cmd: 'disconnect', reasonCode: rc }, { protocolVersion: 5 }));
      }
    }
    this.close(why ?? `disconnected by server (0x${rc.toString(16)})`, rc);
  }

  /** Closes the connection and detaches the session. Idempotent. */
  close(reason: string, reasonCode?: number): void {
    if (this.state === 'closed') return;
    const wasOpen = this.state === 'open';
    this.state = 'closed';
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (this.#connectTimer !== undefined) clearTimeout(this.#connectTimer);
    const stream = this.stream;
    // What was written before closing (CONNACK, DISCONNECT) still goes out.
    this.flush();
    stream.end();
    if (!stream.destroyed) {
      // Give the peer a moment to read what was written (CONNACK, DISCONNECT), then force it.
      const t = setTimeout(() => stream.destroy(), 1000);
      t.unref();
      stream.once('close', () => clearTimeout(t));
    }
    if (this.#paused || this.#yielded) stream.resume();
    this.core.detached(this, wasOpen, reason, reasonCode);
  }
}

/** The v5 properties a message keeps when forwarded (expiry and aliases are per hop). */
export function messagePropertiesOf(props: {
  payloadFormatIndicator?: boolean;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Buffer;
  userProperties?: MessageProperties['userProperties'];
}): MessageProperties | undefined {
  let out: MessageProperties | undefined;
  if (props.payloadFormatIndicator !== undefined)
    (out ??= {}).payloadFormatIndicator = props.payloadFormatIndicator;
  if (props.contentType !== undefined) (out ??= {}).contentType = props.contentType;
  if (props.responseTopic !== undefined) (out ??= {}).responseTopic = props.responseTopic;
  if (props.correlationData !== undefined) (out ??= {}).correlationData = props.correlationData;
  if (props.userProperties !== undefined) (out ??= {}).userProperties = props.userProperties;
  return out;
}
