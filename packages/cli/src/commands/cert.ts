// bulwark cert list|revoke

import { flagString } from '../args.ts';
import type { Command } from '../context.ts';
import { UsageError } from '../errors.ts';
import type { Column } from '../output.ts';
import { formatKeyValues, formatTable } from '../output.ts';
import { certificateColumns, reasonFlag, requireDeviceId, revocationReason } from './device.ts';

const list: Command = {
  path: ['cert', 'list'],
  summary: 'List certificates by device, fleet or CA, with status, expiry and key type.',
  positionals: [],
  flags: {
    device: { type: 'string', value: 'ID', description: "only this device's certificates" },
    fleet: { type: 'string', value: 'PATH', description: 'only this fleet (and its sub-fleets)' },
    ca: {
      type: 'string',
      value: 'ID',
      description: 'issuing CA id, or external CA id (ext_...): devices enrolled through it',
    },
    'expiring-within': {
      type: 'string',
      value: 'DAYS',
      description: 'only active certificates expiring within this many days (e.g. 30d)',
    },
    status: { type: 'string', value: 'STATUS', description: 'active, revoked or expired' },
    'key-type': { type: 'string', value: 'TYPE', description: 'P-256, P-384, Ed25519, RSA-2048...' },
  },
  examples: [
    'bulwark cert list --device sensor-1',
    'bulwark cert list --expiring-within 30d',
    'bulwark cert list --fleet plant-a --ca ext_Q2x9 --json',
  ],
  async run(ctx) {
    const path = ctx.command.path;
    const device = flagString(ctx.flags, 'device');
    if (device !== undefined) requireDeviceId(ctx, device);
    const within = flagString(ctx.flags, 'expiring-within');
    const m = within === undefined ? undefined : /^(\d{1,4})d?$/.exec(within);
    if (within !== undefined && !m) {
      throw new UsageError(`--expiring-within expects days such as 30d, got '${within}'`, path);
    }
    const status = flagString(ctx.flags, 'status');
    if (status !== undefined && !['active', 'revoked', 'expired'].includes(status)) {
      throw new UsageError(`--status is active, revoked or expired, got '${status}'`, path);
    }
    const query = {
      deviceId: device,
      fleet: flagString(ctx.flags, 'fleet'),
      ca: flagString(ctx.flags, 'ca'),
      status,
      keyType: flagString(ctx.flags, 'key-type'),
      expiringWithinDays: m?.[1],
    };
    const api = await ctx.api();
    if (device !== undefined && Object.values(query).filter((v) => v !== undefined).length === 1) {
      const result = await api.listCertificates(device);
      if (ctx.json) ctx.printJson(result);
      else
        ctx.out(
          result.items.length === 0
            ? `${device} has no certificates\n`
            : formatTable(certificateColumns, result.items),
        );
      return;
    }
    const items: CertificateRow[] = [];
    let cursor: string | undefined;
    do {
      const page = (await api.request('GET', '/certificates', { query: { ...query, limit: 500, cursor } }))
        .body as { items: CertificateRow[]; nextCursor: string | null };
      items.push(...page.items);
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined && items.length < 100_000);
    if (ctx.json) ctx.printJson({ items });
    else ctx.out(items.length === 0 ? 'no certificates\n' : formatTable(inventoryColumns, items));
  },
};

interface CertificateRow {
  serial: string;
  deviceId: string | null;
  status: string;
  keyType: string;
  caId: string;
  fleet: string | null;
  notAfter: string;
}

const inventoryColumns: Column<CertificateRow>[] = [
  { header: 'serial', value: (c) => c.serial },
  { header: 'device', value: (c) => c.deviceId ?? '' },
  { header: 'status', value: (c) => c.status },
  { header: 'key', value: (c) => c.keyType },
  { header: 'fleet', value: (c) => c.fleet ?? '' },
  { header: 'ca', value: (c) => c.caId },
  { header: 'not after', value: (c) => c.notAfter },
];

const revoke: Command = {
  path: ['cert', 'revoke'],
  summary: 'Revoke one certificate by serial number; sessions using it are dropped.',
  positionals: [{ name: 'serial', description: 'certificate serial number (hex), as shown by `cert list`' }],
  flags: { reason: reasonFlag },
  examples: ['bulwark cert revoke 1a38bca240c8f6d0f3d5aff05ff5b8be --reason superseded'],
  async run(ctx) {
    const serial = ctx.positionals.serial as string;
    const reason = revocationReason(ctx);
    if (!/^[0-9A-Fa-f]{1,64}$/.test(serial)) {
      throw new UsageError(`'${serial}' is not a certificate serial number (hex digits)`, ctx.command.path);
    }
    const c = await (await ctx.api()).revokeCertificate(serial, { reason });
    if (ctx.json) {
      ctx.printJson(c);
      return;
    }
    ctx.out(
      formatKeyValues([
        ['serial', c.serial],
        ['device', c.deviceId],
        ['status', c.status],
        ['revoked at', c.revokedAt],
        ['fingerprint', c.fingerprint256],
      ]),
    );
  },
};

export const certCommands: Command[] = [list, revoke];
