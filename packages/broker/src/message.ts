import mqtt from 'mqtt-packet';
import type { IPublishPacket, QoS } from 'mqtt-packet';
import type { MessageProperties, RoutedMessage, StoredMessage } from './types.ts';

const generate = mqtt.generate;

/**
 * A message being routed. One instance is shared by every subscriber it goes to; the encoded
 * PUBLISH is cached per (protocol level, QoS, retain flag) so fan-out encodes once.
 */
export class Message {
  readonly topic: string;
  #payload: Buffer;
  #kept = false;
  readonly qos: QoS;
  readonly retain: boolean;
  readonly properties: MessageProperties | undefined;
  /** Epoch ms after which it is not delivered, 0 for never [MQTT-3.3.2-5] v5. */
  readonly expiresAt: number;
  /** Publishing client id, for No Local; undefined when the server published it. */
  readonly origin: string | undefined;
  /** The shared encoding most recently asked for, and its key (see `shared`); others in #encodedMore. */
  #encoded: Buffer | undefined = undefined;
  #encodedKey = -1;
  #encodedMore: (Buffer | undefined)[] | undefined = undefined;
  /** UTF-8 length of the topic, -1 until needed. */
  #topicBytes = -1;

  constructor(
    topic: string,
    payload: Buffer,
    qos: QoS,
    retain: boolean,
    properties: MessageProperties | undefined,
    expiresAt: number,
    origin: string | undefined,
  ) {
    this.topic = topic;
    this.#payload = payload;
    this.qos = qos;
    this.retain = retain;
    this.properties = properties;
    this.expiresAt = expiresAt;
    this.origin = origin;
  }

  get payload(): Buffer {
    return this.#payload;
  }

  /**
   * The message is going to be kept (queued for a slow or offline client, stored, retained). A
   * payload decoded from the wire is a view into the chunk it was read in (up to 64 KiB, shared by
   * the messages around it): copied once here, so that a queue of messages that each outlived the
   * rest of their chunk does not hold all those chunks (tens of MB under overload).
   */
  keep(): void {
    if (this.#kept) return;
    this.#kept = true;
    const p = this.#payload;
    if (p.byteLength < p.buffer.byteLength) this.#payload = Buffer.from(p);
  }

  static fromStored(m: StoredMessage | RoutedMessage, origin?: string): Message {
    return new Message(m.topic, asBuffer(m.payload), m.qos, m.retain, m.properties, m.expiresAt ?? 0, origin);
  }

  toStored(qos: QoS, retain: boolean, subscriptionIds: number[] | undefined, seq = 0): StoredMessage {
    const s: StoredMessage = { topic: this.topic, payload: this.payload, qos, retain };
    if (seq !== 0) s.seq = seq;
    if (this.properties !== undefined) s.properties = this.properties;
    if (this.expiresAt !== 0) s.expiresAt = this.expiresAt;
    if (subscriptionIds !== undefined) s.subscriptionIds = subscriptionIds;
    return s;
  }

  toRouted(): RoutedMessage {
    const r: RoutedMessage = { topic: this.topic, payload: this.payload, qos: this.qos, retain: this.retain };
    if (this.properties !== undefined) r.properties = this.properties;
    if (this.expiresAt !== 0) r.expiresAt = this.expiresAt;
    if (this.origin !== undefined) r.origin = this.origin;
    return r;
  }

  /**
   * Encoded PUBLISH. `alias` > 0 sends a topic alias (with the topic when `aliasNew`, else an empty
   * topic); `subscriptionIds` and a message expiry make the encoding specific to one delivery.
   */
  encode(
    qos: QoS,
    retain: boolean,
    dup: boolean,
    packetId: number,
    v5: boolean,
    subscriptionIds: number[] | undefined,
    alias: number,
    aliasNew: boolean,
    now: number,
  ): Buffer {
    const buf = dup || alias !== 0 ? undefined : this.shared(qos, retain, v5, subscriptionIds);
    if (buf === undefined) {
      return this.#encodeOnce(qos, retain, dup, packetId, v5, subscriptionIds, alias, aliasNew, now);
    }
    if (qos === 0) return buf;
    const out = Buffer.allocUnsafe(buf.length);
    buf.copy(out);
    out.writeUInt16BE(packetId, packetIdOffset(buf));
    return out;
  }

  /**
   * The PUBLISH encoding shared by every delivery with these flags (without DUP or a topic alias), with
   * packet id 0 for QoS 1/2: the writer patches the id into its copy (`packetIdOffset`). Undefined when
   * the delivery needs an encoding of its own (v5 subscription identifiers or message expiry).
   */
  shared(qos: QoS, retain: boolean, v5: boolean, subscriptionIds: number[] | undefined): Buffer | undefined {
    if (v5 && (subscriptionIds !== undefined || this.expiresAt !== 0)) return undefined;
    const key = (v5 ? 1 : 0) | (retain ? 2 : 0) | (qos << 2);
    if (key === this.#encodedKey) return this.#encoded;
    // Deliveries at different QoS or protocol levels: the others are kept aside.
    const more = this.#encodedMore;
    let buf = more?.[key];
    if (buf === undefined) {
      buf = this.#encodeOnce(qos, retain, false, 0, v5, undefined, 0, false, 0);
      if (this.#encodedKey === -1) {
        this.#encoded = buf;
        this.#encodedKey = key;
        return buf;
      }
      (this.#encodedMore ??= [])[key] = buf;
    }
    return buf;
  }

  /**
   * Size of this message as a PUBLISH without properties (v5: with an empty property list, so only
   * for a message without properties or expiry, delivered without subscription ids or topic alias),
   * or 0 when it cannot be encoded so (topic or packet too long for MQTT).
   */
  plainSize(qos: QoS, v5: boolean): number {
    let t = this.#topicBytes;
    if (t < 0) t = this.#topicBytes = Buffer.byteLength(this.topic);
    const remaining = 2 + t + (qos > 0 ? 2 : 0) + (v5 ? 1 : 0) + this.payload.length;
    if (t > 0xffff || remaining > MAX_REMAINING) return 0;
    return headerSize(remaining) + remaining;
  }

  /** Writes that PUBLISH (`plainSize` bytes) into `out` at `offset`; returns the offset after it. */
  writePlain(
    out: Buffer,
    offset: number,
    qos: QoS,
    retain: boolean,
    dup: boolean,
    packetId: number,
    v5: boolean,
  ): number {
    let t = this.#topicBytes;
    if (t < 0) t = this.#topicBytes = Buffer.byteLength(this.topic);
    return writePublish(out, offset, this.topic, t, this.payload, qos, retain, dup, packetId, v5);
  }

  #encodeOnce(
    qos: QoS,
    retain: boolean,
    dup: boolean,
    packetId: number,
    v5: boolean,
    subscriptionIds: number[] | undefined,
    alias: number,
    aliasNew: boolean,
    now: number,
  ): Buffer {
    if (
      !v5 ||
      (this.properties === undefined && this.expiresAt === 0 && subscriptionIds === undefined && alias === 0)
    ) {
      const out = encodePublish(this.topic, this.payload, qos, retain, dup, packetId, v5);
      if (out !== undefined) return out;
    }
    const packet: IPublishPacket = {
      cmd: 'publish',
      topic: alias !== 0 && !aliasNew ? '' : this.topic,
      payload: this.payload,
      qos,
      retain,
      dup,
      messageId: packetId,
    };
    if (v5) {
      const props: NonNullable<IPublishPacket['properties']> = { ...this.properties };
      if (this.expiresAt !== 0) {
        // [MQTT-3.3.2-6] v5 the forwarded expiry is the time remaining.
        props.messageExpiryInterval = Math.max(1, Math.ceil((this.expiresAt - now) / 1000));
      }
      if (subscriptionIds !== undefined) {
        // [MQTT-3.3.4-3] v5
        props.subscriptionIdentifier = subscriptionIds.length === 1 ? subscriptionIds[0]! : subscriptionIds;
      }
      if (alias !== 0) props.topicAlias = alias;
      packet.properties = props;
    }
    return generate(packet, { protocolVersion: v5 ? 5 : 4 });
  }
}

/** Largest Remaining Length (MQTT 1.5.5). */
const MAX_REMAINING = 268_435_455;

/**
 * A PUBLISH without properties (v5: an empty property list), encoded directly: mqtt-packet's
 * generate() calls `debug` with the packet even when logging is off and measures it twice.
 */
function encodePublish(
  topic: string,
  payload: Buffer,
  qos: QoS,
  retain: boolean,
  dup: boolean,
  packetId: number,
  v5: boolean,
): Buffer | undefined {
  const topicLen = Buffer.byteLength(topic);
  const remaining = 2 + topicLen + (qos > 0 ? 2 : 0) + (v5 ? 1 : 0) + payload.length;
  if (topicLen > 0xffff || remaining > MAX_REMAINING) return undefined;
  const out = Buffer.allocUnsafe(headerSize(remaining) + remaining);
  writePublish(out, 0, topic, topicLen, payload, qos, retain, dup, packetId, v5);
  return out;
}

/** Fixed header bytes for a Remaining Length (MQTT 1.5.5: 1 to 4 bytes, after the type byte). */
function headerSize(remaining: number): number {
  return remaining < 128 ? 2 : remaining < 16_384 ? 3 : remaining < 2_097_152 ? 4 : 5;
}

/** A PUBLISH without properties at `o`; returns the offset after it. The caller checked the sizes. */
function writePublish(
  out: Buffer,
  o: number,
  topic: string,
  topicLen: number,
  payload: Buffer,
  qos: QoS,
  retain: boolean,
  dup: boolean,
  packetId: number,
  v5: boolean,
): number {
  const remaining = 2 + topicLen + (qos > 0 ? 2 : 0) + (v5 ? 1 : 0) + payload.length;
  out[o++] = 0x30 | (dup ? 8 : 0) | (qos << 1) | (retain ? 1 : 0);
  let n = remaining;
  do {
    const b = n % 128;
    n = Math.floor(n / 128);
    out[o++] = n > 0 ? b | 0x80 : b;
  } while (n > 0);
  out[o++] = topicLen >> 8;
  out[o++] = topicLen & 0xff;
  // An ASCII topic (one byte per character) is the same in latin1, which Node writes faster.
  o += out.write(topic, o, topicLen, topicLen === topic.length ? 'latin1' : 'utf8');
  if (qos > 0) {
    out[o++] = packetId >> 8;
    out[o++] = packetId & 0xff;
  }
  if (v5) out[o++] = 0;
  out.set(payload, o);
  return o + payload.length;
}

/** Stores and routers may hand back a plain Uint8Array (structured clone, some drivers). */
export function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** Where the packet id sits in an encoded QoS 1/2 PUBLISH. */
export function packetIdOffset(buf: Buffer): number {
  let o = 1;
  while ((buf[o]! & 0x80) !== 0) o++;
  o++;
  return o + 2 + buf.readUInt16BE(o);
}

/** First bytes of the acknowledgements (PUBREL with its fixed 0010 flags). */
export const PUBACK = 0x40;
export const PUBREC = 0x50;
export const PUBREL = 0x62;
export const PUBCOMP = 0x70;

function ack(type: number, packetId: number, reasonCode: number): Buffer {
  // v5 §3.4.2.1 the reason code may be omitted when it is 0x00 and there are no properties.
  if (reasonCode === 0) {
    const b = Buffer.allocUnsafe(4);
    b[0] = type;
    b[1] = 2;
    b.writeUInt16BE(packetId, 2);
    return b;
  }
  const b = Buffer.allocUnsafe(5);
  b[0] = type;
  b[1] = 3;
  b.writeUInt16BE(packetId, 2);
  b[4] = reasonCode;
  return b;
}

export const encodePuback = (id: number, rc: number): Buffer => ack(PUBACK, id, rc);
export const encodePubrec = (id: number, rc: number): Buffer => ack(PUBREC, id, rc);
export const encodePubrel = (id: number, rc: number): Buffer => ack(PUBREL, id, rc);
export const encodePubcomp = (id: number, rc: number): Buffer => ack(PUBCOMP, id, rc);
export const PINGRESP = Buffer.from([0xd0, 0x00]);
