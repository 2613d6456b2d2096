-- Posture findings: what producers observe about devices (capability reports, tamper reports) and the
-- tenant's configuration (policy lint). One row per (tenant, subject): the same problem seen again is
-- the same finding (last seen, occurrences), opened again if it was resolved.
CREATE TABLE posture_findings (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  device_id TEXT,
  source TEXT NOT NULL,
  subject TEXT NOT NULL,
  kind TEXT NOT NULL,
  severity TEXT NOT NULL,
  summary TEXT NOT NULL,
  details TEXT NOT NULL,
  status TEXT NOT NULL,
  occurrences INTEGER NOT NULL,
  first_seen_at BIGINT NOT NULL,
  last_seen_at BIGINT NOT NULL,
  resolved_at BIGINT,
  resolved_by TEXT,
  resolution TEXT
);
CREATE UNIQUE INDEX posture_findings_subject ON posture_findings (tenant_id, subject);
CREATE INDEX posture_findings_recent ON posture_findings (tenant_id, last_seen_at, id);
CREATE INDEX posture_findings_source ON posture_findings (tenant_id, source, status);
CREATE INDEX posture_findings_device ON posture_findings (tenant_id, device_id, status);
