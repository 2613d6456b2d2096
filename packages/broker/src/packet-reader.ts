// Splits the byte stream into MQTT packets and decodes them with mqtt-packet.
// Framing is done here, not by mqtt-packet, so that an oversized packet is refused from its fixed
// header before its body is buffered, and so that the reader can stop between two packets (for
// back-pressure and while a CONNECT is being authenticated) without losing bytes.
import { isUtf8 } from 'node:buffer';
import mqtt from 'mqtt-packet';
import type { Packet, Parser, QoS } from 'mqtt-packet';

export type ReadError =
  { kind: 'malformed'; message: string } | { kind: 'too-large'; message: string; size: number };

interface ParserInternals {
  _list: { length: number; slice(start: number, end: number): Buffer };
  _pos: number;
  _parseNum(): number;
  _emitError(err: Error): void;
  packet: { length: number };
}

/**
 * mqtt-packet decodes strings with Buffer#toString, which silently replaces ill-formed UTF-8. MQTT
 * requires the receiver to close the connection instead (3.1.1 [MQTT-1.5.3-1], v5 [MQTT-1.5.4-1]), and
 * forbids U+0000 (3.1.1 [MQTT-1.5.3-2], v5 [MQTT-1.5.4-2]). This replaces the parser's string reader with a strict one.
 */
function installStrictStrings(parser: Parser): void {
  const p = parser as unknown as ParserInternals & { _parseString: () => string | null };
  if (typeof p._parseNum !== 'function' || typeof p._emitError !== 'function') {
    throw new Error('mqtt-packet parser internals changed: cannot install strict UTF-8 strings');
  }
  p._parseString = function strictParseString(this: ParserInternals): string | null {
    const length = this._parseNum();
    const end = length + this._pos;
    if (length === -1 || end > this._list.length || end > this.packet.length) return null;
    const bytes = this._list.slice(this._pos, end);
    this._pos = end;
    if (!isUtf8(bytes)) {
      this._emitError(new Error('Invalid UTF-8 string [MQTT-1.5.3-1]'));
      return null;
    }
    const s = bytes.toString('utf8');
    if (s.includes('\u0000')) {
      this._emitError(new Error('String contains U+0000 [MQTT-1.5.3-2]'));
      return null;
    }
    return s;
  };
}

/** What the parser needs to know of a connection: set from its CONNECT (`this.settings = packet`). */
interface ParserSettings {
  protocolVersion?: number;
  bridgeMode?: boolean;
}

const initialSettings: ParserSettings = Object.freeze({});
const settingsCache = new Map<number, ParserSettings>();

function settingsFor(connect: ParserSettings): ParserSettings {
  const v = connect.protocolVersion ?? 4;
  const key = v * 2 + (connect.bridgeMode === true ? 1 : 0);
  let s = settingsCache.get(key);
  if (s === undefined) {
    s = Object.freeze({ protocolVersion: v, bridgeMode: connect.bridgeMode === true });
    settingsCache.set(key, s);
  }
  return s;
}

/**
 * One mqtt-packet parser for every connection. The reader hands it one complete frame at a time, so
 * it holds no state between two parse() calls (it is reset if it does); per connection only the
 * protocol level is kept. A parser per connection cost ~1.5 KB of heap (parser, BufferList stream,
 * listeners) for each idle connection.
 */
interface SharedParser {
  parser: Parser &
    ParserInternals & {
      settings: ParserSettings;
      _resetState(): void;
      error: unknown;
      _stateCounter: number;
    };
  packet: Packet | undefined;
  error: string | undefined;
}

let shared: SharedParser | undefined;

function sharedParser(): SharedParser {
  if (shared !== undefined) return shared;
  const parser = mqtt.parser() as SharedParser['parser'];
  installStrictStrings(parser);
  const sp: SharedParser = { parser, packet: undefined, error: undefined };
  parser.on('packet', (packet: Packet) => {
    sp.packet = packet;
  });
  parser.on('error', (err: unknown) => {
    sp.error ??= err instanceof Error ? err.message : String(err);
  });
  shared = sp;
  return sp;
}

export class PacketReader {
  #chunks: Buffer[] = [];
  /** Where the unread bytes start in #chunks[0]: packets are decoded in place, without a view per frame. */
  #off = 0;
  /** Unread bytes (from #off on). */
  #buffered = 0;
  /** Bytes needed before the next frame can be cut, 0 when unknown (header incomplete). */
  #need = 0;
  #settings: ParserSettings = initialSettings;
  maxPacketSize: number;
  /** Size of the frame last returned by next(). */
  frameSize = 0;
  /** The last ASCII topic decoded, reused while a publisher keeps publishing to it. */
  topic = '';
  v5 = false;

  constructor(maxPacketSize: number) {
    this.maxPacketSize = maxPacketSize;
  }

  get buffered(): number {
    return this.#buffered;
  }

  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
  }

  /**
   * Returns the next complete packet, undefined when more bytes are needed, or a ReadError.
   * After an error the reader must not be used again.
   */
  next(): Packet | ReadError | undefined {
    if (this.#buffered === 0 || this.#buffered < this.#need) return undefined;
    let buf = this.#chunks[0]!;
    let off = this.#off;
    if (this.#chunks.length > 1) {
      if (off !== 0) this.#chunks[0] = buf.subarray(off);
      buf = Buffer.concat(this.#chunks, this.#buffered);
      this.#chunks = [buf];
      this.#off = off = 0;
    }
    // Fixed header: type byte and a variable byte integer of at most 4 bytes (MQTT 2.2.3).
    let remaining = 0;
    let multiplier = 1;
    let pos = off + 1;
    for (;;) {
      if (pos >= buf.length) {
        this.#need = 0;
        return undefined;
      }
      const b = buf[pos++]!;
      remaining += (b & 0x7f) * multiplier;
      if ((b & 0x80) === 0) break;
      if (pos === off + 5) return { kind: 'malformed', message: 'Malformed Remaining Length' };
      multiplier *= 128;
    }
    const total = pos - off + remaining;
    if (total > this.maxPacketSize) {
      return {
        kind: 'too-large',
        message: `packet of ${total} bytes exceeds ${this.maxPacketSize}`,
        size: total,
      };
    }
    const end = off + total;
    if (buf.length < end) {
      this.#need = total;
      return undefined;
    }
    this.#need = 0;
    this.frameSize = total;
    if (buf.length === end) {
      this.#chunks.length = 0;
      this.#off = 0;
      this.#buffered = 0;
    } else {
      this.#off = end;
      this.#buffered = buf.length - end;
    }
    if (this.#settings !== initialSettings) {
      const fast = decodeFast(this, buf, buf[off]!, pos, end);
      if (fast !== undefined) return checkPacketId(fast);
    }
    const frame = off === 0 && end === buf.length ? buf : buf.subarray(off, end);
    const sp = sharedParser();
    const parser = sp.parser;
    sp.packet = undefined;
    sp.error = undefined;
    parser.settings = this.#settings;
    let packet: Packet | undefined;
    let error: string | undefined;
    try {
      parser.parse(frame);
      packet = sp.packet as Packet | undefined;
      error = sp.error as string | undefined;
      if (packet !== undefined && packet.cmd === 'connect') {
        this.#settings = settingsFor(parser.settings);
        this.v5 = this.#settings.protocolVersion === 5;
      }
    } catch (err) {
      // A decoder that throws (instead of emitting an error) must not leave state for the next connection.
      error = err instanceof Error ? err.message : 'undecodable packet';
    } finally {
      sp.packet = undefined;
      sp.error = undefined;
      if (parser.error !== null || parser._list.length !== 0 || parser._stateCounter !== 0) {
        // _resetState leaves _pos, which _parseVarByteNum reads as an offset: clear it too.
        parser._resetState();
        parser._pos = 0;
      }
      parser.settings = initialSettings;
    }
    if (error !== undefined) return { kind: 'malformed', message: error };
    if (packet === undefined) return { kind: 'malformed', message: 'packet could not be decoded' };
    return checkPacketId(packet);
  }
}

function checkPacketId(packet: Packet): Packet | ReadError {
  if (needsPacketId(packet)) {
    const id = packet.messageId;
    // [MQTT-2.3.1-1] a packet identifier is present and non-zero.
    if (id === undefined || !Number.isInteger(id) || id < 1 || id > 65_535) {
      return { kind: 'malformed', message: 'missing or zero packet identifier' };
    }
  }
  return packet;
}

/**
 * The packets of the message path decoded here rather than by mqtt-packet (whose parser allocates a
 * Packet and a BufferList entry per packet and calls `debug` a dozen times per packet even when
 * logging is off). Anything unusual returns undefined and goes to mqtt-packet, so the validation
 * and the error messages for malformed input stay mqtt-packet's (plus the strict UTF-8 strings).
 */
function decodeFast(
  reader: { topic: string; v5: boolean },
  buf: Buffer,
  first: number,
  bodyStart: number,
  end: number,
): Packet | undefined {
  // The packet is buf[.. end), its body starts at bodyStart; buf may hold more after it.
  const type = first >> 4;
  const remaining = end - bodyStart;
  if (type === 3) {
    // PUBLISH: DUP, QoS (3 is malformed [MQTT-3.3.1-4]) and RETAIN in the flags.
    const qos = ((first >> 1) & 3) as QoS | 3;
    if (qos === 3 || remaining < 2) return undefined;
    const topicLen = (buf[bodyStart]! << 8) | buf[bodyStart + 1]!;
    const a = bodyStart + 2;
    const b = a + topicLen;
    let p = b + (qos > 0 ? 2 : 0);
    if (p > end) return undefined;
    if (reader.v5) {
      // Only an empty property list here; properties go to mqtt-packet.
      if (p >= end || buf[p] !== 0) return undefined;
      p++;
    }
    // The topic: U+0000 is the byte 0x00 in well-formed UTF-8 [MQTT-1.5.3-2]; non-ASCII is checked
    // as UTF-8 [MQTT-1.5.3-1]. A publisher repeating its topic gets the same string back.
    const cached = reader.topic;
    let same = cached.length === topicLen;
    let ascii = true;
    for (let i = a; i < b; i++) {
      const c = buf[i]!;
      if (c === 0) return undefined;
      if (c >= 0x80) ascii = false;
      else if (same && cached.charCodeAt(i - a) !== c) same = false;
    }
    let topic: string;
    if (ascii) {
      if (same) topic = cached;
      else {
        topic = buf.toString('latin1', a, b);
        reader.topic = topic;
      }
    } else {
      if (!isUtf8(buf.subarray(a, b))) return undefined;
      topic = buf.toString('utf8', a, b);
    }
    const payload = buf.subarray(p, end);
    if (qos === 0) {
      return {
        cmd: 'publish',
        retain: (first & 1) !== 0,
        qos,
        dup: (first & 8) !== 0,
        length: remaining,
        topic,
        payload,
      };
    }
    return {
      cmd: 'publish',
      retain: (first & 1) !== 0,
      qos,
      dup: (first & 8) !== 0,
      length: remaining,
      topic,
      payload,
      messageId: (buf[b]! << 8) | buf[b + 1]!,
    };
  }
  if (type >= 4 && type <= 7) {
    // PUBACK, PUBREC, PUBCOMP with flags 0000, PUBREL with 0010 [MQTT-3.6.1-1]; only the plain
    // two-byte form (a v5 reason code or properties go to mqtt-packet).
    if ((first & 0x0f) !== (type === 6 ? 2 : 0) || remaining !== 2) return undefined;
    const messageId = (buf[bodyStart]! << 8) | buf[bodyStart + 1]!;
    const cmd = type === 4 ? 'puback' : type === 5 ? 'pubrec' : type === 6 ? 'pubrel' : 'pubcomp';
    const packet = {
      cmd,
      retain: false,
      qos: type === 6 ? 1 : 0,
      dup: false,
      length: 2,
      messageId,
    } as Packet;
    if (reader.v5) (packet as { reasonCode?: number }).reasonCode = 0;
    return packet;
  }
  if (first === 0xc0 && remaining === 0) {
    return { cmd: 'pingreq', retain: false, qos: 0, dup: false, length: 0 } as Packet;
  }
  return undefined;
}

function needsPacketId(p: Packet): boolean {
  switch (p.cmd) {
    case 'publish':
      return p.qos > 0;
    case 'puback':
    case 'pubrec':
    case 'pubrel':
    case 'pubcomp':
    case 'subscribe':
    case 'unsubscribe':
    case 'suback':
    case 'unsuback':
      return true;
    default:
      return false;
  }
}
