// Load generator: a child process driven over IPC by bench/lib/generator.ts. It opens mutual-TLS MQTT
// connections (MQTT 3.1.1, hand-encoded packets), publishes on an open-loop schedule with a send
// timestamp in every payload, counts deliveries and acknowledgements, measures latencies and opens
// connections as fast as it can for the handshake figures. It reports once per second, aligned on a
// CLOCK_MONOTONIC start time the orchestrator chooses, so several generator processes line up.
import { readFileSync } from 'node:fs';
import { connect as tlsConnect, createSecureContext } from 'node:tls';
import type { SecureContext, TLSSocket } from 'node:tls';
import { Histogram } from './histogram.ts';
import {
  CONNACK,
  DISCONNECT,
  encodeConnect,
  encodePuback,
  encodeSubscribe,
  FrameReader,
  nowUs,
  PAYLOAD_TS_OFFSET,
  PUBACK,
  PUBLISH,
  PublishTemplate,
  readTimestamp,
  SUBACK,
  writeTimestamp,
} from './mqtt-wire.ts';
import type { ClientSpec, GenCommand, GenEvent, LoadStep, Target } from './generator-protocol.ts';

type Role = 'pub' | 'sub' | 'idle';

class Conn {
  readonly sock: TLSSocket;
  readonly clientId: string;
  readonly reader: FrameReader;
  topic: string | undefined;
  template: PublishTemplate | undefined = undefined;
  inflight = 0;
  nextId = 1;
  acked = 0;
  sendTimes: Float64Array | undefined = undefined;
  open = true;
  onFrame: (buf: Buffer, start: number, body: number, end: number) => void = () => {};

  constructor(sock: TLSSocket, clientId: string, topic: string | undefined) {
    this.sock = sock;
    this.clientId = clientId;
    this.topic = topic;
    this.reader = new FrameReader((b, s, body, e) => this.onFrame(b, s, body, e));
  }
}

const conns: Record<Role, Conn[]> = { pub: [], sub: [], idle: [] };
const contexts = new Map<string, SecureContext>();
let unexpectedCloses = 0;
let socketErrors = 0;
let lastError = '';
/** Time of the read being processed: one clock read per chunk, not per message. */
let readTime = 0;

function send(e: GenEvent): void {
  process.send?.(e);
}

function context(target: Target, spec: ClientSpec): SecureContext {
  const k = `${target.ca}|${spec.cert}|${spec.key}|${target.ecdhCurve ?? ''}`;
  let c = contexts.get(k);
  if (c === undefined) {
    c = createSecureContext({
      ca: readFileSync(target.ca),
      cert: readFileSync(spec.cert),
      key: readFileSync(spec.key),
      minVersion: 'TLSv1.3',
      ...(target.ecdhCurve !== undefined ? { ecdhCurve: target.ecdhCurve } : {}),
    });
    contexts.set(k, c);
  }
  return c;
}

interface Opened {
  conn: Conn;
  resumed: boolean;
  session: Buffer | undefined;
}

/** TLS handshake, CONNECT, CONNACK. */
function open(
  target: Target,
  spec: ClientSpec,
  keepAlive: number,
  timeoutMs: number,
  session: Buffer | undefined,
): Promise<Opened> {
  return new Promise((resolve, reject) => {
    let latestSession = session;
    let settled = false;
    const sock = tlsConnect({
      host: target.host,
      port: target.port,
      servername: target.servername,
      secureContext: context(target, spec),
      ...(spec.localAddress !== undefined ? { localAddress: spec.localAddress } : {}),
      ...(session !== undefined ? { session } : {}),
    });
    sock.setNoDelay(true);
    const conn = new Conn(sock, spec.clientId, spec.topic);
    const timer = setTimeout(() => fail(new Error(`no CONNACK within ${timeoutMs} ms`)), timeoutMs);
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      reject(err);
    };
    sock.on('session', (s: Buffer) => {
      latestSession = s;
    });
    sock.once('secureConnect', () => sock.write(encodeConnect(spec.clientId, keepAlive)));
    conn.onFrame = (buf, start, body) => {
      if (buf[start] !== CONNACK) return;
      if (buf[body + 1] !== 0) {
        fail(new Error(`CONNACK refused, return code ${buf[body + 1]}`));
        return;
      }
      settled = true;
      clearTimeout(timer);
      conn.onFrame = () => {};
      resolve({ conn, resumed: sock.isSessionReused(), session: latestSession });
    };
    sock.on('data', (chunk: Buffer) => {
      readTime = nowUs();
      conn.reader.push(chunk);
    });
    sock.on('error', (err: Error) => {
      if (!settled) fail(err);
      else {
        socketErrors++;
        lastError = err.message;
      }
    });
    sock.on('close', () => {
      if (!settled) fail(new Error('closed before CONNACK'));
      else if (conn.open) {
        conn.open = false;
        unexpectedCloses++;
      }
    });
  });
}

async function pool<T>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

async function connectMany(cmd: Extract<GenCommand, { type: 'connect' }>): Promise<unknown> {
  const t0 = nowUs();
  const hist = new Histogram();
  let failed = 0;
  let firstError = '';
  await pool(cmd.clients, cmd.concurrency, async (spec) => {
    const s = nowUs();
    try {
      const { conn } = await open(cmd.target, spec, cmd.keepAlive, cmd.timeoutMs, undefined);
      hist.record(nowUs() - s);
      conns[cmd.role].push(conn);
    } catch (err) {
      failed++;
      firstError ||= (err as Error).message;
    }
  });
  return {
    connected: cmd.clients.length - failed,
    failed,
    firstError,
    seconds: (nowUs() - t0) / 1e6,
    connectLatency: hist.toSparse(),
  };
}

function subscribe(filter: string, qos: 0 | 1): Promise<unknown> {
  const c = conns.sub[0];
  if (c === undefined) return Promise.reject(new Error('no subscriber connection'));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no SUBACK within 5 s')), 5000);
    c.onFrame = (buf, start, body) => {
      if (buf[start] !== SUBACK) return;
      clearTimeout(timer);
      c.onFrame = () => {};
      const granted = buf[body + 2]!;
      if (granted >= 0x80) reject(new Error(`subscription to ${filter} refused`));
      else resolve({ granted });
    };
    c.sock.write(encodeSubscribe(1, filter, qos));
  });
}

// ---- publishing ----------------------------------------------------------------------------------

async function publishLoad(cmd: Extract<GenCommand, { type: 'publish' }>): Promise<unknown> {
  const pubs = conns.pub;
  if (pubs.length === 0) throw new Error('no publisher connections');
  const qos = cmd.qos;
  for (const c of pubs) {
    c.template = new PublishTemplate(c.topic ?? `bench/${c.clientId}`, qos, cmd.payloadBytes);
    c.inflight = 0;
    c.acked = 0;
    if (qos === 1) c.sendTimes ??= new Float64Array(65536);
  }
  const steps: LoadStep[] = cmd.steps;
  const totalSeconds = steps.reduce((a, s) => a + s.seconds, 0);
  // Per-second counters, reported when the second is over.
  let offered = 0;
  let sent = 0;
  let blocked = 0;
  let acked = 0;
  let ackHist = new Histogram();
  const totals = { offered: 0, sent: 0, blocked: 0, acked: 0 };
  let reported = 0;
  let closesBefore = unexpectedCloses;
  const report = (idx: number, final: boolean): void => {
    send({
      type: 'tick',
      kind: 'pub',
      idx,
      offered,
      sent,
      blocked,
      acked,
      ackLatency: ackHist.toSparse(),
      errors: socketErrors,
      closes: unexpectedCloses - closesBefore,
      final,
    });
    closesBefore = unexpectedCloses;
    totals.offered += offered;
    totals.sent += sent;
    totals.blocked += blocked;
    totals.acked += acked;
    offered = sent = blocked = acked = 0;
    ackHist = new Histogram();
  };

  if (qos === 1) {
    for (const c of pubs) {
      c.onFrame = (buf, start, body) => {
        if ((buf[start]! & 0xf0) !== PUBACK) return;
        const id = (buf[body]! << 8) | buf[body + 1]!;
        const t = c.sendTimes![id]!;
        if (t > 0) {
          c.sendTimes![id] = 0;
          ackHist.record(readTime - t);
          c.inflight--;
          c.acked++;
          acked++;
        }
      };
    }
  }

  const sendTo = (c: Conn, k: number, now: number): void => {
    if (!c.open) {
      blocked += k;
      return;
    }
    if (qos === 0) {
      if (c.sock.writableLength > cmd.writeCap) {
        blocked += k;
        return;
      }
    } else {
      const room = cmd.window - c.inflight;
      if (room < k) {
        blocked += k - Math.max(0, room);
        k = Math.max(0, room);
      }
    }
    if (k === 0) return;
    const tpl = c.template!;
    const f = tpl.frame;
    const len = f.length;
    const out = Buffer.allocUnsafe(len * k);
    for (let i = 0; i < k; i++) {
      const o = i * len;
      f.copy(out, o);
      writeTimestamp(out, o + tpl.tsOffset, now);
      if (qos === 1) {
        let id = c.nextId;
        // Skip ids still in flight (the window is far below 65535, so this terminates quickly).
        while (c.sendTimes![id]! > 0) id = id === 65535 ? 1 : id + 1;
        c.nextId = id === 65535 ? 1 : id + 1;
        out[o + tpl.idOffset] = id >> 8;
        out[o + tpl.idOffset + 1] = id & 0xff;
        c.sendTimes![id] = now;
        c.inflight++;
      }
    }
    c.sock.write(out);
    sent += k;
  };

  const start = cmd.startAtUs;
  let stepIdx = 0;
  let stepStart = 0;
  let stepScheduled = 0;
  let cursor = 0;
  const n = pubs.length;
  while (nowUs() < start) await sleep(Math.max(1, Math.min(50, (start - nowUs()) / 1000)));
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = nowUs();
      const elapsed = now - start;
      const sec = Math.floor(elapsed / 1e6);
      while (reported < Math.min(sec, totalSeconds)) report(reported++, false);
      if (elapsed >= totalSeconds * 1e6) {
        resolve();
        return;
      }
      while (stepIdx < steps.length - 1 && elapsed >= (stepStart + steps[stepIdx]!.seconds) * 1e6) {
        stepStart += steps[stepIdx]!.seconds;
        stepIdx++;
        stepScheduled = 0;
      }
      const rate = steps[stepIdx]!.rate;
      const due = Math.floor((rate * (elapsed - stepStart * 1e6)) / 1e6) - stepScheduled;
      if (due > 0) {
        stepScheduled += due;
        offered += due;
        // Round robin: every publisher gets an equal share, the remainder rotates.
        const base = Math.floor(due / n);
        const rem = due - base * n;
        for (let i = 0; i < n; i++) {
          const j = (cursor + i) % n;
          const k = base + (i < rem ? 1 : 0);
          if (k > 0) sendTo(pubs[j]!, k, now);
        }
        cursor = (cursor + rem) % n;
      }
      setTimeout(tick, 1);
    };
    tick();
  });
  // Drain: acknowledgements still in flight are counted in the seconds after the schedule.
  const drainEnd = nowUs() + cmd.drainMs * 1000;
  const busy = (c: Conn) => (qos === 0 ? c.sock.writableLength > 0 : c.inflight > 0);
  while (nowUs() < drainEnd && pubs.some((c) => c.open && busy(c))) await sleep(20);
  report(reported++, true);
  return {
    ...totals,
    inflightLeft: pubs.reduce((a, c) => a + c.inflight, 0),
    perPublisherAcked: pubs.map((c) => c.acked),
    errors: socketErrors,
    unexpectedCloses,
    lastError,
  };
}

// ---- counting deliveries -------------------------------------------------------------------------

async function countDeliveries(cmd: Extract<GenCommand, { type: 'count' }>): Promise<unknown> {
  const sub = conns.sub[0];
  if (sub === undefined) throw new Error('no subscriber connection');
  const start = cmd.startAtUs;
  let delivered = 0;
  let bad = 0;
  let hist = new Histogram();
  let idx = 0;
  let total = 0;
  let lastDelivery = 0;
  let closesBefore = unexpectedCloses;
  const acks: Buffer[] = [];
  sub.onFrame = (buf, s, body, end) => {
    const h = buf[s]!;
    if ((h & 0xf0) !== PUBLISH) return;
    const q = (h >> 1) & 3;
    const topicLen = (buf[body]! << 8) | buf[body + 1]!;
    let p = body + 2 + topicLen;
    if (q > 0) {
      const ack = Buffer.allocUnsafe(4);
      encodePuback((buf[p]! << 8) | buf[p + 1]!, ack, 0);
      acks.push(ack);
      p += 2;
    }
    const sec = Math.floor((readTime - start) / 1e6);
    while (sec > idx) flush(false);
    const ts = p + PAYLOAD_TS_OFFSET + 16 <= end ? readTimestamp(buf, p + PAYLOAD_TS_OFFSET) : NaN;
    if (Number.isNaN(ts)) bad++;
    else hist.record(readTime - ts);
    delivered++;
    lastDelivery = readTime;
  };
  const flush = (final: boolean): void => {
    const closes = unexpectedCloses - closesBefore;
    closesBefore = unexpectedCloses;
    send({ type: 'tick', kind: 'sub', idx, delivered, latency: hist.toSparse(), bad, closes, final });
    total += delivered;
    delivered = 0;
    hist = new Histogram();
    idx++;
  };
  // PUBACKs of one read go out in one write.
  const onData = (): void => {
    if (acks.length > 0) {
      sub.sock.write(acks.length === 1 ? acks[0]! : Buffer.concat(acks));
      acks.length = 0;
    }
  };
  sub.sock.on('data', onData);
  // After the schedule, wait until deliveries stop (a backlog drains into the drain time, not into
  // the next step), at most drainMs.
  const end = cmd.endAtUs + cmd.drainMs * 1000;
  for (;;) {
    await sleep(50);
    const now = nowUs();
    if (now >= end || (now >= cmd.endAtUs + 200_000 && now - lastDelivery > 300_000)) break;
    const sec = Math.floor((now - start) / 1e6);
    while (sec > idx && sec > 0) flush(false);
  }
  flush(true);
  sub.sock.off('data', onData);
  sub.onFrame = () => {};
  return { delivered: total, badPayloads: bad, errors: socketErrors, unexpectedCloses };
}

// ---- handshakes ------------------------------------------------------------------------------------

async function handshakes(cmd: Extract<GenCommand, { type: 'handshakes' }>): Promise<unknown> {
  const start = cmd.startAtUs;
  const endAt = start + cmd.seconds * 1e6;
  let completed = 0;
  let resumed = 0;
  let failed = 0;
  let firstError = '';
  let hist = new Histogram();
  let idx = 0;
  const totals = { completed: 0, resumed: 0, failed: 0 };
  const all = new Histogram();
  const flush = (final: boolean): void => {
    send({ type: 'tick', kind: 'hs', idx, completed, resumed, failed, latency: hist.toSparse(), final });
    totals.completed += completed;
    totals.resumed += resumed;
    totals.failed += failed;
    all.merge(hist);
    completed = resumed = failed = 0;
    hist = new Histogram();
    idx++;
  };
  let seq = 0;
  const worker = async (w: number): Promise<void> => {
    let session: Buffer | undefined;
    if (cmd.mode === 'resumed') {
      // One full handshake to get a ticket; not counted.
      const spec = cmd.clients[w % cmd.clients.length]!;
      try {
        const o = await open(
          cmd.target,
          { ...spec, clientId: `${spec.clientId}.w${w}` },
          60,
          10_000,
          undefined,
        );
        session = o.session;
        o.conn.open = false;
        o.conn.sock.end(DISCONNECT);
      } catch (err) {
        firstError ||= (err as Error).message;
      }
    }
    while (nowUs() < start) await sleep(5);
    while (nowUs() < endAt) {
      // A resumed session carries the identity of the certificate it was made with: keep the worker's.
      const spec = cmd.clients[(cmd.mode === 'resumed' ? w : seq) % cmd.clients.length]!;
      const clientId = `${spec.clientId}.${seq++}`;
      const t = nowUs();
      try {
        const o = await open(cmd.target, { ...spec, clientId }, 60, 10_000, session);
        const sec = Math.floor((nowUs() - start) / 1e6);
        while (sec > idx && nowUs() < endAt) flush(false);
        completed++;
        if (o.resumed) resumed++;
        hist.record(nowUs() - t);
        if (cmd.mode === 'resumed') session = o.session ?? session;
        o.conn.open = false;
        o.conn.sock.end(DISCONNECT);
        const s = o.conn.sock;
        setTimeout(() => s.destroy(), 2000).unref();
      } catch (err) {
        failed++;
        firstError ||= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: cmd.concurrency }, (_, w) => worker(w)));
  flush(true);
  return { ...totals, firstError, connectLatency: all.toSparse() };
}

// ---- plumbing ------------------------------------------------------------------------------------

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function closeAll(): unknown {
  let n = 0;
  for (const role of ['pub', 'sub', 'idle'] as const) {
    for (const c of conns[role]) {
      c.open = false;
      if (!c.sock.destroyed) c.sock.end(DISCONNECT);
      const s = c.sock;
      setTimeout(() => s.destroy(), 1000).unref();
      n++;
    }
    conns[role] = [];
  }
  return { closed: n };
}

async function handle(cmd: GenCommand): Promise<unknown> {
  switch (cmd.type) {
    case 'connect':
      return connectMany(cmd);
    case 'subscribe':
      return subscribe(cmd.filter, cmd.qos);
    case 'publish':
      return publishLoad(cmd);
    case 'count':
      return countDeliveries(cmd);
    case 'handshakes':
      return handshakes(cmd);
    case 'close':
      return closeAll();
    case 'exit':
      closeAll();
      setTimeout(() => process.exit(0), 200);
      return {};
  }
}

process.on('message', (m: { seq: number; cmd: GenCommand }) => {
  handle(m.cmd).then(
    (result) => send({ type: 'reply', seq: m.seq, ok: true, result }),
    (err: unknown) =>
      send({ type: 'reply', seq: m.seq, ok: false, error: (err as Error).message ?? String(err) }),
  );
});
process.on('disconnect', () => process.exit(0));
send({ type: 'ready', pid: process.pid });
