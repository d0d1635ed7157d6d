-- Statements for `ripple reembed` (functions/reembed.go), which rebuilds every message's
-- embedding after the embedding provider, model or dimensions changed.
--
-- ReembedColumnDimensions is the declared length of message_embeddings.embedding (pgvector keeps
-- it in atttypmod), checked against the provider's before anything is deleted.
-- name: ReembedColumnDimensions :one
SELECT a.atttypmod::int AS dimensions
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = 'message_embeddings'::regclass AND a.attname = 'embedding';

-- System lines (kind 'system') are never embedded.
-- ReembedMissingCount counts messages without an embedding of the given model: those with none
-- at all plus those whose embedding comes from another model.
-- name: ReembedMissingCount :one
SELECT count(*)
FROM messages m
WHERE m.kind = 'text'
  AND NOT EXISTS (SELECT 1 FROM message_embeddings e WHERE e.message_id = m.id AND e.model = $1);

-- ReembedMissingPage lists messages without any embedding, in id order after a given id (keyset
-- pagination). Messages whose embedding failed before are included: the provider changed.
-- name: ReembedMissingPage :many
SELECT m.id, m.body
FROM messages m
WHERE m.id > $1
  AND m.kind = 'text'
  AND NOT EXISTS (SELECT 1 FROM message_embeddings e WHERE e.message_id = m.id)
ORDER BY m.id
LIMIT $2;

-- ReembedStore stores one message's embedding, copying its conversation and sender from the
-- message (a message deleted meanwhile stores nothing). Like EmbeddingInsert, an embedding that
-- exists already is left alone.
-- name: ReembedStore :execrows
INSERT INTO message_embeddings (message_id, conversation_id, sender_id, embedding, model)
SELECT m.id, m.conversation_id, m.sender_id, sqlc.arg(embedding)::vector, sqlc.arg(model)::text
FROM messages m
WHERE m.id = sqlc.arg(message_id)
ON CONFLICT (message_id) DO NOTHING;

-- name: EmbeddingFailureDelete :exec
DELETE FROM message_embedding_failures WHERE message_id = $1;
