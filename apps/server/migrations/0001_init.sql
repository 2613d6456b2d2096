-- Initial schema. Tokens: {{id}} auto-increment primary key, {{blob}} binary column.
-- Time is epoch milliseconds (BIGINT); JSON is TEXT; booleans are 0/1.

CREATE TABLE settings (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);

CREATE TABLE tenants (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  created_at BIGINT NOT NULL
);

-- Certificate authorities: the platform root (tenant_id NULL) and one issuing CA per tenant.
-- key_enc holds the private key encrypted at rest (see infra/keys), never plaintext.
CREATE TABLE cas (
  id TEXT PRIMARY KEY,
  tenant_id TEXT,
  kind TEXT NOT NULL,
  subject TEXT NOT NULL,
  serial TEXT NOT NULL,
  cert_pem TEXT NOT NULL,
  key_enc TEXT,
  not_before BIGINT NOT NULL,
  not_after BIGINT NOT NULL,
  status TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX cas_tenant ON cas (tenant_id, kind, status);

-- Leaf certificates issued by a platform CA: devices and the server itself.
CREATE TABLE certificates (
  serial TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  ca_id TEXT NOT NULL,
  device_id TEXT,
  kind TEXT NOT NULL,
  subject TEXT NOT NULL,
  sans TEXT NOT NULL,
  key_type TEXT NOT NULL,
  fingerprint256 TEXT NOT NULL UNIQUE,
  not_before BIGINT NOT NULL,
  not_after BIGINT NOT NULL,
  pem TEXT NOT NULL,
  status TEXT NOT NULL,
  revoked_at BIGINT,
  revocation_reason TEXT,
  created_at BIGINT NOT NULL
);
CREATE INDEX certificates_device ON certificates (tenant_id, device_id);
CREATE INDEX certificates_expiry ON certificates (tenant_id, not_after);
CREATE INDEX certificates_revoked ON certificates (ca_id, status);

CREATE TABLE devices (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  status TEXT NOT NULL,
  attributes TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX devices_created ON devices (tenant_id, created_at, id);

CREATE TABLE accounts (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  name TEXT NOT NULL,
  kind TEXT NOT NULL,
  role TEXT NOT NULL,
  created_at BIGINT NOT NULL
);

-- Bearer tokens: only a SHA-256 hash of the secret is stored.
CREATE TABLE api_tokens (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  account_id TEXT NOT NULL,
  name TEXT NOT NULL,
  hash TEXT NOT NULL UNIQUE,
  created_at BIGINT NOT NULL,
  expires_at BIGINT,
  last_used_at BIGINT,
  revoked_at BIGINT
);

CREATE TABLE telemetry (
  id {{id}},
  tenant_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  stream TEXT NOT NULL,
  ts BIGINT NOT NULL,
  data TEXT NOT NULL
);
CREATE INDEX telemetry_device_ts ON telemetry (tenant_id, device_id, ts, id);

-- Append-only: the application never updates or deletes rows here.
CREATE TABLE audit_log (
  seq {{id}},
  ts BIGINT NOT NULL,
  tenant_id TEXT,
  actor_type TEXT NOT NULL,
  actor_id TEXT NOT NULL,
  action TEXT NOT NULL,
  target_type TEXT,
  target_id TEXT,
  outcome TEXT NOT NULL,
  reason TEXT,
  source TEXT,
  details TEXT NOT NULL
);
CREATE INDEX audit_log_tenant_ts ON audit_log (tenant_id, ts);
