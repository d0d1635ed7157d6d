-- Indexes for the bounded retention deletes (Service.Prune): spent refresh tokens are deleted
-- some time after they were spent, revoked sessions some time after they were revoked.
CREATE INDEX ripple_auth_refresh_tokens_spent ON ripple_auth_refresh_tokens (spent_at)
  WHERE spent_at IS NOT NULL;
CREATE INDEX ripple_auth_sessions_revoked ON ripple_auth_sessions (revoked_at)
  WHERE revoked_at IS NOT NULL;
