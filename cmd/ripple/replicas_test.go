package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/internal/pglocal"
	"github.com/ripplehq/ripple/internal/synctest"
)

// liveFrame is what the replica tests read of a server message: a mutation response, or a
// transition with subscription 1's messages:list page when it updated.
type liveFrame struct {
	kind      string // the message's type
	requestID int64
	success   bool
	bodies    []string // a transition's new messages:list page, when it has one
	updated   bool
}

func liveFrameOf(m map[string]any) liveFrame {
	f := liveFrame{success: m["success"] == true}
	f.kind, _ = m["type"].(string)
	id, _ := m["requestId"].(float64)
	f.requestID = int64(id)
	mods, _ := m["modifications"].([]any)
	for _, raw := range mods {
		mod, _ := raw.(map[string]any)
		if mod["queryId"] != float64(1) || mod["type"] != "QueryUpdated" {
			continue
		}
		f.updated, f.bodies = true, nil
		value, _ := mod["value"].(map[string]any)
		page, _ := value["page"].([]any)
		for _, msg := range page {
			body, _ := msg.(map[string]any)["body"].(string)
			f.bodies = append(f.bodies, body)
		}
	}
	return f
}

// openLiveSocket opens a sync socket as u subscribed (as query 1) to u's conversation's
// messages:list; read it with drainLive and sendChecked.
func openLiveSocket(t *testing.T, base string, u *chatUser) *synctest.Socket {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := synctest.Open(ctx, base, "replica-"+randomTag())
	require.NoError(t, err)
	t.Cleanup(s.Close)
	require.NoError(t, s.Write(ctx, synctest.AuthenticateMessage("User", u.token, 0, nil),
		synctest.AddQueryMessage(0, 1, "messages:list", map[string]any{"conversationId": u.conv, "paginationOpts": map[string]any{"numItems": 200, "cursor": nil}})))
	return s
}

// watcher checks a subscriber's results as they arrive: each one shows every message the
// previous one did (nothing older than what was seen), and messages appear in the order they
// were sent.
type watcher struct {
	t    *testing.T
	seen map[string]bool
	n    int
}

func (w *watcher) see(bodies []string) {
	w.t.Helper()
	now := map[string]bool{}
	for _, b := range bodies {
		now[b] = true
	}
	for b := range w.seen {
		require.True(w.t, now[b], "a result no longer shows %q, which an earlier one showed", b)
	}
	// Bodies are "replica message N", sent one after another: a result shows a prefix of them.
	for i := 1; i <= len(now); i++ {
		require.True(w.t, now[fmt.Sprintf("replica message %d", i)], "result %v skips message %d", bodies, i)
	}
	w.seen, w.n = now, len(now)
}

// drainLive reads a socket's frames already queued, checking its results.
func drainLive(t *testing.T, s *synctest.Socket, w *watcher) {
	for {
		select {
		case m, ok := <-s.Frames:
			require.True(t, ok, "the socket closed")
			if f := liveFrameOf(m); f.updated {
				w.see(f.bodies)
			}
		default:
			return
		}
	}
}

// sendChecked sends message number n on the sender's socket and checks read-your-writes: its
// response arrives, and the transition right after it (the covering one, in the same push)
// leaves the sender's result showing the message.
func sendChecked(t *testing.T, s *synctest.Socket, w *watcher, conv string, n int) {
	t.Helper()
	body := fmt.Sprintf("replica message %d", n)
	require.NoError(t, s.Write(context.Background(),
		synctest.MutationMessage(int64(n), "messages:send", map[string]string{"conversationId": conv, "body": body})))
	responded := false
	timeout := time.After(time.Minute) // liveness only
	for {
		select {
		case m, ok := <-s.Frames:
			require.True(t, ok, "the socket closed")
			f := liveFrameOf(m)
			if f.updated {
				w.see(f.bodies)
			}
			switch {
			case f.kind == "MutationResponse" && f.requestID == int64(n):
				require.True(t, f.success, "send %d failed", n)
				responded = true
			case f.kind == "Transition" && responded:
				require.True(t, w.seen[body], "the transition covering send %d does not show it", n)
				return
			}
		case <-timeout:
			t.Fatalf("send %d: no covering transition within a minute", n)
		}
	}
}

// liveChat is a conversation's sender and reader, each on a live socket whose results a
// watcher checks; sent counts the numbered messages ("replica message N") written so far.
type liveChat struct {
	t              *testing.T
	from, to       *chatUser
	sender, reader *synctest.Socket
	ws, wr         *watcher
	sent           int
}

func openLiveChat(t *testing.T, base string, from, to *chatUser) *liveChat {
	t.Helper()
	c := &liveChat{t: t, from: from, to: to}
	c.reconnect(base)
	return c
}

// reconnect opens fresh sockets (and watchers) to base, a restarted server, say.
func (c *liveChat) reconnect(base string) {
	c.t.Helper()
	c.sender, c.reader = openLiveSocket(c.t, base, c.from), openLiveSocket(c.t, base, c.to)
	c.ws, c.wr = &watcher{t: c.t}, &watcher{t: c.t}
}

// send sends the next message, checking read-your-writes, and the reader's results so far.
func (c *liveChat) send() {
	c.t.Helper()
	c.sent++
	sendChecked(c.t, c.sender, c.ws, c.from.conv, c.sent)
	drainLive(c.t, c.reader, c.wr)
}

// showAll waits until the sockets' results (the reader's, and with sender the sender's too)
// show every message sent.
func (c *liveChat) showAll(sender bool, what string) {
	c.t.Helper()
	require.Eventually(c.t, func() bool {
		if sender {
			drainLive(c.t, c.sender, c.ws)
		}
		drainLive(c.t, c.reader, c.wr)
		return (!sender || c.ws.n == c.sent) && c.wr.n == c.sent
	}, time.Minute, 10*time.Millisecond, "not every message shows %s", what)
}

// metricValue reads one sample from a Prometheus text page.
func metricValue(t *testing.T, url, sample string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			require.NoError(t, err)
			return v
		}
	}
	return 0
}

// replicaState is the first replica's state in /readyz.
func replicaState(t *testing.T, base string) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(base + "/readyz")
	if err != nil {
		return "unreachable"
	}
	defer resp.Body.Close()
	var body struct {
		Replicas []struct {
			State string `json:"state"`
		} `json:"replicas"`
	}
	if json.NewDecoder(resp.Body).Decode(&body) != nil || len(body.Replicas) == 0 {
		return "none"
	}
	require.Equal(t, http.StatusOK, resp.StatusCode, "a replica's state made the server unready")
	return body.Replicas[0].State
}

// Query re-runs and one-shot queries on a streaming replica: they move there; with replay
// paused they fall back to the primary and move back after it resumes; a replica stopped and
// restarted leaves and rejoins the rotation. Throughout, every send is answered with a
// transition that shows it (read your writes), and no subscriber's result ever loses a message
// it showed or skips one sent before another it shows.
func TestReplicaReruns(t *testing.T) {
	t.Parallel()
	primary := pglocal.ForTest(t)
	replica := pglocal.StandbyForTest(t, primary)
	replicaURL := replica.URL()
	metricsAddr := freeAddr(t)
	vars := map[string]string{"DATABASE_URL": primary.URL(), "DATABASE_REPLICA_URLS": replicaURL, "RIPPLE_LOG_LEVEL": "warn"}
	srv := startServe(t, vars, "public", "", "--metrics-addr", metricsAddr)
	metrics := "http://" + metricsAddr + "/metrics"
	batches := func(server string) float64 {
		return metricValue(t, metrics, `ripple_batches_by_server_total{server="`+server+`"}`)
	}
	waitState := func(want string) {
		t.Helper()
		require.Eventually(t, func() bool { return replicaState(t, srv.base()) == want }, time.Minute, 20*time.Millisecond,
			"the replica never became %s", want)
	}
	ada, bob := signUpPair(t, srv.base(), "replica")
	chat := openLiveChat(t, srv.base(), ada, bob)
	send := chat.send
	// sendUntil sends until cond holds, at most 30 messages (liveness only; the page holds 200).
	sendUntil := func(what string, cond func() bool) {
		t.Helper()
		for range 30 {
			send()
			if cond() {
				return
			}
		}
		t.Fatalf("after 30 sends: %s", what)
	}

	waitState("up")
	before := batches("replica")
	sendUntil("no batch ran on the replica", func() bool { return batches("replica") > before })
	for range 10 {
		send()
	}
	t.Logf("replica in rotation: batches on the replica %v, on the primary %v", batches("replica"), batches("primary"))
	// Their statements are counted, apart from the primary's.
	require.Positive(t, metricValue(t, metrics, `ripple_db_statements_total{server="replica"}`), "no statement counted on the replica")
	require.Positive(t, metricValue(t, metrics, `ripple_db_statements_total{server="primary"}`))

	// One-shot queries (HTTP) go there too.
	oneShot := func() float64 {
		return metricValue(t, metrics, `ripple_oneshot_queries_by_server_total{server="replica"}`)
	}
	require.Eventually(t, func() bool {
		status, out := post(t, srv.base()+"/api/query", bob.token, map[string]any{"path": "messages:list", "format": "convex_encoded_json",
			"args": []any{map[string]any{"conversationId": bob.conv, "paginationOpts": map[string]any{"numItems": 200, "cursor": nil}}}})
		require.Equal(t, http.StatusOK, status, "%v", out)
		page := out["value"].(map[string]any)["page"].([]any)
		require.Len(t, page, chat.sent, "a one-shot query missed a send acknowledged before it")
		return oneShot() > 0
	}, time.Minute, 10*time.Millisecond, "no one-shot query ran on the replica")

	// Replay paused: deliveries go on from the primary.
	rconn, err := pgx.Connect(context.Background(), replicaURL)
	require.NoError(t, err)
	defer rconn.Close(context.Background())
	_, err = rconn.Exec(context.Background(), "SELECT pg_wal_replay_pause()")
	require.NoError(t, err)
	onPrimary := batches("primary")
	sendUntil("the replica stayed in rotation with replay paused", func() bool { return replicaState(t, srv.base()) == "lagging" })
	for range 10 {
		send()
	}
	require.Greater(t, batches("primary"), onPrimary, "no batch fell back to the primary")
	onReplica := batches("replica")
	for range 5 {
		send()
	}
	require.Equal(t, onReplica, batches("replica"), "a batch ran on the replica while its replay was paused")

	// Resumed: back to the replica.
	_, err = rconn.Exec(context.Background(), "SELECT pg_wal_replay_resume()")
	require.NoError(t, err)
	rconn.Close(context.Background())
	waitState("up")
	before = batches("replica")
	sendUntil("no batch ran on the replica after replay resumed", func() bool { return batches("replica") > before })

	// Stopped: the primary serves; restarted: back in rotation.
	require.NoError(t, replica.Shutdown(context.Background()))
	waitState("down")
	for range 10 {
		send()
	}
	require.NoError(t, replica.Restart(context.Background()))
	waitState("up")
	before = batches("replica")
	sendUntil("no batch ran on the replica after it restarted", func() bool { return batches("replica") > before })

	// The reader saw every message, in order, whichever server its results came from.
	chat.showAll(false, "to the reader")
	t.Logf("%d sends; batches on the replica %v, on the primary %v", chat.sent, batches("replica"), batches("primary"))
}
