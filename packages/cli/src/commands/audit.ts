// bulwark audit

import type { Command } from '../context.ts';
import { flagString } from '../args.ts';
import type { AuditEntry, AuditParty } from '../types.ts';
import type { Column } from '../output.ts';
import { listPages, pageFlags } from './paging.ts';

/** `user:3f2c…` for { type, id }; a plain string as it is. */
export function formatParty(p: AuditParty | null | undefined): string {
  if (p === undefined || p === null) return '';
  if (typeof p === 'string') return p;
  return `${String(p.type)}:${String(p.id)}`;
}

const auditColumns: Column<AuditEntry>[] = [
  { header: 'seq', value: (e) => String(e.seq), align: 'right' },
  { header: 'time', value: (e) => e.ts },
  { header: 'actor', value: (e) => formatParty(e.actor) },
  { header: 'action', value: (e) => e.action },
  { header: 'target', value: (e) => formatParty(e.target) },
  { header: 'outcome', value: (e) => e.outcome },
  { header: 'reason', value: (e) => e.reason ?? '' },
];

const audit: Command = {
  path: ['audit'],
  summary: 'Show the audit log, newest first.',
  positionals: [],
  flags: {
    ...pageFlags,
    action: {
      type: 'string',
      value: 'ACTION',
      description: 'only this action, e.g. device.create, cert.revoke',
    },
  },
  examples: [
    'bulwark audit --limit 20',
    'bulwark audit --action cert.revoke',
    'bulwark audit --all --json > audit.json',
  ],
  async run(ctx) {
    const api = await ctx.api();
    const action = flagString(ctx.flags, 'action');
    await listPages(ctx, 'audit entries', (q) => api.listAudit({ ...q, action }), auditColumns);
  },
};

export const auditCommands: Command[] = [audit];
