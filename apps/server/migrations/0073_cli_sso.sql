-- Single sign-on from the command line (bulwark login --sso): the platform runs the OIDC flow for a
-- CLI that listens on a loopback address, then hands it a one-time code it exchanges, with its own PKCE
-- verifier, for a short-lived personal token. `handle_hash` names the browser link (usable once);
-- `code_hash` the one-time code (usable once, for 60 seconds). Secrets are stored as SHA-256.
CREATE TABLE cli_sso_requests (
  handle_hash TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  redirect_uri TEXT NOT NULL,
  code_challenge TEXT NOT NULL,
  cli_state TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  started_at BIGINT,
  code_hash TEXT,
  account_id TEXT,
  mfa INTEGER NOT NULL DEFAULT 0,
  code_expires_at BIGINT,
  used_at BIGINT
);
CREATE UNIQUE INDEX cli_sso_requests_code ON cli_sso_requests (code_hash);
CREATE INDEX cli_sso_requests_expiry ON cli_sso_requests (expires_at);

-- The pending OIDC sign-in started for a CLI (null: a console sign-in).
ALTER TABLE oidc_pending ADD COLUMN cli_request TEXT;

-- A token minted by an SSO sign-in whose identity provider asserted a second factor carries it, as a
-- console session does; every other token has none.
ALTER TABLE api_tokens ADD COLUMN mfa INTEGER NOT NULL DEFAULT 0;
