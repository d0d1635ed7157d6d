-- MessageSend is all of messages:send in one statement. It stores the message only when the
-- sender is a participant of the conversation (participant; false also when there is no such
-- conversation) and, in a direct conversation, no block stands between them and the other
-- member, either way (blockers: the blocker of each; blocks do not stop sends in a group). message_id is NULL when nothing was stored. The message queues itself
-- for the embedding sweep in the same transaction (schema/migrations/0008_message_enqueue.sql).
-- name: MessageSend :one
WITH chk AS (
  SELECT EXISTS (SELECT 1 FROM conversation_participants me
                 WHERE me.conversation_id = sqlc.arg(conversation_id) AND me.user_id = sqlc.arg(sender_id)) AS participant,
         ARRAY(SELECT b.blocker_id
               FROM conversation_participants p
               JOIN user_blocks b
                 ON (b.blocker_id = p.user_id AND b.blocked_id = sqlc.arg(sender_id))
                 OR (b.blocker_id = sqlc.arg(sender_id) AND b.blocked_id = p.user_id)
               JOIN conversations c ON c.id = p.conversation_id AND c.type = 'direct'
               WHERE p.conversation_id = sqlc.arg(conversation_id) AND p.user_id <> sqlc.arg(sender_id))::bigint[] AS blockers
), m AS (
  INSERT INTO messages (sender_id, conversation_id, body)
  SELECT sqlc.arg(sender_id)::bigint, sqlc.arg(conversation_id)::bigint, sqlc.arg(body)::text
  FROM chk
  WHERE chk.participant AND cardinality(chk.blockers) = 0
  RETURNING id
)
SELECT chk.participant, chk.blockers, m.id AS message_id
FROM chk LEFT JOIN m ON true;

-- name: MessageGet :one
SELECT id, sender_id, conversation_id, body, created_at, kind FROM messages WHERE id = $1;

-- MessageSystemInsert writes a system line (a membership change) into a conversation.
-- name: MessageSystemInsert :one
INSERT INTO messages (sender_id, conversation_id, body, kind)
VALUES (sqlc.arg(sender_id), sqlc.arg(conversation_id), sqlc.arg(body), 'system')
RETURNING id, created_at;

-- MessagePage lists a conversation's messages newest first, strictly older than the "before"
-- position (when given) and no older than the "until" position (when given). It reads one
-- range of messages_conversation_created, which is all a live page depends on.
-- name: MessagePage :many
SELECT id, sender_id, conversation_id, body, created_at, kind
FROM messages
WHERE conversation_id = sqlc.arg(conversation_id)
  AND (sqlc.narg(before_at)::timestamptz IS NULL
       OR (created_at, id) < (sqlc.narg(before_at)::timestamptz, sqlc.narg(before_id)::bigint))
  AND (sqlc.narg(until_at)::timestamptz IS NULL
       OR (created_at, id) >= (sqlc.narg(until_at)::timestamptz, sqlc.narg(until_id)::bigint))
ORDER BY created_at DESC, id DESC
LIMIT sqlc.arg(max_rows);

-- name: EmbeddingQueueEnsure :exec
INSERT INTO message_embedding_queue (message_id) VALUES (sqlc.arg(message_id))
ON CONFLICT (message_id) DO NOTHING;

-- EmbeddingQueueLease leases up to max_rows waiting messages (never leased, or whose lease
-- expired, or any when reclaim: the caller knows every other lease is a dead sweep's) to a
-- sweep until lease_until, oldest first.
-- name: EmbeddingQueueLease :many
UPDATE message_embedding_queue q SET leased_until = sqlc.arg(lease_until)
FROM (SELECT message_id FROM message_embedding_queue
      WHERE leased_until IS NULL OR leased_until < now() OR sqlc.arg(reclaim)::boolean
      ORDER BY message_id
      LIMIT sqlc.arg(max_rows)
      FOR UPDATE SKIP LOCKED) w
WHERE q.message_id = w.message_id
RETURNING q.message_id;

-- name: EmbeddingQueueRelease :exec
UPDATE message_embedding_queue SET leased_until = NULL WHERE message_id = ANY(sqlc.arg(message_ids)::bigint[]);

-- name: EmbeddingQueueDone :exec
DELETE FROM message_embedding_queue WHERE message_id = ANY(sqlc.arg(message_ids)::bigint[]);

-- EmbeddingQueueLength counts the messages waiting for their embedding (leased or not), for
-- the ripple_embedding_queue gauge.
-- name: EmbeddingQueueLength :one
SELECT count(*) FROM message_embedding_queue;

-- name: MessageListByIDs :many
SELECT id, sender_id, conversation_id, body, created_at, kind FROM messages
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

-- MessageSearchText finds one conversation's messages that share a word (after English
-- stemming, stop words dropped) with the query, any word, the ones matching more and closer
-- together first.
-- name: MessageSearchText :many
SELECT m.id, m.sender_id, m.body, m.created_at,
       ts_rank_cd(to_tsvector('english', m.body), q.query)::float8 AS score
FROM messages m,
     (SELECT replace(plainto_tsquery('english', sqlc.arg(query)::text)::text, ' & ', ' | ')::tsquery AS query) q
WHERE m.conversation_id = sqlc.arg(conversation_id)
  AND m.kind = 'text'
  AND to_tsvector('english', m.body) @@ q.query
ORDER BY score DESC, m.id DESC
LIMIT sqlc.arg(max_rows);
