// bulwark fleet create|list|show|delete|move   and   bulwark group create|list|show|update|delete|add|remove|members

import { flagList, flagString } from '../args.ts';
import type { Command, Context } from '../context.ts';
import { UsageError } from '../errors.ts';
import type { Column } from '../output.ts';
import { formatKeyValues, formatTable } from '../output.ts';
import type { Fleet, Group } from '../types.ts';
import { requireDeviceId } from './device.ts';
import { listPages, pageFlags } from './paging.ts';

const pathArg = { name: 'path', description: 'fleet path, e.g. plant-a/line-3 (segments: a-z 0-9 _ -)' };
const nameArg = { name: 'name', description: 'group name (quarantine is built in)' };
const descriptionFlag = { type: 'string' as const, value: 'TEXT', description: 'description' };

const fleetColumns: Column<Fleet>[] = [
  { header: 'path', value: (f) => f.path },
  { header: 'description', value: (f) => f.description },
  { header: 'created', value: (f) => f.createdAt },
];

const groupColumns: Column<Group>[] = [
  { header: 'name', value: (g) => g.name },
  { header: 'kind', value: (g) => (g.builtin ? `${g.kind}, built-in` : g.kind) },
  { header: 'members', value: (g) => String(g.members ?? ''), align: 'right' },
  { header: 'query', value: (g) => g.query ?? '' },
  { header: 'description', value: (g) => g.description },
];

const fleetCreate: Command = {
  path: ['fleet', 'create'],
  summary: 'Create a fleet; a nested fleet needs its parent (plant-a before plant-a/line-3).',
  positionals: [pathArg],
  flags: { description: descriptionFlag },
  examples: [
    'bulwark fleet create plant-a',
    'bulwark fleet create plant-a/line-3 --description "Line 3 robots"',
  ],
  async run(ctx) {
    const description = flagString(ctx.flags, 'description');
    const f = await (
      await ctx.api()
    ).createFleet({
      path: ctx.positionals.path as string,
      ...(description === undefined ? {} : { description }),
    });
    if (ctx.json) ctx.printJson(f);
    else ctx.out(`created fleet ${f.path}\n`);
  },
};

const fleetList: Command = {
  path: ['fleet', 'list'],
  summary: 'List fleets by path (one subtree with --under).',
  positionals: [],
  flags: { ...pageFlags, under: { type: 'string', value: 'PATH', description: 'only this fleet and below' } },
  examples: ['bulwark fleet list --under plant-a --all'],
  async run(ctx) {
    const api = await ctx.api();
    const under = flagString(ctx.flags, 'under');
    await listPages(ctx, 'fleets', (q) => api.listFleets({ ...q, under }), fleetColumns);
  },
};

const fleetShow: Command = {
  path: ['fleet', 'show'],
  summary: 'Show a fleet with its device and sub-fleet counts.',
  positionals: [pathArg],
  flags: {},
  examples: ['bulwark fleet show plant-a/line-3'],
  async run(ctx) {
    const f = await (await ctx.api()).getFleet(ctx.positionals.path as string);
    if (ctx.json) ctx.printJson(f);
    else
      ctx.out(
        formatKeyValues([
          ['path', f.path],
          ['parent', f.parent ?? '-'],
          ['description', f.description || '-'],
          ['devices', f.devices],
          ['sub-fleets', f.fleets],
          ['created', f.createdAt],
        ]),
      );
  },
};

const fleetDelete: Command = {
  path: ['fleet', 'delete'],
  summary: 'Delete an empty fleet (no devices, sub-fleets or attached policies).',
  positionals: [pathArg],
  flags: {},
  examples: ['bulwark fleet delete plant-a/line-3'],
  async run(ctx) {
    await (await ctx.api()).deleteFleet(ctx.positionals.path as string);
    if (!ctx.json) ctx.out(`deleted fleet ${ctx.positionals.path as string}\n`);
  },
};

const fleetMove: Command = {
  path: ['fleet', 'move'],
  summary: 'Move a device into a fleet (- for none); its live session follows the new policies.',
  positionals: [
    { name: 'device', description: 'device id' },
    { name: 'path', description: 'fleet path, or - to take the device out of every fleet' },
  ],
  flags: {},
  examples: ['bulwark fleet move robot-7 plant-a/line-3', 'bulwark fleet move robot-7 -'],
  async run(ctx) {
    const device = requireDeviceId(ctx, ctx.positionals.device as string);
    const path = ctx.positionals.path as string;
    const d = await (await ctx.api()).moveDevice(device, path === '-' ? null : path);
    if (ctx.json) ctx.printJson(d);
    else ctx.out(`device ${d.id} is in ${path === '-' ? 'no fleet' : `fleet ${path}`}\n`);
  },
};

const groupCreate: Command = {
  path: ['group', 'create'],
  summary: 'Create a static group, or with --query a dynamic one kept current as devices change.',
  positionals: [nameArg],
  flags: {
    query: {
      type: 'string',
      value: 'QUERY',
      description: "e.g. 'attr.hw = B and attr.fw < 2.4' (see docs/policies.md)",
    },
    description: descriptionFlag,
  },
  examples: [
    'bulwark group create pilot',
    "bulwark group create old-firmware --query 'attr.fw < 2.4 and fleet under plant-a'",
  ],
  async run(ctx) {
    const query = flagString(ctx.flags, 'query');
    const description = flagString(ctx.flags, 'description');
    const g = await (
      await ctx.api()
    ).createGroup({
      name: ctx.positionals.name as string,
      kind: query === undefined ? 'static' : 'dynamic',
      ...(query === undefined ? {} : { query }),
      ...(description === undefined ? {} : { description }),
    });
    if (ctx.json) ctx.printJson(g);
    else
      ctx.out(
        `created ${g.kind} group ${g.name}${g.members === undefined ? '' : ` (${g.members} members)`}\n`,
      );
  },
};

const groupList: Command = {
  path: ['group', 'list'],
  summary: 'List groups with their member counts.',
  positionals: [],
  flags: {},
  examples: ['bulwark group list'],
  async run(ctx) {
    const r = await (await ctx.api()).listGroups();
    if (ctx.json) ctx.printJson(r);
    else ctx.out(formatTable(groupColumns, r.items));
  },
};

const groupShow: Command = {
  path: ['group', 'show'],
  summary: 'Show a group.',
  positionals: [nameArg],
  flags: {},
  examples: ['bulwark group show quarantine'],
  async run(ctx) {
    const g = await (await ctx.api()).getGroup(ctx.positionals.name as string);
    if (ctx.json) ctx.printJson(g);
    else
      ctx.out(
        formatKeyValues([
          ['name', g.name],
          ['kind', g.builtin ? `${g.kind} (built in)` : g.kind],
          ['query', g.query ?? undefined],
          ['members', g.members],
          ['description', g.description || '-'],
        ]),
      );
  },
};

const groupUpdate: Command = {
  path: ['group', 'update'],
  summary: 'Change a dynamic group’s query (members are recomputed) or a group’s description.',
  positionals: [nameArg],
  flags: {
    query: { type: 'string', value: 'QUERY', description: 'new query' },
    description: descriptionFlag,
  },
  examples: ["bulwark group update old-firmware --query 'attr.fw < 2.5'"],
  async run(ctx) {
    const query = flagString(ctx.flags, 'query');
    const description = flagString(ctx.flags, 'description');
    if (query === undefined && description === undefined)
      throw new UsageError('give --query and/or --description', ctx.command.path);
    const g = await (
      await ctx.api()
    ).updateGroup(ctx.positionals.name as string, {
      ...(query === undefined ? {} : { query }),
      ...(description === undefined ? {} : { description }),
    });
    if (ctx.json) ctx.printJson(g);
    else ctx.out(`group ${g.name} updated (${g.members ?? '?'} members)\n`);
  },
};

const groupDelete: Command = {
  path: ['group', 'delete'],
  summary: 'Delete a group (not quarantine, not while policies are attached to it).',
  positionals: [nameArg],
  flags: {},
  examples: ['bulwark group delete pilot'],
  async run(ctx) {
    await (await ctx.api()).deleteGroup(ctx.positionals.name as string);
    if (!ctx.json) ctx.out(`deleted group ${ctx.positionals.name as string}\n`);
  },
};

function devicesOf(ctx: Context): string[] {
  const ids = flagList(ctx.flags, 'device');
  if (ids.length === 0) throw new UsageError('give at least one --device <id>', ctx.command.path);
  return ids.map((id) => requireDeviceId(ctx, id));
}

function membersCommand(verb: 'add' | 'remove'): Command {
  return {
    path: ['group', verb],
    summary:
      verb === 'add'
        ? 'Add devices to a static group; `group add quarantine` quarantines them at once.'
        : 'Remove devices from a static group (`group remove quarantine` releases them).',
    positionals: [nameArg],
    flags: { device: { type: 'string', value: 'ID', multiple: true, description: 'device id' } },
    examples: [
      `bulwark group ${verb} quarantine --device sensor-1`,
      `bulwark group ${verb} pilot --device a --device b`,
    ],
    async run(ctx) {
      const api = await ctx.api();
      const name = ctx.positionals.name as string;
      const ids = devicesOf(ctx);
      const r =
        verb === 'add' ? await api.addGroupMembers(name, ids) : await api.removeGroupMembers(name, ids);
      if (ctx.json) ctx.printJson(r);
      else {
        const changed = 'added' in r ? r.added : r.removed;
        ctx.out(
          `${verb === 'add' ? 'added to' : 'removed from'} ${name}: ${changed.length > 0 ? changed.join(', ') : 'nothing (no change)'}\n`,
        );
      }
    },
  };
}

const groupMembers: Command = {
  path: ['group', 'members'],
  summary: 'List the devices in a group.',
  positionals: [nameArg],
  flags: pageFlags,
  examples: ['bulwark group members quarantine --all'],
  async run(ctx) {
    const api = await ctx.api();
    await listPages(ctx, 'members', (q) => api.listGroupMembers(ctx.positionals.name as string, q), [
      { header: 'device', value: (id: string) => id },
    ]);
  },
};

export const fleetCommands: Command[] = [fleetCreate, fleetList, fleetShow, fleetDelete, fleetMove];
export const groupCommands: Command[] = [
  groupCreate,
  groupList,
  groupShow,
  groupUpdate,
  groupDelete,
  membersCommand('add'),
  membersCommand('remove'),
  groupMembers,
];
