package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/engine"
)

// sharedMember is a signed-in user with a socket of their own.
type sharedMember struct {
	id       int64
	identity engine.Identity
	c        *syncClient
}

func sharedMembers(t *testing.T, b *authBundle, n int) []sharedMember {
	t.Helper()
	members := make([]sharedMember, n)
	for i := range members {
		resp := signUp(t, b.server.URL, fmt.Sprintf("shared%d-%d@example.com", i, time.Now().UnixNano()), "correct horse battery staple", fmt.Sprintf("User %d", i))
		c := dial(t, b.testBundle)
		c.Authenticate("User", resp.AccessToken, 0, nil)
		members[i] = sharedMember{id: mustInt(resp.User.ID), identity: engine.Identity{UserID: resp.User.ID}, c: c}
	}
	return members
}

func setMember(t *testing.T, b *authBundle, conv string, user int64, in bool) {
	t.Helper()
	sql := "DELETE FROM conversation_participants WHERE conversation_id = $1 AND user_id = $2"
	if in {
		sql = "INSERT INTO conversation_participants (conversation_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
	}
	_, err := b.db.Pool.Exec(context.Background(), sql, mustInt(conv), user)
	require.NoError(t, err)
}

// requireFreshAs checks that what a client holds for a query equals a fresh run as identity:
// the same value, or the same refusal.
func requireFreshAs(t *testing.T, b *testBundle, c *syncClient, qid int64, identity engine.Identity, path string, args any) {
	t.Helper()
	var fresh any
	err := b.engine.Call(context.Background(), path, args, identity, &fresh)
	if err != nil {
		var ue *engine.Error
		require.True(t, errors.As(err, &ue), "%v", err)
		got, _ := c.Values[qid].(map[string]any)
		require.Equal(t, ue.Message, got["error"], "%s %+v as %s: held %v", path, args, identity.UserID, c.Values[qid])
		return
	}
	requireJSONEqual(t, fresh, c.Values[qid], "%s %+v as %s", path, args, identity.UserID)
}

// Members come and go while messages arrive: every subscriber of the shared query holds, after
// quiescence, exactly what a fresh run as them gives (the messages, or FORBIDDEN once removed).
func TestNoMissedUpdateRandomizedShared(t *testing.T) {
	t.Parallel()
	noMissedUpdateShared(t, setupAuth(t, nil))
}

// The same with every batch holding back its clients as if their queries were slow (fork.go).
func TestNoMissedUpdateRandomizedSharedHeldBack(t *testing.T) {
	t.Parallel()
	b := setupAuthWith(t, nil, &engine.AuthConfig{}, func(c *engine.Config) { c.SlowQueryAfter = time.Nanosecond })
	noMissedUpdateShared(t, b)
	require.NotZero(t, b.engine.Stats().HeldBack, "no batch held back its clients")
}

func noMissedUpdateShared(t *testing.T, b *authBundle) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 6))
	members := sharedMembers(t, b, 4)
	convs := make([]string, 3)
	for i := range convs {
		convs[i] = b.newConversation(t)
		for _, m := range members {
			setMember(t, b, convs[i], m.id, rng.IntN(2) == 0)
		}
	}
	var clients []*syncClient
	for _, m := range members {
		for i, conv := range convs {
			m.c.Subscribe(int64(i+1), "shared:messages", map[string]any{"conversationId": conv})
		}
		clients = append(clients, m.c)
	}
	settleAll(clients)
	before := b.engine.Stats()

	for i := range 200 {
		conv := convs[rng.IntN(len(convs))]
		switch op := rng.IntN(10); {
		case op < 4:
			_, err := b.db.Pool.Exec(ctx, "INSERT INTO messages (sender_id, conversation_id, body) VALUES ($1, $2, $3)", b.senderID, mustInt(conv), fmt.Sprintf("m%d", i))
			require.NoError(t, err)
		case op < 6: // a member added (access granted mid-stream)
			setMember(t, b, conv, members[rng.IntN(len(members))].id, true)
		case op < 8: // a member removed (access revoked mid-stream)
			setMember(t, b, conv, members[rng.IntN(len(members))].id, false)
		case op < 9:
			_, err := b.db.Pool.Exec(ctx, "UPDATE messages SET body = body || '!' WHERE id = (SELECT id FROM messages WHERE conversation_id = $1 ORDER BY random() LIMIT 1)", mustInt(conv))
			require.NoError(t, err)
		default:
			_, err := b.db.Pool.Exec(ctx, "DELETE FROM messages WHERE id = (SELECT id FROM messages WHERE conversation_id = $1 ORDER BY random() LIMIT 1)", mustInt(conv))
			require.NoError(t, err)
		}
	}
	settleAll(clients)
	for _, m := range members {
		for i, conv := range convs {
			requireFreshAs(t, b.testBundle, m.c, int64(i+1), m.identity, "shared:messages", map[string]any{"conversationId": conv})
		}
	}
	after := b.engine.Stats()
	t.Logf("subscriptions=%d executions=%d reruns=%d changed=%d", len(members)*len(convs),
		after.Executions-before.Executions, after.Reruns-before.Reruns, after.ChangedReruns-before.ChangedReruns)
}

// A new message re-runs a shared query's result once for all its subscribers, and no member's
// access check; a removed member's access is checked again and they lose the result in the same
// transition that shows it to no one else.
func TestSharedQueryRunsOncePerChange(t *testing.T) {
	t.Parallel()
	b := setupAuth(t, nil)
	ctx := context.Background()
	members := sharedMembers(t, b, 3)
	conv := b.newConversation(t)
	args := map[string]any{"conversationId": conv}
	var clients []*syncClient
	for _, m := range members {
		setMember(t, b, conv, m.id, true)
		m.c.Subscribe(1, "shared:messages", args)
		clients = append(clients, m.c)
	}
	settleAll(clients)
	hasMessages := func(c *syncClient, n int) func() bool {
		return func() bool { list, ok := c.Values[1].([]any); return ok && len(list) == n }
	}

	before := b.engine.Stats()
	_, err := b.db.Pool.Exec(ctx, "INSERT INTO messages (sender_id, conversation_id, body) VALUES ($1, $2, 'hello')", b.senderID, mustInt(conv))
	require.NoError(t, err)
	for _, c := range clients {
		c.WaitFor(hasMessages(c, 1))
	}
	after := b.engine.Stats()
	require.Equal(t, int64(1), after.Executions-before.Executions, "one run of the result for three subscribers, no access check")
	require.Equal(t, int64(3), after.Reruns-before.Reruns)

	setMember(t, b, conv, members[2].id, false)
	members[2].c.WaitFor(func() bool {
		v, ok := members[2].c.Values[1].(map[string]any)
		return ok && v["error"] == "not a participant"
	})
	settleAll(clients)
	for _, m := range members {
		requireFreshAs(t, b.testBundle, m.c, 1, m.identity, "shared:messages", args)
	}

	// An anonymous caller is refused by the access check, over HTTP too.
	var out any
	err = b.engine.Call(ctx, "shared:messages", args, engine.Identity{}, &out)
	var ue *engine.Error
	require.ErrorAs(t, err, &ue)
	require.Equal(t, engine.CodeUnauthenticated, ue.Code)
}

func requireJSONEqual(t *testing.T, want, got any, msgAndArgs ...any) {
	t.Helper()
	w, _ := json.Marshal(want)
	g, _ := json.Marshal(got)
	require.JSONEq(t, string(w), string(g), msgAndArgs...)
}
