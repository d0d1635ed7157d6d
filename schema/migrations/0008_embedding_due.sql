-- One embedding job per conversation burst. messages:send marks the conversation as having
-- messages to embed, and schedules handleSentMessage only when it set the mark; the job takes
-- the mark off before it claims, so a message sent after that sets a new mark and a new job.
-- from_message_id is the first message of the burst: the job looks at the conversation's
-- messages from there on, never at its whole history.
CREATE TABLE conversation_embedding_due (
  conversation_id  bigint PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
  from_message_id  bigint NOT NULL
);
