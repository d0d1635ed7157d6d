package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/internal/testdb"
	"github.com/ripplehq/ripple/schema"
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
	c.Subscribe(1, "messages:count", map[string]any{"conversationId": conv})
	c.Settle()
	other := testdb.NewPoolFor(t, db)
	_, err = other.Exec(ctx, "INSERT INTO messages (sender_id, conversation_id, body) VALUES ($1, $2, 'from psql')", logical.senderID, mustInt(conv))
	require.NoError(t, err)
	c.WaitFor(func() bool { return c.Values[1] == float64(1) })

	// And back, once the logical process has gone.
	require.NoError(t, logical.engine.Stop(ctx))
	back := setupOn(t, &testdb.Bundle{Pool: testdb.NewPoolFor(t, db), Schema: db.Schema, URL: db.URL})
	require.Positive(t, triggers())
	require.Zero(t, published())
	c2 := dial(t, back)
	c2.Subscribe(1, "messages:count", map[string]any{"conversationId": conv})
	c2.Settle()
	_, err = other.Exec(ctx, "INSERT INTO messages (sender_id, conversation_id, body) VALUES ($1, $2, 'again')", back.senderID, mustInt(conv))
	require.NoError(t, err)
	c2.WaitFor(func() bool { return c2.Values[1] == float64(2) })
}

// findSlot is the Ripple slot of that name, nil when there is none.
func findSlot(t *testing.T, pool *pgxpool.Pool, name string) *engine.Slot {
	t.Helper()
	slots, err := engine.Slots(context.Background(), pool)
	require.NoError(t, err)
	for _, s := range slots {
		if s.Name == name {
			return &s
		}
	}
	return nil
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
	find := func() *engine.Slot { return findSlot(t, db.Pool, name) }
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

// A live process whose feed stops consuming (its consumer stuck: the feed holds its events and
// stops reading the stream) lets its slot fall behind while WAL is written. Past
// Config.SlotBehindBytes, /readyz and /metrics say so, and Ripple keeps the slot: the late
// probe is put down to the backlog, not to a half-open connection. Once the consumer resumes,
// the same slot catches up and every change reaches the subscriber. Held again, the slot is
// dropped by command (engine.DropSlot, as `ripple slots drop` does): the process carries on
// with a new slot and re-runs everything, still without missing an update.
func TestSlotBehindIsReportedNotDropped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.NewSchemaAt(t, logicalPG.Get(t).URL())
	// The held stream sends no replies: without this, Postgres would end it after a minute of
	// silence (and the slot with it) on a slow machine.
	cfg, err := schema.PoolConfig(db.URL, db.Schema)
	require.NoError(t, err)
	cfg.ConnConfig.RuntimeParams["wal_sender_timeout"] = "0"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	const bound = 1 << 20
	b := setupWith(t, &testdb.Bundle{Pool: pool, Schema: db.Schema, URL: db.URL}, func(c *engine.Config) {
		c.ChangeFeed = engine.ChangeFeedLogical
		c.SlotBehindBytes = bound
	})
	conv := b.newConversation(t)
	c := dial(t, b)
	c.Subscribe(1, "messages:count", map[string]any{"conversationId": conv})
	c.Settle()

	sent := 0
	insert := func(n int) {
		t.Helper()
		for range n {
			_, err := db.Pool.Exec(ctx, "INSERT INTO messages (sender_id, conversation_id, body) VALUES ($1, $2, 'while held')", b.senderID, mustInt(conv))
			require.NoError(t, err)
			sent++
		}
	}
	// hold stops the feed's consumer, and writes WAL past the bound once the feed holds an event.
	hold := func() (release func()) {
		t.Helper()
		held, release := engine.HoldChangeFeed(b.engine)
		t.Cleanup(release)
		insert(1)
		select {
		case <-held:
		case <-time.After(time.Minute): // liveness only
			t.Fatal("the feed did not hold the insert's change")
		}
		insert(4)
		// Transactional: its commit flushes it, so the WAL position the slot is measured
		// against has passed it.
		_, err := db.Pool.Exec(ctx, "SELECT pg_logical_emit_message(true, 'ripple-test:ballast', repeat('x', $1::int))", 2*bound)
		require.NoError(t, err)
		return release
	}
	ripple := func(name string) *engine.Slot { return findSlot(t, db.Pool, name) }
	type feedState struct {
		Slot        string `json:"slot"`
		State       string `json:"state"`
		BehindBytes int64  `json:"behindBytes"`
	}
	type readyState struct {
		Listener   string    `json:"listener"`
		Gaps       int64     `json:"listenerGaps"`
		ChangeFeed feedState `json:"changeFeed"`
	}
	ready := func() (int, readyState) {
		t.Helper()
		resp, err := http.Get(b.server.URL + "/readyz")
		require.NoError(t, err)
		defer resp.Body.Close()
		var st readyState
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
		return resp.StatusCode, st
	}
	behindMetric := func(slot, state string) (float64, bool) {
		t.Helper()
		rec := httptest.NewRecorder()
		b.engine.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		series := fmt.Sprintf("ripple_change_feed_slot_behind_bytes{slot=%q,state=%q} ", slot, state)
		for line := range strings.Lines(rec.Body.String()) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), series); ok {
				f, err := strconv.ParseFloat(v, 64)
				require.NoError(t, err, line)
				return f, true
			}
		}
		return 0, false
	}
	var okState readyState
	require.Eventually(t, func() bool { // other tests' WAL on the shared server may put it past the bound for a moment
		code, st := ready()
		okState = st
		return code == http.StatusOK && st.ChangeFeed.State == "ok"
	}, time.Minute, 20*time.Millisecond)
	slot := okState.ChangeFeed.Slot
	require.NotEmpty(t, slot)

	release := hold()
	s := ripple(slot)
	require.NotNil(t, s)
	require.True(t, s.Active)
	require.Greater(t, s.BehindBytes, int64(bound), "nothing confirmed while held")
	code, st := ready()
	require.Equal(t, http.StatusServiceUnavailable, code, "%+v", st)
	require.Equal(t, "behind", st.Listener)
	require.Equal(t, slot, st.ChangeFeed.Slot)
	require.Equal(t, "behind", st.ChangeFeed.State)
	require.Greater(t, st.ChangeFeed.BehindBytes, int64(bound))
	v, found := behindMetric(slot, "behind")
	require.True(t, found, "no behind series for %s", slot)
	require.Greater(t, v, float64(bound))
	// Reported, not dropped: the same slot, streamed by the same session, no gap.
	s = ripple(slot)
	require.NotNil(t, s, "the slot was dropped")
	require.True(t, s.Active)
	require.Equal(t, int(b.engine.ListenerBackendPID()), s.ActivePID, "the feed was reconnected")

	release()
	c.WaitFor(func() bool { return c.Values[1] == float64(sent) })
	require.Eventually(t, func() bool {
		code, st = ready()
		return code == http.StatusOK && st.ChangeFeed.State == "ok"
	}, time.Minute, 20*time.Millisecond, "the slot did not catch up")
	require.Equal(t, slot, st.ChangeFeed.Slot, "the slot was replaced")
	require.Equal(t, okState.Gaps, st.Gaps, "the feed was reconnected")
	_, found = behindMetric(slot, "ok")
	require.True(t, found)

	// Held again and dropped by command: the WAL is released at once; the feed goes on with a
	// new slot once its consumer resumes.
	release = hold()
	require.NoError(t, engine.DropSlot(ctx, db.Pool, slot))
	require.Eventually(t, func() bool { return ripple(slot) == nil }, time.Minute, 20*time.Millisecond, "the slot outlived the drop")
	release()
	require.Eventually(t, func() bool {
		code, st = ready()
		return code == http.StatusOK && st.ChangeFeed.State == "ok" && st.ChangeFeed.Slot != slot && st.ChangeFeed.Slot != ""
	}, time.Minute, 20*time.Millisecond, "no new slot after the drop")
	require.Greater(t, st.Gaps, okState.Gaps, "the drop did not count as a gap (re-run everything)")
	c.WaitFor(func() bool { return c.Values[1] == float64(sent) })
	insert(1)
	c.WaitFor(func() bool { return c.Values[1] == float64(sent) })
}
