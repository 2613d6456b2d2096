// bulwark cert list|revoke

import { flagString } from '../args.ts';
import type { Command } from '../context.ts';
import { UsageError } from '../errors.ts';
import { formatKeyValues, formatTable } from '../output.ts';
import { certificateColumns, requireDeviceId } from './device.ts';

const list: Command = {
  path: ['cert', 'list'],
  summary: "List a device's certificates.",
  positionals: [],
  flags: { device: { type: 'string', value: 'ID', description: 'device id (required)' } },
  examples: ['bulwark cert list --device sensor-1'],
  async run(ctx) {
    const device = flagString(ctx.flags, 'device');
    if (device === undefined) throw new UsageError('missing --device <id>', ctx.command.path);
    requireDeviceId(ctx, device);
    const result = await (await ctx.api()).listCertificates(device);
    if (ctx.json) ctx.printJson(result);
    else
      ctx.out(
        result.items.length === 0
          ? `${device} has no certificates\n`
          : formatTable(certificateColumns, result.items),
      );
  },
};

const revoke: Command = {
  path: ['cert', 'revoke'],
  summary: 'Revoke one certificate by serial number; sessions using it are dropped.',
  positionals: [{ name: 'serial', description: 'certificate serial number (hex), as shown by `cert list`' }],
  flags: { reason: { type: 'string', value: 'TEXT', description: 'reason, kept in the audit log' } },
  examples: ['bulwark cert revoke 3f9a0c51d2e47b88 --reason "key rotated"'],
  async run(ctx) {
    const serial = ctx.positionals.serial as string;
    if (!/^[0-9A-Fa-f:]{1,128}$/.test(serial)) {
      throw new UsageError(`'${serial}' is not a certificate serial number (hex digits)`, ctx.command.path);
    }
    const c = await (await ctx.api()).revokeCertificate(serial, { reason: flagString(ctx.flags, 'reason') });
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
