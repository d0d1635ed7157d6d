-- name: MessageInsert :one
INSERT INTO messages (sender_id, conversation_id, body) VALUES ($1, $2, $3)
RETURNING id, created_at;

-- name: MessageGet :one
SELECT id, sender_id, conversation_id, body, created_at FROM messages WHERE id = $1;

-- MessageLastForConversations is the newest message of each conversation: one index probe per
-- conversation, however long its history (DISTINCT ON read every message of every one).
-- name: MessageLastForConversations :many
SELECT k.conversation_id::bigint AS conversation_id, m.id, m.sender_id, m.body, m.created_at
FROM unnest(sqlc.arg(conversation_ids)::bigint[]) AS k(conversation_id)
CROSS JOIN LATERAL (
  SELECT id, sender_id, body, created_at
  FROM messages
  WHERE messages.conversation_id = k.conversation_id
  ORDER BY created_at DESC, id DESC
  LIMIT 1
) m;

-- MessagePage lists a conversation's messages newest first, strictly older than the "before"
-- position (when given) and no older than the "until" position (when given). It reads one
-- range of messages_conversation_created, which is all a live page depends on.
-- name: MessagePage :many
SELECT id, sender_id, conversation_id, body, created_at
FROM messages
WHERE conversation_id = sqlc.arg(conversation_id)
  AND (sqlc.narg(before_at)::timestamptz IS NULL
       OR (created_at, id) < (sqlc.narg(before_at)::timestamptz, sqlc.narg(before_id)::bigint))
  AND (sqlc.narg(until_at)::timestamptz IS NULL
       OR (created_at, id) >= (sqlc.narg(until_at)::timestamptz, sqlc.narg(until_id)::bigint))
ORDER BY created_at DESC, id DESC
LIMIT sqlc.arg(max_rows);

-- EmbeddingDueMark marks a conversation as having messages to embed from from_message_id on;
-- it affects no row when the conversation is marked already (a job is on its way).
-- name: EmbeddingDueMark :execrows
INSERT INTO conversation_embedding_due (conversation_id, from_message_id)
VALUES (sqlc.arg(conversation_id), sqlc.arg(from_message_id))
ON CONFLICT (conversation_id) DO NOTHING;

-- name: EmbeddingDueTake :exec
DELETE FROM conversation_embedding_due WHERE conversation_id = sqlc.arg(conversation_id);

-- EmbeddingDueTakeMany takes the marks of up to max_rows conversations, oldest burst first.
-- name: EmbeddingDueTakeMany :many
DELETE FROM conversation_embedding_due d
USING (SELECT conversation_id FROM conversation_embedding_due
       ORDER BY from_message_id LIMIT sqlc.arg(max_rows)) t
WHERE d.conversation_id = t.conversation_id
RETURNING d.conversation_id, d.from_message_id;

-- EmbeddingDueRemark marks a conversation again from from_message_id on (or from an earlier
-- message it is marked from already), for messages a sweep could not take or gave back.
-- name: EmbeddingDueRemark :exec
INSERT INTO conversation_embedding_due (conversation_id, from_message_id)
VALUES (sqlc.arg(conversation_id), sqlc.arg(from_message_id))
ON CONFLICT (conversation_id) DO UPDATE
  SET from_message_id = least(conversation_embedding_due.from_message_id, EXCLUDED.from_message_id);

-- EmbeddingLeaseExpiredRemark marks again the conversations of messages whose claim expired
-- without an embedding or a failure (the job that held it died), then drops those claims.
-- name: EmbeddingLeaseExpiredRemark :execrows
WITH expired AS (
  DELETE FROM message_embedding_claims c
  WHERE c.claimed_until < now()
  RETURNING c.message_id
)
INSERT INTO conversation_embedding_due (conversation_id, from_message_id)
SELECT m.conversation_id, min(m.id)
FROM expired x JOIN messages m ON m.id = x.message_id
WHERE NOT EXISTS (SELECT 1 FROM message_embeddings e WHERE e.message_id = m.id)
  AND NOT EXISTS (SELECT 1 FROM message_embedding_failures f WHERE f.message_id = m.id)
GROUP BY m.conversation_id
ON CONFLICT (conversation_id) DO UPDATE
  SET from_message_id = least(conversation_embedding_due.from_message_id, EXCLUDED.from_message_id);

-- EmbeddingClaim leases up to max_rows messages of a conversation, from from_message_id on,
-- that have neither an embedding nor a recorded failure, to the job named claimer, skipping
-- live leases of other jobs (a retried job renews its own).
-- name: EmbeddingClaim :many
INSERT INTO message_embedding_claims (message_id, claimer, claimed_until)
SELECT m.id, sqlc.arg(claimer)::bigint, now() + interval '2 minutes'
FROM messages m
WHERE m.conversation_id = sqlc.arg(conversation_id) AND m.id >= sqlc.arg(from_message_id)
  AND NOT EXISTS (SELECT 1 FROM message_embeddings e WHERE e.message_id = m.id)
  AND NOT EXISTS (SELECT 1 FROM message_embedding_failures f WHERE f.message_id = m.id)
ORDER BY m.id
LIMIT sqlc.arg(max_rows)
ON CONFLICT (message_id) DO UPDATE
  SET claimer = EXCLUDED.claimer, claimed_until = EXCLUDED.claimed_until
  WHERE message_embedding_claims.claimed_until < now()
     OR message_embedding_claims.claimer = EXCLUDED.claimer
RETURNING message_id;

-- name: EmbeddingClaimRelease :exec
DELETE FROM message_embedding_claims WHERE message_id = ANY($1::bigint[]);

-- name: MessageListByIDs :many
SELECT id, sender_id, conversation_id, body, created_at FROM messages
WHERE id = ANY($1::bigint[])
ORDER BY id;

-- name: EmbeddingInsert :execrows
INSERT INTO message_embeddings (message_id, conversation_id, sender_id, embedding, model)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (message_id) DO NOTHING;

-- name: EmbeddingFailureInsert :exec
INSERT INTO message_embedding_failures (message_id, reason) VALUES ($1, $2)
ON CONFLICT (message_id) DO UPDATE SET reason = EXCLUDED.reason, failed_at = now();

-- name: EmbeddingCountForConversation :one
SELECT count(*) FROM message_embeddings WHERE conversation_id = $1;

-- EmbeddingSearchExact scans every vector of one conversation (through the B-tree on
-- conversation_id): exact, and fastest for small conversations.
-- The nearest rows are chosen before the join, so only those few messages are read.
-- name: EmbeddingSearchExact :many
WITH candidates AS MATERIALIZED (
  SELECT e.message_id, e.embedding <=> $2 AS distance
  FROM message_embeddings e
  WHERE e.conversation_id = $1 AND e.model = $4
  ORDER BY distance, e.message_id
  LIMIT $3
)
SELECT m.id, m.sender_id, m.body, m.created_at, (1 - c.distance)::float8 AS score
FROM candidates c
JOIN messages m ON m.id = c.message_id
ORDER BY c.distance, m.id
LIMIT $3;

-- EmbeddingSearchIndexed walks the HNSW index with pgvector's iterative scan (the caller sets
-- hnsw.iterative_scan), filtering to one conversation as it goes.
-- name: EmbeddingSearchIndexed :many
SELECT m.id, m.sender_id, m.body, m.created_at, (1 - (e.embedding <=> $2))::float8 AS score
FROM message_embeddings e
JOIN messages m ON m.id = e.message_id
WHERE e.conversation_id = $1 AND e.model = $4
ORDER BY e.embedding <=> $2
LIMIT $3;

-- name: EmbeddingModelCounts :many
SELECT model, count(*) FROM message_embeddings GROUP BY model ORDER BY model;

-- name: EmbeddingDeleteOtherModels :execrows
DELETE FROM message_embeddings WHERE model <> $1;
