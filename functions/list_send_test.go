package functions_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/functions"
	"github.com/ripplehq/ripple/queries"
)

// referenceList is conversations:list as it was computed with five statements (the caller's
// conversations, their participants, newest messages, recent messages from others and the
// caller's blocks), kept to show that the one-statement summary gives the same JSON.
func referenceList(t *testing.T, b *testBundle, me int64) []functions.Conversation {
	t.Helper()
	ctx := context.Background()
	db := b.db.Pool
	type conv struct {
		id                       int64
		typ                      string
		lastMessageTime, created pgtype.Timestamptz
		readID                   *int64
		readAt                   pgtype.Timestamptz
	}
	rows, err := db.Query(ctx, `SELECT c.id, c.type, c.last_message_time, c.created_at, r.last_read_message_id, r.last_read_at
		FROM conversation_participants p JOIN conversations c ON c.id = p.conversation_id
		LEFT JOIN conversation_read_states r ON r.user_id = p.user_id AND r.conversation_id = p.conversation_id
		WHERE p.user_id = $1`, me)
	require.NoError(t, err)
	convs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (conv, error) {
		var c conv
		return c, r.Scan(&c.id, &c.typ, &c.lastMessageTime, &c.created, &c.readID, &c.readAt)
	})
	require.NoError(t, err)
	out := []functions.Conversation{}
	if len(convs) == 0 {
		return out
	}
	ids := make([]int64, len(convs))
	for i, c := range convs {
		ids[i] = c.id
	}
	fid := func(id int64) string { return strconv.FormatInt(id, 10) }
	ms := func(ts pgtype.Timestamptz) float64 { return float64(ts.Time.UnixMicro()) / 1000 }

	participants := map[int64][]functions.Participant{}
	rows, err = db.Query(ctx, `SELECT p.conversation_id, u.id, u.name, u.email FROM conversation_participants p
		JOIN users u ON u.id = p.user_id WHERE p.conversation_id = ANY($1::bigint[]) ORDER BY p.conversation_id, p.joined_at, u.id`, ids)
	require.NoError(t, err)
	for rows.Next() {
		var cid, uid int64
		var name, email string
		require.NoError(t, rows.Scan(&cid, &uid, &name, &email))
		participants[cid] = append(participants[cid], functions.Participant{ID: fid(uid), Name: name, Email: email})
	}
	require.NoError(t, rows.Err())

	type last struct {
		sender int64
		body   string
		at     pgtype.Timestamptz
	}
	lasts := map[int64]last{}
	rows, err = db.Query(ctx, `SELECT k.conversation_id, m.sender_id, m.body, m.created_at
		FROM unnest($1::bigint[]) AS k(conversation_id)
		CROSS JOIN LATERAL (SELECT sender_id, body, created_at FROM messages WHERE messages.conversation_id = k.conversation_id
		                    ORDER BY created_at DESC, id DESC LIMIT 1) m`, ids)
	require.NoError(t, err)
	for rows.Next() {
		var cid int64
		var l last
		require.NoError(t, rows.Scan(&cid, &l.sender, &l.body, &l.at))
		lasts[cid] = l
	}
	require.NoError(t, rows.Err())

	// The unread counts as readstate.go's unreadCounts took them: the newest 100 messages from
	// others per conversation, no older than the oldest position, counted after each position.
	var since pgtype.Timestamptz
	unreadAll := false
	for _, c := range convs {
		if c.readID == nil || !c.readAt.Valid {
			unreadAll = true
		} else if !since.Valid || c.readAt.Time.Before(since.Time) {
			since = c.readAt
		}
	}
	if unreadAll {
		since = pgtype.Timestamptz{}
	}
	unread := map[int64]int{}
	rows, err = db.Query(ctx, `SELECT k.conversation_id, m.id, m.created_at
		FROM unnest($1::bigint[]) AS k(conversation_id)
		CROSS JOIN LATERAL (SELECT id, created_at FROM messages WHERE messages.conversation_id = k.conversation_id
		  AND messages.sender_id <> $2 AND ($3::timestamptz IS NULL OR messages.created_at >= $3::timestamptz)
		  ORDER BY created_at DESC, id DESC LIMIT 100) m`, ids, me, since)
	require.NoError(t, err)
	byID := map[int64]conv{}
	for _, c := range convs {
		byID[c.id] = c
	}
	for rows.Next() {
		var cid, mid int64
		var at pgtype.Timestamptz
		require.NoError(t, rows.Scan(&cid, &mid, &at))
		c := byID[cid]
		if c.readID != nil && c.readAt.Valid && !at.Time.After(c.readAt.Time) && (at.Time.Before(c.readAt.Time) || mid <= *c.readID) {
			continue
		}
		unread[cid]++
	}
	require.NoError(t, rows.Err())

	blocked := map[string]bool{}
	rows, err = db.Query(ctx, `SELECT blocked_id FROM user_blocks WHERE blocker_id = $1`, me)
	require.NoError(t, err)
	for rows.Next() {
		var id int64
		require.NoError(t, rows.Scan(&id))
		blocked[fid(id)] = true
	}
	require.NoError(t, rows.Err())

	type sortable struct {
		conv     functions.Conversation
		activity time.Time
		id       int64
	}
	var all []sortable
	for _, c := range convs {
		fc := functions.Conversation{ID: fid(c.id), Type: c.typ, Participants: participants[c.id], UnreadCount: unread[c.id], BlockedByMe: []string{}}
		if fc.Participants == nil {
			fc.Participants = []functions.Participant{}
		}
		for _, p := range fc.Participants {
			if blocked[p.ID] {
				fc.BlockedByMe = append(fc.BlockedByMe, p.ID)
			}
		}
		if c.readID != nil {
			id := fid(*c.readID)
			fc.LastReadMessageID = &id
		}
		activity := c.lastMessageTime
		if m, ok := lasts[c.id]; ok {
			fc.LastMessage = &functions.LastMessage{Body: m.body, SenderID: fid(m.sender), CreationTime: ms(m.at), Kind: "text"}
			if !activity.Valid || m.at.Time.After(activity.Time) {
				activity = m.at
			}
		}
		if activity.Valid {
			t := ms(activity)
			fc.LastMessageTime = &t
		} else {
			activity = c.created
		}
		all = append(all, sortable{fc, activity.Time, c.id})
	}
	sort.Slice(all, func(i, j int) bool {
		if !all[i].activity.Equal(all[j].activity) {
			return all[i].activity.After(all[j].activity)
		}
		return all[i].id > all[j].id
	})
	for _, s := range all {
		out = append(out, s.conv)
	}
	return out
}

// TestConversationsListMatchesReference compares conversations:list, as JSON, with the
// five-statement computation it replaced, for every user of a school with the corners: a
// conversation without messages, a blocked participant, a group, more unread than the cap, a
// position among messages of the same instant, a position without its time, a stored
// last_message_time newer than the newest message, and a user with no conversation.
func TestConversationsListMatchesReference(t *testing.T) {
	t.Parallel()
	b := setup(t, &setupOpts{})
	ctx := context.Background()
	ann, bob, cat, dan, eve := b.user(t, "ann"), b.user(t, "bob"), b.user(t, "cat"), b.user(t, "dan"), b.user(t, "eve")
	exec := func(sql string, args ...any) {
		t.Helper()
		_, err := b.db.Pool.Exec(ctx, sql, args...)
		require.NoError(t, err)
	}
	uid := func(who engine.Identity) int64 {
		id, err := strconv.ParseInt(who.UserID, 10, 64)
		require.NoError(t, err)
		return id
	}

	withBob := b.direct(t, ann, bob, "bob")
	withCat := b.direct(t, ann, cat, "cat") // never a message
	withDan := b.direct(t, ann, dan, "dan")
	bobCat := b.direct(t, bob, cat, "cat")
	b.send(t, ann, withBob, "hi bob")
	bobs := []string{b.send(t, bob, withBob, "b0"), b.send(t, bob, withBob, "b1"), b.send(t, bob, withBob, "b2")}
	require.NoError(t, b.call(t, ann, "conversations:markRead", map[string]any{"conversationId": withBob, "messageId": bobs[0]}, nil))
	for i := range 103 {
		b.send(t, dan, withDan, fmt.Sprintf("d%d", i))
	}
	b.send(t, cat, bobCat, "hi bob, it's cat")
	require.NoError(t, b.call(t, ann, "users:block", map[string]any{"userId": cat.UserID}, nil))
	require.NoError(t, b.call(t, bob, "users:block", map[string]any{"userId": cat.UserID}, nil))

	// A group of four, with three messages of one instant; ann has read up to the middle one,
	// bob has read nothing there.
	var group int64
	require.NoError(t, b.db.Pool.QueryRow(ctx, `INSERT INTO conversations (type) VALUES ('group') RETURNING id`).Scan(&group))
	for i, who := range []engine.Identity{dan, ann, bob, cat} {
		exec(`INSERT INTO conversation_participants (conversation_id, user_id, joined_at) VALUES ($1, $2, now() + $3 * interval '1 second')`, group, uid(who), i)
	}
	var same []int64
	for _, who := range []engine.Identity{bob, cat, dan} {
		var id int64
		require.NoError(t, b.db.Pool.QueryRow(ctx, `INSERT INTO messages (sender_id, conversation_id, body, created_at)
			VALUES ($1, $2, 'same instant', '2030-01-01T00:00:00Z') RETURNING id`, uid(who), group).Scan(&id))
		same = append(same, id)
	}
	exec(`INSERT INTO conversation_read_states (conversation_id, user_id, last_read_message_id, last_read_at)
		VALUES ($1, $2, $3, '2030-01-01T00:00:00Z')`, group, uid(ann), same[1])
	// Older versions stored last activity: newer than the newest message here.
	exec(`UPDATE conversations SET last_message_time = '2031-01-01T00:00:00Z' WHERE id = $1`, withDan)

	for _, who := range []engine.Identity{ann, bob, cat, dan, eve} {
		var got json.RawMessage
		require.NoError(t, b.call(t, who, "conversations:list", map[string]any{}, &got))
		want, err := json.Marshal(referenceList(t, b, uid(who)))
		require.NoError(t, err)
		require.JSONEq(t, string(want), string(got), "user %s", who.UserID)
		var compact []byte
		compact, err = json.Marshal(json.RawMessage(got))
		require.NoError(t, err)
		require.Equal(t, string(want), string(compact), "byte for byte, user %s", who.UserID)
	}

	// Spot checks, so the reference cannot drift with the code it checks.
	list := func(who engine.Identity) []functions.Conversation {
		var l []functions.Conversation
		require.NoError(t, b.call(t, who, "conversations:list", map[string]any{}, &l))
		return l
	}
	annList := list(ann)
	require.Len(t, annList, 4)
	require.Equal(t, withDan, annList[0].ID, "the stored last activity of 2031 comes first")
	require.Equal(t, 100, annList[0].UnreadCount)
	require.Equal(t, fmt.Sprint(group), annList[1].ID)
	require.Equal(t, 1, annList[1].UnreadCount, "after the middle of three messages of one instant, one from others")
	require.Len(t, annList[1].Participants, 4)
	require.Equal(t, []string{cat.UserID}, annList[1].BlockedByMe)
	c := b.conversation(t, ann, withCat)
	require.Nil(t, c.LastMessage)
	require.Nil(t, c.LastMessageTime)
	require.Equal(t, []string{cat.UserID}, c.BlockedByMe)
	require.Equal(t, 2, b.conversation(t, ann, withBob).UnreadCount)
	require.Equal(t, 2, b.conversation(t, bob, fmt.Sprint(group)).UnreadCount, "no read state: all from others")
	require.Empty(t, list(eve))
}

// TestSendErrorsInOrder checks messages:send's errors and their order: identity, arguments,
// membership, then blocks (the caller's own first); and that a message sent is stored and
// queued for embedding once.
func TestSendErrorsInOrder(t *testing.T) {
	t.Parallel()
	b := setup(t, &setupOpts{})
	ctx := context.Background()
	ann, bob, cat := b.user(t, "ann"), b.user(t, "bob"), b.user(t, "cat")
	withBob := b.direct(t, ann, bob, "bob")
	bobCat := b.direct(t, bob, cat, "cat")
	send := func(who engine.Identity, conv, body string) error {
		return b.call(t, who, "messages:send", map[string]any{"conversationId": conv, "body": body}, nil)
	}
	check := func(err error, code engine.ErrorCode, message, reason string) {
		t.Helper()
		requireCode(t, err, code)
		e, _ := engine.AsError(err)
		if message != "" {
			require.Equal(t, message, e.Message)
		}
		if reason == "" {
			require.Nil(t, e.Data["reason"])
		} else {
			require.Equal(t, reason, e.Data["reason"])
		}
	}
	const notParticipant = "you are not a participant of this conversation"

	check(send(engine.Identity{}, "x", ""), engine.CodeUnauthenticated, "", "")
	check(send(cat, "x", "hi"), engine.CodeInvalidArgument, "", "")
	check(send(cat, withBob, "  "), engine.CodeInvalidArgument, "", "")
	check(send(cat, withBob, "hi"), engine.CodeForbidden, notParticipant, "")
	check(send(cat, "99999999", "hi"), engine.CodeForbidden, notParticipant, "")

	// Bob blocks cat: cat is still told first that ann+bob is not theirs.
	require.NoError(t, b.call(t, bob, "users:block", map[string]any{"userId": cat.UserID}, nil))
	check(send(cat, withBob, "hi"), engine.CodeForbidden, notParticipant, "")
	check(send(cat, bobCat, "hi"), engine.CodeForbidden, "this person is not accepting messages from you", "blocked_by_them")
	check(send(bob, bobCat, "hi"), engine.CodeForbidden, "you blocked this person; unblock them to send", "blocked_by_you")
	// Both ways: the caller's own block comes first (they can lift it).
	require.NoError(t, b.call(t, cat, "users:block", map[string]any{"userId": bob.UserID}, nil))
	check(send(cat, bobCat, "hi"), engine.CodeForbidden, "", "blocked_by_you")
	check(send(bob, bobCat, "hi"), engine.CodeForbidden, "", "blocked_by_you")

	var n int
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM messages").Scan(&n))
	require.Zero(t, n, "no refused send stored anything")

	// A block does not stop sends in a group (docs/design.md, Blocks in groups): one member
	// cannot silence another for everyone.
	var group int64
	require.NoError(t, b.db.Pool.QueryRow(ctx, `INSERT INTO conversations (type) VALUES ('group') RETURNING id`).Scan(&group))
	for _, who := range []engine.Identity{ann, bob, cat} {
		_, err := b.db.Pool.Exec(ctx, `INSERT INTO conversation_participants (conversation_id, user_id) VALUES ($1, $2)`, group, who.UserID)
		require.NoError(t, err)
	}
	b.send(t, cat, fmt.Sprint(group), "hi all")

	// A send stores the message and queues it once (or the sweep already embedded it: it
	// deletes the queue row in the transaction that stores the vector).
	id := b.send(t, ann, fmt.Sprint(group), "hello group")
	var sender, conv int64
	var body string
	require.NoError(t, b.db.Pool.QueryRow(ctx, `SELECT sender_id, conversation_id, body FROM messages WHERE id = $1`, id).Scan(&sender, &conv, &body))
	require.Equal(t, ann.UserID, fmt.Sprint(sender))
	require.Equal(t, group, conv)
	require.Equal(t, "hello group", body)
	require.NoError(t, b.db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM message_embedding_queue WHERE message_id = $1)
		+ (SELECT count(*) FROM message_embeddings WHERE message_id = $1)`, id).Scan(&n))
	require.Equal(t, 1, n)
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM messages").Scan(&n))
	require.Equal(t, 2, n)
}

// TestConversationsListReadsByKey guards the read set of conversations:list's statement: a
// table read whole there would re-run every user's list on every message anywhere.
func TestConversationsListReadsByKey(t *testing.T) {
	t.Parallel()
	spec, ok := queries.ReadSpecs["ConversationSummaryListForUser"]
	require.True(t, ok)
	require.NotEmpty(t, spec.Tables)
	kinds := map[string][]engine.ReadKind{}
	for _, tr := range spec.Tables {
		require.NotEqual(t, engine.ReadTable, tr.Kind, "reads %s whole", tr.Table)
		kinds[tr.Table] = append(kinds[tr.Table], tr.Kind)
	}
	require.Equal(t, []engine.ReadKind{engine.ReadOutputKey}, kinds["messages"])
	require.ElementsMatch(t, []engine.ReadKind{engine.ReadParam, engine.ReadOutputKey}, kinds["conversation_participants"])
	// Read positions by the caller's own key: a member marking a message read re-runs their own
	// list, not every member's.
	for _, tr := range spec.Tables {
		if tr.Table == "conversation_read_states" {
			require.Equal(t, engine.TableRead{Table: tr.Table, Kind: engine.ReadParam, Column: "user_id", Param: 1}, tr)
		}
	}
	require.Equal(t, []engine.ReadKind{engine.ReadParam}, kinds["conversation_read_states"])
}

// TestConversationsListStatementReadsByKey runs conversations:list's statement through the
// engine's read-set DB and checks what it recorded: the caller's participations by user, and
// messages and participants by each listed conversation (one without messages too, so its
// first message re-runs the list), never a table whole.
func TestConversationsListStatementReadsByKey(t *testing.T) {
	t.Parallel()
	type listReads struct {
		Conversations []int64 `json:"conversations"`
		Reads         string  `json:"reads"`
	}
	b := setup(t, &setupOpts{register: func(reg *engine.Registry) {
		engine.AddQuery(reg, "test:listReads", func(ctx *engine.QueryCtx, _ struct{}) (listReads, error) {
			me, err := strconv.ParseInt(ctx.Identity().UserID, 10, 64)
			if err != nil {
				return listReads{}, err
			}
			rows, err := queries.New().ConversationSummaryListForUser(ctx, ctx.DB(),
				queries.ConversationSummaryListForUserParams{UserID: me, MaxUnread: 100})
			if err != nil {
				return listReads{}, err
			}
			out := listReads{Conversations: []int64{}}
			for _, r := range rows {
				if n := len(out.Conversations); n == 0 || out.Conversations[n-1] != r.ConversationID {
					out.Conversations = append(out.Conversations, r.ConversationID)
				}
			}
			out.Reads = ctx.DescribeReads()
			return out, nil
		}, nil)
	}})
	ann, bob, cat, dan := b.user(t, "ann"), b.user(t, "bob"), b.user(t, "cat"), b.user(t, "dan")
	withBob := b.direct(t, ann, bob, "bob")
	withCat := b.direct(t, ann, cat, "cat") // never a message
	bobDan := b.direct(t, bob, dan, "dan")  // not ann's
	b.send(t, ann, withBob, "hi")
	b.send(t, dan, bobDan, "hi bob")

	var got listReads
	require.NoError(t, b.call(t, ann, "test:listReads", map[string]any{}, &got))
	reads := strings.Fields(got.Reads)
	require.NotContains(t, got.Reads, "everything")
	for _, r := range reads {
		require.False(t, strings.HasSuffix(r, ".*"), "a table read whole: %s (all: %s)", r, got.Reads)
	}
	require.ElementsMatch(t, []string{withBob, withCat}, []string{fmt.Sprint(got.Conversations[0]), fmt.Sprint(got.Conversations[1])})
	require.Len(t, got.Conversations, 2)
	for _, conv := range []string{withBob, withCat} {
		require.Contains(t, reads, "messages.conversation_id="+conv)
		require.Contains(t, reads, "conversation_participants.conversation_id="+conv)
		require.Contains(t, reads, "conversations.id="+conv)
	}
	require.NotContains(t, reads, "messages.conversation_id="+bobDan)
	require.Contains(t, reads, "conversation_participants.user_id="+ann.UserID)
	require.Contains(t, reads, "user_blocks.blocker_id="+ann.UserID)
	// Read positions by the caller's key only: other members' reading does not touch this list.
	for _, r := range reads {
		if strings.HasPrefix(r, "conversation_read_states.") {
			require.Equal(t, "conversation_read_states.user_id="+ann.UserID, r)
		}
	}
	require.Contains(t, reads, "conversation_read_states.user_id="+ann.UserID)
	for _, who := range []engine.Identity{ann, bob, cat} {
		require.Contains(t, reads, "users.id="+who.UserID)
	}
	require.NotContains(t, reads, "users.id="+dan.UserID)

	// A user with no conversation reads only their participations (and read states, and blocks).
	require.NoError(t, b.call(t, engine.Identity{UserID: dan.UserID}, "test:listReads", map[string]any{}, &got))
	require.Len(t, got.Conversations, 1)
	eve := b.user(t, "eve")
	require.NoError(t, b.call(t, eve, "test:listReads", map[string]any{}, &got))
	require.Empty(t, got.Conversations)
	require.ElementsMatch(t, []string{"conversation_participants.user_id=" + eve.UserID,
		"conversation_read_states.user_id=" + eve.UserID, "user_blocks.blocker_id=" + eve.UserID},
		strings.Fields(got.Reads))
}
