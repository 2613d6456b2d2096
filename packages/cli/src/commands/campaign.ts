// bulwark campaign create|list|show|approve|pause|resume|cancel

import { flagBool, flagInt, flagList, flagString } from '../args.ts';
import type { Command, Context } from '../context.ts';
import { UsageError } from '../errors.ts';
import type { Column } from '../output.ts';
import { formatKeyValues, formatTable } from '../output.ts';
import type { Page } from '../types.ts';
import { listPages, pageFlags } from './paging.ts';

export interface Campaign {
  id: string;
  name: string;
  release: { id: string; name: string; version: string };
  target: Record<string, unknown>;
  plan: Record<string, unknown>;
  state: string;
  stateReason: string | null;
  wave: number;
  waveCount: number;
  waveSizes: number[];
  total: number;
  excluded: number;
  devices: Record<string, number>;
  currentWave: { total: number; pending: number; active: number; succeeded: number; failed: number };
  createdAt: string;
  updatedAt: string;
}

interface Assignment {
  deviceId: string;
  wave: number;
  state: string;
  reason: string | null;
  fromVersion: string | null;
  version: string | null;
}

const columns: Column<Campaign>[] = [
  { header: 'id', value: (c) => c.id },
  { header: 'name', value: (c) => c.name },
  { header: 'release', value: (c) => `${c.release.name} ${c.release.version}` },
  { header: 'state', value: (c) => c.state },
  { header: 'wave', value: (c) => `${c.wave + 1}/${c.waveCount}` },
  { header: 'succeeded', value: (c) => String(c.devices.succeeded ?? 0) },
  { header: 'failed', value: (c) => String((c.devices.failed ?? 0) + (c.devices['rolled-back'] ?? 0)) },
  { header: 'devices', value: (c) => String(c.total) },
];

const idArg = { name: 'id', description: 'campaign id' };

/** `1,10%,50%,100%`: a count, or a cumulative percentage, per wave. */
export function parseWaves(text: string, command: readonly string[]): { count?: number; percent?: number }[] {
  return text.split(',').map((w) => {
    const m = /^(\d+)(%?)$/.exec(w.trim());
    if (!m?.[1])
      throw new UsageError(`--waves: '${w}' is neither a count (10) nor a percentage (25%)`, command);
    return m[2] === '%' ? { percent: Number(m[1]) } : { count: Number(m[1]) };
  });
}

/** `22:00-04:00` or `22:00-04:00@sat,sun` (UTC). */
export function parseWindow(text: string, command: readonly string[]) {
  const m = /^(\d\d:\d\d)-(\d\d:\d\d)(?:@([a-z,]+))?$/.exec(text);
  if (!m?.[1] || !m[2])
    throw new UsageError(`--window expects HH:MM-HH:MM[@mon,tue,...] (UTC), got '${text}'`, command);
  return { from: m[1], to: m[2], ...(m[3] ? { days: m[3].split(',') } : {}) };
}

export function campaignSummary(c: Campaign): string {
  const d = c.devices;
  return formatKeyValues([
    ['id', c.id],
    ['name', c.name],
    ['release', `${c.release.name} ${c.release.version}`],
    ['state', c.state],
    ['reason', c.stateReason ?? undefined],
    ['wave', `${c.wave + 1} of ${c.waveCount} (sizes ${c.waveSizes.join(', ')})`],
    [
      'current wave',
      `${c.currentWave.succeeded} succeeded, ${c.currentWave.failed} failed, ${c.currentWave.active} in progress, ${c.currentWave.pending} pending`,
    ],
    [
      'devices',
      Object.entries(d)
        .map(([k, v]) => `${k} ${v}`)
        .join(', '),
    ],
    ['targeted', c.total],
    ['excluded', c.excluded],
    ['created', c.createdAt],
  ]);
}

const create: Command = {
  path: ['campaign', 'create'],
  summary: 'Roll a release out to a fleet, group, query or devices, canary first, in waves.',
  positionals: [],
  flags: {
    name: { type: 'string', value: 'NAME', description: 'campaign name (required)' },
    release: { type: 'string', value: 'ID', description: 'release id (required)' },
    fleet: { type: 'string', value: 'PATH', description: 'target a fleet and its sub-fleets' },
    group: { type: 'string', value: 'NAME', description: 'target a group' },
    query: {
      type: 'string',
      value: 'QUERY',
      description: "target devices matching a query, e.g. 'attr.site = lyon'",
    },
    devices: { type: 'string', value: 'ID,...', description: 'target these devices' },
    waves: {
      type: 'string',
      value: 'LIST',
      description: 'wave sizes: counts or cumulative %, e.g. 1,10%,50%,100%',
    },
    'max-concurrent': { type: 'string', value: 'N', description: 'devices updating at once' },
    rate: { type: 'string', value: 'N', description: 'new devices notified per minute' },
    window: {
      type: 'string',
      value: 'HH:MM-HH:MM[@DAYS]',
      multiple: true,
      description: 'maintenance window in UTC (repeatable), e.g. 22:00-04:00@sat,sun',
    },
    approval: { type: 'boolean', description: 'every wave after the canary waits for `campaign approve`' },
    threshold: {
      type: 'string',
      value: 'PCT',
      description: 'failed share of a wave that triggers --on-failure',
    },
    'on-failure': { type: 'string', value: 'ACTION', description: 'pause or abort (default abort)' },
    'no-rollback': { type: 'boolean', description: 'on abort, do not tell failed devices to roll back' },
    timeout: {
      type: 'string',
      value: 'SECONDS',
      description: 'a device without a result after this long has failed',
    },
    'allow-downgrade': {
      type: 'boolean',
      description: 'also target devices running a newer version (audited)',
    },
    'dry-run': {
      type: 'boolean',
      description: 'show who would be targeted and who is excluded, start nothing',
    },
  },
  examples: [
    'bulwark campaign create --name fw-1.4 --release <id> --fleet plant-a --waves 5,10%,50%,100% --threshold 5 --approval',
  ],
  async run(ctx) {
    const path = ctx.command.path;
    const name = flagString(ctx.flags, 'name');
    const release = flagString(ctx.flags, 'release');
    if (name === undefined) throw new UsageError('missing --name', path);
    if (release === undefined) throw new UsageError('missing --release', path);
    const targets = (['fleet', 'group', 'query', 'devices'] as const).filter(
      (t) => flagString(ctx.flags, t) !== undefined,
    );
    if (targets.length !== 1)
      throw new UsageError('give exactly one of --fleet, --group, --query, --devices', path);
    const t = targets[0] as string;
    const value = flagString(ctx.flags, t) as string;
    const target = t === 'devices' ? { devices: value.split(',').filter(Boolean) } : { [t]: value };
    const plan: Record<string, unknown> = {};
    const waves = flagString(ctx.flags, 'waves');
    if (waves !== undefined) plan.waves = parseWaves(waves, path);
    const mc = flagInt(ctx.flags, 'max-concurrent', path, 1);
    if (mc !== undefined) plan.maxConcurrent = mc;
    const rate = flagInt(ctx.flags, 'rate', path, 1);
    if (rate !== undefined) plan.ratePerMinute = rate;
    const windows = flagList(ctx.flags, 'window').map((w) => parseWindow(w, path));
    if (windows.length > 0) plan.windows = windows;
    if (flagBool(ctx.flags, 'approval')) plan.approval = 'each-wave';
    const threshold = flagInt(ctx.flags, 'threshold', path, 0, 100);
    if (threshold !== undefined) plan.failureThresholdPercent = threshold;
    const onFailure = flagString(ctx.flags, 'on-failure');
    if (onFailure !== undefined) {
      if (onFailure !== 'pause' && onFailure !== 'abort')
        throw new UsageError('--on-failure is pause or abort', path);
      plan.onFailure = onFailure;
    }
    if (flagBool(ctx.flags, 'no-rollback')) plan.rollbackOnAbort = false;
    const timeout = flagInt(ctx.flags, 'timeout', path, 10);
    if (timeout !== undefined) plan.deviceTimeoutSeconds = timeout;
    if (flagBool(ctx.flags, 'allow-downgrade')) plan.allowDowngrade = true;
    const dryRun = flagBool(ctx.flags, 'dry-run');
    const r = (
      await (
        await ctx.api()
      ).request('POST', '/campaigns', {
        body: { name, release, target, plan, ...(dryRun ? { dryRun } : {}) },
      })
    ).body as {
      campaign: Campaign | null;
      eligible: number;
      waveSizes: number[];
      excluded: { deviceId: string; reason: string }[];
      excludedCount: number;
    };
    if (ctx.json) return void ctx.printJson(r);
    if (r.campaign) ctx.out(campaignSummary(r.campaign));
    else ctx.out(`${r.eligible} device(s) would be updated in waves of ${r.waveSizes.join(', ')}\n`);
    if (r.excludedCount > 0) {
      ctx.out(`\n${r.excludedCount} device(s) excluded:\n`);
      ctx.out(
        formatTable(
          [
            { header: 'device', value: (x: { deviceId: string; reason: string }) => x.deviceId },
            { header: 'why', value: (x) => x.reason },
          ],
          r.excluded.slice(0, 50),
        ),
      );
      if (r.excludedCount > 50) ctx.out(`… and ${r.excludedCount - 50} more (--json lists up to 1000)\n`);
    }
  },
};

const list: Command = {
  path: ['campaign', 'list'],
  summary: 'List campaigns, newest first.',
  positionals: [],
  flags: {
    ...pageFlags,
    state: { type: 'string', value: 'STATE', description: 'only campaigns in this state' },
  },
  async run(ctx) {
    const api = await ctx.api();
    const state = flagString(ctx.flags, 'state');
    await listPages(
      ctx,
      'campaigns',
      async (q) =>
        (await api.request('GET', '/campaigns', { query: { ...q, state } })).body as Page<Campaign>,
      columns,
    );
  },
};

const show: Command = {
  path: ['campaign', 'show'],
  summary: 'Show a campaign and its progress; --devices lists devices (--state failed for the failures).',
  positionals: [idArg],
  flags: {
    devices: { type: 'boolean', description: 'list the devices with their state' },
    state: {
      type: 'string',
      value: 'STATE',
      description: 'with --devices: only this state (failed, excluded...)',
    },
  },
  async run(ctx) {
    const api = await ctx.api();
    const id = encodeURIComponent(ctx.positionals.id as string);
    const c = (await api.request('GET', `/campaigns/${id}`)).body as Campaign;
    if (!flagBool(ctx.flags, 'devices')) {
      if (ctx.json) ctx.printJson(c);
      else ctx.out(campaignSummary(c));
      return;
    }
    const state = flagString(ctx.flags, 'state');
    const items: Assignment[] = [];
    for (let cursor: string | undefined; ;) {
      const page = (
        await api.request('GET', `/campaigns/${id}/devices`, { query: { limit: 1000, cursor, state } })
      ).body as Page<Assignment>;
      items.push(...page.items);
      if (!page.nextCursor) break;
      cursor = page.nextCursor;
    }
    if (ctx.json) return void ctx.printJson({ campaign: c, devices: items });
    ctx.out(
      formatTable(
        [
          { header: 'device', value: (a: Assignment) => a.deviceId },
          { header: 'wave', value: (a) => (a.wave < 0 ? '-' : String(a.wave + 1)) },
          { header: 'state', value: (a) => a.state },
          { header: 'from', value: (a) => a.fromVersion ?? '' },
          { header: 'now', value: (a) => a.version ?? '' },
          { header: 'reason', value: (a) => a.reason ?? '' },
        ],
        items,
      ),
    );
  },
};

function action(verb: 'approve' | 'pause' | 'resume' | 'cancel', summary: string): Command {
  const withReason = verb === 'pause' || verb === 'cancel';
  return {
    path: ['campaign', verb],
    summary,
    positionals: [idArg],
    flags: withReason ? { reason: { type: 'string', value: 'TEXT', description: 'why (audited)' } } : {},
    async run(ctx: Context) {
      const reason = flagString(ctx.flags, 'reason');
      const c = (
        await (
          await ctx.api()
        ).request('POST', `/campaigns/${encodeURIComponent(ctx.positionals.id as string)}/${verb}`, {
          ...(withReason ? { body: reason !== undefined ? { reason } : {} } : {}),
        })
      ).body as Campaign;
      if (ctx.json) ctx.printJson(c);
      else ctx.out(campaignSummary(c));
    },
  };
}

export const campaignCommands: Command[] = [
  create,
  list,
  show,
  action('approve', 'Approve the wave the campaign waits at.'),
  action('pause', 'Pause: nobody new is notified; devices in progress finish.'),
  action('resume', 'Resume a paused campaign.'),
  action('cancel', 'Cancel: pending devices are dropped, devices in progress told to stop.'),
];
