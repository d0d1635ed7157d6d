package functions_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/functions"
)

func (b *testBundle) send(t *testing.T, who engine.Identity, conv, body string) string {
	t.Helper()
	var id string
	require.NoError(t, b.call(t, who, "messages:send", map[string]any{"conversationId": conv, "body": body}, &id))
	return id
}

func (b *testBundle) conversation(t *testing.T, who engine.Identity, id string) functions.Conversation {
	t.Helper()
	var list []functions.Conversation
	require.NoError(t, b.call(t, who, "conversations:list", map[string]any{}, &list))
	for _, c := range list {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("conversation %s not in the list", id)
	return functions.Conversation{}
}

func TestReadStateUnreadCountsAndMarkRead(t *testing.T) {
	t.Parallel()
	b := setup(t, &setupOpts{})
	ann, bob, cat := b.user(t, "ann"), b.user(t, "bob"), b.user(t, "cat")
	withBob := b.direct(t, ann, bob, "bob")
	withCat := b.direct(t, ann, cat, "cat")

	// Nothing read yet: what the others sent is unread, what you sent is not.
	b.send(t, ann, withBob, "hi bob")
	var bobs []string
	for i := range 3 {
		bobs = append(bobs, b.send(t, bob, withBob, fmt.Sprintf("b%d", i)))
	}
	catMsg := b.send(t, cat, withCat, "hello from cat")
	require.Equal(t, 3, b.conversation(t, ann, withBob).UnreadCount)
	require.Nil(t, b.conversation(t, ann, withBob).LastReadMessageID)
	require.Equal(t, 1, b.conversation(t, ann, withCat).UnreadCount)
	require.Equal(t, 1, b.conversation(t, bob, withBob).UnreadCount, "bob has read nothing: ann's one message")

	mark := func(who engine.Identity, conv, msg string) (bool, error) {
		var moved bool
		err := b.call(t, who, "conversations:markRead", map[string]any{"conversationId": conv, "messageId": msg}, &moved)
		return moved, err
	}

	// Reading up to the second of bob's messages leaves one unread.
	moved, err := mark(ann, withBob, bobs[1])
	require.NoError(t, err)
	require.True(t, moved)
	require.Equal(t, 1, b.conversation(t, ann, withBob).UnreadCount)
	require.Equal(t, bobs[1], *b.conversation(t, ann, withBob).LastReadMessageID)

	// Never backwards: an older message leaves the position where it is; the same one writes
	// nothing.
	moved, err = mark(ann, withBob, bobs[0])
	require.NoError(t, err)
	require.False(t, moved)
	moved, err = mark(ann, withBob, bobs[1])
	require.NoError(t, err)
	require.False(t, moved)
	require.Equal(t, 1, b.conversation(t, ann, withBob).UnreadCount)

	// Bounds: a message of another conversation, one that does not exist, a bad ID.
	_, err = mark(ann, withBob, catMsg)
	requireCode(t, err, engine.CodeInvalidArgument)
	_, err = mark(ann, withBob, "99999999")
	requireCode(t, err, engine.CodeInvalidArgument)
	_, err = mark(ann, withBob, "x")
	requireCode(t, err, engine.CodeInvalidArgument)
	// Identity and membership first: cat is not in ann+bob's conversation.
	_, err = mark(engine.Identity{}, withBob, bobs[2])
	requireCode(t, err, engine.CodeUnauthenticated)
	_, err = mark(cat, withBob, bobs[2])
	requireCode(t, err, engine.CodeForbidden)
	_, err = mark(cat, "99999999", bobs[2])
	requireCode(t, err, engine.CodeForbidden)

	// Reading the newest clears it; cat's conversation is untouched; a new message counts again.
	_, err = mark(ann, withBob, bobs[2])
	require.NoError(t, err)
	require.Equal(t, 0, b.conversation(t, ann, withBob).UnreadCount)
	require.Equal(t, 1, b.conversation(t, ann, withCat).UnreadCount)
	b.send(t, bob, withBob, "one more")
	require.Equal(t, 1, b.conversation(t, ann, withBob).UnreadCount)

	// The count stops at 100.
	for i := range 105 {
		b.send(t, cat, withCat, fmt.Sprintf("c%d", i))
	}
	require.Equal(t, 100, b.conversation(t, ann, withCat).UnreadCount)

	var stored int64
	require.NoError(t, b.db.Pool.QueryRow(context.Background(),
		"SELECT last_read_message_id FROM conversation_read_states WHERE conversation_id = $1 AND user_id = $2",
		withBob, ann.UserID).Scan(&stored))
	require.Equal(t, bobs[2], fmt.Sprint(stored))
}

func TestBlockStopsConversationsBothWays(t *testing.T) {
	t.Parallel()
	b := setup(t, &setupOpts{})
	ann, bob, cat := b.user(t, "ann"), b.user(t, "bob"), b.user(t, "cat")
	withBob := b.direct(t, ann, bob, "bob")
	b.send(t, bob, withBob, "hi ann")

	block := func(who engine.Identity, path, userID string) error {
		return b.call(t, who, path, map[string]any{"userId": userID}, nil)
	}
	reason := func(err error) any {
		e, ok := engine.AsError(err)
		require.True(t, ok, "%v", err)
		return e.Data["reason"]
	}

	// Identity first; yourself; someone you have no conversation with (cat) cannot be blocked.
	requireCode(t, block(engine.Identity{}, "users:block", bob.UserID), engine.CodeUnauthenticated)
	requireCode(t, block(ann, "users:block", ann.UserID), engine.CodeInvalidArgument)
	requireCode(t, block(ann, "users:block", cat.UserID), engine.CodeForbidden)
	requireCode(t, block(ann, "users:block", "nope"), engine.CodeInvalidArgument)

	// Ann blocks Bob (twice is once).
	require.NoError(t, block(ann, "users:block", bob.UserID))
	require.NoError(t, block(ann, "users:block", bob.UserID))
	require.Equal(t, []string{bob.UserID}, b.conversation(t, ann, withBob).BlockedByMe)
	require.Empty(t, b.conversation(t, bob, withBob).BlockedByMe, "bob is not told")

	// Bob can no longer send to Ann, nor start a conversation with her again.
	err := b.call(t, bob, "messages:send", map[string]any{"conversationId": withBob, "body": "are you there?"}, nil)
	requireCode(t, err, engine.CodeForbidden)
	require.Equal(t, "blocked_by_them", reason(err))
	err = b.call(t, bob, "conversations:getOrCreateDirect", map[string]any{"email": "ann@school.test"}, nil)
	requireCode(t, err, engine.CodeForbidden)
	require.Equal(t, "blocked_by_them", reason(err))
	// Ann cannot send either until she unblocks.
	err = b.call(t, ann, "messages:send", map[string]any{"conversationId": withBob, "body": "bye"}, nil)
	requireCode(t, err, engine.CodeForbidden)
	require.Equal(t, "blocked_by_you", reason(err))
	var n int
	require.NoError(t, b.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM messages").Scan(&n))
	require.Equal(t, 1, n, "no message got through")

	// Others are unaffected: cat can still talk to both.
	withCat := b.direct(t, cat, ann, "ann")
	b.send(t, cat, withCat, "hi")

	// Unblocking restores it.
	require.NoError(t, block(ann, "users:unblock", bob.UserID))
	require.Empty(t, b.conversation(t, ann, withBob).BlockedByMe)
	b.send(t, bob, withBob, "back again")
	var again string
	require.NoError(t, b.call(t, bob, "conversations:getOrCreateDirect", map[string]any{"email": "ann@school.test"}, &again))
	require.Equal(t, withBob, again)
}

func TestErrorsCarryReasons(t *testing.T) {
	t.Parallel()
	b := setup(t, &setupOpts{})
	ann, bob := b.user(t, "ann"), b.user(t, "bob")
	withBob := b.direct(t, ann, bob, "bob")
	for _, c := range []struct {
		path   string
		args   map[string]any
		code   engine.ErrorCode
		reason string
	}{
		{"conversations:getOrCreateDirect", map[string]any{"email": "nobody@school.test"}, engine.CodeNotFound, "unknown_email"},
		{"conversations:getOrCreateDirect", map[string]any{"email": "ann@school.test"}, engine.CodeInvalidArgument, "self"},
		{"conversations:getOrCreateDirect", map[string]any{"email": "not an email"}, engine.CodeInvalidArgument, "bad_email"},
		{"messages:send", map[string]any{"conversationId": withBob, "body": strings.Repeat("é", 4001)}, engine.CodeInvalidArgument, "too_long"},
	} {
		err := b.call(t, ann, c.path, c.args, nil)
		requireCode(t, err, c.code)
		e, _ := engine.AsError(err)
		require.Equal(t, c.reason, e.Data["reason"], c.path)
	}
}
