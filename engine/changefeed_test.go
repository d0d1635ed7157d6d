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

// A slot that no process streams from (left by hand, or by a tool) is listed with the WAL it is
// behind, and dropped only when asked; a name that is not a Ripple slot is refused.
func TestSlotsListAndDrop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.NewSchemaAt(t, logicalPG.Get(t).URL())
	name := "ripple_" + db.Schema + "_left"
	_, err := db.Pool.Exec(ctx, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", name)
	require.NoError(t, err)
	find := func() *engine.Slot {
		slots, err := engine.Slots(ctx, db.Pool)
		require.NoError(t, err)
		for _, s := range slots {
			if s.Name == name {
				return &s
			}
		}
		return nil
	}
	_, err = db.Pool.Exec(ctx, "INSERT INTO users (name, email) VALUES ('wal', gen_random_uuid()||'@example.com')")
	require.NoError(t, err)
	s := find()
	require.NotNil(t, s)
	require.False(t, s.Active)
	require.Positive(t, s.BehindBytes, "a slot nobody reads falls behind every write")
	require.ErrorIs(t, engine.DropSlot(ctx, db.Pool, name+"_not"), engine.ErrNoSuchSlot)
	require.NotNil(t, find(), "a refused drop dropped something")
	require.NoError(t, engine.DropSlot(ctx, db.Pool, name))
	require.Nil(t, find())
}
