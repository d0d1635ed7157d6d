-- SearchVectorGet is a search query text's cached vector (search_query_vectors), by key, and when
-- it was last used.
-- name: SearchVectorGet :many
SELECT embedding, used_at FROM search_query_vectors WHERE key = sqlc.arg(key) AND model = sqlc.arg(model);

-- SearchVectorTouch marks a cached vector used, at most once per touch_every: moving used_at
-- re-runs the live searches that read the row (their result is the same, so nothing is sent),
-- which is why it moves seldom.
-- name: SearchVectorTouch :exec
UPDATE search_query_vectors SET used_at = now()
WHERE key = sqlc.arg(key) AND used_at < now() - make_interval(secs => sqlc.arg(touch_every_seconds)::float8);

-- name: SearchVectorInsert :execrows
INSERT INTO search_query_vectors (key, model, embedding) VALUES (sqlc.arg(key), sqlc.arg(model), sqlc.arg(embedding))
ON CONFLICT (key) DO NOTHING;

-- SearchVectorEvict deletes the least recently used rows past max_rows.
-- name: SearchVectorEvict :execrows
DELETE FROM search_query_vectors
WHERE key IN (SELECT key FROM search_query_vectors
              ORDER BY used_at, key
              LIMIT GREATEST(0, (SELECT count(*) FROM search_query_vectors) - sqlc.arg(max_rows)::bigint));

-- EmbeddingNearestInConversation is the conversation's vectors of one model nearest to a vector
-- (message ids and cosine similarity), scanned exactly through the B-tree on conversation_id.
-- The messages themselves are read apart (MessageListByIDs): one table per statement keeps the
-- read set to this conversation's embeddings and the hits, where EmbeddingSearchExact's CTE and
-- join read both tables whole, so a vector stored in any conversation re-ran a live search.
-- name: EmbeddingNearestInConversation :many
SELECT e.message_id, (1 - (e.embedding <=> sqlc.arg(embedding)))::float8 AS score
FROM message_embeddings e
WHERE e.conversation_id = sqlc.arg(conversation_id) AND e.model = sqlc.arg(model)
ORDER BY e.embedding <=> sqlc.arg(embedding), e.message_id
LIMIT sqlc.arg(max_rows);

-- name: SearchVectorCount :one
SELECT count(*) FROM search_query_vectors;
