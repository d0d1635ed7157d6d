package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// startReplica makes a streaming replica of p with pg_basebackup -R and starts it as a hot
// standby on a port of its own.
func startReplica(t *testing.T, p *privatePostgres) *privatePostgres {
	t.Helper()
	if _, err := os.Stat(pgBin + "pg_basebackup"); err != nil {
		t.Skipf("no pg_basebackup: %v", err)
	}
	base, err := os.MkdirTemp("", "ripple-replica-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(base, 0o755))
	// A hot standby refuses to start with fewer WAL senders (and the like) than its primary.
	r := &privatePostgres{t: t, dir: filepath.Join(base, "data"), port: strings.TrimPrefix(freeAddr(t), "127.0.0.1:"), settings: p.settings}
	require.NoError(t, os.Mkdir(r.dir, 0o700))
	r.asPostgres("chown", "postgres:postgres", r.dir)
	// initdb's pg_hba.conf lets local replication connections in (trust); -R writes
	// primary_conninfo and standby.signal.
	r.asPostgres(pgBin+"pg_basebackup", "--pgdata", r.dir, "--write-recovery-conf", "--wal-method", "stream",
		"--host", "127.0.0.1", "--port", p.port, "--username", "ripple", "--no-sync")
	t.Cleanup(func() {
		_ = exec.Command("runuser", "-u", "postgres", "--", pgBin+"pg_ctl", "--pgdata", r.dir, "--mode", "immediate", "stop").Run()
		_ = os.RemoveAll(base)
	})
	r.start()
	return r
}

// liveSocket is a sync socket subscribed to one conversation's messages:list: it reports every
// mutation response and every transition, in the order they arrive.
type liveSocket struct {
	conn   *websocket.Conn
	frames chan liveFrame // closed when the socket ends
}

type liveFrame struct {
	kind      string // "MutationResponse" or "Transition"
	requestID int64
	success   bool
	bodies    []string // a transition's new messages:list page, when it has one
	updated   bool
}

func openLiveSocket(t *testing.T, base string, u *chatUser) *liveSocket {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/api/1.48.0/sync", nil)
	require.NoError(t, err)
	conn.SetReadLimit(16 << 20)
	s := &liveSocket{conn: conn, frames: make(chan liveFrame, 4096)}
	t.Cleanup(func() { conn.Close(websocket.StatusNormalClosure, "") })
	go func() {
		defer close(s.frames)
		for {
			_, data, err := conn.Read(context.Background())
			if err != nil {
				return
			}
			var m struct {
				Type          string `json:"type"`
				RequestID     int64  `json:"requestId"`
				Success       bool   `json:"success"`
				Modifications []struct {
					Type    string `json:"type"`
					QueryID int64  `json:"queryId"`
					Value   struct {
						Page []struct {
							Body string `json:"body"`
						} `json:"page"`
					} `json:"value"`
				} `json:"modifications"`
			}
			if json.Unmarshal(data, &m) != nil {
				continue
			}
			f := liveFrame{kind: m.Type, requestID: m.RequestID, success: m.Success}
			for _, mod := range m.Modifications {
				if mod.QueryID == 1 && mod.Type == "QueryUpdated" {
					f.updated = true
					f.bodies = nil
					for _, msg := range mod.Value.Page {
						f.bodies = append(f.bodies, msg.Body)
					}
				}
			}
			if f.kind == "MutationResponse" || f.kind == "Transition" {
				s.frames <- f
			}
		}
	}()
	write := func(m any) {
		buf, _ := json.Marshal(m)
		require.NoError(t, conn.Write(ctx, websocket.MessageText, buf))
	}
	write(map[string]any{"type": "Connect", "sessionId": "replica-" + randomTag(), "connectionCount": 0, "lastCloseReason": nil})
	write(map[string]any{"type": "Authenticate", "tokenType": "User", "value": u.token, "baseVersion": 0})
	write(map[string]any{"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": []any{map[string]any{
		"type": "Add", "queryId": 1, "udfPath": "messages:list",
		"args": []any{map[string]any{"conversationId": u.conv, "paginationOpts": map[string]any{"numItems": 200, "cursor": nil}}}}}})
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
func drainLive(t *testing.T, s *liveSocket, w *watcher) {
	for {
		select {
		case f, ok := <-s.frames:
			require.True(t, ok, "the socket closed")
			if f.updated {
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
func sendChecked(t *testing.T, s *liveSocket, w *watcher, conv string, n int) {
	t.Helper()
	body := fmt.Sprintf("replica message %d", n)
	buf, _ := json.Marshal(map[string]any{"type": "Mutation", "requestId": n, "udfPath": "messages:send",
		"args": []any{map[string]string{"conversationId": conv, "body": body}}})
	require.NoError(t, s.conn.Write(context.Background(), websocket.MessageText, buf))
	responded := false
	timeout := time.After(time.Minute) // liveness only
	for {
		select {
		case f, ok := <-s.frames:
			require.True(t, ok, "the socket closed")
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
	primary := startPrivatePostgres(t)
	replica := startReplica(t, primary)
	replicaURL := "postgres://ripple@127.0.0.1:" + replica.port + "/postgres?sslmode=disable"
	metricsAddr := freeAddr(t)
	vars := map[string]string{"DATABASE_URL": primary.url(), "DATABASE_REPLICA_URLS": replicaURL, "RIPPLE_LOG_LEVEL": "warn"}
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
	sender, reader := openLiveSocket(t, srv.base(), ada), openLiveSocket(t, srv.base(), bob)
	ws, wr := &watcher{t: t}, &watcher{t: t}
	n := 0
	send := func() {
		t.Helper()
		n++
		sendChecked(t, sender, ws, ada.conv, n)
		drainLive(t, reader, wr)
	}
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
		require.Len(t, page, n, "a one-shot query missed a send acknowledged before it")
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
	replica.stop()
	waitState("down")
	for range 10 {
		send()
	}
	replica.start()
	waitState("up")
	before = batches("replica")
	sendUntil("no batch ran on the replica after it restarted", func() bool { return batches("replica") > before })

	// The reader saw every message, in order, whichever server its results came from.
	require.Eventually(t, func() bool {
		drainLive(t, reader, wr)
		return wr.n == n
	}, time.Minute, 10*time.Millisecond, "the reader does not show every message")
	t.Logf("%d sends; batches on the replica %v, on the primary %v", n, batches("replica"), batches("primary"))
}
