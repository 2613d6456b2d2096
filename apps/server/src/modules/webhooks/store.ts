import type { Db } from '../../kernel/index.ts';
import type { DeliveryAttempt, OutboxItem, Subscription, WebhookStore } from './model.ts';

type Row = Record<string, unknown>;
const str = (v: unknown) => (v === null || v === undefined ? null : String(v));
const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));

const subscription = (r: Row): Subscription => ({
  id: String(r.id),
  tenant: String(r.tenant_id),
  accountId: String(r.account_id),
  url: String(r.url),
  events: JSON.parse(String(r.events)) as string[],
  filter: JSON.parse(String(r.filter)) as Subscription['filter'],
  description: str(r.description),
  secretSealed: String(r.secret),
  status: r.status as Subscription['status'],
  createdAt: Number(r.created_at),
  createdBy: String(r.created_by),
});

const outbox = (r: Row): OutboxItem => ({
  id: String(r.id),
  tenant: String(r.tenant_id),
  subscriptionId: String(r.subscription_id),
  eventType: String(r.event_type),
  payload: String(r.payload),
  attempts: Number(r.attempts),
  nextAttemptAt: Number(r.next_attempt_at),
  status: r.status as OutboxItem['status'],
  createdAt: Number(r.created_at),
  lastError: str(r.last_error),
  deliveredAt: num(r.delivered_at),
});

export function createWebhookStore(db: Db): WebhookStore {
  return {
    async insertSubscription(s) {
      await db.run(
        'INSERT INTO webhook_subscriptions (id, tenant_id, account_id, url, events, filter, description, secret, status, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        [
          s.id,
          s.tenant,
          s.accountId,
          s.url,
          JSON.stringify(s.events),
          JSON.stringify(s.filter),
          s.description,
          s.secretSealed,
          s.status,
          s.createdAt,
          s.createdBy,
        ],
      );
    },
    async listSubscriptions(tenant) {
      const rows =
        tenant === undefined
          ? await db.all<Row>('SELECT * FROM webhook_subscriptions ORDER BY created_at, id')
          : await db.all<Row>(
              'SELECT * FROM webhook_subscriptions WHERE tenant_id = ? ORDER BY created_at, id',
              [tenant],
            );
      return rows.map(subscription);
    },
    async getSubscription(id) {
      const r = await db.get<Row>('SELECT * FROM webhook_subscriptions WHERE id = ?', [id]);
      return r && subscription(r);
    },
    async deleteSubscription(id) {
      return db.transaction(async (tx) => {
        await tx.run(
          "UPDATE webhook_outbox SET status = 'failed', last_error = 'subscription deleted' WHERE subscription_id = ? AND status = 'pending'",
          [id],
        );
        const { changes } = await tx.run('DELETE FROM webhook_subscriptions WHERE id = ?', [id]);
        return changes === 1;
      });
    },
    async enqueue(items) {
      if (items.length === 0) return;
      await db.transaction(async (tx) => {
        for (const i of items)
          await tx.run(
            'INSERT INTO webhook_outbox (id, tenant_id, subscription_id, event_type, payload, attempts, next_attempt_at, status, created_at, last_error, delivered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
            [
              i.id,
              i.tenant,
              i.subscriptionId,
              i.eventType,
              i.payload,
              i.attempts,
              i.nextAttemptAt,
              i.status,
              i.createdAt,
              i.lastError,
              i.deliveredAt,
            ],
          );
      });
    },
    async due(now, limit) {
      const rows = await db.all<Row>(
        "SELECT * FROM webhook_outbox WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
        [now, limit],
      );
      return rows.map(outbox);
    },
    async claim(item, now, leaseMs) {
      const { changes } = await db.run(
        "UPDATE webhook_outbox SET next_attempt_at = ? WHERE id = ? AND status = 'pending' AND next_attempt_at = ?",
        [now + leaseMs, item.id, item.nextAttemptAt],
      );
      return changes === 1;
    },
    async markDelivered(id, now, attempts) {
      await db.run(
        "UPDATE webhook_outbox SET status = 'delivered', delivered_at = ?, attempts = ?, last_error = NULL WHERE id = ?",
        [now, attempts, id],
      );
    },
    async markRetry(id, attempts, nextAttemptAt, error) {
      await db.run(
        'UPDATE webhook_outbox SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?',
        [attempts, nextAttemptAt, error, id],
      );
    },
    async markFailed(id, attempts, error) {
      await db.run("UPDATE webhook_outbox SET status = 'failed', attempts = ?, last_error = ? WHERE id = ?", [
        attempts,
        error,
        id,
      ]);
    },
    async logAttempt(a: DeliveryAttempt) {
      await db.run(
        'INSERT INTO webhook_deliveries (tenant_id, subscription_id, message_id, event_type, attempt, at, status_code, ok, duration_ms, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        [
          a.tenant,
          a.subscriptionId,
          a.messageId,
          a.eventType,
          a.attempt,
          a.at,
          a.statusCode,
          a.ok ? 1 : 0,
          a.durationMs,
          a.error,
        ],
      );
    },
    async attempts(subscriptionId, limit) {
      const rows = await db.all<Row>(
        'SELECT * FROM webhook_deliveries WHERE subscription_id = ? ORDER BY seq DESC LIMIT ?',
        [subscriptionId, limit],
      );
      return rows.map((r) => ({
        seq: Number(r.seq),
        tenant: String(r.tenant_id),
        subscriptionId: String(r.subscription_id),
        messageId: String(r.message_id),
        eventType: String(r.event_type),
        attempt: Number(r.attempt),
        at: Number(r.at),
        statusCode: num(r.status_code),
        ok: Number(r.ok) === 1,
        durationMs: Number(r.duration_ms),
        error: str(r.error),
      }));
    },
  };
}
