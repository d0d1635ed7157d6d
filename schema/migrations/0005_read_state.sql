-- Read state: each participant's last-read position in the conversation, as the (created_at,
-- id) of the newest message they have seen, the order messages_conversation_created keeps, so
-- counting what is unread is one index range from that position. NULL: nothing read yet.
ALTER TABLE conversation_participants
  ADD COLUMN last_read_message_id bigint,
  ADD COLUMN last_read_at timestamptz;

-- Upgrades do not turn every old message into an unread one: what existed is read.
UPDATE conversation_participants p
SET (last_read_message_id, last_read_at) = (
  SELECT id, created_at FROM messages
  WHERE messages.conversation_id = p.conversation_id
  ORDER BY created_at DESC, id DESC
  LIMIT 1
);
