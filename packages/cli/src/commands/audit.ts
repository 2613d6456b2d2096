// bulwark audit

import type { Command } from '../context.ts';
import type { AuditEntry } from '../types.ts';
import type { Column } from '../output.ts';
import { listPages } from './device.ts';

const auditColumns: Column<AuditEntry>[] = [
  { header: 'seq', value: (e) => String(e.seq), align: 'right' },
  { header: 'time', value: (e) => e.ts },
  { header: 'actor', value: (e) => e.actor },
  { header: 'action', value: (e) => e.action },
  { header: 'target', value: (e) => e.target },
  { header: 'outcome', value: (e) => e.outcome },
  { header: 'reason', value: (e) => e.reason ?? '' },
];

const audit: Command = {
  path: ['audit'],
  summary: 'Show the audit log.',
  positionals: [],
  flags: {
    limit: { type: 'string', value: 'N', description: 'page size (1-1000)' },
    cursor: { type: 'string', value: 'CURSOR', description: 'continue from a previous page' },
    all: { type: 'boolean', description: 'follow the pages to the end' },
  },
  examples: ['bulwark audit --limit 20', 'bulwark audit --all --json > audit.json'],
  async run(ctx) {
    const api = await ctx.api();
    await listPages(ctx, 'audit entries', (q) => api.listAudit(q), auditColumns);
  },
};

export const auditCommands: Command[] = [audit];
