import { decodeCursor, encodeCursor, type Clock, type Logger } from '../../kernel/index.ts';
import type { AuditEntry, AuditRecord, AuditStore } from './model.ts';

export interface AuditService {
  /** Records an entry; resolves once it is stored. */
  record(entry: AuditEntry): Promise<void>;
  /**
   * Records without making the caller wait (refused connections and publishes on the hot path).
   * Entries are written in batches; `flush()` waits for what is pending.
   */
  recordLater(entry: AuditEntry): void;
  flush(): Promise<void>;
  list(
    tenant: string,
    opts?: { limit?: number; cursor?: string; action?: string; includePlatform?: boolean },
  ): Promise<{ items: AuditRecord[]; nextCursor: string | null }>;
}

export function createAuditService(deps: {
  store: AuditStore;
  clock: Clock;
  logger: Logger;
  maxPending?: number;
}): AuditService {
  const { store, clock, logger } = deps;
  const maxPending = deps.maxPending ?? 10_000;
  let pending: (AuditEntry & { ts: number })[] = [];
  let writing: Promise<void> = Promise.resolve();
  let scheduled = false;
  let droppedSinceLast = 0;

  const drain = (): Promise<void> => {
    scheduled = false;
    const batch = pending;
    pending = [];
    if (droppedSinceLast > 0) {
      batch.push({
        ts: clock.now(),
        tenant: null,
        actor: { type: 'system', id: 'audit' },
        action: 'audit.overflow',
        outcome: 'failure',
        reason: `${droppedSinceLast} audit entries dropped: audit queue full`,
      });
      droppedSinceLast = 0;
    }
    if (batch.length === 0) return writing;
    writing = writing
      .then(() => store.append(batch))
      .catch((err: unknown) => logger.error({ err: String(err), count: batch.length }, 'audit write failed'));
    return writing;
  };

  return {
    async record(entry) {
      await store.append([{ ...entry, ts: clock.now() }]);
    },
    recordLater(entry) {
      if (pending.length >= maxPending) {
        droppedSinceLast++;
        return;
      }
      pending.push({ ...entry, ts: clock.now() });
      if (!scheduled) {
        scheduled = true;
        setImmediate(drain);
      }
    },
    async flush() {
      await drain();
    },
    async list(tenant, opts = {}) {
      const limit = Math.min(Math.max(opts.limit ?? 50, 1), 1000);
      const before = opts.cursor ? decodeCursor<{ seq: number }>(opts.cursor, ['seq']).seq : undefined;
      const rows = await store.list(tenant, {
        limit: limit + 1,
        ...(before !== undefined ? { beforeSeq: Number(before) } : {}),
        ...(opts.action ? { action: opts.action } : {}),
        ...(opts.includePlatform ? { includePlatform: true } : {}),
      });
      const items = rows.slice(0, limit);
      const last = items[items.length - 1];
      return { items, nextCursor: rows.length > limit && last ? encodeCursor({ seq: last.seq }) : null };
    },
  };
}
