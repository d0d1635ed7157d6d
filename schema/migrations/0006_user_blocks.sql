-- Blocks: the blocker no longer hears from the blocked user. Enforced by the functions: neither
-- can start a conversation with the other or send into their conversation while it stands.
CREATE TABLE user_blocks (
  blocker_id  bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  blocked_id  bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (blocker_id, blocked_id),
  CHECK (blocker_id <> blocked_id)
);
CREATE INDEX user_blocks_blocked ON user_blocks (blocked_id, blocker_id);
