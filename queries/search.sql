-- SearchVectorGet is a search query text's cached vector (search_query_vectors), by key.
-- name: SearchVectorGet :many
SELECT embedding FROM search_query_vectors WHERE key = sqlc.arg(key) AND model = sqlc.arg(model);

-- SearchVectorTouch is a cached vector (none when it is not there) and marks it used, at most
-- once per touch_every: moving used_at re-runs the live searches that read the row (their result
-- is the same, so nothing is sent), which is why it moves seldom.
-- name: SearchVectorTouch :many
WITH hit AS (
  SELECT s.key AS hit_key, s.embedding FROM search_query_vectors s
  WHERE s.key = sqlc.arg(key) AND s.model = sqlc.arg(model)
), touched AS (
  UPDATE search_query_vectors v SET used_at = now()
  FROM hit
  WHERE v.key = hit.hit_key AND v.used_at < now() - make_interval(secs => sqlc.arg(touch_every_seconds)::float8)
  RETURNING v.key
)
SELECT hit.embedding FROM hit;

-- name: SearchVectorInsert :execrows
INSERT INTO search_query_vectors (key, model, embedding) VALUES (sqlc.arg(key), sqlc.arg(model), sqlc.arg(embedding))
ON CONFLICT (key) DO UPDATE SET used_at = now();

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
