-- Device twin and capability reports (commands module).
-- Desired state is set through the API (version 1, 2, ... per device; 0 = never set) and published
-- retained to devices/{id}/twin/desired; reported state is what the device last published.
CREATE TABLE device_twins (
  tenant_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  desired TEXT NOT NULL,
  desired_version BIGINT NOT NULL,
  desired_updated_at BIGINT,
  reported TEXT,
  reported_desired_version BIGINT,
  reported_updated_at BIGINT,
  PRIMARY KEY (tenant_id, device_id)
);

-- Every distinct capability report a device sent, numbered per device (history for posture and audit).
-- digest: SHA-256 of the stored JSON, so an unchanged report adds no version.
CREATE TABLE device_capabilities (
  tenant_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  version BIGINT NOT NULL,
  data TEXT NOT NULL,
  digest TEXT NOT NULL,
  reported_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, device_id, version)
);
