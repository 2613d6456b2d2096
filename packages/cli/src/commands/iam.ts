// bulwark token | service-account | user | role | webhook — people, programs and extensions, through the
// typed operations generated from the API's OpenAPI document.

import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { flagInt, flagList, flagString, type FlagSpec } from '../args.ts';
import type { Command, Context } from '../context.ts';
import { CliError, UsageError } from '../errors.ts';
import { formatKeyValues, formatTable, type Column } from '../output.ts';

const accountFlag: FlagSpec = {
  type: 'string',
  value: 'ID',
  description: 'account (a service account id, or `me`, the default)',
};
const roleFlag: FlagSpec = {
  type: 'string',
  value: 'ROLE',
  description: 'role name (see `bulwark role list`)',
};
const fleetFlag: FlagSpec = { type: 'string', value: 'PATH', description: 'limit to this fleet subtree' };

const csv = (ctx: Context, name: string) =>
  flagList(ctx.flags, name)
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter(Boolean);

function required(ctx: Context, name: string): string {
  const v = flagString(ctx.flags, name);
  if (v === undefined || v === '') throw new UsageError(`missing --${name}`, ctx.command.path);
  return v;
}

/** Secrets go to stdout alone (for pipes), everything else to stderr. */
function printSecret(
  ctx: Context,
  label: string,
  secret: string,
  details: [string, unknown][],
  json: unknown,
) {
  if (ctx.json) {
    ctx.printJson(json);
    return;
  }
  ctx.io.stderr.write(formatKeyValues(details));
  ctx.progress(`${label} (shown once, keep it in a secret store):`);
  ctx.out(`${secret}\n`);
}

// ---- tokens ----------------------------------------------------------------------------------------

interface TokenRow {
  id: string;
  name: string;
  status: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  scope: { actions?: string[]; fleet?: string } | null;
}
const tokenColumns: Column<TokenRow>[] = [
  { header: 'id', value: (t) => t.id },
  { header: 'name', value: (t) => t.name },
  { header: 'status', value: (t) => t.status },
  { header: 'expires', value: (t) => t.expiresAt ?? 'never' },
  { header: 'last used', value: (t) => t.lastUsedAt ?? '' },
  {
    header: 'scope',
    value: (t) =>
      t.scope
        ? [t.scope.actions?.join(','), t.scope.fleet && `fleet ${t.scope.fleet}`].filter(Boolean).join(' ')
        : 'all',
  },
];

const tokenCreate: Command = {
  path: ['token', 'create'],
  summary: 'Create an API token for yourself or a service account; it can never do more than you hold.',
  positionals: [{ name: 'name', description: 'a name to recognise the token by' }],
  flags: {
    account: accountFlag,
    'expires-days': { type: 'string', value: 'DAYS', description: 'lifetime in days (1-366, default 90)' },
    actions: {
      type: 'string',
      value: 'LIST',
      multiple: true,
      description: 'scope: only these actions (comma-separated, e.g. devices:read,telemetry:read)',
    },
    fleet: fleetFlag,
  },
  examples: [
    'bulwark token create ci --expires-days 30 --actions devices:read,telemetry:read',
    'bulwark token create bridge --account 6f1c…-service-account-id --fleet plant-a',
  ],
  async run(ctx) {
    const days = flagInt(ctx.flags, 'expires-days', ctx.command.path, 1, 366);
    const actions = csv(ctx, 'actions');
    const fleet = flagString(ctx.flags, 'fleet');
    const scope = {
      ...(actions.length > 0 ? { actions } : {}),
      ...(fleet !== undefined ? { fleet } : {}),
    };
    const r = await (
      await ctx.api()
    ).ops.postAccountsByAccountIdTokens({
      params: { accountId: flagString(ctx.flags, 'account') ?? 'me' },
      body: {
        name: ctx.positionals.name as string,
        ...(days !== undefined ? { expiresInDays: days } : {}),
        ...(Object.keys(scope).length > 0 ? { scope } : {}),
      },
    });
    printSecret(
      ctx,
      'token',
      r.secret,
      [
        ['id', r.token.id],
        ['name', r.token.name],
        ['expires', r.token.expiresAt],
        ['scope', r.token.scope ? JSON.stringify(r.token.scope) : 'all of the owner'],
      ],
      r,
    );
  },
};

const tokenList: Command = {
  path: ['token', 'list'],
  summary: 'List API tokens (yours, or a service account’s); secrets are never shown again.',
  positionals: [],
  flags: { account: accountFlag },
  examples: ['bulwark token list', 'bulwark token list --account <service-account-id> --json'],
  async run(ctx) {
    const r = await (
      await ctx.api()
    ).ops.getAccountsByAccountIdTokens({
      params: { accountId: flagString(ctx.flags, 'account') ?? 'me' },
    });
    if (ctx.json) ctx.printJson(r);
    else
      ctx.out(
        (r.items ?? []).length === 0
          ? 'no tokens\n'
          : formatTable(tokenColumns, (r.items ?? []) as TokenRow[]),
      );
  },
};

const tokenRevoke: Command = {
  path: ['token', 'revoke'],
  summary: 'Revoke a token; it stops working on the next request.',
  positionals: [{ name: 'id', description: 'token id, as shown by `token list`' }],
  flags: { account: accountFlag },
  examples: ['bulwark token revoke 0b9c…'],
  async run(ctx) {
    const r = await (
      await ctx.api()
    ).ops.deleteAccountsByAccountIdTokensByTokenId({
      params: { accountId: flagString(ctx.flags, 'account') ?? 'me', tokenId: ctx.positionals.id as string },
    });
    if (ctx.json) ctx.printJson(r);
    else ctx.out(`revoked ${r.id} (${r.name})\n`);
  },
};

// ---- accounts ----------------------------------------------------------------------------------------

interface AccountRow {
  id: string;
  name: string;
  role: string;
  fleet: string | null;
  status: string;
  sso?: boolean;
  mfa?: boolean;
}
const accountColumns = (people: boolean): Column<AccountRow>[] => [
  { header: 'id', value: (a) => a.id },
  { header: 'name', value: (a) => a.name },
  { header: 'role', value: (a) => a.role },
  { header: 'fleet', value: (a) => a.fleet ?? '' },
  { header: 'status', value: (a) => a.status },
  ...(people
    ? [
        { header: 'sso', value: (a: AccountRow) => (a.sso ? 'yes' : '') },
        { header: 'mfa', value: (a: AccountRow) => (a.mfa ? 'yes' : '') },
      ]
    : []),
];

const saCreate: Command = {
  path: ['service-account', 'create'],
  summary: 'Create a service account (a program) with a role you hold.',
  positionals: [{ name: 'name', description: 'service account name' }],
  flags: {
    role: roleFlag,
    fleet: fleetFlag,
    description: { type: 'string', value: 'TEXT', description: 'what it is for' },
  },
  examples: [
    'bulwark service-account create billing-bridge --role viewer',
    'bulwark token create key --account <id>',
  ],
  async run(ctx) {
    const fleet = flagString(ctx.flags, 'fleet');
    const description = flagString(ctx.flags, 'description');
    const a = await (
      await ctx.api()
    ).ops.postServiceAccounts({
      body: {
        name: ctx.positionals.name as string,
        role: required(ctx, 'role'),
        ...(fleet !== undefined ? { fleet } : {}),
        ...(description !== undefined ? { description } : {}),
      },
    });
    if (ctx.json) ctx.printJson(a);
    else
      ctx.out(
        formatKeyValues([
          ['id', a.id],
          ['name', a.name],
          ['role', a.role],
          ['fleet', a.fleet],
        ]),
      );
  },
};

const saList: Command = {
  path: ['service-account', 'list'],
  summary: 'List service accounts.',
  positionals: [],
  flags: {},
  async run(ctx) {
    const r = await (await ctx.api()).ops.getServiceAccounts();
    const items = (r.items ?? []) as AccountRow[];
    if (ctx.json) ctx.printJson(r);
    else ctx.out(items.length === 0 ? 'no service accounts\n' : formatTable(accountColumns(false), items));
  },
};

const saDelete: Command = {
  path: ['service-account', 'delete'],
  summary: 'Delete a service account; its tokens stop working at once.',
  positionals: [{ name: 'id', description: 'service account id' }],
  flags: {},
  async run(ctx) {
    await (await ctx.api()).ops.deleteServiceAccountsById({ params: { id: ctx.positionals.id as string } });
    if (ctx.json) ctx.printJson({ deleted: ctx.positionals.id });
    else ctx.out(`deleted ${ctx.positionals.id}\n`);
  },
};

const userCreate: Command = {
  path: ['user', 'create'],
  summary: 'Create a local user; prints a one-time setup token with which they choose their password.',
  positionals: [{ name: 'name', description: 'user name (sign-in name)' }],
  flags: { role: roleFlag, fleet: fleetFlag },
  examples: ['bulwark user create alice --role operator'],
  notes:
    'The person sets a password with POST /api/v1/auth/password {token, password} (the console does it).',
  async run(ctx) {
    const fleet = flagString(ctx.flags, 'fleet');
    const r = await (
      await ctx.api()
    ).ops.postUsers({
      body: {
        name: ctx.positionals.name as string,
        role: required(ctx, 'role'),
        ...(fleet !== undefined ? { fleet } : {}),
      },
    });
    printSecret(
      ctx,
      'setup token',
      r.setupToken,
      [
        ['id', r.account.id],
        ['name', r.account.name],
        ['role', r.account.role],
      ],
      r,
    );
  },
};

const userList: Command = {
  path: ['user', 'list'],
  summary: 'List people (local and single sign-on).',
  positionals: [],
  flags: {},
  async run(ctx) {
    const r = await (await ctx.api()).ops.getUsers();
    const items = (r.items ?? []) as AccountRow[];
    if (ctx.json) ctx.printJson(r);
    else ctx.out(items.length === 0 ? 'no users\n' : formatTable(accountColumns(true), items));
  },
};

const userSetRole: Command = {
  path: ['user', 'set-role'],
  summary: "Change a user's role (only to one you hold; never your own).",
  positionals: [{ name: 'id', description: 'user id' }],
  flags: {
    role: roleFlag,
    fleet: { type: 'string', value: 'PATH', description: 'fleet subtree (omit: whole tenant)' },
  },
  examples: ['bulwark user set-role 3f2c… --role auditor'],
  async run(ctx) {
    const a = await (
      await ctx.api()
    ).ops.putUsersByIdRole({
      params: { id: ctx.positionals.id as string },
      body: { role: required(ctx, 'role'), fleet: flagString(ctx.flags, 'fleet') ?? null },
    });
    if (ctx.json) ctx.printJson(a);
    else
      ctx.out(
        formatKeyValues([
          ['id', a.id],
          ['name', a.name],
          ['role', a.role],
          ['fleet', a.fleet],
        ]),
      );
  },
};

// ---- roles -------------------------------------------------------------------------------------------

const roleList: Command = {
  path: ['role', 'list'],
  summary: 'List the built-in and custom roles.',
  positionals: [],
  flags: {},
  async run(ctx) {
    const r = await (await ctx.api()).ops.getRoles();
    if (ctx.json) {
      ctx.printJson(r);
      return;
    }
    const rows = (r.items ?? []) as { name: string; builtin: boolean; description?: string | null }[];
    ctx.out(
      formatTable(
        [
          { header: 'name', value: (x) => x.name },
          { header: 'kind', value: (x) => (x.builtin ? 'built-in' : 'custom') },
          { header: 'description', value: (x) => x.description ?? '' },
        ],
        rows,
      ),
    );
  },
};

const roleCreate: Command = {
  path: ['role', 'create'],
  summary: 'Create a custom role from policy statements (only permissions you hold).',
  positionals: [{ name: 'name', description: 'role name (lower-case letters, digits, -)' }],
  flags: {
    file: { type: 'string', value: 'FILE', description: 'JSON file: a list of statements, or {statements}' },
    description: { type: 'string', value: 'TEXT', description: 'what the role is for' },
  },
  examples: ['bulwark role create fleet-reader --file fleet-reader.json'],
  async run(ctx) {
    const statements = await readStatements(ctx);
    const description = flagString(ctx.flags, 'description');
    const r = await (
      await ctx.api()
    ).ops.postRoles({
      body: {
        name: ctx.positionals.name as string,
        statements,
        ...(description !== undefined ? { description } : {}),
      },
    });
    if (ctx.json) ctx.printJson(r);
    else ctx.out(`created role ${r.name} (${r.statements.length} statements)\n`);
  },
};

/** `--file`: a JSON list of policy statements, or an object with `statements`. */
async function readStatements(ctx: Context): Promise<Record<string, unknown>[]> {
  const file = required(ctx, 'file');
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(resolve(ctx.io.cwd, file), 'utf8'));
  } catch (err) {
    throw new CliError(`cannot read statements from ${file}: ${(err as Error).message}`);
  }
  const statements = Array.isArray(parsed) ? parsed : (parsed as { statements?: unknown } | null)?.statements;
  if (!Array.isArray(statements)) throw new CliError(`${file} holds no list of statements`);
  return statements as Record<string, unknown>[];
}

const roleUpdate: Command = {
  path: ['role', 'update'],
  summary:
    "Replace a custom role's statements (only permissions you hold, before and after; never a role you hold). Holders get them on their next request.",
  positionals: [{ name: 'name', description: 'custom role name' }],
  flags: {
    file: { type: 'string', value: 'FILE', description: 'JSON file: a list of statements, or {statements}' },
    description: { type: 'string', value: 'TEXT', description: 'new description (default: keep it)' },
    'expected-version': {
      type: 'string',
      value: 'N',
      description: 'refuse the change unless the role is still at version N (see `bulwark role versions`)',
    },
  },
  examples: [
    'bulwark role update fleet-reader --file fleet-reader.json',
    'bulwark role update fleet-reader --file fleet-reader.json --expected-version 3',
  ],
  async run(ctx) {
    const statements = await readStatements(ctx);
    const description = flagString(ctx.flags, 'description');
    const expectedVersion = flagInt(
      ctx.flags,
      'expected-version',
      ctx.command.path,
      1,
      Number.MAX_SAFE_INTEGER,
    );
    const r = await (
      await ctx.api()
    ).ops.putRolesByName({
      params: { name: ctx.positionals.name as string },
      body: {
        statements,
        ...(description !== undefined ? { description } : {}),
        ...(expectedVersion !== undefined ? { expectedVersion } : {}),
      },
    });
    if (ctx.json) ctx.printJson(r);
    else
      ctx.out(`updated role ${r.name} to version ${r.version ?? '?'} (${r.statements.length} statements)\n`);
  },
};

const roleVersions: Command = {
  path: ['role', 'versions'],
  summary: 'Every version of a custom role, newest first (a deletion is a version too).',
  positionals: [{ name: 'name', description: 'custom role name' }],
  flags: {},
  examples: ['bulwark role versions fleet-reader', 'bulwark role versions fleet-reader --json'],
  async run(ctx) {
    const r = await (
      await ctx.api()
    ).ops.getRolesByNameVersions({ params: { name: ctx.positionals.name as string } });
    if (ctx.json) {
      ctx.printJson(r);
      return;
    }
    const rows = (r.items ?? []) as {
      version: number;
      deleted: boolean;
      createdAt: string;
      createdBy: string;
      statements: { actions?: string[] }[];
    }[];
    ctx.out(
      formatTable(
        [
          { header: 'version', value: (x) => String(x.version) },
          { header: 'at', value: (x) => x.createdAt },
          { header: 'by', value: (x) => x.createdBy },
          {
            header: 'actions',
            value: (x) =>
              x.deleted ? '(deleted)' : x.statements.flatMap((st) => st.actions ?? []).join(','),
          },
        ],
        rows,
      ),
    );
  },
};

// ---- webhooks ----------------------------------------------------------------------------------------

const webhookCreate: Command = {
  path: ['webhook', 'create'],
  summary: 'Subscribe a service account to events; prints the signing secret once.',
  positionals: [],
  flags: {
    'service-account': {
      type: 'string',
      value: 'ID',
      description: 'owner: deliveries are filtered by its permissions',
    },
    endpoint: {
      type: 'string',
      value: 'URL',
      description: 'https URL receiving the events (--url is the platform)',
    },
    events: {
      type: 'string',
      value: 'LIST',
      multiple: true,
      description: 'event types or patterns, e.g. device.*,telemetry',
    },
    devices: {
      type: 'string',
      value: 'LIST',
      multiple: true,
      description: 'telemetry filter: device id patterns',
    },
    streams: { type: 'string', value: 'LIST', multiple: true, description: 'telemetry filter: streams' },
  },
  examples: [
    'bulwark webhook create --service-account <id> --endpoint https://hooks.example.com/bulwark --events device.*,certificate.*',
  ],
  notes: 'Deliveries follow the Standard Webhooks scheme (webhook-id, webhook-timestamp, webhook-signature).',
  async run(ctx) {
    const events = csv(ctx, 'events');
    if (events.length === 0) throw new UsageError('missing --events', ctx.command.path);
    const devices = csv(ctx, 'devices');
    const streams = csv(ctx, 'streams');
    const filter = {
      ...(devices.length > 0 ? { devices } : {}),
      ...(streams.length > 0 ? { streams } : {}),
    };
    const r = await (
      await ctx.api()
    ).ops.postWebhooks({
      body: {
        serviceAccountId: required(ctx, 'service-account'),
        url: required(ctx, 'endpoint'),
        events,
        ...(Object.keys(filter).length > 0 ? { filter } : {}),
      },
    });
    printSecret(
      ctx,
      'signing secret',
      r.secret,
      [
        ['id', r.subscription.id],
        ['url', r.subscription.url],
        ['events', r.subscription.events.join(', ')],
      ],
      r,
    );
  },
};

const webhookList: Command = {
  path: ['webhook', 'list'],
  summary: 'List event subscriptions.',
  positionals: [],
  flags: {},
  async run(ctx) {
    const r = await (await ctx.api()).ops.getWebhooks();
    if (ctx.json) {
      ctx.printJson(r);
      return;
    }
    const rows = (r.items ?? []) as {
      id: string;
      url: string;
      events: string[];
      serviceAccountId: string;
      status: string;
    }[];
    ctx.out(
      rows.length === 0
        ? 'no webhooks\n'
        : formatTable(
            [
              { header: 'id', value: (w) => w.id },
              { header: 'url', value: (w) => w.url },
              { header: 'events', value: (w) => w.events.join(',') },
              { header: 'service account', value: (w) => w.serviceAccountId },
              { header: 'status', value: (w) => w.status },
            ],
            rows,
          ),
    );
  },
};

const webhookDeliveries: Command = {
  path: ['webhook', 'deliveries'],
  summary: 'Delivery attempts of a subscription, newest first.',
  positionals: [{ name: 'id', description: 'subscription id' }],
  flags: { limit: { type: 'string', value: 'N', description: 'how many (1-1000, default 100)' } },
  async run(ctx) {
    const limit = flagInt(ctx.flags, 'limit', ctx.command.path, 1, 1000);
    const r = await (
      await ctx.api()
    ).ops.getWebhooksByIdDeliveries({
      params: { id: ctx.positionals.id as string },
      ...(limit !== undefined ? { query: { limit } } : {}),
    });
    if (ctx.json) {
      ctx.printJson(r);
      return;
    }
    ctx.out(
      r.items.length === 0
        ? 'no deliveries yet\n'
        : formatTable(
            [
              { header: 'time', value: (d) => d.at },
              { header: 'event', value: (d) => d.eventType },
              { header: 'attempt', value: (d) => String(d.attempt), align: 'right' },
              { header: 'status', value: (d) => (d.statusCode === null ? '' : String(d.statusCode)) },
              { header: 'result', value: (d) => (d.ok ? 'ok' : (d.error ?? 'failed')) },
            ],
            r.items,
          ),
    );
  },
};

export const iamCommands: Command[] = [
  tokenCreate,
  tokenList,
  tokenRevoke,
  saCreate,
  saList,
  saDelete,
  userCreate,
  userList,
  userSetRole,
  roleList,
  roleCreate,
  roleUpdate,
  roleVersions,
  webhookCreate,
  webhookList,
  webhookDeliveries,
];
