-- Token buckets of the rate limits (sign-in, tokens, enrollment, SSO, failed authentications), shared
-- by every node on the database. key_hash is the SHA-256 of the bucket's name (route, address,
-- account); a row whose bucket is full again (expires_at passed) carries nothing and is swept.
CREATE TABLE rate_limits (
  key_hash TEXT PRIMARY KEY,
  tokens DOUBLE PRECISION NOT NULL,
  at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  ok INTEGER NOT NULL
);
CREATE INDEX rate_limits_expiry ON rate_limits (expires_at);
