// bulwark telemetry <id> [--from] [--to] [--stream] [--limit] [--follow]

import { setTimeout as delay } from 'node:timers/promises';
import { flagBool, flagInt, flagString } from '../args.ts';
import type { Command, Context } from '../context.ts';
import { UsageError } from '../errors.ts';
import type { ApiClient } from '../http.ts';
import { ConnectionError } from '../http.ts';
import type { Column } from '../output.ts';
import { clean, formatTable } from '../output.ts';
import type { TelemetryQuery, TelemetryRow } from '../types.ts';
import { requireDeviceId } from './device.ts';

const STREAM_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const DEFAULT_LIMIT = 100;
const FOLLOW_PAGE = 1000;

const telemetryColumns: Column<TelemetryRow>[] = [
  { header: 'time', value: (r) => r.ts },
  { header: 'stream', value: (r) => r.stream ?? '' },
  { header: 'data', value: (r) => JSON.stringify(r.data) },
];

function isoFlag(ctx: Context, name: string): string | undefined {
  const v = flagString(ctx.flags, name);
  if (v === undefined) return undefined;
  // ISO 8601 with a date; Date.parse alone would also accept "March 7".
  if (!/^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(v) || Number.isNaN(Date.parse(v))) {
    throw new UsageError(
      `--${name} must be an ISO 8601 time such as 2025-06-01T12:00:00Z, got '${v}'`,
      ctx.command.path,
    );
  }
  return v;
}

function rowKey(r: TelemetryRow): string {
  return `${r.ts}\u0000${r.stream ?? ''}\u0000${JSON.stringify(r.data)}`;
}

function rowLine(r: TelemetryRow): string {
  return `${clean(r.ts)}  ${clean(r.stream ?? '-')}  ${clean(JSON.stringify(r.data))}\n`;
}

const telemetry: Command = {
  path: ['telemetry'],
  summary: 'Show telemetry a device sent; --follow keeps printing new rows.',
  positionals: [{ name: 'id', description: 'device id' }],
  flags: {
    from: { type: 'string', value: 'ISO', description: 'first time to include, e.g. 2025-06-01T00:00:00Z' },
    to: { type: 'string', value: 'ISO', description: 'last time to include' },
    stream: { type: 'string', value: 'S', description: 'only this stream (devices/<id>/telemetry/<S>)' },
    limit: { type: 'string', value: 'N', description: `rows to show (1-1000, default ${DEFAULT_LIMIT})` },
    order: {
      type: 'string',
      value: 'asc|desc',
      description: 'order of the API page (default: desc, or asc with --from)',
    },
    cursor: { type: 'string', value: 'CURSOR', description: 'continue from a previous page' },
    follow: { type: 'boolean', description: 'keep polling for new rows until interrupted (Ctrl-C)' },
    interval: { type: 'string', value: 'SECONDS', description: 'poll interval for --follow (default 2)' },
  },
  examples: [
    'bulwark telemetry sensor-1',
    'bulwark telemetry sensor-1 --from 2025-06-01T00:00:00Z --to 2025-06-02T00:00:00Z --stream env',
    'bulwark telemetry sensor-1 --follow',
    'bulwark telemetry sensor-1 --follow --json | jq .data.temperature',
  ],
  notes:
    'Without --from the latest rows are shown, oldest first. With --json the API page is printed as it is;\n' +
    'with --follow --json every row is printed as one JSON line (NDJSON) as it arrives.',
  async run(ctx) {
    const id = requireDeviceId(ctx, ctx.positionals.id as string);
    const from = isoFlag(ctx, 'from');
    const to = isoFlag(ctx, 'to');
    if (from !== undefined && to !== undefined && Date.parse(from) > Date.parse(to)) {
      throw new UsageError('--from must not be after --to', ctx.command.path);
    }
    const stream = flagString(ctx.flags, 'stream');
    if (stream !== undefined && !STREAM_PATTERN.test(stream)) {
      throw new UsageError(`invalid stream name '${stream}'`, ctx.command.path);
    }
    const limit = flagInt(ctx.flags, 'limit', ctx.command.path, 1, 1000) ?? DEFAULT_LIMIT;
    const orderFlag = flagString(ctx.flags, 'order');
    if (orderFlag !== undefined && orderFlag !== 'asc' && orderFlag !== 'desc') {
      throw new UsageError(`--order must be asc or desc, got '${orderFlag}'`, ctx.command.path);
    }
    const follow = flagBool(ctx.flags, 'follow');
    const intervalText = flagString(ctx.flags, 'interval');
    const intervalSeconds = intervalText === undefined ? 2 : Number(intervalText);
    if (!Number.isFinite(intervalSeconds) || intervalSeconds < 0.05 || intervalSeconds > 3600) {
      throw new UsageError(`--interval must be a number of seconds from 0.05 to 3600`, ctx.command.path);
    }
    if (intervalText !== undefined && !follow)
      throw new UsageError('--interval needs --follow', ctx.command.path);
    if (follow && to !== undefined)
      throw new UsageError('--follow cannot be combined with --to', ctx.command.path);
    if (follow && (orderFlag !== undefined || flagString(ctx.flags, 'cursor') !== undefined)) {
      throw new UsageError('--follow cannot be combined with --order or --cursor', ctx.command.path);
    }

    const api = await ctx.api();
    const order = orderFlag ?? (from !== undefined ? 'asc' : 'desc');
    const base: TelemetryQuery = { from, to, stream };

    if (!follow) {
      const page = await api.listTelemetry(id, {
        ...base,
        limit,
        order,
        cursor: flagString(ctx.flags, 'cursor'),
      });
      if (ctx.json) {
        ctx.printJson(page);
        return;
      }
      // People read time forwards: a desc page (the latest rows) is shown oldest first.
      const rows = order === 'desc' ? [...page.items].reverse() : page.items;
      ctx.out(rows.length === 0 ? `no telemetry for ${id}\n` : formatTable(telemetryColumns, rows));
      if (page.nextCursor !== null) {
        ctx.progress(
          `more rows: add --cursor ${page.nextCursor}${orderFlag === undefined ? ` --order ${order}` : ''}`,
        );
      }
      return;
    }

    ctx.io.catchInterrupts();
    await followTelemetry(ctx, api, id, base, limit, intervalSeconds * 1000);
  },
};

/**
 * Prints the latest rows (or everything since --from), then polls with `from` = the newest time seen.
 * `from` is inclusive, so rows at exactly that time come back again; they are skipped by content.
 */
async function followTelemetry(
  ctx: Context,
  api: ApiClient,
  id: string,
  base: TelemetryQuery,
  limit: number,
  intervalMs: number,
): Promise<void> {
  const { signal } = ctx.io;
  let newest: number | undefined;
  let newestIso: string | undefined;
  let seenAtNewest = new Set<string>();
  let failing = false;

  const emit = (r: TelemetryRow): void => {
    const t = Date.parse(r.ts);
    const key = rowKey(r);
    if (newest !== undefined && (t < newest || (t === newest && seenAtNewest.has(key)))) return;
    if (newest === undefined || t > newest) {
      newest = t;
      newestIso = r.ts;
      seenAtNewest = new Set();
    }
    seenAtNewest.add(key);
    ctx.out(ctx.json ? JSON.stringify(r) + '\n' : rowLine(r));
  };

  const drain = async (query: TelemetryQuery): Promise<void> => {
    let cursor: string | undefined;
    do {
      const page = await api.listTelemetry(id, { ...query, cursor, order: 'asc', limit: FOLLOW_PAGE });
      for (const r of page.items) emit(r);
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined && !signal.aborted);
  };

  if (!ctx.json) ctx.progress(`following telemetry of ${id} (Ctrl-C to stop)…`);
  if (base.from !== undefined) {
    await drain(base);
  } else {
    const latest = await api.listTelemetry(id, { ...base, limit, order: 'desc' });
    for (const r of [...latest.items].reverse()) emit(r);
  }
  while (!signal.aborted) {
    try {
      await delay(intervalMs, undefined, { signal });
    } catch {
      break; // interrupted
    }
    // No row yet: ask for everything (the device has sent nothing, or nothing matching --stream).
    try {
      await drain({ ...base, from: newestIso ?? base.from });
      if (failing) ctx.progress('reconnected');
      failing = false;
    } catch (err) {
      // A server restart should not end a long-running follow; API errors (token revoked...) do.
      if (!(err instanceof ConnectionError)) throw err;
      if (!failing) ctx.warn(`${err.message}; retrying every ${intervalMs / 1000} s`);
      failing = true;
    }
  }
}

export const telemetryCommands: Command[] = [telemetry];
