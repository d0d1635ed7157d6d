package engine_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/internal/testdb"
)

const sqlQueueCount = `-- name: TestQueueCount :one
SELECT count(*) FROM message_embedding_queue`

// Registry.DoNotCapture takes a table's capture triggers away at Start (and a later Start
// without it gives them back); a query reading that table fails instead of going stale.
func TestDoNotCaptureSkipsTheTable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.NewSchema(t)
	triggers := func(table string) int {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*) FROM pg_trigger WHERE tgrelid = $1::regclass AND tgname LIKE 'ripple_capture%'", table).Scan(&n))
		return n
	}
	start := func(uncaptured ...string) *engine.Engine {
		reg := engine.NewRegistry()
		registerTestFunctions(reg, 0)
		reg.AddReadSpecs(map[string]engine.ReadSpec{"TestQueueCount": {Tables: []engine.TableRead{{Table: "message_embedding_queue", Kind: engine.ReadTable}}}})
		engine.AddQuery(reg, "queue:count", func(ctx *engine.QueryCtx, _ struct{}) (int64, error) {
			var n int64
			err := ctx.DB().QueryRow(ctx, sqlQueueCount).Scan(&n)
			return n, err
		}, nil)
		reg.DoNotCapture(uncaptured...)
		e, err := engine.New(db.Pool, reg, &engine.Config{Schema: db.Schema, DisableJobs: true})
		require.NoError(t, err)
		require.NoError(t, e.Start(ctx))
		return e
	}

	require.Equal(t, 4, triggers("message_embedding_queue"))
	e := start("message_embedding_queue")
	require.Equal(t, 0, triggers("message_embedding_queue"))
	require.Equal(t, 4, triggers("messages"), "other tables keep their capture")
	var n int64
	err := e.Call(ctx, "queue:count", struct{}{}, engine.Identity{}, &n)
	require.Error(t, err, "a query reading an uncaptured table must fail, not go stale")
	require.NoError(t, e.Call(ctx, "messages:total", struct{}{}, engine.Identity{}, &n))
	require.NoError(t, e.Stop(ctx))

	e = start()
	defer func() { require.NoError(t, e.Stop(ctx)) }()
	require.Equal(t, 4, triggers("message_embedding_queue"), "capture comes back once no one skips the table")
	require.NoError(t, e.Call(ctx, "queue:count", struct{}{}, engine.Identity{}, &n))
}
