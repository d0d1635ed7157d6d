package changefeed_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/engine/internal/changefeed"
	"github.com/ripplehq/ripple/internal/testdb"
)

// feed is what both feeds offer a test.
type feed interface {
	Start(ctx context.Context) error
	Stop()
	Events() <-chan changefeed.Event
	Mark(marker string)
}

// feedSchema makes a migrated schema on the logical server with two tables of its own covering
// the captured kinds (integers, text, booleans, timestamps; keys and ordered columns; a table
// whose primary key holds every captured column), set up for mode, and starts that mode's feed.
func feedSchema(t *testing.T, mode string) (*testdb.Bundle, feed) {
	t.Helper()
	ctx := context.Background()
	db := testdb.NewSchemaAt(t, logicalPG.Get(t).URL())
	for _, stmt := range []string{
		`CREATE TABLE feed_items (id bigint PRIMARY KEY, grp int NOT NULL, flag boolean, label text,
			at timestamptz NOT NULL, body text NOT NULL)`,
		`CREATE INDEX feed_items_grp_at ON feed_items (grp, at, id)`,
		`CREATE INDEX feed_items_flag ON feed_items (flag)`,
		`CREATE INDEX feed_items_label ON feed_items (label)`,
		`CREATE TABLE feed_tags (name text PRIMARY KEY, note text)`,
		`UPDATE ripple_change_feed SET mode = '` + mode + `'`,
		`SELECT ripple_capture_install_all()`,
	} {
		_, err := db.Pool.Exec(ctx, stmt)
		require.NoError(t, err, stmt)
	}
	conn := db.Pool.Config().ConnConfig
	var f feed
	if mode == changefeed.ModeLogical {
		f = changefeed.NewLogical(changefeed.LogicalConfig{ConnConfig: conn, Schema: db.Schema})
	} else {
		f = changefeed.New(changefeed.Config{ConnConfig: conn, Schema: db.Schema})
	}
	require.NoError(t, f.Start(ctx))
	t.Cleanup(f.Stop)
	return db, f
}

// writes are transactions of one or more statements, the same for both feeds.
var feedWrites = [][]string{
	{`INSERT INTO feed_items VALUES
		(1, 10, true, 'a', '2026-01-02 03:04:05.123456+00', 'x'),
		(2, 10, false, NULL, 'infinity', 'y'),
		(3, 11, NULL, 'b', '1999-12-31 23:59:59.999999+05', 'z'),
		(4, 11, true, 'c''d', '0044-03-15 12:00:00+00 BC', 'w')`},
	{`UPDATE feed_items SET body = body || '!' WHERE id = 1`}, // no captured column changes
	{`UPDATE feed_items SET grp = 12, at = at + interval '1 second' WHERE grp = 10`},
	{`UPDATE feed_items SET id = 100 WHERE id = 3`},
	{`DELETE FROM feed_items WHERE id = 2`},
	{`INSERT INTO feed_items SELECT g, 20 + g % 3, g % 2 = 0, 'l' || g, '2026-03-01'::timestamptz + g * interval '1 minute', 'b' FROM generate_series(1000, 1059) g`},
	{`UPDATE feed_items SET flag = NOT flag WHERE id BETWEEN 1000 AND 1004`,
		`INSERT INTO feed_tags VALUES ('red', 'n')`,
		`UPDATE feed_items SET label = 'e' WHERE id = 1`},
	{`INSERT INTO feed_items VALUES (5, 30, NULL, NULL, '2026-12-07 00:30:00.5+01', repeat(md5('a'), 400))`},
	{`UPDATE feed_items SET grp = 31 WHERE id = 5`}, // the TOASTed body is unchanged
	{`UPDATE feed_tags SET name = 'blue' WHERE name = 'red'`},
	{`UPDATE feed_tags SET note = 'm'`},
	{`DELETE FROM feed_tags`},
	{`TRUNCATE feed_items`},
}

// run applies the writes, then a marker, and returns each transaction's xid and the changes the
// feed delivered before the marker.
func runWrites(t *testing.T, db *testdb.Bundle, f feed) ([]uint64, []changefeed.Change) {
	t.Helper()
	ctx := context.Background()
	var xids []uint64
	for _, stmts := range feedWrites {
		err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			for _, s := range stmts {
				if _, err := tx.Exec(ctx, s); err != nil {
					return fmt.Errorf("%s: %w", s, err)
				}
			}
			var xid uint64
			if err := tx.QueryRow(ctx, "SELECT pg_current_xact_id()::text::bigint").Scan(&xid); err != nil {
				return err
			}
			xids = append(xids, xid)
			return nil
		})
		require.NoError(t, err)
	}
	f.Mark("end")
	var changes []changefeed.Change
	timeout := time.After(time.Minute) // liveness only
	for {
		select {
		case ev := <-f.Events():
			switch ev.Kind {
			case changefeed.EventChange:
				changes = append(changes, ev.Change)
			case changefeed.EventMarker:
				if ev.Marker == "end" {
					return xids, changes
				}
			case changefeed.EventReset:
				t.Fatal("the feed reset")
			}
		case <-timeout:
			t.Fatal("the marker did not arrive")
		}
	}
}

// describe renders a change without its xid and arrival, key values sorted (the trigger lists
// distinct keys in text order, the logical feed in row order), and says which write it came from.
func describe(c changefeed.Change, xids []uint64) string {
	w := slices.Index(xids, c.Xid)
	var keys []string
	for col, vals := range c.Keys {
		vals = slices.Clone(vals)
		slices.Sort(vals)
		keys = append(keys, col+"="+strings.Join(vals, ","))
	}
	slices.Sort(keys)
	var rows []string
	for _, r := range c.Rows {
		var vals []string
		for _, v := range r {
			if v == nil {
				vals = append(vals, "NULL")
			} else {
				vals = append(vals, *v)
			}
		}
		rows = append(rows, "("+strings.Join(vals, ",")+")")
	}
	return fmt.Sprintf("write %d %s all=%v keys=%v columns=%v rows=%v", w, c.Table, c.All, keys, c.Columns, rows)
}

// The same writes give the same Changes through the NOTIFY listener (capture triggers) and the
// logical feed (pgoutput), xids included.
func TestLogicalFeedMatchesTriggers(t *testing.T) {
	t.Parallel()
	notifyDB, notify := feedSchema(t, changefeed.ModeNotify)
	logicalDB, logical := feedSchema(t, changefeed.ModeLogical)
	var identity string
	require.NoError(t, logicalDB.Pool.QueryRow(context.Background(),
		"SELECT string_agg(relname || '=' || relreplident::text, ' ' ORDER BY relname) FROM pg_class WHERE relname IN ('feed_items', 'feed_tags') AND relnamespace = current_schema()::regnamespace").Scan(&identity))
	require.Equal(t, "feed_items=f feed_tags=d", identity, "replica identity FULL only where the key does not hold the captured columns")

	nx, nc := runWrites(t, notifyDB, notify)
	lx, lc := runWrites(t, logicalDB, logical)
	var want, got []string
	for _, c := range nc {
		require.Contains(t, nx, c.Xid, "a trigger's change has an unknown xid")
		want = append(want, describe(c, nx))
	}
	for _, c := range lc {
		require.Contains(t, lx, c.Xid, "a logical change has an unknown xid (widened wrongly?)")
		got = append(got, describe(c, lx))
	}
	require.Equal(t, want, got)
	require.Greater(t, len(want), len(feedWrites), "too few changes to compare")
	t.Logf("%d changes compared", len(want))
}
