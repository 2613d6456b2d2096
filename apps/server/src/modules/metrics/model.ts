// Metrics as Prometheus sees them: a name, help, a type and one value (optionally per label set).

export type MetricType = 'counter' | 'gauge';

export interface Metric {
  /** `bulwark_<area>_<what>`, counters end in `_total` (Prometheus naming). */
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly samples: readonly { readonly labels?: Readonly<Record<string, string>>; readonly value: number }[];
}

/** What the broker reports (see @bulwark/broker BrokerMetrics); absent fields are reported as 0. */
export type BrokerCounters = Readonly<Record<string, number>>;

/** Where metrics come from; each is read on every scrape (cheap, no I/O). */
export interface MetricsSources {
  broker(): BrokerCounters;
  telemetry(): { pending: number; capacity: number };
  cluster?(): { forwarded: number; received: number; nodes: number } | undefined;
  process?(): { residentBytes: number; heapUsedBytes: number; uptimeSeconds: number };
}
