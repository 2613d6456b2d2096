// The contract between bench/run.ts and the suites in bench/suites/. A suite is a module whose default
// export (or named export `suite`) is a Suite; run.ts finds every file in bench/suites by itself.
import type { CertSet } from './certs.ts';
import type { Generator } from './generator.ts';
import type { Target } from './generator-protocol.ts';

/** `node-tls`: no broker, Node's TLS server alone (bench/servers/bare-tls.ts), the floor under Bulwark. */
export type BrokerKind = 'bulwark' | 'mosquitto' | 'node-tls';

export interface RunningBroker {
  kind: BrokerKind;
  /** e.g. "Bulwark @bulwark/broker 0.1.0 (Node 24.x, OpenSSL 3.5.x)" */
  label: string;
  pid: number;
  target: Target;
  /** RSS now, KiB. */
  rssKB(): number;
  /** The broker's own counters (Bulwark: messagesIn/Out, dropped…); undefined when it has none. */
  metrics?(): Promise<Record<string, number> | undefined>;
  stop(): Promise<void>;
}

export interface Figure {
  /** Short name for the ratio table, e.g. "fan-in QoS 0: max rate held". */
  name: string;
  unit: string;
  bulwark: number | null;
  mosquitto: number | null;
  /** Which direction is good; the ratio is always "≥ 1 means Bulwark is as good or better". */
  better: 'higher' | 'lower';
  /** Values below this count as this when the ratio is taken (e.g. RSS growth near zero). */
  resolution?: number;
  /**
   * Which figures are only bounds (the load generator ran out first): shown as "≥ x" for
   * higher-is-better figures, and the ratio then as a bound too.
   */
  bound?: { bulwark?: boolean; mosquitto?: boolean };
  /** Caveat printed under the table (e.g. "Mosquitto figure is generator-bound: a lower bound"). */
  note?: string;
}

export interface SuiteContext {
  /** `--quick`: shorter steps and smaller counts, for a smoke run. */
  readonly quick: boolean;
  /** Brokers to compare, in order; Mosquitto is absent when it is not installed. */
  readonly brokers: readonly ('bulwark' | 'mosquitto')[];
  readonly certs: CertSet;
  /** Names of the publisher certificates (one per publisher), the reader, and the shared fleet ones. */
  readonly names: { publishers: readonly string[]; reader: string; fleet: readonly string[] };
  /** A scratch directory removed at the end of the run. */
  readonly tmpDir: string;
  /** Where profiles and other artefacts of this run go (bench/results/<run>/). */
  readonly artefactsDir: string;
  /** `--profile`: the Bulwark broker runs with --cpu-prof. */
  readonly profile: boolean;
  /** Cores: the broker under test gets `brokerCpu`, load processes `loadCpu`. */
  readonly brokerCpu: number | undefined;
  readonly loadCpu: number | undefined;
  log(message: string): void;
  /** A fresh broker process pinned to the broker core. */
  startBroker(kind: BrokerKind): Promise<RunningBroker>;
  /** Load processes pinned to the load core (stopped automatically at the end of the suite). */
  startGenerator(name: string): Promise<Generator>;
  /** Runs `fn` once per bench run and shares its result between suites (e.g. a Mosquitto baseline). */
  memo<T>(key: string, fn: () => Promise<T>): Promise<T>;
  /** Adds a row to the Bulwark/Mosquitto ratio table. */
  figure(f: Figure): void;
}

export interface Suite {
  name: string;
  description: string;
  /** Lower runs first (default 100); ties by name. */
  order?: number;
  /** Runs only when named with --only (diagnostics that would lengthen every run). */
  optional?: boolean;
  run(ctx: SuiteContext): Promise<Record<string, unknown>>;
}
