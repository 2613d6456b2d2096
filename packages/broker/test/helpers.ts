import { once } from 'node:events';
import net from 'node:net';
import mqtt from 'mqtt';
import type { IClientOptions, MqttClient } from 'mqtt';
import { createBroker } from '../src/index.ts';
import type { Broker, BrokerHooks, BrokerOptions } from '../src/index.ts';

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
  return {
    broker,
    port,
    url: `mqtt://127.0.0.1:${port}`,
    async close() {
      await broker.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** An MQTT.js client, connected; no automatic reconnect. */
export async function client(port: number, opts: IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
    reconnectPeriod: 0,
    connectTimeout: 5000,
    protocolVersion: 4,
    ...opts,
  });
}

export interface Received {
  topic: string;
  payload: Buffer;
  packet: mqtt.IPublishPacket;
}

/** Collects messages; `next()` waits for the next one (bounded). */
export function collect(c: MqttClient): {
  messages: Received[];
  next(timeoutMs?: number): Promise<Received>;
  count(n: number, timeoutMs?: number): Promise<Received[]>;
} {
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
