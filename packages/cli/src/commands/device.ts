// bulwark device create|list|show|revoke|disable|enable|delete

import { errorCatalog, isValidDeviceId, topics } from '@bulwark/protocol';
import { lstat, mkdir, rmdir, unlink } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import type { FlagSpec } from '../args.ts';
import { flagBool, flagList, flagString } from '../args.ts';
import type { Command, Context } from '../context.ts';
import { CliError, UsageError } from '../errors.ts';
import { ApiError } from '../http.ts';
import type { CryptoKeyPair, KeyType } from '../keys.ts';
import {
  createCsr,
  generateDeviceKey,
  isKeyType,
  KEY_TYPES,
  keyTypeLabel,
  privateKeyPem,
  writeNewFile,
} from '../keys.ts';
import type { Column } from '../output.ts';
import { formatAttributes, formatKeyValues, formatTable, yesNo } from '../output.ts';
import type { CertificateSummary, Device, DeviceDetail, IssuedCertificate } from '../types.ts';
import { listPages, pageFlags } from './paging.ts';

const idArg = { name: 'id', description: 'device id: 1-128 letters, digits, `.`, `_`, `-`, `:`' };

/** Validates a device id before anything goes to the server; exit code 2 when invalid. */
export function requireDeviceId(ctx: Context, id: string): string {
  if (!isValidDeviceId(id)) {
    throw new UsageError(
      `invalid device id '${id}': ${errorCatalog.ERR_DEVICE_INVALID_ID.description.replace(/`/g, "'")}`,
      ctx.command.path,
    );
  }
  return id;
}

/** `--attr k=v` pairs into an attributes object. Values stay strings. */
export function parseAttributes(
  pairs: readonly string[],
  command: readonly string[],
): Record<string, string> {
  // A Map, then fromEntries: a key such as `__proto__` stays an ordinary attribute.
  const attributes = new Map<string, string>();
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--attr expects KEY=VALUE, got '${pair}'`, command);
    const key = pair.slice(0, eq);
    if (attributes.has(key)) throw new UsageError(`--attr '${key}' given more than once`, command);
    attributes.set(key, pair.slice(eq + 1));
  }
  return Object.fromEntries(attributes);
}

export const deviceColumns: Column<Device>[] = [
  { header: 'id', value: (d) => d.id },
  { header: 'status', value: (d) => d.status },
  { header: 'created', value: (d) => d.createdAt },
  { header: 'attributes', value: (d) => formatAttributes(d.attributes) },
];

export const certificateColumns: Column<CertificateSummary>[] = [
  { header: 'serial', value: (c) => c.serial },
  { header: 'status', value: (c) => c.status },
  { header: 'key', value: (c) => c.keyType },
  { header: 'not before', value: (c) => c.notBefore },
  { header: 'not after', value: (c) => c.notAfter },
  { header: 'revoked', value: (c) => c.revokedAt ?? '' },
  { header: 'fingerprint (sha-256)', value: (c) => c.fingerprint256 },
];

/** RFC 5280 §5.3.1 reason codes the platform accepts when revoking. */
export const REVOCATION_REASONS = [
  'unspecified',
  'keyCompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'privilegeWithdrawn',
] as const;

export const reasonFlag: FlagSpec = {
  type: 'string',
  value: 'REASON',
  description: `RFC 5280 reason: ${REVOCATION_REASONS.join(', ')} (default unspecified)`,
};

/** The --reason value in its canonical spelling (matched case-insensitively), or undefined when absent. */
export function revocationReason(ctx: Context): string | undefined {
  const v = flagString(ctx.flags, 'reason');
  if (v === undefined) return undefined;
  const match = REVOCATION_REASONS.find((r) => r.toLowerCase() === v.toLowerCase());
  if (match === undefined) {
    throw new UsageError(
      `--reason must be one of ${REVOCATION_REASONS.join(', ')}; got '${v}'`,
      ctx.command.path,
    );
  }
  return match;
}

const FILES = { key: 'device.key', cert: 'device.crt', ca: 'ca.crt' } as const;

/** Prints a path the way the user can paste it: relative to the working directory when inside it. */
function displayPath(ctx: Context, path: string): string {
  const rel = relative(ctx.io.cwd, path);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}

export function shellQuote(word: string): string {
  return /^[A-Za-z0-9._/:@%+=,-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

export function mosquittoExample(
  host: string,
  deviceId: string,
  files: { key: string; cert: string; ca: string },
): string {
  return [
    'mosquitto_pub',
    '-h',
    host,
    '-p',
    '8883',
    '--cafile',
    files.ca,
    '--cert',
    files.cert,
    '--key',
    files.key,
    '-i',
    deviceId,
    '-q',
    '1',
    '-t',
    topics.telemetry(deviceId),
    '-m',
    '{"temperature":21.5}',
  ]
    .map(shellQuote)
    .join(' ');
}

const create: Command = {
  path: ['device', 'create'],
  summary: 'Create a device, make its key pair here, get its certificate, write key + cert files.',
  positionals: [idArg],
  flags: {
    out: {
      type: 'string',
      value: 'DIR',
      description: 'directory for device.key, device.crt, ca.crt (default ./<id>)',
    },
    attr: { type: 'string', value: 'KEY=VALUE', multiple: true, description: 'device attribute' },
    'key-type': {
      type: 'string',
      value: KEY_TYPES.join('|'),
      description: 'key algorithm (default p256)',
    },
    existing: {
      type: 'boolean',
      description: 'if the device already exists, issue a new certificate for it instead of failing',
    },
  },
  examples: [
    'bulwark device create sensor-1 --attr room=lab --attr floor=3',
    'bulwark device create gw-7 --key-type ed25519 --out /etc/bulwark',
    'bulwark device create sensor-1 --existing --out ./sensor-1-new   # new key + certificate',
  ],
  notes:
    'The private key never leaves this machine: only a CSR is sent. device.key is created with mode 0600\n' +
    'and existing files are never overwritten. --attr values are strings.\n' +
    'With --json, stdout is { device, certificate, files }: the two API answers and the paths written.',
  async run(ctx) {
    const id = requireDeviceId(ctx, ctx.positionals.id as string);
    const keyTypeFlag = flagString(ctx.flags, 'key-type') ?? 'p256';
    if (!isKeyType(keyTypeFlag)) {
      throw new UsageError(
        `--key-type must be one of ${KEY_TYPES.join(', ')}; got '${keyTypeFlag}'`,
        ctx.command.path,
      );
    }
    const keyType: KeyType = keyTypeFlag;
    const attributes = parseAttributes(flagList(ctx.flags, 'attr'), ctx.command.path);
    const existing = flagBool(ctx.flags, 'existing');
    if (existing && Object.keys(attributes).length > 0) {
      throw new UsageError(
        '--attr cannot change an existing device; drop --attr or --existing',
        ctx.command.path,
      );
    }
    const dir = resolve(ctx.io.cwd, flagString(ctx.flags, 'out') ?? id);
    const paths = { key: join(dir, FILES.key), cert: join(dir, FILES.cert), ca: join(dir, FILES.ca) };

    const api = await ctx.api();
    // Nothing goes to the server while a file is in the way.
    const createdDir = await mkdir(dir, { recursive: true, mode: 0o700 });
    let keys: CryptoKeyPair;
    // Leave nothing behind when no certificate was issued: only directories this run made, and only if empty.
    const removeDir = async (): Promise<void> => {
      if (createdDir !== undefined) await rmdir(dir).catch(() => {});
    };
    try {
      for (const p of Object.values(paths)) await assertAbsent(p);
      ctx.progress(`generating ${keyTypeLabel(keyType)} key…`);
      keys = await generateDeviceKey(keyType);
      // The key is on disk before any certificate exists for it; removed again if nothing gets issued.
      await writeNewFile(paths.key, await privateKeyPem(keys.privateKey), 0o600);
    } catch (err) {
      await removeDir();
      throw err;
    }

    let device: Device;
    let issued: IssuedCertificate;
    let created = false;
    try {
      ctx.progress(`creating device ${id}…`);
      try {
        device = await api.createDevice(Object.keys(attributes).length > 0 ? { id, attributes } : { id });
        created = true;
      } catch (err) {
        if (!(err instanceof ApiError && err.code === 'ERR_DEVICE_EXISTS' && existing)) throw err;
        ctx.progress(`device ${id} exists; issuing a new certificate for it`);
        device = await api.getDevice(id);
      }
      ctx.progress('requesting certificate…');
      const csr = await createCsr(id, keys, keyType);
      issued = await api.issueCertificate(id, csr);
    } catch (err) {
      await unlink(paths.key).catch(() => {});
      await removeDir();
      if (created) {
        ctx.warn(
          `device ${id} was created but has no certificate; retry with: bulwark device create ${id} --existing`,
        );
      }
      throw err;
    }

    const chain =
      issued.chain !== undefined && issued.chain.trim() !== '' ? issued.chain : issued.certificate;
    await writeNewFile(paths.cert, ensureNewline(chain), 0o644);
    await writeNewFile(paths.ca, ensureNewline(issued.ca), 0o644);

    if (ctx.json) {
      ctx.printJson({ device, certificate: issued, files: paths });
      return;
    }
    const shown = {
      key: displayPath(ctx, paths.key),
      cert: displayPath(ctx, paths.cert),
      ca: displayPath(ctx, paths.ca),
    };
    const host = new URL(api.baseUrl).hostname.replace(/^\[|\]$/g, '');
    ctx.out(
      formatKeyValues([
        ['device', `${device.id} (${device.status}${created ? ', created' : ''})`],
        ['certificate', issued.serial],
        ['key type', issued.keyType],
        ['valid until', issued.notAfter],
        ['fingerprint', issued.fingerprint256],
        ['private key', `${shown.key} (mode 0600, keep it secret)`],
        ['cert chain', shown.cert],
        ['ca', shown.ca],
      ]) +
        '\ntry it (MQTT over TLS, default port 8883):\n  ' +
        mosquittoExample(host, id, shown) +
        '\n',
    );
  },
};

async function assertAbsent(path: string): Promise<void> {
  try {
    await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  throw new CliError(`${path} already exists; refusing to overwrite it`, {
    hint: 'move it away or choose another directory with --out',
  });
}

function ensureNewline(pem: string): string {
  return pem.endsWith('\n') ? pem : pem + '\n';
}

const list: Command = {
  path: ['device', 'list'],
  summary: 'List devices.',
  positionals: [],
  flags: pageFlags,
  examples: ['bulwark device list', 'bulwark device list --all --json | jq -r ".items[].id"'],
  async run(ctx) {
    const api = await ctx.api();
    await listPages(ctx, 'devices', (q) => api.listDevices(q), deviceColumns);
  },
};

export function formatDeviceDetail(d: DeviceDetail): string {
  const head = formatKeyValues([
    ['id', d.id],
    ['tenant', d.tenant],
    ['status', d.status],
    ['connected', yesNo(d.connected)],
    ['created', d.createdAt],
    ['updated', d.updatedAt],
    ['attributes', formatAttributes(d.attributes) || '-'],
  ]);
  const certs = d.certificates ?? [];
  return (
    head +
    '\n' +
    (certs.length === 0 ? 'certificates: none\n' : `certificates:\n${formatTable(certificateColumns, certs)}`)
  );
}

const show: Command = {
  path: ['device', 'show'],
  summary: 'Show a device, its certificates and whether it is connected.',
  positionals: [idArg],
  flags: {},
  examples: ['bulwark device show sensor-1'],
  async run(ctx) {
    const id = requireDeviceId(ctx, ctx.positionals.id as string);
    const d = await (await ctx.api()).getDevice(id);
    if (ctx.json) ctx.printJson(d);
    else ctx.out(formatDeviceDetail(d));
  },
};

const revoke: Command = {
  path: ['device', 'revoke'],
  summary: "Revoke all of a device's certificates; its live connections are dropped.",
  positionals: [idArg],
  flags: { reason: reasonFlag },
  examples: ['bulwark device revoke sensor-1 --reason keyCompromise'],
  notes: 'The reason is recorded in the audit log and in the CRL.',
  async run(ctx) {
    const id = requireDeviceId(ctx, ctx.positionals.id as string);
    const reason = revocationReason(ctx);
    const api = await ctx.api();
    ctx.progress(`revoking the certificates of ${id}…`);
    const result = await api.revokeDevice(id, { reason });
    if (ctx.json) {
      ctx.printJson(result);
      return;
    }
    const n = result.revoked.length;
    ctx.out(
      n === 0
        ? `${id} had no active certificates\n`
        : `revoked ${n} certificate${n === 1 ? '' : 's'} of ${id}:\n${result.revoked.map((s) => `  ${s}\n`).join('')}`,
    );
  },
};

function statusCommand(action: 'disable' | 'enable'): Command {
  return {
    path: ['device', action],
    summary:
      action === 'disable'
        ? 'Disable a device: it cannot connect or get certificates until enabled again.'
        : 'Enable a disabled device.',
    positionals: [idArg],
    flags: {},
    examples: [`bulwark device ${action} sensor-1`],
    async run(ctx) {
      const id = requireDeviceId(ctx, ctx.positionals.id as string);
      const api = await ctx.api();
      const d = action === 'disable' ? await api.disableDevice(id) : await api.enableDevice(id);
      if (ctx.json) ctx.printJson(d);
      else ctx.out(`device ${d.id} is ${d.status}\n`);
    },
  };
}

const remove: Command = {
  path: ['device', 'delete'],
  summary: 'Delete a device.',
  positionals: [idArg],
  flags: {},
  examples: ['bulwark device delete sensor-1'],
  notes: 'With --json nothing is printed on success (the API answers 204 No Content); check the exit code.',
  async run(ctx) {
    const id = requireDeviceId(ctx, ctx.positionals.id as string);
    await (await ctx.api()).deleteDevice(id);
    if (!ctx.json) ctx.out(`deleted device ${id}\n`);
  },
};

export const deviceCommands: Command[] = [
  create,
  list,
  show,
  revoke,
  statusCommand('disable'),
  statusCommand('enable'),
  remove,
];
