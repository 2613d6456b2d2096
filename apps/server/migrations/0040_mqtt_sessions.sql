-- MQTT broker state (SessionStore and RetainedStore ports of @bulwark/broker).
-- Sessions that outlive their connection, with the node that last held them (restored at its start-up).
CREATE TABLE mqtt_sessions (
  client_id TEXT PRIMARY KEY,
  node TEXT NOT NULL,
  expiry_interval BIGINT NOT NULL,
  subscriptions TEXT NOT NULL,
  inflight TEXT NOT NULL,
  awaiting_release TEXT NOT NULL,
  disconnected_at BIGINT,
  updated_at BIGINT NOT NULL
);
CREATE INDEX mqtt_sessions_node ON mqtt_sessions (node);

-- Every QoS 1/2 message a persistent session has not acknowledged yet, in seq order per client.
CREATE TABLE mqtt_queue (
  client_id TEXT NOT NULL,
  seq BIGINT NOT NULL,
  topic TEXT NOT NULL,
  payload {{blob}} NOT NULL,
  qos INTEGER NOT NULL,
  retain INTEGER NOT NULL,
  properties TEXT,
  expires_at BIGINT,
  subscription_ids TEXT,
  PRIMARY KEY (client_id, seq)
);

CREATE TABLE mqtt_retained (
  topic TEXT PRIMARY KEY,
  payload {{blob}} NOT NULL,
  qos INTEGER NOT NULL,
  properties TEXT,
  expires_at BIGINT,
  updated_at BIGINT NOT NULL
);
