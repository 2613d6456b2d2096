// The few MQTT 3.1.1 packets the load generator sends and reads, encoded and framed by hand: the
// generator must cost far less per message than the broker it measures, and mqtt-packet's object
// per packet would not (the broker uses mqtt-packet; nothing here is shared with it).

export const CONNACK = 0x20;
export const PUBLISH = 0x30;
export const PUBACK = 0x40;
export const SUBACK = 0x90;
export const DISCONNECT = Buffer.from([0xe0, 0x00]);

function remainingLength(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

function str(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  const out = Buffer.allocUnsafe(2 + b.length);
  out.writeUInt16BE(b.length, 0);
  b.copy(out, 2);
  return out;
}

/** CONNECT, MQTT 3.1.1, clean session, no will, no credentials (identity is the certificate). */
export function encodeConnect(clientId: string, keepAlive: number): Buffer {
  const body = Buffer.concat([
    str('MQTT'),
    Buffer.from([4, 0x02, (keepAlive >> 8) & 0xff, keepAlive & 0xff]),
    str(clientId),
  ]);
  return Buffer.concat([Buffer.from([0x10, ...remainingLength(body.length)]), body]);
}

export function encodeSubscribe(packetId: number, filter: string, qos: 0 | 1): Buffer {
  const body = Buffer.concat([
    Buffer.from([packetId >> 8, packetId & 0xff]),
    str(filter),
    Buffer.from([qos]),
  ]);
  return Buffer.concat([Buffer.from([0x82, ...remainingLength(body.length)]), body]);
}

export function encodePuback(packetId: number, out: Buffer, offset: number): void {
  out[offset] = PUBACK;
  out[offset + 1] = 2;
  out[offset + 2] = packetId >> 8;
  out[offset + 3] = packetId & 0xff;
}

/**
 * A PUBLISH whose payload is a JSON object of exactly `payloadBytes` bytes (so the platform accepts
 * it as telemetry) carrying the send time as 16 decimal digits of microseconds at a fixed offset:
 * `{"t":"0000001234567890","pad":"xxxx…"}`.
 */
export class PublishTemplate {
  readonly frame: Buffer;
  /** Offset of the packet identifier in the frame (QoS 1), -1 for QoS 0. */
  readonly idOffset: number;
  /** Offset of the 16 timestamp digits in the frame. */
  readonly tsOffset: number;

  constructor(topic: string, qos: 0 | 1, payloadBytes: number) {
    const padLen = Math.max(0, payloadBytes - 33);
    const payload = Buffer.from(`{"t":"${'0'.repeat(16)}","pad":"${'x'.repeat(padLen)}"}`, 'latin1');
    const t = str(topic);
    const rest = t.length + (qos === 1 ? 2 : 0) + payload.length;
    const header = Buffer.from([PUBLISH | (qos << 1), ...remainingLength(rest)]);
    this.frame = Buffer.concat([header, t, Buffer.alloc(qos === 1 ? 2 : 0), payload]);
    this.idOffset = qos === 1 ? header.length + t.length : -1;
    this.tsOffset = header.length + t.length + (qos === 1 ? 2 : 0) + PAYLOAD_TS_OFFSET;
  }
}

/** Where the timestamp digits start in the payload. */
export const PAYLOAD_TS_OFFSET = 6;

/** Writes `us` as 16 ASCII digits. */
export function writeTimestamp(buf: Buffer, offset: number, us: number): void {
  let v = Math.floor(us);
  for (let i = offset + 15; i >= offset; i--) {
    buf[i] = 48 + (v % 10);
    v = Math.floor(v / 10);
  }
}

export function readTimestamp(buf: Buffer, offset: number): number {
  let v = 0;
  for (let i = offset; i < offset + 16; i++) {
    const d = buf[i]! - 48;
    if (d < 0 || d > 9) return NaN;
    v = v * 10 + d;
  }
  return v;
}

/** Microseconds on CLOCK_MONOTONIC: comparable across the processes of one machine. */
export function nowUs(): number {
  const [s, ns] = process.hrtime();
  return s * 1e6 + ns / 1e3;
}

/**
 * Splits a byte stream into MQTT frames. `onFrame(buf, start, bodyStart, end)`: the first byte is
 * `buf[start]`, the variable header starts at `bodyStart`, the frame ends before `end`.
 */
export class FrameReader {
  #buf: Buffer | undefined = undefined;
  readonly #onFrame: (buf: Buffer, start: number, bodyStart: number, end: number) => void;

  constructor(onFrame: (buf: Buffer, start: number, bodyStart: number, end: number) => void) {
    this.#onFrame = onFrame;
  }

  push(chunk: Buffer): void {
    let buf = this.#buf === undefined ? chunk : Buffer.concat([this.#buf, chunk]);
    let pos = 0;
    const len = buf.length;
    for (;;) {
      if (len - pos < 2) break;
      let rl = 0;
      let mul = 1;
      let p = pos + 1;
      let complete = false;
      while (p < len && p < pos + 5) {
        const b = buf[p++]!;
        rl += (b & 0x7f) * mul;
        mul *= 128;
        if ((b & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete) break;
      const end = p + rl;
      if (end > len) break;
      this.#onFrame(buf, pos, p, end);
      pos = end;
    }
    if (pos === len) this.#buf = undefined;
    else {
      buf = buf.subarray(pos);
      // Keep a private copy of a short tail so a huge chunk is not retained for a few bytes.
      this.#buf = buf.length < 4096 ? Buffer.from(buf) : buf;
    }
  }
}
