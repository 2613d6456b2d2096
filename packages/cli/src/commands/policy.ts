// bulwark policy list|show|create|update|delete|versions|attach|detach|explain|lint|diff

import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { flagBool, flagInt, flagString } from '../args.ts';
import type { Command, Context } from '../context.ts';
import { CliError, UsageError } from '../errors.ts';
import type { Column } from '../output.ts';
import { formatKeyValues, formatTable } from '../output.ts';
import type { AttachmentTargetType, LintFinding, Policy, PolicyDiff } from '../types.ts';

const idArg = { name: 'id', description: 'policy id (lower-case letters, digits, . _ -)' };
const targetArg = {
  name: 'target',
  description: 'where: fleet:<path>, group:<name>, device:<id>, tenant or platform',
};
const fileFlag = {
  type: 'string' as const,
  value: 'FILE',
  description: 'JSON document { description?, statements: [...] } (- for stdin)',
};

/** `fleet:plant-a/line-3` -> { targetType: 'fleet', targetId: 'plant-a/line-3' }. */
export function parseTarget(
  text: string,
  command: readonly string[],
): { targetType: AttachmentTargetType; targetId?: string } {
  if (text === 'tenant' || text === 'platform') return { targetType: text };
  const colon = text.indexOf(':');
  const type = colon < 0 ? text : text.slice(0, colon);
  const id = colon < 0 ? '' : text.slice(colon + 1);
  if ((type === 'fleet' || type === 'group' || type === 'device') && id !== '')
    return { targetType: type, targetId: id };
  throw new UsageError(
    `'${text}' is not a target: use fleet:<path>, group:<name>, device:<id>, tenant or platform`,
    command,
  );
}

/** Reads a JSON document from --file (or stdin with `-`). */
async function readDocument(ctx: Context, required = true): Promise<Record<string, unknown> | undefined> {
  const file = flagString(ctx.flags, 'file');
  if (file === undefined) {
    if (required) throw new UsageError('missing --file <policy.json> (- for stdin)', ctx.command.path);
    return undefined;
  }
  let text: string;
  try {
    if (file === '-') {
      const chunks: Buffer[] = [];
      for await (const c of ctx.io.stdin) chunks.push(Buffer.from(c as Buffer));
      text = Buffer.concat(chunks).toString('utf8');
    } else text = await readFile(resolve(ctx.io.cwd, file), 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new CliError(`${file} is not JSON: ${(err as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    throw new CliError(`${file} must hold a JSON object { description?, statements: [...] }`);
  return doc as Record<string, unknown>;
}

const attachments = (p: Policy) => p.attachments.map((a) => `${a.type}:${a.id}`).join(', ');

const policyColumns: Column<Policy>[] = [
  { header: 'id', value: (p) => p.id },
  { header: 'version', value: (p) => (p.builtin ? 'built-in' : String(p.version)), align: 'right' },
  { header: 'attached at', value: attachments },
  { header: 'description', value: (p) => p.description },
];

export function formatPolicy(p: Policy): string {
  return (
    formatKeyValues([
      ['id', p.id],
      ['version', p.builtin ? 'built-in' : p.version],
      ['description', p.description || '-'],
      ['attached at', attachments(p) || '-'],
      ['updated', p.updatedAt === null ? undefined : `${p.updatedAt} by ${p.updatedBy ?? '?'}`],
    ]) +
    'statements:\n' +
    JSON.stringify(p.statements, null, 2)
      .split('\n')
      .map((l) => `  ${l}`)
      .join('\n') +
    '\n'
  );
}

const findingColumns: Column<LintFinding>[] = [
  { header: 'severity', value: (f) => f.severity },
  { header: 'rule', value: (f) => f.rule },
  { header: 'statement', value: (f) => (f.sid ? `${f.statement} (${f.sid})` : String(f.statement)) },
  { header: 'finding', value: (f) => f.message },
];

function formatDiff(d: PolicyDiff): string {
  const lines: string[] = [];
  for (const dev of d.devices) {
    lines.push(`${dev.id}:`);
    for (const g of dev.gained) lines.push(`  + ${g.action} ${g.resource}`);
    for (const l of dev.lost) lines.push(`  - ${l.action} ${l.resource}`);
  }
  lines.push(
    `${d.devices.length} of ${d.evaluated} device(s) evaluated would change${d.truncated ? ' (stopped at the limit: more devices are affected)' : ''}`,
  );
  if (d.lint.length > 0)
    lines.push('', 'lint of the proposed document:', formatTable(findingColumns, d.lint).trimEnd());
  return lines.join('\n') + '\n';
}

const list: Command = {
  path: ['policy', 'list'],
  summary: 'List policies: built-in ones and your tenant’s, with where they are attached.',
  positionals: [],
  flags: {},
  examples: ['bulwark policy list', 'bulwark policy list --json | jq ".items[].id"'],
  async run(ctx) {
    const r = await (await ctx.api()).listPolicies();
    if (ctx.json) ctx.printJson(r);
    else ctx.out(formatTable(policyColumns, r.items));
  },
};

const show: Command = {
  path: ['policy', 'show'],
  summary: 'Show a policy: its statements, version and attachment points.',
  positionals: [idArg],
  flags: {},
  examples: ['bulwark policy show builtin:quarantine'],
  async run(ctx) {
    const p = await (await ctx.api()).getPolicy(ctx.positionals.id as string);
    if (ctx.json) ctx.printJson(p);
    else ctx.out(formatPolicy(p));
  },
};

const create: Command = {
  path: ['policy', 'create'],
  summary: 'Create a policy from a JSON document (validated by the server; attach it afterwards).',
  positionals: [idArg],
  flags: { file: fileFlag },
  examples: ['bulwark policy create line-broadcast --file line-broadcast.json'],
  notes:
    'The document: { "description": "...", "statements": [ { "effect": "allow", "actions": ["mqtt:publish"],\n' +
    '"resources": ["topic/fleets/${device.fleet}/broadcast"] } ] }. See docs/policies.md.',
  async run(ctx) {
    const doc = (await readDocument(ctx)) as { statements: unknown[] };
    const p = await (await ctx.api()).createPolicy({ ...doc, id: ctx.positionals.id as string });
    if (ctx.json) ctx.printJson(p);
    else
      ctx.out(
        `created policy ${p.id} (version ${p.version}); attach it with: bulwark policy attach ${p.id} <target>\n`,
      );
  },
};

const update: Command = {
  path: ['policy', 'update'],
  summary: 'Replace a policy’s statements (a new version); live sessions follow within a second.',
  positionals: [idArg],
  flags: {
    file: fileFlag,
    'expected-version': {
      type: 'string',
      value: 'N',
      description: 'refuse if the policy is no longer at version N (someone else changed it)',
    },
  },
  examples: [
    'bulwark policy diff line-broadcast --file v2.json && bulwark policy update line-broadcast --file v2.json --expected-version 1',
  ],
  async run(ctx) {
    const doc = (await readDocument(ctx)) as { statements: unknown[] };
    const expected = flagInt(ctx.flags, 'expected-version', ctx.command.path);
    const p = await (
      await ctx.api()
    ).updatePolicy(ctx.positionals.id as string, {
      ...doc,
      ...(expected === undefined ? {} : { expectedVersion: expected }),
    });
    if (ctx.json) ctx.printJson(p);
    else ctx.out(`policy ${p.id} is now at version ${p.version}\n`);
  },
};

const remove: Command = {
  path: ['policy', 'delete'],
  summary: 'Delete a policy (detach it everywhere first). Its history is kept.',
  positionals: [idArg],
  flags: {},
  examples: ['bulwark policy delete line-broadcast'],
  async run(ctx) {
    await (await ctx.api()).deletePolicy(ctx.positionals.id as string);
    if (!ctx.json) ctx.out(`deleted policy ${ctx.positionals.id as string}\n`);
  },
};

const versions: Command = {
  path: ['policy', 'versions'],
  summary: 'Version history of a policy, newest first (who changed it, when).',
  positionals: [idArg],
  flags: {},
  examples: ['bulwark policy versions line-broadcast'],
  async run(ctx) {
    const r = await (await ctx.api()).policyVersions(ctx.positionals.id as string);
    if (ctx.json) ctx.printJson(r);
    else
      ctx.out(
        formatTable(
          [
            { header: 'version', value: (v) => String(v.version), align: 'right' },
            { header: 'time', value: (v) => v.createdAt },
            { header: 'by', value: (v) => v.createdBy },
            { header: 'change', value: (v) => (v.deleted ? 'deleted' : '') },
          ],
          r.items,
        ),
      );
  },
};

function attachCommand(verb: 'attach' | 'detach'): Command {
  return {
    path: ['policy', verb],
    summary:
      verb === 'attach'
        ? 'Attach a policy to a fleet (and everything below it), a group, a device, the tenant or the platform.'
        : 'Detach a policy from a target.',
    positionals: [idArg, targetArg],
    flags: {},
    examples: [
      `bulwark policy ${verb} line-broadcast fleet:plant-a/line-3`,
      `bulwark policy ${verb} camera-rules group:cameras`,
      `bulwark policy ${verb} baseline tenant`,
    ],
    async run(ctx) {
      const target = parseTarget(ctx.positionals.target as string, ctx.command.path);
      const api = await ctx.api();
      const id = ctx.positionals.id as string;
      const p = verb === 'attach' ? await api.attachPolicy(id, target) : await api.detachPolicy(id, target);
      if (ctx.json) ctx.printJson(p);
      else ctx.out(`policy ${p.id} is attached at: ${attachments(p) || 'nothing'}\n`);
    },
  };
}

const explain: Command = {
  path: ['policy', 'explain'],
  summary: 'May X do A on R? The decision, and the statements and attachment points behind it.',
  positionals: [
    { name: 'action', description: 'e.g. mqtt:publish, devices:write' },
    { name: 'resource', description: 'e.g. topic/devices/sensor-1/telemetry, device/sensor-1' },
  ],
  flags: {
    device: { type: 'string', value: 'ID', description: 'ask for this device' },
    user: { type: 'string', value: 'ACCOUNT-ID', description: 'ask for this user account' },
    service: { type: 'string', value: 'ACCOUNT-ID', description: 'ask for this service account' },
    'source-ip': { type: 'string', value: 'IP', description: 'the request comes from this address' },
    mfa: { type: 'boolean', description: 'the caller signed in with a second factor' },
    time: { type: 'string', value: 'ISO-8601', description: 'decide at this time (time-window conditions)' },
  },
  examples: [
    'bulwark policy explain --device sensor-1 mqtt:publish topic/devices/sensor-1/telemetry',
    'bulwark policy explain --user 3f2c… devices:write device/sensor-1 --source-ip 10.0.0.7',
  ],
  notes: 'Exit status 0 when allowed, 1 when denied (handy in scripts); --json prints the full answer.',
  async run(ctx) {
    const who = (['device', 'user', 'service'] as const).filter(
      (k) => flagString(ctx.flags, k) !== undefined,
    );
    if (who.length !== 1)
      throw new UsageError('give exactly one of --device, --user or --service', ctx.command.path);
    const type = who[0] as 'device' | 'user' | 'service';
    const sourceIp = flagString(ctx.flags, 'source-ip');
    const time = flagString(ctx.flags, 'time');
    const e = await (
      await ctx.api()
    ).explain({
      principal: { type, id: flagString(ctx.flags, type) as string },
      action: ctx.positionals.action as string,
      resource: ctx.positionals.resource as string,
      context: {
        ...(sourceIp === undefined ? {} : { sourceIp }),
        ...(flagBool(ctx.flags, 'mfa') ? { mfa: true } : {}),
        ...(time === undefined ? {} : { time }),
      },
    });
    if (ctx.json) ctx.printJson(e);
    else {
      const head =
        e.outcome === 'allow'
          ? 'ALLOWED'
          : e.outcome === 'deny'
            ? 'DENIED by an explicit deny'
            : e.outcome === 'boundary-deny'
              ? 'DENIED by a permission boundary (the policies alone would allow it)'
              : 'DENIED: no statement allows it';
      const lines = [`${head}: ${e.action} on ${e.resource}`];
      for (const m of e.matched)
        lines.push(
          `  ${m.effect} ${m.policy} v${m.version} statement ${m.statement}${m.sid ? ` (${m.sid})` : ''} — attached at ${m.attachedAt.map((a) => `${a.type}:${a.id}`).join(', ')}`,
        );
      lines.push(
        'evaluated:',
        ...e.evaluated.map(
          (d) => `  ${d.policy} v${d.version} (${d.attachedAt.map((a) => `${a.type}:${a.id}`).join(', ')})`,
        ),
      );
      const fences = e.boundaries ?? [];
      if (fences.length > 0)
        lines.push(
          'boundaries:',
          ...fences.map(
            (v) =>
              `  ${v.allowed ? 'passes' : 'REFUSES'} ${v.boundary.kind}${v.boundary.fleet !== undefined ? ` (fleet ${v.boundary.fleet})` : ''}${v.boundary.actions ? ` (actions ${v.boundary.actions.join(', ')})` : ''}${v.boundary.selfOnly ? ' (own account only)' : ''}`,
          ),
        );
      ctx.out(lines.join('\n') + '\n');
    }
    return e.allowed ? 0 : 1;
  },
};

const lint: Command = {
  path: ['policy', 'lint'],
  summary: 'Flag overly permissive statements in a stored policy or a document (--file).',
  positionals: [],
  flags: {
    id: { type: 'string', value: 'ID', description: 'a stored policy' },
    file: fileFlag,
  },
  examples: ['bulwark policy lint --id line-broadcast', 'bulwark policy lint --file draft.json'],
  notes: 'Exit status 1 when a high-severity finding is reported.',
  async run(ctx) {
    const id = flagString(ctx.flags, 'id');
    const doc = await readDocument(ctx, false);
    if ((id === undefined) === (doc === undefined))
      throw new UsageError('give --id or --file', ctx.command.path);
    const api = await ctx.api();
    const r =
      id !== undefined
        ? await api.lintStoredPolicy(id)
        : await api.lintPolicy(doc as { statements: unknown[] });
    if (ctx.json) ctx.printJson(r);
    else ctx.out(r.findings.length === 0 ? 'no findings\n' : formatTable(findingColumns, r.findings));
    return r.findings.some((f) => f.severity === 'high') ? 1 : 0;
  },
};

const diff: Command = {
  path: ['policy', 'diff'],
  summary: 'Dry run: which devices would gain or lose which permissions with a change.',
  positionals: [idArg],
  flags: {
    file: fileFlag,
    delete: { type: 'boolean', description: 'the change is deleting the policy' },
    attach: {
      type: 'string',
      value: 'TARGET',
      description: 'the change is attaching it (fleet:<path>, group:<name>...)',
    },
    detach: { type: 'string', value: 'TARGET', description: 'the change is detaching it' },
    'max-devices': { type: 'string', value: 'N', description: 'evaluate at most N devices (default 10000)' },
  },
  examples: [
    'bulwark policy diff line-broadcast --file v2.json',
    'bulwark policy diff line-broadcast --attach fleet:plant-b',
  ],
  async run(ctx) {
    const doc = await readDocument(ctx, false);
    const attach = flagString(ctx.flags, 'attach');
    const detach = flagString(ctx.flags, 'detach');
    const del = flagBool(ctx.flags, 'delete');
    const given = [doc, attach, detach, del || undefined].filter((x) => x !== undefined).length;
    if (given !== 1)
      throw new UsageError('give exactly one of --file, --delete, --attach, --detach', ctx.command.path);
    const max = flagInt(ctx.flags, 'max-devices', ctx.command.path, 1, 100_000);
    const input =
      doc !== undefined
        ? { document: doc as { statements: unknown[] } }
        : del
          ? { delete: true as const }
          : attach !== undefined
            ? { attach: parseTarget(attach, ctx.command.path) }
            : { detach: parseTarget(detach as string, ctx.command.path) };
    ctx.progress('evaluating the devices the change reaches…');
    const d = await (
      await ctx.api()
    ).diffPolicy(ctx.positionals.id as string, {
      ...input,
      ...(max === undefined ? {} : { maxDevices: max }),
    });
    if (ctx.json) ctx.printJson(d);
    else ctx.out(formatDiff(d));
  },
};

export const policyCommands: Command[] = [
  list,
  show,
  create,
  update,
  remove,
  versions,
  attachCommand('attach'),
  attachCommand('detach'),
  explain,
  lint,
  diff,
];
