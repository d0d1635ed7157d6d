-- Read state moves out of conversation_participants into a row per reader and conversation.
-- Every member's conversations:list reads all participant rows of their conversations (names,
-- admins, blocks), so a read position kept there made one member's markRead re-run every
-- member's list. Here a reader's write touches only their own row, keyed by user_id first, the
-- key the list reads it by.
--
-- The position is the (created_at, id) of the newest message the reader has seen (0005); no row:
-- nothing read yet. The row belongs to the membership: a member who leaves loses it, and one who
-- comes back starts again as a new member does.
CREATE TABLE conversation_read_states (
  user_id               bigint      NOT NULL,
  conversation_id       bigint      NOT NULL,
  last_read_message_id  bigint      NOT NULL,
  last_read_at          timestamptz NOT NULL,
  PRIMARY KEY (user_id, conversation_id),
  FOREIGN KEY (conversation_id, user_id)
    REFERENCES conversation_participants (conversation_id, user_id) ON DELETE CASCADE
);

INSERT INTO conversation_read_states (user_id, conversation_id, last_read_message_id, last_read_at)
SELECT user_id, conversation_id, last_read_message_id, last_read_at
FROM conversation_participants
WHERE last_read_message_id IS NOT NULL AND last_read_at IS NOT NULL;

ALTER TABLE conversation_participants
  DROP COLUMN last_read_message_id,
  DROP COLUMN last_read_at;
