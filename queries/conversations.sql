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

-- ConversationSummaryListForUser is everything conversations:list shows of the user's
-- conversations besides ConversationListForUser's rows, in one statement: one row per
-- participant (in joining order) with whether the user blocked them, and the conversation's
-- newest message and unread count repeated on each. The unread count is the messages others
-- sent after the user's last-read position (read_at, read_id, by conversation_ids' order; NULL
-- read_at: nothing read), up to max_unread, one index range per conversation however long its
-- history.
-- Every table is read per key: messages (lateral) and conversation_participants (joined) by
-- conversation_ids, user_blocks by the user, users by the rows returned. users must stay on no
-- preserved side of an outer join (joined last) to be read by the rows returned.
-- name: ConversationSummaryListForUser :many
SELECT k.conversation_id::bigint AS conversation_id,
       u.id AS participant_id, u.name AS participant_name, u.email AS participant_email,
       (b.blocked_id IS NOT NULL)::boolean AS blocked_by_me,
       -- No newest message: last_created_at is NULL (sqlc takes the lateral's columns as NOT NULL).
       coalesce(lm.sender_id, 0)::bigint AS last_sender_id, coalesce(lm.body, '')::text AS last_body,
       lm.created_at AS last_created_at,
       un.unread::int AS unread
FROM ROWS FROM (unnest(sqlc.arg(conversation_ids)::bigint[]),
               unnest(sqlc.arg(read_ats)::timestamptz[]),
               unnest(sqlc.arg(read_ids)::bigint[])) AS k(conversation_id, read_at, read_id)
LEFT JOIN LATERAL (
  SELECT m.sender_id, m.body, m.created_at
  FROM messages m
  WHERE m.conversation_id = k.conversation_id
  ORDER BY m.created_at DESC, m.id DESC
  LIMIT 1
) lm ON true
CROSS JOIN LATERAL (
  SELECT count(*) AS unread
  FROM (
    SELECT 1
    FROM messages m
    WHERE m.conversation_id = k.conversation_id
      AND m.sender_id <> sqlc.arg(user_id)
      -- A bound without OR, so the index scan starts and stops at it.
      AND (m.created_at, m.id) > (coalesce(k.read_at, '-infinity'), coalesce(k.read_id, 0))
    ORDER BY m.created_at DESC, m.id DESC
    LIMIT sqlc.arg(max_unread)
  ) r
) un
JOIN conversation_participants p ON p.conversation_id = k.conversation_id
LEFT JOIN user_blocks b ON b.blocker_id = sqlc.arg(user_id) AND b.blocked_id = p.user_id
JOIN users u ON u.id = p.user_id
ORDER BY k.conversation_id, p.joined_at, u.id;

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

-- BlockBetween lists the blocks standing between two users, either way (blocker first).
-- name: BlockBetween :many
SELECT blocker_id, blocked_id FROM user_blocks
WHERE (blocker_id = sqlc.arg(a) AND blocked_id = sqlc.arg(b))
   OR (blocker_id = sqlc.arg(b) AND blocked_id = sqlc.arg(a));
