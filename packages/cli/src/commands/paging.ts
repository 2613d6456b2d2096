// Paged list commands: one page by default, --all to follow nextCursor to the end.

import type { FlagSpec } from '../args.ts';
import { flagBool, flagInt, flagString } from '../args.ts';
import type { Context } from '../context.ts';
import { CliError } from '../errors.ts';
import type { Column } from '../output.ts';
import { formatTable } from '../output.ts';
import type { Page } from '../types.ts';

export const pageFlags: Record<string, FlagSpec> = {
  limit: { type: 'string', value: 'N', description: 'page size (1-1000)' },
  cursor: { type: 'string', value: 'CURSOR', description: 'continue from a previous page' },
  all: { type: 'boolean', description: 'follow the pages to the end' },
};

/** Fetches one page, or with --all every page; --json prints the API page (merged for --all). */
export async function listPages<T>(
  ctx: Context,
  noun: string,
  fetchPage: (query: { limit?: number; cursor?: string }) => Promise<Page<T>>,
  columns: Column<T>[],
): Promise<void> {
  const limit = flagInt(ctx.flags, 'limit', ctx.command.path, 1, 1000);
  const all = flagBool(ctx.flags, 'all');
  let cursor = flagString(ctx.flags, 'cursor');
  const items: T[] = [];
  let page: Page<T>;
  const seen = new Set<string>();
  for (;;) {
    page = await fetchPage({
      ...(limit === undefined ? {} : { limit }),
      ...(cursor === undefined ? {} : { cursor }),
    });
    items.push(...page.items);
    if (!all || page.nextCursor === null || page.nextCursor === undefined) break;
    if (seen.has(page.nextCursor))
      throw new CliError(`the server returned the cursor ${page.nextCursor} twice`);
    seen.add(page.nextCursor);
    cursor = page.nextCursor;
    ctx.progress(`fetched ${items.length} ${noun}…`);
  }
  if (ctx.json) {
    ctx.printJson(all ? { ...page, items, nextCursor: null } : page);
    return;
  }
  ctx.out(items.length === 0 ? `no ${noun}\n` : formatTable(columns, items));
  if (!all && page.nextCursor !== null && page.nextCursor !== undefined) {
    ctx.progress(`more ${noun}: add --all, or --cursor ${page.nextCursor}`);
  }
}
