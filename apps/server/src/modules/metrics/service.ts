import type { Metric, MetricsSources, MetricType } from './model.ts';

export interface MetricsService {
  collect(): Metric[];
  /** Prometheus text exposition format 0.0.4. */
  render(): string;
}

/** The broker's metrics under their Prometheus names: [broker field, name, type, help]. */
const BROKER: readonly [string, string, MetricType, string][] = [
  ['connections', 'bulwark_mqtt_connections', 'gauge', 'Open MQTT connections (CONNACK sent).'],
  ['messagesIn', 'bulwark_mqtt_messages_received_total', 'counter', 'PUBLISH packets received from clients.'],
  ['messagesOut', 'bulwark_mqtt_messages_sent_total', 'counter', 'PUBLISH packets sent to clients.'],
  [
    'dropped',
    'bulwark_mqtt_messages_dropped_total',
    'counter',
    'Messages not delivered: a client queue was full, or a packet too large for the client.',
  ],
  ['refused', 'bulwark_mqtt_refused_total', 'counter', 'Refused connects, publishes and subscriptions.'],
  ['sessions', 'bulwark_mqtt_sessions', 'gauge', 'MQTT sessions held by this node, connected or not.'],
  ['subscriptions', 'bulwark_mqtt_subscriptions', 'gauge', 'Subscriptions held by this node.'],
  [
    'socketPauses',
    'bulwark_mqtt_socket_pauses_total',
    'counter',
    'Times a client connection stopped being read because too many of its publishes awaited their commit.',
  ],
  [
    'pausedSockets',
    'bulwark_mqtt_paused_sockets',
    'gauge',
    'Client connections not being read right now (back-pressure).',
  ],
  [
    'pendingInbound',
    'bulwark_mqtt_pending_inbound',
    'gauge',
    'Inbound publishes waiting for ingest or their acknowledgement.',
  ],
  [
    'queued',
    'bulwark_mqtt_queued_messages',
    'gauge',
    'Messages waiting for clients (slow or offline), in memory or in the session store.',
  ],
  [
    'inflight',
    'bulwark_mqtt_inflight_messages',
    'gauge',
    'Outbound QoS 1/2 messages sent and not yet acknowledged.',
  ],
];

const one = (name: string, type: MetricType, help: string, value: number): Metric => ({
  name,
  type,
  help,
  samples: [{ value }],
});

export function createMetricsService(sources: MetricsSources): MetricsService {
  const collect = (): Metric[] => {
    const b = sources.broker();
    const out = BROKER.map(([field, name, type, help]) => one(name, type, help, b[field] ?? 0));
    const t = sources.telemetry();
    out.push(
      one(
        'bulwark_telemetry_queue_depth',
        'gauge',
        'Telemetry messages waiting for their group commit; at capacity new ones are refused.',
        t.pending,
      ),
      one(
        'bulwark_telemetry_queue_capacity',
        'gauge',
        'Telemetry queue capacity (telemetry.queueMax).',
        t.capacity,
      ),
    );
    const c = sources.cluster?.();
    if (c !== undefined) {
      out.push(
        one('bulwark_cluster_forwarded_total', 'counter', 'Messages forwarded to other nodes.', c.forwarded),
        one('bulwark_cluster_received_total', 'counter', 'Messages received from other nodes.', c.received),
        one('bulwark_cluster_nodes', 'gauge', 'Other nodes this node knows the interest of.', c.nodes),
      );
    }
    const p = sources.process?.();
    if (p !== undefined) {
      out.push(
        one('process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.', p.residentBytes),
        one('nodejs_heap_used_bytes', 'gauge', 'V8 heap in use, in bytes.', p.heapUsedBytes),
        one('process_uptime_seconds', 'gauge', 'Seconds since the process started.', p.uptimeSeconds),
      );
    }
    return out;
  };
  return {
    collect,
    render: () => renderPrometheus(collect()),
  };
}

const escapeHelp = (s: string): string => s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
const escapeLabel = (s: string): string =>
  s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** Prometheus text format 0.0.4: `# HELP`, `# TYPE`, then one line per sample. */
export function renderPrometheus(metrics: readonly Metric[]): string {
  const lines: string[] = [];
  for (const m of metrics) {
    lines.push(`# HELP ${m.name} ${escapeHelp(m.help)}`, `# TYPE ${m.name} ${m.type}`);
    for (const s of m.samples) {
      const labels =
        s.labels === undefined || Object.keys(s.labels).length === 0
          ? ''
          : `{${Object.entries(s.labels)
              .map(([k, v]) => `${k}="${escapeLabel(v)}"`)
              .join(',')}}`;
      lines.push(`${m.name}${labels} ${formatValue(s.value)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
