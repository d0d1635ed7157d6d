-- name: ConversationDirectGet :one
SELECT id FROM conversations
WHERE type = 'direct' AND direct_user_low = $1 AND direct_user_high = $2;

-- name: ConversationDirectInsert :one
INSERT INTO conversations (type, direct_user_low, direct_user_high)
VALUES ('direct', $1, $2)
ON CONFLICT (direct_user_low, direct_user_high) WHERE type = 'direct' DO NOTHING
RETURNING id;

-- name: ParticipantInsert :exec
INSERT INTO conversation_participants (conversation_id, user_id) VALUES ($1, $2)
ON CONFLICT DO NOTHING;

-- name: ParticipantGet :one
SELECT user_id FROM conversation_participants WHERE conversation_id = $1 AND user_id = $2;

-- name: ConversationListForUser :many
SELECT c.id, c.type, c.last_message_time, c.created_at, p.last_read_message_id, p.last_read_at
FROM conversation_participants p
JOIN conversations c ON c.id = p.conversation_id
WHERE p.user_id = $1;

-- name: ParticipantListForConversations :many
SELECT p.conversation_id, u.id, u.name, u.email
FROM conversation_participants p
JOIN users u ON u.id = p.user_id
WHERE p.conversation_id = ANY($1::bigint[])
ORDER BY p.conversation_id, p.joined_at, u.id;

-- ParticipantMarkRead moves a participant's last-read position forward to the message, never
-- back: a position at or past it is left alone (and nothing is written).
-- name: ParticipantMarkRead :execrows
UPDATE conversation_participants
SET last_read_message_id = sqlc.arg(message_id), last_read_at = sqlc.arg(message_at)
WHERE conversation_id = sqlc.arg(conversation_id) AND user_id = sqlc.arg(user_id)
  AND (last_read_at IS NULL
       OR (last_read_at, last_read_message_id) < (sqlc.arg(message_at)::timestamptz, sqlc.arg(message_id)::bigint));

-- BlockInsert blocks a user; blocking twice is one block.
-- name: BlockInsert :exec
INSERT INTO user_blocks (blocker_id, blocked_id) VALUES ($1, $2)
ON CONFLICT DO NOTHING;

-- name: BlockDelete :exec
DELETE FROM user_blocks WHERE blocker_id = $1 AND blocked_id = $2;

-- name: BlockListByBlocker :many
SELECT blocked_id FROM user_blocks WHERE blocker_id = $1;

-- BlockBetween lists the blocks standing between two users, either way (blocker first).
-- name: BlockBetween :many
SELECT blocker_id, blocked_id FROM user_blocks
WHERE (blocker_id = sqlc.arg(a) AND blocked_id = sqlc.arg(b))
   OR (blocker_id = sqlc.arg(b) AND blocked_id = sqlc.arg(a));

-- BlockInConversation lists the blocks standing between the user and the other members of a
-- conversation, either way (blocker first): one statement per send.
-- name: BlockInConversation :many
SELECT b.blocker_id, b.blocked_id
FROM conversation_participants p
JOIN user_blocks b
  ON (b.blocker_id = p.user_id AND b.blocked_id = sqlc.arg(user_id))
  OR (b.blocker_id = sqlc.arg(user_id) AND b.blocked_id = p.user_id)
WHERE p.conversation_id = sqlc.arg(conversation_id) AND p.user_id <> sqlc.arg(user_id);
