import { once } from 'node:events';
import net from 'node:net';
import mqtt from 'mqtt';
import type { IClientOptions, MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { createBroker } from '../src/index.ts';
import type { Broker, BrokerHooks, BrokerOptions } from '../src/index.ts';

/** Resources opened by tests, closed by `cleanup()` (use in afterEach) so a failing test cannot hang the run. */
const tracked = new Set<{ close(): Promise<void> | void }>();

function track<T extends object>(resource: T, close: () => Promise<void> | void): T {
  const entry = { close };
  tracked.add(entry);
  (resource as { untrack?: () => void }).untrack = () => tracked.delete(entry);
  return resource;
}

/** Keeps shared resources (created in `before`) out of the per-test cleanup. */
export function keep(...resources: object[]): void {
  for (const r of resources) (r as { untrack?: () => void }).untrack?.();
}

export async function cleanup(): Promise<void> {
  const all = [...tracked];
  tracked.clear();
  // Clients first, then brokers.
  for (const r of all.reverse()) await r.close();
}

export interface TestBroker<P> {
  broker: Broker<P>;
  port: number;
  url: string;
  close(): Promise<void>;
}

export const allowAll: BrokerHooks<string> = {
  authenticate: ({ connect }) => ({ ok: true, principal: connect.username ?? 'anonymous' }),
  authorizePublish: () => true,
  authorizeSubscribe: () => true,
};

/** A broker behind a real TCP listener on 127.0.0.1, port 0. */
export async function startBroker<P = string>(
  options: Partial<Omit<BrokerOptions<P>, 'hooks'>> & { hooks?: Partial<BrokerHooks<P>> } = {},
): Promise<TestBroker<P>> {
  const hooks = { ...(allowAll as unknown as BrokerHooks<P>), ...options.hooks } as BrokerHooks<P>;
  const broker = createBroker<P>({ ...options, hooks } as BrokerOptions<P>);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    broker.handle(sock, { remoteAddress: sock.remoteAddress, remotePort: sock.remotePort });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  let closed: Promise<void> | undefined;
  const tb: TestBroker<P> = {
    broker,
    port,
    url: `mqtt://127.0.0.1:${port}`,
    close() {
      closed ??= (async () => {
        await broker.close();
        for (const s of sockets) s.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      })();
      return closed;
    },
  };
  return track(tb, () => tb.close());
}

const collectors = new WeakMap<MqttClient, Collector>();

/** An MQTT.js client, connected; no automatic reconnect. Messages are collected from the start. */
export async function client(port: number, opts: IClientOptions = {}): Promise<MqttClient> {
  const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
    reconnectPeriod: 0,
    connectTimeout: 5000,
    protocolVersion: 4,
    ...opts,
  });
  collectors.set(c, newCollector(c));
  track(c, () => c.endAsync(true).catch(() => {}));
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
    c.once('close', () => reject(new Error('closed before CONNACK')));
  });
  return c;
}

export interface Collector {
  messages: Received[];
  next(timeoutMs?: number): Promise<Received>;
  count(n: number, timeoutMs?: number): Promise<Received[]>;
}

export interface Received {
  topic: string;
  payload: Buffer;
  packet: mqtt.IPublishPacket;
}

/** The messages a client received; `next()` waits for the next one (bounded). */
export function collect(c: MqttClient): Collector {
  return collectors.get(c) ?? newCollector(c);
}

function newCollector(c: MqttClient): Collector {
  const messages: Received[] = [];
  const waiters: (() => void)[] = [];
  let read = 0;
  c.on('message', (topic, payload, packet) => {
    messages.push({ topic, payload, packet });
    for (const w of waiters.splice(0)) w();
  });
  const waitUntil = (pred: () => boolean, timeoutMs: number): Promise<void> =>
    new Promise((resolve, reject) => {
      if (pred()) return resolve();
      const t = setTimeout(
        () => reject(new Error(`timeout after ${timeoutMs} ms (have ${messages.length})`)),
        timeoutMs,
      );
      const check = (): void => {
        if (pred()) {
          clearTimeout(t);
          resolve();
        } else waiters.push(check);
      };
      waiters.push(check);
    });
  return {
    messages,
    async next(timeoutMs = 3000) {
      await waitUntil(() => messages.length > read, timeoutMs);
      return messages[read++]!;
    },
    async count(n, timeoutMs = 5000) {
      await waitUntil(() => messages.length >= n, timeoutMs);
      return messages.slice(0, n);
    },
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function end(...clients: MqttClient[]): Promise<void> {
  await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
}

/** A raw TCP MQTT peer: sends what it is told (even malformed bytes) and records what comes back. */
export class RawClient {
  readonly sock: net.Socket;
  readonly packets: mqttPacket.Packet[] = [];
  closed = false;
  readonly #parser: mqttPacket.Parser;
  readonly #version: 3 | 4 | 5;
  #waiters: (() => void)[] = [];
  #read = 0;

  constructor(sock: net.Socket, version: 3 | 4 | 5) {
    this.sock = sock;
    this.#version = version;
    this.#parser = mqttPacket.parser({ protocolVersion: version });
    this.#parser.on('packet', (p: mqttPacket.Packet) => {
      this.packets.push(p);
      this.#wake();
    });
    sock.on('data', (d: Buffer) => this.#parser.parse(d));
    sock.on('close', () => {
      this.closed = true;
      this.#wake();
    });
    sock.on('error', () => {});
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  static async open(port: number, version: 3 | 4 | 5 = 4): Promise<RawClient> {
    const sock = net.connect(port, '127.0.0.1');
    await once(sock, 'connect');
    const c = new RawClient(sock, version);
    return track(c, () => c.destroy());
  }

  /** Opens, sends CONNECT and waits for a successful CONNACK. */
  static async connect(
    port: number,
    version: 3 | 4 | 5,
    connect: Partial<mqttPacket.IConnectPacket> = {},
  ): Promise<RawClient> {
    const c = await RawClient.open(port, version);
    c.send({
      cmd: 'connect',
      protocolId: version === 3 ? 'MQIsdp' : 'MQTT',
      protocolVersion: version,
      clientId: `raw-${Math.random().toString(16).slice(2)}`,
      clean: true,
      keepalive: 60,
      ...connect,
    } as mqttPacket.IConnectPacket);
    const ack = (await c.next()) as mqttPacket.IConnackPacket;
    if (ack.cmd !== 'connack' || (ack.returnCode ?? ack.reasonCode ?? 0) !== 0) {
      throw new Error(`connect failed: ${JSON.stringify(ack)}`);
    }
    return c;
  }

  send(packet: mqttPacket.Packet): void {
    this.sock.write(mqttPacket.generate(packet, { protocolVersion: this.#version }));
  }

  write(bytes: Buffer | number[]): void {
    this.sock.write(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes));
  }

  #until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      if (pred()) return resolve();
      const t = setTimeout(() => reject(new Error(`timeout waiting for ${what}`)), timeoutMs);
      const check = (): void => {
        if (pred()) {
          clearTimeout(t);
          resolve();
        } else this.#waiters.push(check);
      };
      this.#waiters.push(check);
    });
  }

  /** The next packet; rejects when the connection closes first. */
  async next(timeoutMs = 3000): Promise<mqttPacket.Packet> {
    await this.#until(() => this.packets.length > this.#read || this.closed, timeoutMs, 'a packet');
    if (this.packets.length > this.#read) return this.packets[this.#read++]!;
    throw new Error('connection closed');
  }

  /** Waits for the broker to close the connection; returns the packets not yet read. */
  async closedByBroker(timeoutMs = 3000): Promise<mqttPacket.Packet[]> {
    await this.#until(() => this.closed, timeoutMs, 'the connection to close');
    const rest = this.packets.slice(this.#read);
    this.#read = this.packets.length;
    return rest;
  }

  /** Resolves after `ms` if nothing arrived, else with what arrived. */
  async quiet(ms: number): Promise<mqttPacket.Packet[]> {
    await sleep(ms);
    const rest = this.packets.slice(this.#read);
    this.#read = this.packets.length;
    return rest;
  }

  destroy(): void {
    this.sock.destroy();
  }
}

/** Polls until `pred()` holds (bounded). */
export async function waitFor(pred: () => boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}`);
    await sleep(5);
  }
}
