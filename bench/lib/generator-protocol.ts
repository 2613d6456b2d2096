// Messages between the orchestrator (generator.ts) and a load process (loadgen.ts).
import type { SparseHistogram } from './histogram.ts';

export interface Target {
  host: string;
  port: number;
  /** PEM file of the CA that signed the broker's certificate. */
  ca: string;
  servername: string;
  /** Key exchange groups the client offers (OpenSSL list); the TLS library default when absent. */
  ecdhCurve?: string;
}

export interface ClientSpec {
  clientId: string;
  cert: string;
  key: string;
  /** Source address (127.0.0.x) to spread connections over more ephemeral ports. */
  localAddress?: string;
  /** Topic this client publishes on. */
  topic?: string;
}

export interface LoadStep {
  /** Offered messages per second, all publishers together. */
  rate: number;
  seconds: number;
}

export type GenCommand =
  | {
      type: 'connect';
      role: 'pub' | 'sub' | 'idle';
      target: Target;
      clients: ClientSpec[];
      concurrency: number;
      keepAlive: number;
      timeoutMs: number;
    }
  | { type: 'subscribe'; filter: string; qos: 0 | 1 }
  | {
      type: 'publish';
      qos: 0 | 1;
      payloadBytes: number;
      /** QoS 1: unacknowledged messages per publisher; past it sends are skipped (counted as blocked). */
      window: number;
      /** QoS 0: bytes buffered in a socket past which sends are skipped (counted as blocked). */
      writeCap: number;
      startAtUs: number;
      steps: LoadStep[];
      drainMs: number;
    }
  | { type: 'count'; startAtUs: number; endAtUs: number; drainMs: number }
  | {
      type: 'handshakes';
      target: Target;
      clients: ClientSpec[];
      mode: 'full' | 'resumed';
      concurrency: number;
      startAtUs: number;
      seconds: number;
    }
  | { type: 'close' }
  | { type: 'exit' };

export type PubTick = {
  type: 'tick';
  kind: 'pub';
  idx: number;
  offered: number;
  sent: number;
  blocked: number;
  acked: number;
  ackLatency: SparseHistogram;
  errors: number;
  closes: number;
  final: boolean;
};

export type SubTick = {
  type: 'tick';
  kind: 'sub';
  idx: number;
  delivered: number;
  latency: SparseHistogram;
  bad: number;
  closes: number;
  final: boolean;
};

export type HsTick = {
  type: 'tick';
  kind: 'hs';
  idx: number;
  completed: number;
  resumed: number;
  failed: number;
  latency: SparseHistogram;
  final: boolean;
};

export type GenTick = PubTick | SubTick | HsTick;

export type GenEvent =
  | { type: 'ready'; pid: number }
  | { type: 'reply'; seq: number; ok: true; result: unknown }
  | { type: 'reply'; seq: number; ok: false; error: string }
  | GenTick;
