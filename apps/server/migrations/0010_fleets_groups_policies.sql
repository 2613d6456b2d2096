-- Hierarchical fleets, static and dynamic device groups, stored policies with their versions and
-- attachments, and the change feed that carries policy-relevant changes to every node.

-- '' = the device is in no fleet (tenant root).
ALTER TABLE devices ADD COLUMN fleet TEXT NOT NULL DEFAULT '';
CREATE INDEX devices_fleet ON devices (tenant_id, fleet, id);

-- Fleets nest by path: 'plant-a/line-3/robots' has parent 'plant-a/line-3'.
CREATE TABLE fleets (
  tenant_id TEXT NOT NULL,
  path TEXT NOT NULL,
  parent TEXT NOT NULL,
  description TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, path)
);
CREATE INDEX fleets_parent ON fleets (tenant_id, parent);

-- kind: 'static' (members added by hand) or 'dynamic' (members = devices matching query, kept current).
CREATE TABLE device_groups (
  tenant_id TEXT NOT NULL,
  name TEXT NOT NULL,
  kind TEXT NOT NULL,
  query TEXT,
  description TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, name)
);

CREATE TABLE group_members (
  tenant_id TEXT NOT NULL,
  group_name TEXT NOT NULL,
  device_id TEXT NOT NULL,
  added_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, group_name, device_id)
);
CREATE INDEX group_members_device ON group_members (tenant_id, device_id);

CREATE TABLE policies (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  version INTEGER NOT NULL,
  document TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  updated_by TEXT NOT NULL,
  PRIMARY KEY (tenant_id, id)
);

-- Append-only history: every version of every policy; document NULL marks a deletion.
CREATE TABLE policy_versions (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  version INTEGER NOT NULL,
  document TEXT,
  created_at BIGINT NOT NULL,
  created_by TEXT NOT NULL,
  PRIMARY KEY (tenant_id, id, version)
);

-- target_type: platform (target_id '*'), tenant, fleet (path), group (name), device (id).
CREATE TABLE policy_attachments (
  tenant_id TEXT NOT NULL,
  policy_id TEXT NOT NULL,
  target_type TEXT NOT NULL,
  target_id TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, policy_id, target_type, target_id)
);
CREATE INDEX policy_attachments_target ON policy_attachments (tenant_id, target_type, target_id);

CREATE TABLE policy_changes (
  seq {{id}},
  tenant_id TEXT,
  scope TEXT NOT NULL,
  reason TEXT NOT NULL,
  reload INTEGER NOT NULL,
  placement_changed INTEGER NOT NULL,
  origin TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
