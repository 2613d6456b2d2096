import { AppError, decodeCursor, encodeCursor, type Clock } from '../../kernel/index.ts';
import { createBatcher } from './batcher.ts';
import type { TelemetryRecord, TelemetryStore } from './model.ts';

export interface TelemetryPoint {
  ts: string;
  stream?: string;
  data: Record<string, unknown>;
}

export interface TelemetryService {
  /**
   * Validates a payload and queues it for the next group commit; resolves once it is durably stored.
   * Refused payloads throw AppError and nothing is stored.
   */
  ingest(tenant: string, deviceId: string, stream: string | undefined, payload: Buffer): Promise<void>;
  query(
    tenant: string,
    deviceId: string,
    opts: {
      from?: string;
      to?: string;
      stream?: string;
      limit?: number;
      cursor?: string;
      order?: 'asc' | 'desc';
    },
  ): Promise<{ items: TelemetryPoint[]; nextCursor: string | null }>;
  readonly pending: number;
  flush(): Promise<void>;
}

export interface TelemetryOptions {
  maxPayloadBytes: number;
  batchMaxSize: number;
  batchMaxDelayMs: number;
  queueMax: number;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/** Parses and checks a telemetry payload: UTF-8 JSON whose top level is an object. */
export function parsePayload(payload: Buffer, maxBytes: number): string {
  if (payload.length > maxBytes) {
    throw new AppError(
      'ERR_TELEMETRY_TOO_LARGE',
      `Telemetry payload is ${payload.length} bytes; the limit is ${maxBytes}`,
    );
  }
  let text: string;
  let value: unknown;
  try {
    text = decoder.decode(payload);
    value = JSON.parse(text);
  } catch {
    throw new AppError('ERR_TELEMETRY_NOT_JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new AppError('ERR_TELEMETRY_NOT_OBJECT');
  }
  return text;
}

function parseTime(s: string | undefined, fallback: number, name: string): number {
  if (s === undefined) return fallback;
  const t = Date.parse(s);
  if (!/^\d{4}-\d{2}-\d{2}/.test(s) || Number.isNaN(t)) {
    throw new AppError('ERR_TELEMETRY_BAD_RANGE', `${name} is not an ISO 8601 timestamp`);
  }
  return t;
}

export function createTelemetryService(deps: {
  store: TelemetryStore;
  clock: Clock;
  options: TelemetryOptions;
}): TelemetryService {
  const { store, clock, options } = deps;
  const batcher = createBatcher<TelemetryRecord>({
    write: (items) => store.insertBatch(items),
    maxSize: options.batchMaxSize,
    maxDelayMs: options.batchMaxDelayMs,
    maxPending: options.queueMax,
    onOverflow: () => new AppError('ERR_TELEMETRY_OVERLOADED'),
  });
  return {
    get pending() {
      return batcher.pending;
    },
    flush: () => batcher.flush(),
    ingest(tenant, deviceId, stream, payload) {
      let json: string;
      try {
        json = parsePayload(payload, options.maxPayloadBytes);
      } catch (err) {
        return Promise.reject(err);
      }
      return batcher.add({ tenant, deviceId, stream: stream ?? '', ts: clock.now(), json });
    },
    async query(tenant, deviceId, opts) {
      const to = parseTime(opts.to, clock.now(), 'to');
      const from = parseTime(opts.from, 0, 'from');
      if (from > to) throw new AppError('ERR_TELEMETRY_BAD_RANGE', '`from` is after `to`');
      const limit = Math.min(Math.max(opts.limit ?? 100, 1), 1000);
      const order = opts.order ?? 'asc';
      const after = opts.cursor
        ? decodeCursor<{ ts: number; id: number }>(opts.cursor, ['ts', 'id'])
        : undefined;
      const rows = await store.query(tenant, deviceId, {
        from,
        to,
        limit: limit + 1,
        order,
        ...(opts.stream !== undefined ? { stream: opts.stream } : {}),
        ...(after ? { after: { ts: Number(after.ts), id: Number(after.id) } } : {}),
      });
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        items: page.map((r) => ({
          ts: new Date(Number(r.ts)).toISOString(),
          ...(r.stream ? { stream: r.stream } : {}),
          data: JSON.parse(r.json) as Record<string, unknown>,
        })),
        nextCursor:
          rows.length > limit && last ? encodeCursor({ ts: Number(last.ts), id: Number(last.id) }) : null,
      };
    },
  };
}
