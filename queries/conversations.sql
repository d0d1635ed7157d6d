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
SELECT c.id, c.type, c.last_message_time, c.created_at
FROM conversation_participants p
JOIN conversations c ON c.id = p.conversation_id
WHERE p.user_id = $1;

-- name: ParticipantListForConversations :many
SELECT p.conversation_id, u.id, u.name, u.email
FROM conversation_participants p
JOIN users u ON u.id = p.user_id
WHERE p.conversation_id = ANY($1::bigint[])
ORDER BY p.conversation_id, p.joined_at, u.id;
