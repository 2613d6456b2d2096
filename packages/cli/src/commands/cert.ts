// bulwark cert list|revoke

import { flagString } from '../args.ts';
import type { Command } from '../context.ts';
import { UsageError } from '../errors.ts';
import { formatKeyValues, formatTable } from '../output.ts';
import { certificateColumns, reasonFlag, requireDeviceId, revocationReason } from './device.ts';

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
