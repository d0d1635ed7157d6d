package engine_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/internal/testdb"
)

// One deployment, one change feed: a logical process cannot start while a NOTIFY process is
// connected; once it has gone, the logical one switches the database over (capture triggers
// dropped, the publication made), and writes from another connection, as psql or another
// service would make them, keep subscriptions live. Switching back restores the triggers.
func TestChangeFeedSwitch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.NewSchemaAt(t, logicalPG.Get(t).URL())
	triggers := func() int {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
			WHERE c.relnamespace = current_schema()::regnamespace AND t.tgname LIKE 'ripple_capture_%'`).Scan(&n))
		return n
	}
	published := func() int {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_publication_tables WHERE pubname = ripple_change_feed_publication()`).Scan(&n))
		return n
	}
	require.Positive(t, triggers())

	notify := setupOn(t, db)
	reg := engine.NewRegistry()
	refused, err := engine.New(testdb.NewPoolFor(t, db), reg, &engine.Config{Schema: db.Schema, DisableJobs: true, ChangeFeed: engine.ChangeFeedLogical})
	require.NoError(t, err)
	err = refused.Start(ctx)
	require.ErrorIs(t, err, engine.ErrChangeFeedMismatch)
	require.NoError(t, refused.Stop(ctx))
	require.Positive(t, triggers(), "a refused start changed the database")
	require.NoError(t, notify.engine.Stop(ctx))

	logical := setupWith(t, &testdb.Bundle{Pool: testdb.NewPoolFor(t, db), Schema: db.Schema, URL: db.URL},
		func(c *engine.Config) { c.ChangeFeed = engine.ChangeFeedLogical })
	require.Zero(t, triggers(), "capture triggers left on the write path")
	require.Positive(t, published())
	conv := logical.newConversation(t)
	c := dial(t, logical)
	c.subscribe(1, "messages:count", map[string]any{"conversationId": conv})
	c.settle()
	other := testdb.NewPoolFor(t, db)
	_, err = other.Exec(ctx, "INSERT INTO messages (sender_id, conversation_id, body) VALUES ($1, $2, 'from psql')", logical.senderID, mustInt(conv))
	require.NoError(t, err)
	c.waitFor(func() bool { return c.values[1] == float64(1) })

	// And back, once the logical process has gone.
	require.NoError(t, logical.engine.Stop(ctx))
	back := setupOn(t, &testdb.Bundle{Pool: testdb.NewPoolFor(t, db), Schema: db.Schema, URL: db.URL})
	require.Positive(t, triggers())
	require.Zero(t, published())
	c2 := dial(t, back)
	c2.subscribe(1, "messages:count", map[string]any{"conversationId": conv})
	c2.settle()
	_, err = other.Exec(ctx, "INSERT INTO messages (sender_id, conversation_id, body) VALUES ($1, $2, 'again')", back.senderID, mustInt(conv))
	require.NoError(t, err)
	c2.waitFor(func() bool { return c2.values[1] == float64(2) })
}
