// bulwark posture list | show | resolve — the fleet's security findings.

import type { GetPostureFindingsArgs } from '@bulwark/api-client';
import { flagString } from '../args.ts';
import type { Command } from '../context.ts';
import { UsageError } from '../errors.ts';
import { formatKeyValues, type Column } from '../output.ts';
import { listPages, pageFlags } from './paging.ts';

interface Finding {
  id: string;
  deviceId: string | null;
  kind: string;
  severity: string;
  summary: string;
  status: string;
  occurrences: number;
  lastSeenAt: string;
}

/** Checked by the server (a kind it does not know is a 400 listing the ones it does). */
type FindingKind = NonNullable<NonNullable<GetPostureFindingsArgs['query']>['kind']>;

const SEVERITIES = ['critical', 'high', 'medium', 'low'] as const;
const STATUSES = ['open', 'resolved'] as const;

const columns: Column<Finding>[] = [
  { header: 'id', value: (f) => f.id },
  { header: 'severity', value: (f) => f.severity },
  { header: 'kind', value: (f) => f.kind },
  { header: 'device', value: (f) => f.deviceId ?? '' },
  { header: 'status', value: (f) => f.status },
  { header: 'seen', value: (f) => String(f.occurrences), align: 'right' },
  { header: 'last seen', value: (f) => f.lastSeenAt },
  { header: 'summary', value: (f) => f.summary },
];

function oneOf<T extends string>(ctx: Parameters<Command['run']>[0], name: string, allowed: readonly T[]) {
  const v = flagString(ctx.flags, name);
  if (v !== undefined && !allowed.includes(v as T))
    throw new UsageError(`--${name} must be one of ${allowed.join(', ')}`, ctx.command.path);
  return v as T | undefined;
}

const list: Command = {
  path: ['posture', 'list'],
  summary: 'Security posture findings, most recently seen first.',
  positionals: [],
  flags: {
    ...pageFlags,
    status: { type: 'string', value: 'STATUS', description: 'open or resolved (default: both)' },
    severity: { type: 'string', value: 'LEVEL', description: 'critical, high, medium or low' },
    kind: { type: 'string', value: 'KIND', description: 'e.g. listening-port, tamper, policy-lint' },
    device: { type: 'string', value: 'ID', description: 'findings about this device' },
  },
  examples: [
    'bulwark posture list --status open --severity critical',
    'bulwark posture list --device pump-7 --all --json',
  ],
  async run(ctx) {
    const api = await ctx.api();
    const status = oneOf(ctx, 'status', STATUSES);
    const severity = oneOf(ctx, 'severity', SEVERITIES);
    const kind = flagString(ctx.flags, 'kind');
    const deviceId = flagString(ctx.flags, 'device');
    await listPages(
      ctx,
      'findings',
      (q) =>
        api.ops.getPostureFindings({
          query: {
            ...q,
            ...(status ? { status } : {}),
            ...(severity ? { severity } : {}),
            ...(kind ? { kind: kind as FindingKind } : {}),
            ...(deviceId ? { deviceId } : {}),
          },
        }) as Promise<{ items: Finding[]; nextCursor: string | null }>,
      columns,
    );
  },
};

const show: Command = {
  path: ['posture', 'show'],
  summary: 'One finding with its details.',
  positionals: [{ name: 'id', description: 'finding id' }],
  flags: {},
  async run(ctx) {
    const f = await (
      await ctx.api()
    ).ops.getPostureFindingsById({ params: { id: ctx.positionals.id as string } });
    if (ctx.json) {
      ctx.printJson(f);
      return;
    }
    ctx.out(
      formatKeyValues([
        ['id', f.id],
        ['severity', f.severity],
        ['kind', f.kind],
        ['device', f.deviceId ?? ''],
        ['status', f.status],
        ['summary', f.summary],
        ['details', JSON.stringify(f.details)],
        ['occurrences', String(f.occurrences)],
        ['first seen', f.firstSeenAt],
        ['last seen', f.lastSeenAt],
        ['resolved', f.resolvedAt ? `${f.resolvedAt} by ${f.resolvedBy ?? ''}` : ''],
        ['resolution', f.resolution ?? ''],
      ]),
    );
  },
};

const resolve: Command = {
  path: ['posture', 'resolve'],
  summary: 'Resolve a finding (it opens again if it is observed again).',
  positionals: [{ name: 'id', description: 'finding id' }],
  flags: { note: { type: 'string', value: 'TEXT', description: 'fixed, accepted, false positive: why' } },
  examples: ["bulwark posture resolve 6f1c… --note 'telnet removed in firmware 2.1'"],
  async run(ctx) {
    const note = flagString(ctx.flags, 'note');
    const f = await (
      await ctx.api()
    ).ops.postPostureFindingsByIdResolve({
      params: { id: ctx.positionals.id as string },
      body: note !== undefined ? { note } : {},
    });
    if (ctx.json) ctx.printJson(f);
    else ctx.out(`finding ${f.id} ${f.status}\n`);
  },
};

export const postureCommands: Command[] = [list, show, resolve];
