-- Ripple auth. Every table here is engine-internal (named ripple_*), so change capture skips it.
-- Timestamps are written by the service from its own clock (tests inject one), not by now().

-- One password credential per user. password_hash is a PHC string that embeds the argon2id
-- parameters: $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash> (unpadded standard base64).
CREATE TABLE ripple_auth_credentials (
  user_id        bigint      PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  password_hash  text        NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
  created_at     timestamptz NOT NULL,
  updated_at     timestamptz NOT NULL
);

-- A session is one refresh-token family: every token issued by rotation belongs to it, and
-- revoking the session (sign-out, reuse of a spent token, idle expiry) kills them all.
CREATE TABLE ripple_auth_sessions (
  id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id         bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  created_at      timestamptz NOT NULL,
  last_used_at    timestamptz NOT NULL,
  revoked_at      timestamptz,
  revoked_reason  text
);
CREATE INDEX ripple_auth_sessions_user ON ripple_auth_sessions (user_id);
CREATE INDEX ripple_auth_sessions_last_used ON ripple_auth_sessions (last_used_at);

-- Refresh tokens, stored only as SHA-256 of the opaque token. A token is single use: spending it
-- sets spent_at and, for the reuse grace window only, successor_sealed holds the pair it was
-- exchanged for (AES-256-GCM under a key derived from the key-encryption key, bound to
-- token_hash), so a retry within the window gets the very same pair. It is cleared afterwards.
CREATE TABLE ripple_auth_refresh_tokens (
  id                bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  session_id        bigint      NOT NULL REFERENCES ripple_auth_sessions (id) ON DELETE CASCADE,
  token_hash        bytea       NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
  created_at        timestamptz NOT NULL,
  spent_at          timestamptz,
  successor_sealed  bytea,
  CHECK (successor_sealed IS NULL OR spent_at IS NOT NULL)
);
CREATE INDEX ripple_auth_refresh_tokens_session ON ripple_auth_refresh_tokens (session_id);
CREATE INDEX ripple_auth_refresh_tokens_sealed ON ripple_auth_refresh_tokens (spent_at)
  WHERE successor_sealed IS NOT NULL;

-- Ed25519 signing keys. kid is the RFC 7638 thumbprint of the public JWK. The private key (seed)
-- is sealed with AES-256-GCM under a key derived from the key-encryption key; kek_fingerprint
-- says which key-encryption key, so starting with the wrong one fails clearly. Exactly one key
-- is active (signs); retired keys keep verifying, and stay in the JWKS, until every token they
-- signed has expired.
CREATE TABLE ripple_auth_signing_keys (
  kid                 text        PRIMARY KEY,
  algorithm           text        NOT NULL CHECK (algorithm = 'EdDSA'),
  public_key          bytea       NOT NULL CHECK (octet_length(public_key) = 32),
  private_key_sealed  bytea       NOT NULL,
  kek_fingerprint     bytea       NOT NULL,
  created_at          timestamptz NOT NULL,
  retired_at          timestamptz
);
CREATE UNIQUE INDEX ripple_auth_signing_keys_one_active ON ripple_auth_signing_keys ((true))
  WHERE retired_at IS NULL;

-- Fixed-window rate-limit counters shared by every process. bucket names the limit and a
-- SHA-256 of its subject (an account's email or a client address), never the subject itself.
CREATE TABLE ripple_auth_rate_limits (
  bucket        text        NOT NULL,
  window_start  timestamptz NOT NULL,
  count         integer     NOT NULL,
  expires_at    timestamptz NOT NULL,
  PRIMARY KEY (bucket, window_start)
);
CREATE INDEX ripple_auth_rate_limits_expires ON ripple_auth_rate_limits (expires_at);

-- Admin keys (`ripple admin-key`), stored as SHA-256 of the random key.
CREATE TABLE ripple_auth_admin_keys (
  id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  key_hash    bytea       NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
  created_at  timestamptz NOT NULL,
  revoked_at  timestamptz
);
