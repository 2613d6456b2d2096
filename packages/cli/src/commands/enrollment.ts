// bulwark enroll-code create|list|revoke — one-time or quota codes for EST enrollment (RFC 7030).

import { flagBool, flagInt, flagString } from '../args.ts';
import type { Command, Context } from '../context.ts';
import { UsageError } from '../errors.ts';
import type { Column } from '../output.ts';
import { formatKeyValues, formatTable, yesNo } from '../output.ts';

interface EnrollmentCode {
  id: string;
  code?: string;
  deviceId: string | null;
  fleet: string;
  quota: number;
  used: number;
  approval: boolean;
  status: string;
  expiresAt: string;
  createdAt?: string;
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** `90s`, `15m`, `12h`, `7d` (a bare number is days) into seconds. */
export function parseDuration(text: string, flag: string, command: readonly string[]): number {
  const m = /^(\d{1,6})([smhd]?)$/.exec(text.trim());
  if (!m?.[1])
    throw new UsageError(`--${flag} expects a duration such as 30d, 12h or 15m, got '${text}'`, command);
  return Number(m[1]) * (UNITS[m[2] || 'd'] ?? 86_400);
}

const columns: Column<EnrollmentCode>[] = [
  { header: 'id', value: (c) => c.id },
  { header: 'device', value: (c) => c.deviceId ?? '(fleet code)' },
  { header: 'fleet', value: (c) => c.fleet || '-' },
  { header: 'used', value: (c) => `${c.used}/${c.quota}` },
  { header: 'approval', value: (c) => yesNo(c.approval) },
  { header: 'status', value: (c) => c.status },
  { header: 'expires', value: (c) => c.expiresAt },
];

const create: Command = {
  path: ['enroll-code', 'create'],
  summary: 'Create an enrollment code for one device (one-time) or a fleet (quota); it is shown only once.',
  positionals: [],
  flags: {
    device: { type: 'string', value: 'ID', description: 'bind the code to this device id (one-time)' },
    fleet: { type: 'string', value: 'PATH', description: 'fleet new devices are registered into' },
    quota: {
      type: 'string',
      value: 'N',
      description: 'fleet code: how many devices may enroll with it (default 1)',
    },
    ttl: { type: 'string', value: 'DURATION', description: 'valid for (default 7d; e.g. 24h, 30d)' },
    approval: {
      type: 'boolean',
      description: 'devices wait for `enroll-request approve` before they get a certificate',
    },
  },
  examples: [
    'bulwark enroll-code create --device sensor-7',
    'bulwark enroll-code create --fleet plant-a/line-3 --quota 500 --ttl 30d',
  ],
  notes:
    'Devices enroll over EST with HTTP Basic: user = device id, password = the code, e.g.\n' +
    "  curl --cacert ca.crt -u sensor-7:$CODE -H 'Content-Type: application/pkcs10' \\\n" +
    '    --data-binary @csr.b64 https://HOST:8443/.well-known/est/simpleenroll',
  async run(ctx) {
    const path = ctx.command.path;
    const device = flagString(ctx.flags, 'device');
    const quota = flagInt(ctx.flags, 'quota', path, 1, 1_000_000);
    if (device !== undefined && quota !== undefined && quota !== 1) {
      throw new UsageError('a device code is one-time: leave out --quota or --device', path);
    }
    const ttl = flagString(ctx.flags, 'ttl');
    const body = {
      ...(device !== undefined ? { deviceId: device } : {}),
      fleet: flagString(ctx.flags, 'fleet') ?? '',
      ...(quota !== undefined ? { quota } : {}),
      ...(ttl !== undefined ? { ttlSeconds: parseDuration(ttl, 'ttl', path) } : {}),
      ...(flagBool(ctx.flags, 'approval') ? { approval: true } : {}),
    };
    const c = (await (await ctx.api()).request('POST', '/enrollment-codes', { body })).body as EnrollmentCode;
    if (ctx.json) {
      ctx.printJson(c);
      return;
    }
    ctx.out(
      formatKeyValues([
        ['code', c.code],
        ['id', c.id],
        ['device', c.deviceId ?? '(any new device)'],
        ['fleet', c.fleet || '-'],
        ['quota', c.quota],
        ['approval', yesNo(c.approval)],
        ['expires', c.expiresAt],
      ]),
    );
    ctx.warn('the code is shown only this once; give it to the device (or its installer) now');
  },
};

const list: Command = {
  path: ['enroll-code', 'list'],
  summary: 'List enrollment codes (never the codes themselves), newest first.',
  positionals: [],
  flags: { limit: { type: 'string', value: 'N', description: 'at most N codes (1-500, default 100)' } },
  async run(ctx) {
    const limit = flagInt(ctx.flags, 'limit', ctx.command.path, 1, 500);
    const r = (await (await ctx.api()).request('GET', '/enrollment-codes', { query: { limit } })).body as {
      items: EnrollmentCode[];
    };
    if (ctx.json) ctx.printJson(r);
    else ctx.out(r.items.length === 0 ? 'no enrollment codes\n' : formatTable(columns, r.items));
  },
};

const revoke: Command = {
  path: ['enroll-code', 'revoke'],
  summary: 'Revoke an enrollment code; devices can no longer enroll with it.',
  positionals: [{ name: 'id', description: 'code id (enc_...), as shown by `enroll-code list`' }],
  flags: {},
  async run(ctx: Context) {
    const id = ctx.positionals.id as string;
    if (!/^enc_[A-Za-z0-9_-]{1,64}$/.test(id)) {
      throw new UsageError(`'${id}' is not an enrollment code id (enc_...)`, ctx.command.path);
    }
    const c = (await (await ctx.api()).request('POST', `/enrollment-codes/${encodeURIComponent(id)}/revoke`))
      .body as EnrollmentCode;
    if (ctx.json) ctx.printJson(c);
    else
      ctx.out(
        formatKeyValues([
          ['id', c.id],
          ['status', c.status],
        ]),
      );
  },
};

export const enrollmentCommands: Command[] = [create, list, revoke];
