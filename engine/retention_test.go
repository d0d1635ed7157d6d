package engine

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/engine/internal/dbsqlc"
	"github.com/ripplehq/ripple/internal/testdb"
)

// One housekeeping prune deletes every outcome older than MutationLogRetention, in statements
// of at most HousekeepingBatchSize rows, and keeps the newer ones.
func TestRetentionMutationLogPrunedInBatches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.NewSchema(t)
	e, err := New(db.Pool, NewRegistry(), &Config{Schema: db.Schema, MutationLogRetention: time.Hour, HousekeepingBatchSize: 2})
	require.NoError(t, err)

	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	insert := func(session string, at time.Time) {
		_, err := db.Pool.Exec(ctx, `INSERT INTO ripple_mutation_log (session_id, request_id, success, created_at)
			VALUES ($1, 1, true, $2)`, session, at)
		require.NoError(t, err)
	}
	for _, s := range []string{"old1", "old2", "old3", "old4", "old5"} {
		insert(s, now.Add(-2*time.Hour))
	}
	insert("edge", now.Add(-time.Hour+time.Second))
	insert("new", now)
	sessions := func() []string {
		rows, err := db.Pool.Query(ctx, "SELECT session_id FROM ripple_mutation_log ORDER BY 1")
		require.NoError(t, err)
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return got
	}

	// One statement deletes no more than its batch.
	n, err := dbsqlc.New().MutationLogPrune(ctx, db.Pool, dbsqlc.MutationLogPruneParams{
		CreatedBefore: pgtype.Timestamptz{Time: now.Add(-time.Hour), Valid: true}, BatchSize: 2})
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
	require.Len(t, sessions(), 5)

	// One run deletes the rest of the old ones, batch after batch.
	n, err = e.pruneMutationLog(ctx, now)
	require.NoError(t, err)
	require.EqualValues(t, 3, n)
	require.Equal(t, []string{"edge", "new"}, sessions())

	n, err = e.pruneMutationLog(ctx, now)
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestRetentionConfig(t *testing.T) {
	t.Parallel()
	c := (&Config{}).WithDefaults()
	require.Equal(t, 24*time.Hour, c.MutationLogRetention)
	require.Equal(t, 1000, c.HousekeepingBatchSize)
	require.Equal(t, 24*time.Hour, c.CompletedJobRetention)
	require.Equal(t, 24*time.Hour, c.CancelledJobRetention)
	require.Equal(t, 7*24*time.Hour, c.DiscardedJobRetention)
	require.NoError(t, (&Config{CompletedJobRetention: -1}).WithDefaults().validate())
	for _, bad := range []*Config{{HousekeepingBatchSize: -1}, {MutationLogRetention: -time.Hour}, {DiscardedJobRetention: -2}} {
		require.Error(t, bad.WithDefaults().validate())
	}
}
