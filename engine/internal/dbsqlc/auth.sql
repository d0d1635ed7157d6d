-- Auth service queries (engine/internal/auth).

-- name: AuthUserInsert :one
INSERT INTO users (name, email) VALUES (@name, @email)
RETURNING id, name, email;

-- name: AuthCredentialInsert :exec
INSERT INTO ripple_auth_credentials (user_id, password_hash, created_at, updated_at)
VALUES (@user_id, @password_hash, @now, @now);

-- name: AuthCredentialGetByEmail :one
SELECT u.id, u.name, u.email, c.password_hash
FROM users u
JOIN ripple_auth_credentials c ON c.user_id = u.id
WHERE lower(u.email) = lower(@email);

-- name: AuthCredentialUpdateHash :exec
UPDATE ripple_auth_credentials SET password_hash = @password_hash, updated_at = @now
WHERE user_id = @user_id;

-- name: AuthSessionInsert :one
INSERT INTO ripple_auth_sessions (user_id, created_at, last_used_at)
VALUES (@user_id, @now, @now)
RETURNING id;

-- name: AuthSessionTouch :exec
UPDATE ripple_auth_sessions SET last_used_at = @now WHERE id = @id;

-- name: AuthSessionRevoke :execrows
UPDATE ripple_auth_sessions SET revoked_at = @now, revoked_reason = @reason
WHERE id = @id AND revoked_at IS NULL;

-- AuthSessionPrune deletes at most batch_size sessions (with their refresh tokens, by cascade)
-- that went idle before idle_before or were revoked before revoked_before. Each prune query
-- below is bounded the same way; Service.Prune repeats it until it does fewer.
-- name: AuthSessionPrune :execrows
DELETE FROM ripple_auth_sessions
WHERE id IN (
  SELECT old.id FROM ripple_auth_sessions old
  WHERE old.last_used_at < @idle_before OR old.revoked_at < @revoked_before
  ORDER BY old.id
  LIMIT @batch_size
);

-- name: RefreshTokenInsert :exec
INSERT INTO ripple_auth_refresh_tokens (session_id, token_hash, created_at)
VALUES (@session_id, @token_hash, @now);

-- RefreshTokenGetByHashForUpdate locks the token and its session, so concurrent refreshes of
-- one family queue up behind each other.
-- name: RefreshTokenGetByHashForUpdate :one
SELECT rt.id, rt.session_id, rt.spent_at, rt.successor_sealed,
       s.user_id, s.last_used_at, s.revoked_at, u.name, u.email
FROM ripple_auth_refresh_tokens rt
JOIN ripple_auth_sessions s ON s.id = rt.session_id
JOIN users u ON u.id = s.user_id
WHERE rt.token_hash = @token_hash
FOR UPDATE OF rt, s;

-- name: RefreshTokenSpend :exec
UPDATE ripple_auth_refresh_tokens SET spent_at = @now, successor_sealed = @successor_sealed
WHERE id = @id;

-- name: RefreshTokenClearSealedBySession :exec
UPDATE ripple_auth_refresh_tokens SET successor_sealed = NULL
WHERE session_id = @session_id AND successor_sealed IS NOT NULL;

-- name: RefreshTokenPruneSealed :execrows
UPDATE ripple_auth_refresh_tokens SET successor_sealed = NULL
WHERE id IN (
  SELECT old.id FROM ripple_auth_refresh_tokens old
  WHERE old.successor_sealed IS NOT NULL AND old.spent_at < @spent_before
  ORDER BY old.spent_at
  LIMIT @batch_size
);

-- RefreshTokenPruneSpent deletes spent tokens (never a session's current, unspent one) spent
-- before spent_before. Until then, presenting one revokes its session (reuse detection).
-- name: RefreshTokenPruneSpent :execrows
DELETE FROM ripple_auth_refresh_tokens
WHERE id IN (
  SELECT old.id FROM ripple_auth_refresh_tokens old
  WHERE old.spent_at < @spent_before
  ORDER BY old.spent_at
  LIMIT @batch_size
);

-- name: SigningKeyLock :exec
SELECT pg_advisory_xact_lock(7237900613417003117);

-- name: SigningKeyInsert :exec
INSERT INTO ripple_auth_signing_keys
  (kid, algorithm, public_key, private_key_sealed, kek_fingerprint, created_at)
VALUES (@kid, 'EdDSA', @public_key, @private_key_sealed, @kek_fingerprint, @now);

-- name: SigningKeyRetireActive :exec
UPDATE ripple_auth_signing_keys SET retired_at = @now WHERE retired_at IS NULL;

-- name: SigningKeyCountActive :one
SELECT count(*) FROM ripple_auth_signing_keys WHERE retired_at IS NULL;

-- SigningKeyListUsable returns the active key and every key retired after retired_after.
-- name: SigningKeyListUsable :many
SELECT kid, public_key, private_key_sealed, kek_fingerprint, created_at, retired_at
FROM ripple_auth_signing_keys
WHERE retired_at IS NULL OR retired_at > @retired_after
ORDER BY created_at DESC, kid;

-- name: SigningKeyPrune :execrows
DELETE FROM ripple_auth_signing_keys WHERE retired_at < @retired_before;

-- name: RateLimitIncrement :one
INSERT INTO ripple_auth_rate_limits (bucket, window_start, count, expires_at)
VALUES (@bucket, @window_start, 1, @expires_at)
ON CONFLICT (bucket, window_start) DO UPDATE SET count = ripple_auth_rate_limits.count + 1
RETURNING count;

-- name: RateLimitDecrement :exec
UPDATE ripple_auth_rate_limits SET count = greatest(count - 1, 0)
WHERE bucket = @bucket AND window_start = @window_start;

-- name: RateLimitPrune :execrows
DELETE FROM ripple_auth_rate_limits
WHERE (bucket, window_start) IN (
  SELECT old.bucket, old.window_start FROM ripple_auth_rate_limits old
  WHERE old.expires_at < @now
  ORDER BY old.expires_at
  LIMIT @batch_size
);

-- name: AdminKeyInsert :exec
INSERT INTO ripple_auth_admin_keys (key_hash, created_at) VALUES (@key_hash, @now);

-- name: AdminKeyGetByHash :one
SELECT id, revoked_at FROM ripple_auth_admin_keys WHERE key_hash = @key_hash;
