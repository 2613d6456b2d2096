-- Custom roles change after creation: each role carries its version, and every version (a deletion
-- too) is kept. Numbering continues when a role of the same name is created again after a deletion.
ALTER TABLE roles ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE roles ADD COLUMN updated_at BIGINT;
ALTER TABLE roles ADD COLUMN updated_by TEXT;

CREATE TABLE role_versions (
  tenant_id TEXT NOT NULL,
  name TEXT NOT NULL,
  version INTEGER NOT NULL,
  deleted INTEGER NOT NULL,
  description TEXT,
  statements TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  created_by TEXT NOT NULL,
  PRIMARY KEY (tenant_id, name, version)
);
INSERT INTO role_versions (tenant_id, name, version, deleted, description, statements, created_at, created_by)
  SELECT tenant_id, name, 1, 0, description, statements, created_at, created_by FROM roles;
