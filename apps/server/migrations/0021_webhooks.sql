-- Event subscriptions for extensions and microservices (Standard Webhooks), an outbox that survives
-- restarts, and the log of every delivery attempt.

CREATE TABLE webhook_subscriptions (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  account_id TEXT NOT NULL,
  url TEXT NOT NULL,
  events TEXT NOT NULL,
  filter TEXT NOT NULL,
  description TEXT,
  secret TEXT NOT NULL,
  status TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  created_by TEXT NOT NULL
);
CREATE INDEX webhook_subscriptions_tenant ON webhook_subscriptions (tenant_id);

CREATE TABLE webhook_outbox (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  subscription_id TEXT NOT NULL,
  event_type TEXT NOT NULL,
  payload TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  next_attempt_at BIGINT NOT NULL,
  status TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  last_error TEXT,
  delivered_at BIGINT
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (status, next_attempt_at);
CREATE INDEX webhook_outbox_subscription ON webhook_outbox (subscription_id, created_at);

CREATE TABLE webhook_deliveries (
  seq {{id}},
  tenant_id TEXT NOT NULL,
  subscription_id TEXT NOT NULL,
  message_id TEXT NOT NULL,
  event_type TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  at BIGINT NOT NULL,
  status_code INTEGER,
  ok INTEGER NOT NULL,
  duration_ms INTEGER NOT NULL,
  error TEXT
);
CREATE INDEX webhook_deliveries_subscription ON webhook_deliveries (subscription_id, seq);
