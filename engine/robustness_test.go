package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/internal/synctest"
	"github.com/ripplehq/ripple/internal/testdb"
)

func TestLargeTransitionsArriveInChunks(t *testing.T) {
	t.Parallel()
	b := setupWith(t, testdb.NewSchema(t), func(c *engine.Config) { c.TransitionChunkBytes = 1024 })
	conv := b.newConversation(t)
	_, err := b.db.Pool.Exec(context.Background(), "INSERT INTO messages (sender_id, conversation_id, body) SELECT $1, $2, repeat('x', 500) || g FROM generate_series(1, 20) g", b.senderID, mustInt(conv))
	require.NoError(t, err)
	c := dial(t, b)
	c.Subscribe(1, "messages:list", map[string]any{"conversationId": conv})
	c.WaitFor(func() bool { list, _ := c.Values[1].([]any); return len(list) == 20 })
	require.Positive(t, c.Chunked)
}

// A client that stops reading is cut off after the write timeout; others keep getting updates.
func TestSlowClientDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	b := setupWith(t, testdb.NewSchema(t), func(c *engine.Config) {
		c.WriteTimeout = 300 * time.Millisecond
		c.SendQueueLength = 8
	})
	ctx := context.Background()
	conv := b.newConversation(t)

	// The stalled client: connects, subscribes, never reads again.
	url := syncURL(b)
	stalled, _, err := websocket.Dial(ctx, url, nil)
	require.NoError(t, err)
	t.Cleanup(func() { stalled.CloseNow() })
	for _, m := range []map[string]any{
		{"type": "Connect", "sessionId": "stalled", "connectionCount": 0},
		{"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": []any{map[string]any{"type": "Add", "queryId": 1, "udfPath": "messages:list", "args": []any{map[string]any{"conversationId": conv}}}}},
	} {
		buf, _ := json.Marshal(m)
		require.NoError(t, stalled.Write(ctx, websocket.MessageText, buf))
	}

	healthy := dial(t, b)
	healthy.Subscribe(1, "messages:count", map[string]any{"conversationId": conv})
	healthy.Settle()

	// Large results fill the stalled socket's buffers quickly.
	big := strings.Repeat("y", 3900)
	for i := 1; i <= 150; i++ {
		_, err := b.db.Pool.Exec(ctx, "INSERT INTO messages (sender_id, conversation_id, body) VALUES ($1, $2, $3)", b.senderID, mustInt(conv), big)
		require.NoError(t, err)
		want := float64(i)
		healthy.WaitFor(func() bool { return healthy.Values[1] == want })
	}
	require.Eventually(t, func() bool { return b.engine.Stats().Sessions == 1 }, 30*time.Second, 20*time.Millisecond,
		"the stalled client should be disconnected")
}

// Every connection of the engine dies at once (as when Postgres restarts): subscriptions
// resume and no committed write is lost.
func TestAllConnectionsTerminated(t *testing.T) {
	t.Parallel()
	db := testdb.NewSchema(t)
	b := setupOn(t, db)
	ctx := context.Background()
	conv := b.newConversation(t)
	c := dial(t, b)
	c.Subscribe(1, "messages:count", map[string]any{"conversationId": conv})
	c.Settle()

	admin := testdb.NewPoolFor(t, &testdb.Bundle{URL: db.URL, Schema: "public"})
	_, err := admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()", db.Schema)
	require.NoError(t, err)

	// Mutations retry on fresh connections; the subscription catches up after the listener's
	// reset.
	for i := 0; i < 5; i++ {
		var res string
		require.Eventually(t, func() bool {
			err := b.engine.Call(ctx, "messages:send", map[string]any{"conversationId": conv, "body": "after"}, engine.Identity{}, &res)
			if err != nil {
				t.Logf("send: %v", err)
			}
			return err == nil
		}, 10*time.Second, 20*time.Millisecond)
	}
	c.WaitFor(func() bool { return c.Values[1] == float64(5) })
	var n int
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM messages WHERE conversation_id = $1", mustInt(conv)).Scan(&n))
	require.Equal(t, 5, n, "each mutation committed exactly once")
}

func TestQueryTimeoutFailsOnlyThatQuery(t *testing.T) {
	t.Parallel()
	db := testdb.NewSchema(t)
	b := setupWith(t, db, func(c *engine.Config) { c.QueryTimeout = 200 * time.Millisecond })
	conv := b.newConversation(t)
	c := dial(t, b)
	c.Subscribe(1, "slow:sleep", map[string]any{})
	c.Subscribe(2, "messages:count", map[string]any{"conversationId": conv})
	c.WaitFor(func() bool { return c.Values[1] != nil && c.Values[2] != nil })
	failure, ok := c.Values[1].(map[string]any)
	require.True(t, ok, "%v", c.Values[1])
	require.Contains(t, failure["error"], "Server error")
	require.Equal(t, float64(0), c.Values[2])
}

// A query that does not finish holds up only its own clients: another client's subscription
// and mutation are answered while it runs, and its client then gets one transition with every
// result from one snapshot.
func TestSlowQueryHoldsUpOnlyItsClients(t *testing.T) {
	t.Parallel()
	b := setup(t)
	conv := b.newConversation(t)
	gateName := t.Name()
	t.Cleanup(func() { openGate(gateName) }) // runs before the engine stops, even on failure
	slow, other := dial(t, b), dial(t, b)
	args := map[string]any{"conversationId": conv}
	slow.Subscribe(1, "messages:count", args)
	slow.Subscribe(2, "slow:gated", map[string]any{"gate": gateName, "conversationId": conv})
	<-gateNamed(gateName).entered

	// Answered while the slow query waits at its gate; it would never be if the batch waited.
	other.Subscribe(1, "messages:count", args)
	other.WaitFor(func() bool { return other.Values[1] != nil })
	other.Mutate("messages:send", map[string]any{"conversationId": conv, "body": "while slow"})
	other.WaitFor(func() bool { return other.Values[1] == float64(1) })
	require.NotZero(t, b.engine.Stats().HeldBack)

	openGate(gateName)
	for slow.Values[2] != float64(1) || slow.Values[1] != float64(1) {
		m := slow.Next()
		if m["type"] == "Transition" && slow.Values[2] != nil {
			require.Equal(t, slow.Values[1], slow.Values[2], "one transition mixed two snapshots")
		}
	}
}

// Queries of a batch share one transaction without savepoints: one that fails in SQL still
// fails alone (the batch runs again with it isolated), and one that changes a setting does not
// change it for the others.
func TestSharedSnapshotIsolatesErrorsAndSettings(t *testing.T) {
	t.Parallel()
	b := setup(t)
	conv := b.newConversation(t)
	c := dial(t, b)
	c.Subscribe(1, "test:divideByZero", map[string]any{})
	c.Subscribe(2, "messages:count", map[string]any{"conversationId": conv})
	for i := int64(0); i < 6; i++ {
		c.Subscribe(10+i, "test:setting", map[string]any{"Set": i%2 == 0, "N": i})
	}
	c.Settle()
	failure, ok := c.Values[1].(map[string]any)
	require.True(t, ok, "%v", c.Values[1])
	require.Contains(t, failure["error"], "Server error")
	require.Equal(t, float64(0), c.Values[2])
	var serverDefault string
	require.NoError(t, b.db.Pool.QueryRow(context.Background(), "SELECT current_setting('work_mem')").Scan(&serverDefault))
	for i := int64(0); i < 6; i++ {
		want := serverDefault
		if i%2 == 0 {
			want = "77kB"
		}
		require.Equal(t, want, c.Values[10+i], "query %d", i)
	}
	// The failing query keeps failing alone; the others keep updating.
	c.Mutate("messages:send", map[string]any{"conversationId": conv, "body": "still live"})
	c.WaitFor(func() bool { return c.Values[2] == float64(1) })
	_, stillFailing := c.Values[1].(map[string]any)
	require.True(t, stillFailing)
}

// A batch whose connection breaks half-way applies nothing: the next batch runs everything
// again and the client misses no update.
func TestBrokenBatchLosesNoUpdate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	conv := b.newConversation(t)
	for round := 0; round < 5; round++ {
		token := fmt.Sprintf("%s-%d", t.Name(), round)
		c := dial(t, b)
		c.Subscribe(1, "messages:list", map[string]any{"conversationId": conv})
		c.Subscribe(2, "test:breakOnce", map[string]any{"conversationId": conv, "token": token})
		c.Settle()
		breakTokens.Store(token, struct{}{})
		_, err := b.db.Pool.Exec(ctx, "INSERT INTO messages (sender_id, conversation_id, body) VALUES ($1, $2, 'r')", b.senderID, mustInt(conv))
		require.NoError(t, err)
		c.Settle()
		require.Len(t, c.Values[1], round+1, "round %d", round)
		require.Len(t, c.Values[2], round+1, "round %d", round)
		c.Conn.CloseNow()
	}
}

// Adding and removing a query before the reactor sees either leaves nothing behind.
func TestAddThenRemoveBeforeABatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	conv := b.newConversation(t)
	c := dial(t, b)
	c.Subscribe(7, "messages:list", map[string]any{"conversationId": conv})
	c.Send(map[string]any{"type": "ModifyQuerySet", "baseVersion": c.QuerySetVersion, "newVersion": c.QuerySetVersion + 1,
		"modifications": []any{map[string]any{"type": "Remove", "queryId": 7}}})
	c.QuerySetVersion++
	c.Settle()
	_, err := b.db.Pool.Exec(context.Background(), "INSERT INTO messages (sender_id, conversation_id, body) VALUES ($1, $2, 'x')", b.senderID, mustInt(conv))
	require.NoError(t, err)
	c.Settle()
	require.NotContains(t, c.Values, int64(7))
}

// Chunks are cut on character boundaries.
func TestChunksKeepMultibyteText(t *testing.T) {
	t.Parallel()
	b := setupWith(t, testdb.NewSchema(t), func(cfg *engine.Config) { cfg.TransitionChunkBytes = 64 })
	conv := b.newConversation(t)
	body := strings.Repeat("héllo wörld 😀 ", 20)
	_, err := b.db.Pool.Exec(context.Background(), "INSERT INTO messages (sender_id, conversation_id, body) VALUES ($1, $2, $3)", b.senderID, mustInt(conv), body)
	require.NoError(t, err)
	c := dial(t, b)
	c.Subscribe(1, "messages:list", map[string]any{"conversationId": conv})
	c.WaitFor(func() bool { return c.Values[1] != nil })
	require.Equal(t, body, c.Values[1].([]any)[0].(map[string]any)["body"])
	require.Positive(t, c.Chunked)
}

// Rows written as a replica would write them (logical replication, pg_restore) are captured.
func TestReplicaRoleWritesAreCaptured(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	conv := b.newConversation(t)
	c := dial(t, b)
	c.Subscribe(1, "messages:count", map[string]any{"conversationId": conv})
	c.Settle()
	tx, err := b.db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "SET LOCAL session_replication_role = replica")
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "INSERT INTO messages (sender_id, conversation_id, body) VALUES ($1, $2, 'replicated')", b.senderID, mustInt(conv))
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	c.WaitFor(func() bool { return c.Values[1] == float64(1) })
}

// An idle socket is pinged about every PingInterval by the engine's one pinger.
func TestIdleSocketsArePinged(t *testing.T) {
	t.Parallel()
	db := testdb.NewSchema(t)
	b := setupWith(t, db, func(c *engine.Config) { c.PingInterval = 300 * time.Millisecond })
	c := dial(t, b)
	c.Subscribe(1, "messages:total", map[string]any{})
	pings := 0
	for pings < 2 {
		m, ok := <-c.Frames
		require.True(t, ok, "socket closed")
		if m["type"] == "Ping" {
			pings++
		}
	}
}

// A mutation sent again with the same (sessionId, requestId), at once from several sockets
// and again later, commits once and every copy gets the first run's result.
func TestResentMutationCommitsOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	conv := b.newConversation(t)
	ctx := context.Background()
	url := syncURL(b)
	send := func() (string, error) {
		conn, _, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			return "", err
		}
		defer conn.Close(websocket.StatusNormalClosure, "")
		if err := synctest.Write(ctx, conn,
			map[string]any{"type": "Connect", "sessionId": "resender", "connectionCount": 1, "lastCloseReason": nil, "clientTs": 0},
			map[string]any{"type": "Mutation", "requestId": 1, "udfPath": "messages:send", "args": []any{map[string]any{"conversationId": conv, "body": "once"}}},
		); err != nil {
			return "", err
		}
		for {
			_, data, err := conn.Read(ctx)
			if err != nil {
				return "", err
			}
			var m struct {
				Type    string
				Success bool
				Result  json.RawMessage
			}
			if err := json.Unmarshal(data, &m); err != nil {
				return "", err
			}
			if m.Type == "MutationResponse" {
				if !m.Success {
					return "", fmt.Errorf("mutation failed: %s", data)
				}
				return string(m.Result), nil
			}
		}
	}
	type outcome struct {
		result string
		err    error
	}
	results := make(chan outcome, 4)
	for range 4 {
		go func() {
			r, err := send()
			results <- outcome{r, err}
		}()
	}
	var first string
	for i := range 4 {
		o := <-results
		require.NoError(t, o.err)
		if i == 0 {
			first = o.result
		}
		require.Equal(t, first, o.result)
	}
	again, err := send()
	require.NoError(t, err)
	require.Equal(t, first, again)
	var n int
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM messages WHERE conversation_id = $1", mustInt(conv)).Scan(&n))
	require.Equal(t, 1, n)
}

// A resent mutation whose function now fails (what it did is visible to it) is still answered
// with the outcome of the run that committed: the mutation log is read when a mutation fails.
func TestResentMutationThatNowFailsGetsItsOutcome(t *testing.T) {
	t.Parallel()
	b := setup(t)
	conv := b.newConversation(t)
	body := fmt.Sprintf("once-%d", time.Now().UnixNano())
	send := func(session string, requestID int) map[string]any {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		conn, _, err := websocket.Dial(ctx, syncURL(b), nil)
		require.NoError(t, err)
		defer conn.Close(websocket.StatusNormalClosure, "")
		require.NoError(t, synctest.Write(ctx, conn,
			map[string]any{"type": "Connect", "sessionId": session, "connectionCount": 1, "lastCloseReason": nil, "clientTs": 0},
			map[string]any{"type": "Mutation", "requestId": requestID, "udfPath": "test:sendOnce", "args": []any{map[string]any{"conversationId": conv, "body": body}}},
		))
		for {
			_, data, err := conn.Read(ctx)
			require.NoError(t, err)
			var m map[string]any
			require.NoError(t, json.Unmarshal(data, &m))
			if m["type"] == "MutationResponse" {
				return m
			}
		}
	}
	first := send("resender-fails", 7)
	require.Equal(t, true, first["success"], "%v", first)
	again := send("resender-fails", 7)
	require.Equal(t, true, again["success"], "a resend must get the committed outcome, not the new run's error: %v", again)
	require.Equal(t, first["result"], again["result"])
	other := send("someone-else", 7)
	require.Equal(t, false, other["success"], "another session's call really runs: %v", other)
}

// One socket adding its whole query limit at once does not hold up everyone else: its queries
// are admitted to batches a share at a time, and another client's update rides along in one of
// them instead of waiting until the whole flood has run.
func TestSubscriptionFloodDoesNotHoldUpOthers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	conv := b.newConversation(t)
	flood, other := dial(t, b), dial(t, b)

	other.Subscribe(1, "messages:count", map[string]any{"conversationId": conv})
	other.WaitFor(func() bool { _, ok := other.Values[1]; return ok })

	const n = 1000 // Config.MaxQueriesPerSocket's default
	mods := make([]any, n)
	for i := range mods {
		// Distinct arguments, so no two run as one group; each takes 5 ms, so the flood takes
		// seconds (about 16 batches) while the other client's write takes a few milliseconds.
		mods[i] = map[string]any{"type": "Add", "queryId": i, "udfPath": "test:pause", "args": []any{map[string]any{"n": i}}}
	}
	flood.Send(map[string]any{"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": mods})
	flood.WaitFor(func() bool { return len(flood.Values) > 0 }) // the flood is being served

	other.Mutate("messages:send", map[string]any{"conversationId": conv, "body": "while flooded"})
	other.WaitFor(func() bool { return other.Values[1] == float64(1) })
	updated := other.TS()
	flood.WaitFor(func() bool { return len(flood.Values) == n })
	require.Less(t, updated, flood.TS(), "the other client's update waited for the whole flood")
}

// A frozen listener (a half-open connection looks connected) makes /readyz say so, and the probe
// that found it replaces the connection: readiness and live updates come back by themselves.
func TestReadyzNoticesAFrozenListener(t *testing.T) {
	t.Parallel()
	b := setup(t)
	conv := b.newConversation(t)
	c := dial(t, b)
	c.Subscribe(1, "messages:count", map[string]any{"conversationId": conv})
	c.Settle()

	ready := func() (int, map[string]any) {
		resp, err := http.Get(b.server.URL + "/readyz")
		require.NoError(t, err)
		defer resp.Body.Close()
		var status map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&status))
		return resp.StatusCode, status
	}
	code, status := ready()
	require.Equal(t, http.StatusOK, code, "%v", status)

	pid := int(b.engine.ListenerBackendPID())
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Skipf("cannot freeze the listener's backend (Postgres on another host?): %v", err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })

	code, status = ready()
	require.Equal(t, http.StatusServiceUnavailable, code, "%v", status)
	require.Equal(t, "unresponsive", status["listener"])

	// The probe replaced the frozen connection: ready again, and updates flow.
	require.Eventually(t, func() bool { code, _ := ready(); return code == http.StatusOK }, 30*time.Second, 50*time.Millisecond)
	c.Mutate("messages:send", map[string]any{"conversationId": conv, "body": "after the freeze"})
	c.WaitFor(func() bool { return c.Values[1] == float64(1) })
}

// Actions a socket may run at once are bounded, and one more is refused at once with
// RATE_LIMITED instead of holding the socket's reader: its mutations still run meanwhile.
func TestActionsPastTheLimitAreRefusedWithoutBlockingTheSocket(t *testing.T) {
	t.Parallel()
	b := setup(t)
	conv := b.newConversation(t)
	c := dial(t, b)
	gate := fmt.Sprintf("gate-%s-%d", t.Name(), time.Now().UnixNano())
	t.Cleanup(func() { openGate(gate) })
	const limit = 16
	for i := 1; i <= limit+1; i++ {
		c.Send(map[string]any{"type": "Action", "requestId": i, "udfPath": "test:wait", "args": []any{map[string]any{"gate": gate}}})
	}
	c.RequestID = limit + 1
	req := c.Mutate("messages:send", map[string]any{"conversationId": conv, "body": "while actions wait"})
	refused, replied := false, false
	for !refused || !replied {
		m := c.Next()
		switch {
		case m["type"] == "ActionResponse":
			require.Equal(t, float64(limit+1), m["requestId"], "only the action past the limit answers before the gate opens")
			require.Equal(t, false, m["success"])
			require.Equal(t, "RATE_LIMITED", m["errorData"].(map[string]any)["code"])
			refused = true
		case m["type"] == "MutationResponse" && m["requestId"] == float64(req):
			require.Equal(t, true, m["success"], "%v", m)
			replied = true
		}
	}
	openGate(gate)
	for done := 0; done < limit; {
		if m := c.Next(); m["type"] == "ActionResponse" {
			require.Equal(t, true, m["success"], "%v", m)
			done++
		}
	}
}

// A mutation whose every attempt fails serialization at the mutation log's insert (where most
// serialization failures surface under contention) runs out of retries with CONFLICT, saying
// so, not with UNAVAILABLE: the database was there all along.
func TestMutationOutOfRetriesAtTheLogIsAConflict(t *testing.T) {
	t.Parallel()
	db := testdb.NewSchema(t)
	_, err := db.Pool.Exec(context.Background(), `CREATE FUNCTION test_log_conflict() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'test: the log insert conflicts' USING ERRCODE = 'serialization_failure'; END $$;
		CREATE TRIGGER test_log_conflict BEFORE INSERT ON ripple_mutation_log FOR EACH ROW EXECUTE FUNCTION test_log_conflict()`)
	require.NoError(t, err)
	b := setupWith(t, db, func(c *engine.Config) { c.MutationMaxRetries = 2 })
	c := dial(t, b)
	m := c.Await(c.Mutate("test:noop", map[string]any{}))
	require.Equal(t, false, m["success"], "%v", m)
	require.Equal(t, "CONFLICT", m["errorData"].(map[string]any)["code"], "%v", m)
	require.Contains(t, fmt.Sprint(m["result"]), "failed serialization 2 times")
}
