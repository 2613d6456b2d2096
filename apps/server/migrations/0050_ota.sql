-- Safe remote updates (ota module): releases, the per-tenant TUF repository, campaigns.

-- A release: one artifact (content-addressed in the blob store) with its version and compatible hardware.
-- state: 'unsigned' until targets metadata listing it is signed (offline), then 'published'.
CREATE TABLE ota_releases (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  name TEXT NOT NULL,
  version TEXT NOT NULL,
  kind TEXT NOT NULL,
  target_path TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  size BIGINT NOT NULL,
  hardware TEXT NOT NULL,
  sbom TEXT,
  allow_downgrade INTEGER NOT NULL,
  notes TEXT NOT NULL,
  state TEXT NOT NULL,
  created_by TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  published_at BIGINT,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, name, version)
);

-- Keys of the TUF roles. Offline roles (root, targets by default): public key only. Online roles
-- (snapshot, timestamp; targets in the explicit lab mode): the private key sealed by the KeyProtector.
CREATE TABLE ota_tuf_keys (
  tenant_id TEXT NOT NULL,
  role TEXT NOT NULL,
  key_id TEXT NOT NULL,
  public_hex TEXT NOT NULL,
  sealed_private TEXT,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, role, key_id)
);

-- Every signed metadata file ever published, exactly as served (consistent snapshots: N.role.json).
CREATE TABLE ota_tuf_metadata (
  tenant_id TEXT NOT NULL,
  role TEXT NOT NULL,
  version BIGINT NOT NULL,
  body TEXT NOT NULL,
  expires_at BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, role, version)
);

-- Metadata waiting for offline signatures (one per role): the canonical `signed` part, its digest and
-- the signatures collected so far (several signers can sign one after the other up to the threshold).
CREATE TABLE ota_tuf_pending (
  tenant_id TEXT NOT NULL,
  role TEXT NOT NULL,
  version BIGINT NOT NULL,
  signed TEXT NOT NULL,
  digest TEXT NOT NULL,
  signatures TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, role)
);

-- Campaigns: target, plan (waves, concurrency, rate, windows, thresholds) and where they stand.
-- revision: bumped by every state change (compare-and-set between nodes).
CREATE TABLE ota_campaigns (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  name TEXT NOT NULL,
  release_id TEXT NOT NULL,
  target TEXT NOT NULL,
  plan TEXT NOT NULL,
  state TEXT NOT NULL,
  state_reason TEXT,
  wave INTEGER NOT NULL,
  wave_count INTEGER NOT NULL,
  approved_wave INTEGER NOT NULL,
  failures_acknowledged INTEGER NOT NULL,
  total INTEGER NOT NULL,
  excluded INTEGER NOT NULL,
  revision BIGINT NOT NULL,
  created_by TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX ota_campaigns_state ON ota_campaigns (state);

-- One row per targeted device: its wave and progress. Excluded devices have wave -1 and state 'excluded'.
CREATE TABLE ota_campaign_devices (
  tenant_id TEXT NOT NULL,
  campaign_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  wave INTEGER NOT NULL,
  ord INTEGER NOT NULL,
  state TEXT NOT NULL,
  reason TEXT,
  from_version TEXT,
  version TEXT,
  health TEXT,
  progress INTEGER,
  notified_at BIGINT,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, campaign_id, device_id)
);
CREATE INDEX ota_campaign_devices_wave ON ota_campaign_devices (tenant_id, campaign_id, wave, state, ord);
CREATE INDEX ota_campaign_devices_device ON ota_campaign_devices (tenant_id, device_id);
