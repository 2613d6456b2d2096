// bulwark ca list|challenge|register|disable|enable|remove|import|revoke — the platform's CAs and the
// organisation's external (manufacturer) CAs.

import { readFile } from 'node:fs/promises';
import { flagBool, flagString } from '../args.ts';
import type { Command, Context } from '../context.ts';
import { CliError, UsageError } from '../errors.ts';
import type { Column } from '../output.ts';
import { formatKeyValues, formatTable } from '../output.ts';

interface CaRow {
  id: string;
  kind: string;
  subject: string;
  status: string;
  notAfter: string;
  fleet?: string;
  keyOffline?: boolean;
  approval?: boolean;
  revoked?: string[];
}

const columns: Column<CaRow>[] = [
  { header: 'id', value: (c) => c.id },
  { header: 'kind', value: (c) => c.kind },
  { header: 'status', value: (c) => c.status },
  { header: 'fleet', value: (c) => (c.kind === 'external' ? c.fleet || '-' : '') },
  { header: 'key', value: (c) => (c.kind === 'external' ? 'external' : c.keyOffline ? 'offline' : 'sealed') },
  { header: 'not after', value: (c) => c.notAfter },
  { header: 'subject', value: (c) => c.subject },
];

async function readPem(ctx: Context, flag: string): Promise<string> {
  const file = flagString(ctx.flags, flag);
  if (file === undefined) throw new UsageError(`missing --${flag} <file>`, ctx.command.path);
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as Error).message}`);
  }
}

const externalId = (ctx: Context): string => {
  const id = ctx.positionals.id as string;
  if (!/^ext_[A-Za-z0-9_-]{1,64}$/.test(id)) {
    throw new UsageError(`'${id}' is not an external CA id (ext_...)`, ctx.command.path);
  }
  return id;
};

const show = (ctx: Context, c: CaRow) => {
  if (ctx.json) {
    ctx.printJson(c);
    return;
  }
  ctx.out(
    formatKeyValues([
      ['id', c.id],
      ['status', c.status],
      ['fleet', c.fleet],
      ['subject', c.subject],
      ['not after', c.notAfter],
      ...(c.revoked !== undefined ? [['revoked certificates', c.revoked.length] as const] : []),
    ]),
  );
};

const list: Command = {
  path: ['ca', 'list'],
  summary: "List the platform's CAs (root, issuing) and the tenant's external CAs.",
  positionals: [],
  flags: {},
  async run(ctx) {
    const r = (await (await ctx.api()).request('GET', '/cas')).body as { items: CaRow[]; external: CaRow[] };
    if (ctx.json) ctx.printJson(r);
    else ctx.out(formatTable(columns, [...r.items, ...r.external]));
  },
};

const challenge: Command = {
  path: ['ca', 'challenge'],
  summary: 'Get a one-time registration code to prove possession of an external CA key.',
  positionals: [],
  flags: {},
  async run(ctx) {
    const r = (await (await ctx.api()).request('POST', '/cas/external/registration-codes')).body as {
      code: string;
      expiresAt: string;
    };
    if (ctx.json) {
      ctx.printJson(r);
      return;
    }
    ctx.out(
      formatKeyValues([
        ['code', r.code],
        ['expires', r.expiresAt],
      ]),
    );
    ctx.progress(
      'Sign a verification certificate with CN=<code> using the CA key, e.g.:\n' +
        '  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout v.key \\\n' +
        `    -subj /CN=${r.code} -out v.csr\n` +
        '  openssl x509 -req -in v.csr -CA ca.pem -CAkey ca.key -days 1 -out verification.pem\n' +
        'then: bulwark ca register --cert ca.pem --verification-cert verification.pem --fleet <path>\n',
    );
  },
};

const register: Command = {
  path: ['ca', 'register'],
  summary:
    'Register an external CA (root or intermediate) for EST enrollment with manufacturer certificates.',
  positionals: [],
  flags: {
    cert: { type: 'string', value: 'FILE', description: 'the CA certificate (PEM)' },
    'verification-cert': {
      type: 'string',
      value: 'FILE',
      description: 'certificate signed by that CA with CN = a code from `ca challenge`',
    },
    fleet: { type: 'string', value: 'PATH', description: 'fleet its devices are registered into' },
    name: { type: 'string', value: 'NAME', description: 'a name for people' },
    'device-id-from': {
      type: 'string',
      value: 'cn|serialNumber',
      description: 'subject field naming the device (default cn)',
    },
    approval: { type: 'boolean', description: 'new devices wait for an operator approval' },
  },
  examples: ['bulwark ca register --cert acme-root.pem --verification-cert verification.pem --fleet acme'],
  async run(ctx) {
    const from = flagString(ctx.flags, 'device-id-from');
    if (from !== undefined && from !== 'cn' && from !== 'serialNumber') {
      throw new UsageError(`--device-id-from is cn or serialNumber, got '${from}'`, ctx.command.path);
    }
    const body = {
      certificate: await readPem(ctx, 'cert'),
      verificationCertificate: await readPem(ctx, 'verification-cert'),
      fleet: flagString(ctx.flags, 'fleet') ?? '',
      ...(flagString(ctx.flags, 'name') !== undefined ? { name: flagString(ctx.flags, 'name') } : {}),
      ...(from !== undefined ? { deviceIdFrom: from } : {}),
      ...(flagBool(ctx.flags, 'approval') ? { approval: true } : {}),
    };
    show(ctx, (await (await ctx.api()).request('POST', '/cas/external', { body })).body as CaRow);
  },
};

const revokeFlag = {
  'revoke-certificates': {
    type: 'boolean' as const,
    description: 'also revoke the certificates of devices that enrolled through it (their sessions drop)',
  },
};

const disable: Command = {
  path: ['ca', 'disable'],
  summary: 'Disable an external CA: its manufacturer certificates are refused at enrollment.',
  positionals: [{ name: 'id', description: 'external CA id (ext_...)' }],
  flags: revokeFlag,
  async run(ctx) {
    const body = flagBool(ctx.flags, 'revoke-certificates') ? { revokeCertificates: true } : {};
    show(
      ctx,
      (await (await ctx.api()).request('POST', `/cas/external/${externalId(ctx)}/disable`, { body }))
        .body as CaRow,
    );
  },
};

const enable: Command = {
  path: ['ca', 'enable'],
  summary: 'Enable a disabled external CA again.',
  positionals: [{ name: 'id', description: 'external CA id (ext_...)' }],
  flags: {},
  async run(ctx) {
    show(
      ctx,
      (await (await ctx.api()).request('POST', `/cas/external/${externalId(ctx)}/enable`, { body: {} }))
        .body as CaRow,
    );
  },
};

const remove: Command = {
  path: ['ca', 'remove'],
  summary: 'Remove an external CA.',
  positionals: [{ name: 'id', description: 'external CA id (ext_...)' }],
  flags: revokeFlag,
  async run(ctx) {
    const query = flagBool(ctx.flags, 'revoke-certificates') ? { revokeCertificates: 'true' } : {};
    const r = (await (await ctx.api()).request('DELETE', `/cas/external/${externalId(ctx)}`, { query }))
      .body as {
      removed: string;
      revoked: string[];
    };
    if (ctx.json) ctx.printJson(r);
    else
      ctx.out(
        formatKeyValues([
          ['removed', r.removed],
          ['revoked certificates', r.revoked.length],
        ]),
      );
  },
};

const importCa: Command = {
  path: ['ca', 'import'],
  summary: 'Import an issuing CA signed by your offline root; its key is sealed at rest at once.',
  positionals: [],
  flags: {
    cert: {
      type: 'string',
      value: 'FILE',
      description: 'issuing CA certificate, optionally followed by the root (PEM)',
    },
    key: { type: 'string', value: 'FILE', description: 'its private key (PKCS#8 PEM, ECDSA P-256/P-384)' },
  },
  notes:
    'Only when the tenant has no active issuing CA (first start with an offline root, or after `ca revoke --no-replace`).',
  async run(ctx) {
    const body = { certificate: await readPem(ctx, 'cert'), key: await readPem(ctx, 'key') };
    const r = (await (await ctx.api()).request('POST', '/cas/import', { body })).body as { items: CaRow[] };
    if (ctx.json) ctx.printJson(r);
    else ctx.out(formatTable(columns, r.items));
  },
};

const revoke: Command = {
  path: ['ca', 'revoke'],
  summary:
    "Revoke the tenant's issuing CA: every certificate it issued is revoked, sessions drop on every node.",
  positionals: [{ name: 'id', description: 'issuing CA id (issuing:<tenant>:<n>), as shown by `ca list`' }],
  flags: {
    reason: { type: 'string', value: 'REASON', description: 'RFC 5280 reason (default cACompromise)' },
    'no-replace': {
      type: 'boolean',
      description: 'do not create a new issuing CA (you will `ca import` one)',
    },
  },
  async run(ctx) {
    const id = ctx.positionals.id as string;
    if (!/^issuing:[a-z0-9-]{1,63}:\d{1,6}$/.test(id)) {
      throw new UsageError(`'${id}' is not an issuing CA id (issuing:<tenant>:<n>)`, ctx.command.path);
    }
    const reason = flagString(ctx.flags, 'reason');
    const body = {
      ...(reason !== undefined ? { reason } : {}),
      ...(flagBool(ctx.flags, 'no-replace') ? { replace: false } : {}),
    };
    const r = (await (await ctx.api()).request('POST', `/cas/${encodeURIComponent(id)}/revoke`, { body }))
      .body as {
      revokedCertificates: number;
      items: CaRow[];
    };
    if (ctx.json) {
      ctx.printJson(r);
      return;
    }
    ctx.out(`revoked ${id} and ${r.revokedCertificates} certificate(s)\n` + formatTable(columns, r.items));
  },
};

export const caCommands: Command[] = [list, challenge, register, disable, enable, remove, importCa, revoke];
