-- People and programs: local credentials, MFA, scoped tokens, custom roles, console sessions, SSO.
-- Secrets are stored hashed (SHA-256 for high-entropy tokens, scrypt for passwords) or sealed
-- (AES-256-GCM under the master key) when the platform must read them back (TOTP, IdP client secret).

ALTER TABLE accounts ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
ALTER TABLE accounts ADD COLUMN role_fleet TEXT;
ALTER TABLE accounts ADD COLUMN description TEXT;
ALTER TABLE accounts ADD COLUMN created_by TEXT;
ALTER TABLE accounts ADD COLUMN idp_issuer TEXT;
ALTER TABLE accounts ADD COLUMN idp_subject TEXT;
CREATE UNIQUE INDEX accounts_tenant_name ON accounts (tenant_id, name);
CREATE UNIQUE INDEX accounts_idp ON accounts (tenant_id, idp_issuer, idp_subject);

CREATE TABLE account_credentials (
  account_id TEXT PRIMARY KEY,
  password_hash TEXT,
  password_changed_at BIGINT,
  failed_logins INTEGER NOT NULL DEFAULT 0,
  locked_until BIGINT,
  totp_secret TEXT,
  totp_pending TEXT,
  totp_last_step BIGINT
);

CREATE TABLE recovery_codes (
  account_id TEXT NOT NULL,
  hash TEXT NOT NULL,
  used_at BIGINT,
  PRIMARY KEY (account_id, hash)
);

ALTER TABLE api_tokens ADD COLUMN scope TEXT;
ALTER TABLE api_tokens ADD COLUMN created_by TEXT;
CREATE INDEX api_tokens_account ON api_tokens (account_id);

CREATE TABLE roles (
  tenant_id TEXT NOT NULL,
  name TEXT NOT NULL,
  description TEXT,
  statements TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  created_by TEXT NOT NULL,
  PRIMARY KEY (tenant_id, name)
);

-- Console sessions: id is the SHA-256 of the cookie value.
CREATE TABLE sessions (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  account_id TEXT NOT NULL,
  auth_method TEXT NOT NULL,
  mfa INTEGER NOT NULL,
  created_at BIGINT NOT NULL,
  last_seen_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  revoked_at BIGINT,
  source TEXT,
  user_agent TEXT
);
CREATE INDEX sessions_account ON sessions (account_id);

-- One-time password setup and reset tokens (SHA-256 of the secret).
CREATE TABLE password_tokens (
  hash TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  account_id TEXT NOT NULL,
  purpose TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  used_at BIGINT
);

CREATE TABLE security_settings (
  tenant_id TEXT PRIMARY KEY,
  mfa_required INTEGER NOT NULL,
  mfa_required_roles TEXT NOT NULL,
  updated_at BIGINT NOT NULL
);

CREATE TABLE idp_configs (
  tenant_id TEXT PRIMARY KEY,
  issuer TEXT NOT NULL,
  client_id TEXT NOT NULL,
  client_secret TEXT,
  scopes TEXT NOT NULL,
  groups_claim TEXT NOT NULL,
  role_mappings TEXT NOT NULL,
  default_role TEXT,
  enabled INTEGER NOT NULL,
  updated_at BIGINT NOT NULL,
  updated_by TEXT NOT NULL
);

-- Pending SSO sign-ins: state is single-use (deleted when the callback takes it).
CREATE TABLE oidc_pending (
  state_hash TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  binding_hash TEXT NOT NULL,
  code_verifier TEXT NOT NULL,
  nonce TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL
);
