package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/engine"
)

// TestNoMissedUpdateListOneStatement subscribes to the chat's conversations:list statement,
// which reads messages and the other participants by the conversation ids it returns
// (ReadOutputKey), and checks after every write that the pushed value equals a fresh run:
// first messages in a conversation without any, a participation added and removed, messages
// moved between conversations, blocks, renames, read positions. Writes to conversations the
// user is not in, and other members' read positions, re-run nothing.
func TestNoMissedUpdateListOneStatement(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	exec := func(sql string, args ...any) {
		t.Helper()
		_, err := b.db.Pool.Exec(ctx, sql, args...)
		require.NoError(t, err)
	}
	user := func(name string) int64 {
		var id int64
		require.NoError(t, b.db.Pool.QueryRow(ctx, `INSERT INTO users (name, email) VALUES ($1, $1||'-'||gen_random_uuid()||'@example.com') RETURNING id`, name).Scan(&id))
		return id
	}
	conv := func(members ...int64) int64 {
		var id int64
		require.NoError(t, b.db.Pool.QueryRow(ctx, `INSERT INTO conversations (type) VALUES ('group') RETURNING id`).Scan(&id))
		for _, m := range members {
			exec(`INSERT INTO conversation_participants (conversation_id, user_id) VALUES ($1, $2)`, id, m)
		}
		return id
	}
	send := func(from, to int64, body string) int64 {
		var id int64
		require.NoError(t, b.db.Pool.QueryRow(ctx, `INSERT INTO messages (sender_id, conversation_id, body) VALUES ($1, $2, $3) RETURNING id`, from, to, body).Scan(&id))
		return id
	}
	ann, bob, cat := user("ann"), user("bob"), user("cat")
	withBob, withCat, bobCat := conv(ann, bob), conv(ann, cat), conv(bob, cat)
	send(bob, withBob, "hi ann")
	args := map[string]any{"userId": fmt.Sprint(ann)}

	c := dial(t, b)
	c.Subscribe(1, "test:listOne", args)
	c.WaitFor(func() bool { return c.Values[1] != nil })
	check := func(step string) {
		t.Helper()
		c.Settle()
		var fresh any
		require.NoError(t, b.engine.Call(ctx, "test:listOne", args, engine.Identity{}, &fresh))
		want, err := json.Marshal(fresh)
		require.NoError(t, err)
		got, err := json.Marshal(c.Values[1])
		require.NoError(t, err)
		require.JSONEq(t, string(want), string(got), step)
	}
	quiet := func(step string, write func()) {
		t.Helper()
		before := b.engine.Stats().Reruns
		write()
		check(step)
		require.Equal(t, before, b.engine.Stats().Reruns, "%s re-ran the list", step)
	}
	check("start")

	send(cat, withCat, "the first message of a conversation without any")
	check("first message")
	for i := range 5 {
		send(ann, withBob, fmt.Sprint("more ", i)) // past the unread cap of 3 too
	}
	check("messages")
	quiet("a message in a conversation ann is not in", func() { send(cat, bobCat, "not for ann") })
	exec(`INSERT INTO conversation_participants (conversation_id, user_id) VALUES ($1, $2)`, bobCat, ann)
	check("ann joins")
	send(cat, bobCat, "now for ann")
	check("a message where ann joined")
	m := send(bob, bobCat, "moved")
	exec(`UPDATE messages SET conversation_id = $2 WHERE id = $1`, m, withCat)
	check("a message moved between ann's conversations")
	exec(`INSERT INTO conversation_read_states (conversation_id, user_id, last_read_message_id, last_read_at)
		SELECT $1, $2, id, created_at FROM messages WHERE id = $3`, withCat, ann, m)
	check("read position")
	quiet("another member's read position", func() {
		exec(`INSERT INTO conversation_read_states (conversation_id, user_id, last_read_message_id, last_read_at)
			SELECT $1, $2, id, created_at FROM messages WHERE id = $3`, withCat, cat, m)
	})
	exec(`INSERT INTO user_blocks (blocker_id, blocked_id) VALUES ($1, $2)`, ann, cat)
	check("block")
	exec(`UPDATE users SET name = 'Catherine' WHERE id = $1`, cat)
	check("rename")
	exec(`DELETE FROM conversation_participants WHERE conversation_id = $1 AND user_id = $2`, withBob, ann)
	check("ann leaves")
	quiet("a message where ann left", func() { send(bob, withBob, "ann is gone") })
	exec(`DELETE FROM messages WHERE conversation_id = $1`, withCat)
	check("messages deleted")
	other := conv(bob, cat)
	quiet("a new conversation without ann", func() { send(bob, other, "hi") })
	exec(`INSERT INTO conversation_participants (conversation_id, user_id) VALUES ($1, $2)`, other, ann)
	check("ann added to a conversation with messages")
}
