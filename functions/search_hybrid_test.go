package functions_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/functions"
)

func TestSearchIsHybridWithARelevanceFloor(t *testing.T) {
	t.Parallel()
	b := setup(t, &setupOpts{})
	ann, bob, cat := b.user(t, "ann"), b.user(t, "bob"), b.user(t, "cat")
	conv := b.direct(t, ann, bob, "bob")
	other := b.direct(t, ann, cat, "cat")
	bodies := []string{
		"The maths exam is on Friday, revise chapter four",
		"Can you bring the football to practice tomorrow?",
		"Lunch at the cafeteria was pizza again",
		"My history essays are finally done",
		"see you at the lab",
	}
	for i, body := range bodies {
		who := ann
		if i%2 == 1 {
			who = bob
		}
		b.send(t, who, conv, body)
	}
	b.send(t, ann, other, "The maths exam is on Friday, revise chapter four")
	ctx := context.Background()
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM message_embeddings").Scan(&n))
		return n == len(bodies)+1
	}, 30*time.Second, 50*time.Millisecond)

	search := func(query string) []string {
		t.Helper()
		var hits []functions.SearchHit
		require.NoError(t, b.call(t, bob, "messages:search", map[string]any{"conversationId": conv, "query": query}, &hits))
		out := make([]string, len(hits))
		for i, h := range hits {
			out[i] = h.Body
		}
		return out
	}
	// Below the floor nothing comes back, not the ten least unlike messages.
	require.Empty(t, search("zebra quantum"))
	require.Empty(t, search("xylophone"))
	// What matches, and only that, best first.
	require.Equal(t, []string{bodies[0]}, search("math exam"))
	require.Equal(t, bodies[1], search("football practice")[0])
	// Full text brings in what stemming matches ("essay" finds "essays"); both lists agree here.
	require.Equal(t, bodies[3], search("essay")[0])
	// A stop word alone finds nothing by text, and nothing near enough by meaning.
	require.Empty(t, search("the"))
	// Whatever the text, it is words to look for, never tsquery syntax.
	for _, q := range []string{"it's & | ! ( ) : * 'quoted'", "O'Brien's essay", "' & '", "a' | 'b", `\' & !`, "🙂 émoji café"} {
		var hits []functions.SearchHit
		require.NoError(t, b.call(t, bob, "messages:search", map[string]any{"conversationId": conv, "query": q}, &hits), q)
	}
	require.Equal(t, bodies[3], search("O'Brien's essay")[0])
	// Membership first: cat is not in the conversation.
	requireCode(t, b.call(t, cat, "messages:search", map[string]any{"conversationId": conv, "query": "maths"}, nil), engine.CodeForbidden)
}
