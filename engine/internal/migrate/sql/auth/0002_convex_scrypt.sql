-- A credential may also hold a password hash imported from Convex Auth (`ripple import
-- --convex`): lucia's Scrypt "<salt>:<key>" behind the prefix $convex-scrypt$. Sign-in verifies
-- it and replaces it with an argon2id PHC string on the first success (engine/internal/auth).
ALTER TABLE ripple_auth_credentials
  DROP CONSTRAINT ripple_auth_credentials_password_hash_check,
  ADD CONSTRAINT ripple_auth_credentials_password_hash_check
    CHECK (password_hash LIKE '$argon2id$%' OR password_hash LIKE '$convex-scrypt$%');
