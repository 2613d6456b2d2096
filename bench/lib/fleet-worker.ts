// One load process of SDK devices (run by bench/lib/fleet.ts, pinned to the load core): every device is
// a full `@bulwark/device` client — its own P-256 key and certificate, enrolled over EST with the SDK's
// estEnroller, MQTT 5 over mutual TLS with MQTT.js, the SDK's reconnect loop (exponential backoff with
// full jitter) and TLS session resumption. A fleet of 10 000 is spread over several such processes:
// a process may hold at most 20 000 open files here, and one event loop would be the bottleneck.
//
// The network is the only thing simulated: every TLS connection the SDK opens goes through a wrapper
// of tls.connect that (1) spreads source addresses over 127.0.0.2-17, so that repeated storms do not
// run out of ephemeral ports, (2) can drop every connection at once ("the network went away"), and (3)
// can withhold the SDK's TLS session, to measure the same storm with full handshakes.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import tls, { type ConnectionOptions, type TLSSocket } from 'node:tls';
import {
  createCsr,
  createDevice,
  estEnroller,
  generateSoftwareKey,
  type DeviceClient,
} from '@bulwark/device';

export type FleetCommand =
  | {
      type: 'enroll';
      url: string;
      ca: string;
      servername: string;
      code: string;
      stateRoot: string;
      ids: string[];
      concurrency: number;
    }
  | { type: 'connect'; mqttUrl: string; servername: string; concurrency: number; timeoutMs: number }
  | { type: 'storm'; cutAt: number; resumption: boolean; jitter: boolean; timeoutMs: number }
  | { type: 'exit' };

export type FleetEvent =
  | { type: 'ready' }
  | { type: 'reply'; seq: number; ok: true; result: unknown }
  | { type: 'reply'; seq: number; ok: false; error: string };

export interface EnrollResult {
  enrolled: number;
  failed: number;
  errors: string[];
  /** Epoch ms: first request sent, and each enrollment done. */
  startedAt: number;
  doneAt: number[];
}

export interface ConnectResult {
  connected: number;
  startedAt: number;
  endedAt: number;
}

export interface StormResult {
  devices: number;
  /** ms after the cut: each device's first connection (subscriptions in place) after it. */
  connectedMs: number[];
  /** ms after the cut: each device's first telemetry message acknowledged (stored) after it. */
  ackedMs: number[];
  /** ms after the cut: every TLS connection attempt the SDK made. */
  attemptsMs: number[];
  resumed: number;
  warnings: number;
  sampleWarnings: string[];
}

/** "No jitter": every delay is the top of its window, min(maxMs, baseMs * 2^attempt). */
const NO_JITTER = 0.999_999;

const sockets = new Set<TLSSocket>();
const mode = { resumption: true, jitter: true, recordAttempts: false };
let attemptsMs: number[] = [];
let cutAt = 0;
let source = 0;

const realConnect = tls.connect;
(tls as { connect: (options: ConnectionOptions) => TLSSocket }).connect = (options: ConnectionOptions) => {
  // localAddress reaches net.connect (the TLS typings leave it out).
  const o: ConnectionOptions & { localAddress?: string } = {
    ...options,
    localAddress: `127.0.0.${2 + (source++ % 16)}`,
  };
  if (!mode.resumption) delete o.session;
  if (mode.recordAttempts) attemptsMs.push(Date.now() - cutAt);
  const socket = realConnect(o);
  sockets.add(socket);
  socket.once('close', () => sockets.delete(socket));
  return socket;
};

interface Sim {
  id: string;
  stateDir: string;
  client?: DeviceClient;
}

let sims: Sim[] = [];
/** Added to the SDK's clock before each storm, so that every connection counts as long established. */
let clockShift = 0;
let storm:
  { connected: Map<string, number>; acked: Map<string, number>; resumed: number; done(): void } | undefined;
let warnings = 0;
const sampleWarnings: string[] = [];
let seq = 0;

async function pool(n: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, n) }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

async function enroll(cmd: Extract<FleetCommand, { type: 'enroll' }>): Promise<EnrollResult> {
  const est = estEnroller({ url: cmd.url, ca: cmd.ca, servername: cmd.servername, code: cmd.code });
  sims = cmd.ids.map((id) => ({ id, stateDir: join(cmd.stateRoot, id) }));
  const doneAt: number[] = [];
  const errors: string[] = [];
  let failed = 0;
  const startedAt = Date.now();
  await pool(sims.length, cmd.concurrency, async (i) => {
    const sim = sims[i]!;
    try {
      // What DeviceClient.start() does on a first start, step by step, so that enrollment is measured
      // apart from connecting: key made here, CSR, EST simpleenroll, key and certificate stored.
      const key = generateSoftwareKey('p256');
      const res = await est.enroll({ deviceId: sim.id, csrPem: await createCsr(sim.id, key) });
      doneAt.push(Date.now());
      await mkdir(sim.stateDir, { recursive: true, mode: 0o700 });
      await writeFile(join(sim.stateDir, 'device.key'), key.pem, { mode: 0o600 });
      await writeFile(join(sim.stateDir, 'device.crt'), res.certificateChainPem, { mode: 0o644 });
    } catch (err) {
      failed++;
      if (errors.length < 5) errors.push(`${sim.id}: ${(err as Error).message}`);
    }
  });
  return { enrolled: doneAt.length, failed, errors, startedAt, doneAt };
}

function publishAfterConnect(sim: Sim, client: DeviceClient): void {
  client.on('connect', (info) => {
    const s = storm;
    if (s && !s.connected.has(sim.id)) {
      s.connected.set(sim.id, Date.now() - cutAt);
      if (info.tlsSessionResumed) s.resumed++;
    }
    client.telemetry({ seq: seq++, temperature: 21.5 }).then(
      () => {
        const t = storm;
        if (t && t.connected.has(sim.id) && !t.acked.has(sim.id)) {
          t.acked.set(sim.id, Date.now() - cutAt);
          if (t.acked.size === sims.length) t.done();
        }
      },
      () => {},
    );
  });
  client.on('warning', (err) => {
    warnings++;
    if (sampleWarnings.length < 5 && !sampleWarnings.includes(err.message)) sampleWarnings.push(err.message);
  });
}

async function connectAll(
  cmd: Extract<FleetCommand, { type: 'connect' }>,
  ca: string,
): Promise<ConnectResult> {
  const startedAt = Date.now();
  let connected = 0;
  await pool(sims.length, cmd.concurrency, async (i) => {
    const sim = sims[i]!;
    const client = createDevice({
      deviceId: sim.id,
      url: cmd.mqttUrl,
      servername: cmd.servername,
      stateDir: sim.stateDir,
      ca,
      renewal: { enabled: false },
      outbox: { persistent: false, maxBytes: 64 * 1024, whenFull: 'drop-oldest' },
      // The SDK's defaults (1 s, doubling up to 60 s), with or without jitter as the storm asks.
      random: () => (mode.jitter ? Math.random() : NO_JITTER),
      now: () => Date.now() + clockShift,
    });
    sim.client = client;
    publishAfterConnect(sim, client);
    await client.start();
    await client.waitConnected(cmd.timeoutMs).then(
      () => void connected++,
      () => {},
    );
  });
  return { connected, startedAt, endedAt: Date.now() };
}

async function runStorm(cmd: Extract<FleetCommand, { type: 'storm' }>): Promise<StormResult> {
  mode.resumption = cmd.resumption;
  mode.jitter = cmd.jitter;
  // The SDK resets its backoff once a connection has been up for 30 s: as in a fleet that has been
  // connected for a while, every device starts this storm at the first backoff step.
  clockShift += 31_000;
  attemptsMs = [];
  warnings = 0;
  sampleWarnings.length = 0;
  let finish!: () => void;
  const settled = new Promise<void>((r) => (finish = r));
  await new Promise((r) => setTimeout(r, Math.max(0, cmd.cutAt - Date.now())));
  cutAt = Date.now();
  storm = { connected: new Map(), acked: new Map(), resumed: 0, done: finish };
  mode.recordAttempts = true;
  for (const s of [...sockets]) s.destroy();
  const timer = setTimeout(finish, cmd.timeoutMs);
  await settled;
  clearTimeout(timer);
  mode.recordAttempts = false;
  const s = storm;
  storm = undefined;
  return {
    devices: sims.length,
    connectedMs: [...s.connected.values()],
    ackedMs: [...s.acked.values()],
    attemptsMs,
    resumed: s.resumed,
    warnings,
    sampleWarnings: [...sampleWarnings],
  };
}

let caPem = '';

async function handle(cmd: FleetCommand): Promise<unknown> {
  switch (cmd.type) {
    case 'enroll':
      caPem = cmd.ca;
      return enroll(cmd);
    case 'connect':
      return connectAll(cmd, caPem);
    case 'storm':
      return runStorm(cmd);
    case 'exit':
      await Promise.all(sims.map((s) => s.client?.close()));
      setImmediate(() => process.exit(0));
      return {};
  }
}

process.on('message', (m: { seq: number; cmd: FleetCommand }) => {
  handle(m.cmd).then(
    (result) => process.send?.({ type: 'reply', seq: m.seq, ok: true, result } satisfies FleetEvent),
    (err: unknown) =>
      process.send?.({
        type: 'reply',
        seq: m.seq,
        ok: false,
        error: err instanceof Error ? err.message : String(err),
      } satisfies FleetEvent),
  );
});
process.on('disconnect', () => process.exit(0));
process.send?.({ type: 'ready' } satisfies FleetEvent);
