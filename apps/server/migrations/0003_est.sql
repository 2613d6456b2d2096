-- EST enrollment (RFC 7030): enrollment codes, first-enrollment records, approvals, per-fleet
-- certificate settings and renewed certificates waiting for their grace period to end.

-- Only a SHA-256 hash of the code is stored. device_id NULL: a fleet code (quota, new devices only).
CREATE TABLE enrollment_codes (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  hash TEXT NOT NULL UNIQUE,
  device_id TEXT,
  fleet TEXT NOT NULL,
  quota INTEGER NOT NULL,
  used INTEGER NOT NULL,
  approval INTEGER NOT NULL,
  expires_at BIGINT NOT NULL,
  revoked_at BIGINT,
  created_by TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX enrollment_codes_tenant ON enrollment_codes (tenant_id, created_at, id);

-- How each device first enrolled over EST: a manufacturer certificate may bootstrap the same device
-- again only when it enrolled through the same external CA.
CREATE TABLE est_devices (
  tenant_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  fleet TEXT NOT NULL,
  method TEXT NOT NULL,
  source_id TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, device_id)
);

-- Enrollments waiting for an operator (202 + Retry-After to the device until decided).
CREATE TABLE est_requests (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  method TEXT NOT NULL,
  source_id TEXT NOT NULL,
  fleet TEXT NOT NULL,
  key_type TEXT NOT NULL,
  source TEXT,
  status TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  decided_at BIGINT,
  decided_by TEXT,
  UNIQUE (tenant_id, device_id, source_id)
);
CREATE INDEX est_requests_tenant ON est_requests (tenant_id, status, created_at);

-- Per-fleet certificate lifetime and renewal grace period ('' = the tenant default). Nested fleets
-- inherit from the nearest ancestor that has a row.
CREATE TABLE est_fleet_settings (
  tenant_id TEXT NOT NULL,
  fleet TEXT NOT NULL,
  cert_days INTEGER NOT NULL,
  grace_seconds INTEGER NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, fleet)
);

-- Certificates replaced by simplereenroll: revoked (reason superseded) once revoke_at has passed.
CREATE TABLE est_superseded (
  tenant_id TEXT NOT NULL,
  serial TEXT NOT NULL,
  device_id TEXT NOT NULL,
  replaced_by TEXT NOT NULL,
  revoke_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, serial)
);
CREATE INDEX est_superseded_due ON est_superseded (revoke_at);
