-- The embedding queue: messages:send adds its message in the same transaction, and the
-- embedding sweep (a periodic job that never overlaps itself) leases what is waiting, embeds it
-- and deletes it as it stores the vectors. A lease that expires (the sweep died) puts the
-- message back in line by itself. One row per message, so concurrent sends never conflict on it.
CREATE TABLE message_embedding_queue (
  message_id    bigint PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
  leased_until  timestamptz
);

-- Messages still without an embedding or a recorded failure (their per-message jobs may be
-- queued or lost) go in line; the claims those jobs used are replaced by leases.
INSERT INTO message_embedding_queue (message_id)
SELECT m.id FROM messages m
WHERE NOT EXISTS (SELECT 1 FROM message_embeddings e WHERE e.message_id = m.id)
  AND NOT EXISTS (SELECT 1 FROM message_embedding_failures f WHERE f.message_id = m.id);

DROP TABLE message_embedding_claims;
