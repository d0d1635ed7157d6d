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

-- ParticipantGet is one membership, read by the user's key first: a member's access verdicts
-- (messages:list's Access) then depend only on their own participation rows, not on every
-- other member's.
-- name: ParticipantGet :one
SELECT user_id, admin FROM conversation_participants WHERE user_id = sqlc.arg(user_id) AND conversation_id = sqlc.arg(conversation_id);

-- ConversationSummaryListForUser is everything conversations:list shows, in one statement
-- driven by the user's participations: one row per participant of each of the user's
-- conversations (in joining order) with whether the user blocked them, and the conversation's
-- own row, the user's read position, its newest message and unread count repeated on each.
-- The unread count is the messages others sent after the user's last-read position (no read
-- state row: nothing read), up to max_unread, one index range per conversation however long
-- its history.
-- Every table is read per key (readsetgen): conversation_participants by the user (me) and,
-- for the other participants, by the conversation ids returned (ReadOutputKey); read states by
-- the user, so other members' reading does not re-run this list; messages by the conversation
-- ids returned; user_blocks by the user; users and conversations by the rows returned. For the
-- reads by the ids returned, every participation must be returned whatever the other tables
-- hold: read states, messages and the participants stay on the nullable side of LEFT JOINs
-- (never CROSS JOIN LATERAL, never filtered in WHERE), conversations is inner-joined last
-- (only on me's column), and users on no preserved side of an outer join.
-- name: ConversationSummaryListForUser :many
SELECT me.conversation_id, c.id, c.type, c.name, c.last_message_time, c.created_at,
       rs.last_read_message_id, rs.last_read_at,
       u.id AS participant_id, u.name AS participant_name, u.email AS participant_email,
       coalesce(p.admin, false)::boolean AS participant_admin,
       (b.blocked_id IS NOT NULL)::boolean AS blocked_by_me,
       -- No newest message: last_created_at is NULL (sqlc takes the lateral's columns as NOT NULL).
       coalesce(lm.sender_id, 0)::bigint AS last_sender_id, coalesce(lm.body, '')::text AS last_body,
       coalesce(lm.kind, 'text')::text AS last_kind,
       lm.created_at AS last_created_at,
       coalesce(un.unread, 0)::int AS unread
FROM conversation_participants me
LEFT JOIN conversation_read_states rs
  ON rs.user_id = sqlc.arg(user_id) AND rs.conversation_id = me.conversation_id
LEFT JOIN LATERAL (
  SELECT m.sender_id, m.body, m.created_at, m.kind
  FROM messages m
  WHERE m.conversation_id = me.conversation_id
  ORDER BY m.created_at DESC, m.id DESC
  LIMIT 1
) lm ON true
-- count(*) always gives one row: LEFT JOIN only so the rows returned cannot depend on it.
LEFT JOIN LATERAL (
  SELECT count(*) AS unread
  FROM (
    SELECT 1
    FROM messages m
    WHERE m.conversation_id = me.conversation_id
      AND m.sender_id <> sqlc.arg(user_id)
      AND m.kind = 'text'
      -- A bound without OR, so the index scan starts and stops at it.
      AND (m.created_at, m.id) > (coalesce(rs.last_read_at, '-infinity'::timestamptz),
                                  coalesce(rs.last_read_message_id, 0::bigint))
    ORDER BY m.created_at DESC, m.id DESC
    LIMIT sqlc.arg(max_unread)
  ) r
) un ON true
LEFT JOIN (conversation_participants p
           LEFT JOIN user_blocks b ON b.blocker_id = sqlc.arg(user_id) AND b.blocked_id = p.user_id
           JOIN users u ON u.id = p.user_id)
  ON p.conversation_id = me.conversation_id
JOIN conversations c ON c.id = me.conversation_id
WHERE me.user_id = sqlc.arg(user_id)
ORDER BY me.conversation_id, p.joined_at, u.id;

-- ReadStateAdvance moves members' last-read positions in a conversation forward to a message,
-- never back: a position at or past it is left alone (nothing is written, nothing re-runs).
-- Users who are not members are skipped. Returns how many positions moved.
-- name: ReadStateAdvance :execrows
INSERT INTO conversation_read_states AS rs (user_id, conversation_id, last_read_message_id, last_read_at)
SELECT p.user_id, p.conversation_id, sqlc.arg(message_id)::bigint, sqlc.arg(message_at)::timestamptz
FROM conversation_participants p
WHERE p.conversation_id = sqlc.arg(conversation_id) AND p.user_id = ANY(sqlc.arg(user_ids)::bigint[])
ON CONFLICT (user_id, conversation_id) DO UPDATE
SET last_read_message_id = excluded.last_read_message_id, last_read_at = excluded.last_read_at
WHERE (rs.last_read_at, rs.last_read_message_id) < (excluded.last_read_at, excluded.last_read_message_id);

-- ReadStateMark is conversations:markRead in one statement (one round trip, with BEGIN): whether
-- the user is a member, whether the message is one of the conversation's, and, only when both
-- hold, the user's position moved forward to it as ReadStateAdvance does (advanced: 1 when it
-- moved, 0 when it was at or past the message already).
-- name: ReadStateMark :one
WITH chk AS (
  SELECT EXISTS (SELECT 1 FROM conversation_participants p
                 WHERE p.conversation_id = sqlc.arg(conversation_id) AND p.user_id = sqlc.arg(user_id)) AS participant
), msg AS (
  SELECT m.id, m.created_at FROM messages m
  WHERE m.id = sqlc.arg(message_id) AND m.conversation_id = sqlc.arg(conversation_id)
), moved AS (
  INSERT INTO conversation_read_states AS rs (user_id, conversation_id, last_read_message_id, last_read_at)
  SELECT sqlc.arg(user_id)::bigint, sqlc.arg(conversation_id)::bigint, msg.id, msg.created_at
  FROM msg, chk
  WHERE chk.participant
  ON CONFLICT (user_id, conversation_id) DO UPDATE
  SET last_read_message_id = excluded.last_read_message_id, last_read_at = excluded.last_read_at
  WHERE (rs.last_read_at, rs.last_read_message_id) < (excluded.last_read_at, excluded.last_read_message_id)
  RETURNING 1
)
SELECT chk.participant,
       EXISTS (SELECT 1 FROM msg) AS message_found,
       (SELECT count(*) FROM moved)::int AS advanced
FROM chk;

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

-- name: ConversationGet :one
SELECT id, type, name FROM conversations WHERE id = $1;

-- name: ConversationGroupInsert :one
INSERT INTO conversations (type, name) VALUES ('group', sqlc.arg(name)) RETURNING id;

-- name: ConversationRename :exec
UPDATE conversations SET name = sqlc.arg(name) WHERE id = sqlc.arg(id) AND type = 'group';

-- name: ConversationDelete :exec
DELETE FROM conversations WHERE id = $1;

-- ParticipantInsertMany adds users to a conversation, as admins or not, and returns those who
-- were not members already.
-- name: ParticipantInsertMany :many
INSERT INTO conversation_participants (conversation_id, user_id, admin)
SELECT sqlc.arg(conversation_id)::bigint, u, sqlc.arg(admin)::boolean
FROM unnest(sqlc.arg(user_ids)::bigint[]) AS u
ON CONFLICT DO NOTHING
RETURNING user_id;

-- name: ParticipantDelete :execrows
DELETE FROM conversation_participants WHERE conversation_id = $1 AND user_id = $2;

-- name: ParticipantCount :one
SELECT count(*)::int AS members, count(*) FILTER (WHERE admin)::int AS admins
FROM conversation_participants WHERE conversation_id = $1;

-- ParticipantPromoteEldest makes the longest-standing member an admin (when the last admin
-- left, so a group always has one).
-- name: ParticipantPromoteEldest :exec
UPDATE conversation_participants p SET admin = true
WHERE p.conversation_id = sqlc.arg(conversation_id) AND p.user_id = (
  SELECT e.user_id FROM conversation_participants e
  WHERE e.conversation_id = sqlc.arg(conversation_id)
  ORDER BY e.joined_at, e.user_id
  LIMIT 1);

-- ParticipantShared tells whether two users share a conversation (of any type).
-- name: ParticipantShared :one
SELECT EXISTS (
  SELECT 1 FROM conversation_participants a
  JOIN conversation_participants b ON b.conversation_id = a.conversation_id
  WHERE a.user_id = sqlc.arg(a) AND b.user_id = sqlc.arg(b))::boolean;

-- BlockListAround lists the blocks standing between a user and any of others, either way
-- (blocker first).
-- name: BlockListAround :many
SELECT blocker_id, blocked_id FROM user_blocks
WHERE (blocker_id = sqlc.arg(user_id) AND blocked_id = ANY(sqlc.arg(others)::bigint[]))
   OR (blocked_id = sqlc.arg(user_id) AND blocker_id = ANY(sqlc.arg(others)::bigint[]));
