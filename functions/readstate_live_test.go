package functions_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/internal/synctest"
)

// listEntry is a conversation's entry in a conversations:list value, or nil.
func listEntry(v any, conv string) map[string]any {
	list, _ := v.([]any)
	for _, raw := range list {
		if e, _ := raw.(map[string]any); e != nil && e["_id"] == conv {
			return e
		}
	}
	return nil
}

// unreadIn is a conversation's unread count in a client's conversations:list (query 1), or -1
// when the conversation is not listed.
func unreadIn(c *synctest.Client, conv string) int {
	e := listEntry(c.Values[1], conv)
	if e == nil {
		return -1
	}
	return int(e["unreadCount"].(float64))
}

// In a group whose members all have conversations:list open, a member marking a message read
// re-runs that member's list only: the read position is keyed by the reader, and the other
// members' lists read positions by their own keys. The reader's unread count still goes to 0
// live, and every other member's stays as it was; the reader's open thread is not re-checked
// (its access check reads the participant row, which a read mark no longer writes). Members reading one after another re-run one
// list each, not one per member each (the M² a position on the participant rows cost).
func TestMarkReadReRunsOnlyTheReadersList(t *testing.T) {
	t.Parallel()
	const n = 6
	b := setupLive(t, liveOpts{})
	members := createMembers(t, b.testBundle, "reader", n)
	others := make([]string, 0, n-1)
	for i := 2; i <= n; i++ {
		others = append(others, fmt.Sprint("reader", i))
	}
	conv := b.group(t, members[0], "readers", others...)
	var clients []*synctest.Client
	for _, m := range members {
		c := b.dialAs(t, m)
		c.Subscribe(1, "conversations:list", map[string]any{})
		c.Subscribe(2, "messages:list", firstPage(conv)) // the thread open, as where the app marks read
		clients = append(clients, c)
	}
	for _, c := range clients {
		c.WaitFor(func() bool { return listEntry(c.Values[1], conv) != nil && len(pageBodies(c.Values[2])) == 1 })
	}

	sender := 1
	msg := b.send(t, members[sender], conv, "hello readers")
	for i, c := range clients {
		c.WaitFor(func() bool {
			last, _ := listEntry(c.Values[1], conv)["lastMessage"].(map[string]any)
			return last != nil && last["body"] == "hello readers"
		})
		want := 1
		if i == sender {
			want = 0
		}
		require.Equal(t, want, unreadIn(c, conv), "member %d before any read", i)
	}
	settleAll := func() {
		for _, c := range clients {
			c.Settle()
		}
	}
	settleAll()

	// One member reads.
	reader := 2
	positions := make([]any, n)
	for i, c := range clients {
		positions[i] = listEntry(c.Values[1], conv)["lastReadMessageId"]
	}
	require.NotEqual(t, msg, positions[reader], "the group's first line is where members start")
	before := b.engine.Stats()
	require.Empty(t, clients[reader].Call("conversations:markRead", map[string]any{"conversationId": conv, "messageId": msg}))
	clients[reader].WaitFor(func() bool { return unreadIn(clients[reader], conv) == 0 })
	settleAll()
	after := b.engine.Stats()
	require.Equal(t, int64(1), after.Reruns-before.Reruns, "the reader's list re-ran, no other member's")
	require.Equal(t, int64(1), after.Executions-before.Executions, "and no access check of the open thread")
	require.Equal(t, msg, listEntry(clients[reader].Values[1], conv)["lastReadMessageId"])
	for i, c := range clients {
		want := 1
		if i == sender || i == reader {
			want = 0
		}
		require.Equal(t, want, unreadIn(c, conv), "member %d after member %d read", i, reader)
		if i != reader {
			require.Equal(t, positions[i], listEntry(c.Values[1], conv)["lastReadMessageId"], "member %d", i)
		}
	}

	// Reading it again writes nothing and re-runs nothing.
	before = b.engine.Stats()
	require.Empty(t, clients[reader].Call("conversations:markRead", map[string]any{"conversationId": conv, "messageId": msg}))
	settleAll()
	require.Equal(t, before.Reruns, b.engine.Stats().Reruns, "a position already there re-runs no list")

	// The rest read, one after another: one re-run each.
	before = b.engine.Stats()
	readers := 0
	for i, c := range clients {
		if i == sender || i == reader {
			continue
		}
		require.Empty(t, c.Call("conversations:markRead", map[string]any{"conversationId": conv, "messageId": msg}))
		c.WaitFor(func() bool { return unreadIn(c, conv) == 0 })
		readers++
	}
	settleAll()
	after = b.engine.Stats()
	require.Equal(t, int64(readers), after.Reruns-before.Reruns, "one list per reader, not every member's per reader")
	for i, c := range clients {
		require.Equal(t, 0, unreadIn(c, conv), "member %d", i)
	}
}
