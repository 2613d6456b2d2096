-- Certificates remember the fleet they were issued for and the credential the device enrolled with
-- (`code:<id>`, `ca:<external CA id>`), so they can be listed by fleet and revoked with that credential.
ALTER TABLE certificates ADD COLUMN fleet TEXT;
ALTER TABLE certificates ADD COLUMN enrolled_via TEXT;
CREATE INDEX certificates_fleet ON certificates (tenant_id, fleet);
CREATE INDEX certificates_enrolled_via ON certificates (tenant_id, enrolled_via);
CREATE INDEX certificates_ca_expiry ON certificates (ca_id, not_after);

-- The organisation's CAs (manufacturer / IDevID CAs, root or intermediate), trusted for EST enrollment
-- only. Registered with proof of possession; mapped to a fleet.
CREATE TABLE external_cas (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  name TEXT NOT NULL,
  subject TEXT NOT NULL,
  fingerprint256 TEXT NOT NULL,
  cert_pem TEXT NOT NULL,
  fleet TEXT NOT NULL,
  device_id_from TEXT NOT NULL,
  approval INTEGER NOT NULL,
  not_before BIGINT NOT NULL,
  not_after BIGINT NOT NULL,
  status TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  UNIQUE (tenant_id, fingerprint256)
);
CREATE INDEX external_cas_tenant ON external_cas (tenant_id, created_at, id);

-- One-time registration codes: the CN of the verification certificate that proves possession of a CA key.
CREATE TABLE ca_registration_codes (
  code TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  expires_at BIGINT NOT NULL,
  used_at BIGINT
);
