package main

// The fault-injection suite: real `ripple serve` processes killed, stopped and restarted under
// load, checking the invariants docs/engine.md promises for sends and for the embedding
// workflow. Recovery times are logged, not asserted: the only time limits are liveness bounds
// far above what a healthy run takes.

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/internal/pglocal"
	"github.com/ripplehq/ripple/internal/synctest"
	"github.com/ripplehq/ripple/internal/testdb"
)

// fakeEmbedder is an OpenAI-compatible embeddings endpoint (the provider is outside this
// machine in production) that records every text it is asked to embed and can be made to hang.
type fakeEmbedder struct {
	srv *httptest.Server

	mu    sync.Mutex
	calls []embedCall
	hang  chan struct{} // while open, requests wait (until it closes or the caller gives up)
}

type embedCall struct {
	at    time.Time
	texts []string
}

func newFakeEmbedder(t *testing.T) *fakeEmbedder {
	f := &fakeEmbedder{}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		f.release()
		f.srv.Close()
	})
	return f
}

func (f *fakeEmbedder) serve(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Input      []string `json:"input"`
		Dimensions int      `json:"dimensions"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.calls = append(f.calls, embedCall{at: time.Now(), texts: req.Input})
	hang := f.hang
	f.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-r.Context().Done():
			return
		}
	}
	type datum struct {
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	}
	out := struct {
		Data []datum `json:"data"`
	}{}
	for i, text := range req.Input {
		out.Data = append(out.Data, datum{Index: i, Embedding: vectorOf(text, 1536)})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// vectorOf is a unit vector derived from text, so equal texts embed equally.
func vectorOf(text string, dims int) []float32 {
	v := make([]float32, dims)
	seed := sha256.Sum256([]byte(text))
	var norm float64
	for i := range v {
		x := float32(int8(seed[i%32]^byte(i))) + 0.5
		v[i] = x
		norm += float64(x * x)
	}
	for i := range v {
		v[i] /= float32(math.Sqrt(norm))
	}
	return v
}

func (f *fakeEmbedder) holdCalls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hang = make(chan struct{})
}

func (f *fakeEmbedder) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hang != nil {
		close(f.hang)
		f.hang = nil
	}
}

// seen returns, per text, the start times of the calls that asked for it.
func (f *fakeEmbedder) seen() map[string][]time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][]time.Time{}
	for _, c := range f.calls {
		for _, text := range c.texts {
			out[text] = append(out[text], c.at)
		}
	}
	return out
}

func (f *fakeEmbedder) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// faultEnv is the environment of a `ripple serve` whose embeddings come from f.
func faultEnv(db *testdb.Bundle, f *fakeEmbedder) map[string]string {
	return map[string]string{
		"DATABASE_URL":              db.URL,
		"RIPPLE_LOG_LEVEL":          "warn",
		"RIPPLE_EMBEDDING_PROVIDER": "openai",
		"RIPPLE_EMBEDDING_BASE_URL": f.srv.URL,
		"RIPPLE_EMBEDDING_MODEL":    "fault-test",
	}
}

// chatUser is a signed-up user with the conversation the test writes to.
type chatUser struct {
	email, token, conv string
}

func signUpPair(t *testing.T, base, tag string) (*chatUser, *chatUser) {
	t.Helper()
	var users [2]*chatUser
	for i, name := range []string{"ada", "bob"} {
		email := fmt.Sprintf("%s-%s@school.test", name, tag)
		status, out := post(t, base+"/api/auth/signup", "", map[string]any{"email": email, "password": "correct horse battery", "name": name})
		require.Equal(t, http.StatusOK, status, "%v", out)
		users[i] = &chatUser{email: email, token: out["accessToken"].(string)}
	}
	status, out := post(t, base+"/api/mutation", users[0].token, map[string]any{
		"path": "conversations:getOrCreateDirect", "format": "convex_encoded_json", "args": []any{map[string]string{"email": users[1].email}}})
	require.Equal(t, http.StatusOK, status, "%v", out)
	users[0].conv, users[1].conv = out["value"].(string), out["value"].(string)
	return users[0], users[1]
}

// chatSocket speaks the sync protocol as the official client does for sends: one session id
// kept across reconnects, mutations numbered by request id and resent after a reconnect.
type chatSocket struct {
	*synctest.Socket
	acks chan mutationAck // closed when the socket ends
}

type mutationAck struct {
	requestID int64
	success   bool
	result    json.RawMessage
	code      string // errorData.code of a failure
}

func openChatSocket(t *testing.T, base string, u *chatUser, sessionID string) *chatSocket {
	t.Helper()
	s, err := dialChat(base, u, sessionID)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

// dialChat opens a sync socket for u, authenticated, under sessionID. It fails rather than
// failing the test, so goroutines can use it; the caller closes the socket.
func dialChat(base string, u *chatUser, sessionID string) (*chatSocket, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sock, err := synctest.Open(ctx, base, sessionID)
	if err != nil {
		return nil, err
	}
	s := &chatSocket{Socket: sock, acks: make(chan mutationAck, 1024)}
	go func() {
		defer close(s.acks)
		for m := range sock.Frames {
			if m["type"] != "MutationResponse" {
				continue
			}
			ack := mutationAck{success: m["success"] == true}
			id, _ := m["requestId"].(float64)
			ack.requestID = int64(id)
			ack.result, _ = json.Marshal(m["result"])
			if data, ok := m["errorData"].(map[string]any); ok {
				ack.code, _ = data["code"].(string)
			}
			s.acks <- ack
		}
	}()
	s.write(synctest.AuthenticateMessage("User", u.token, 0, nil))
	return s, nil
}

// write sends one message; a dead server shows as missing acknowledgements, not as an error.
func (s *chatSocket) write(m any) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.Write(ctx, m)
}

func (s *chatSocket) send(requestID int64, conv, body string) {
	s.write(synctest.MutationMessage(requestID, "messages:send", map[string]string{"conversationId": conv, "body": body}))
}

// sender is one user's burst of sends and what was acknowledged.
type sender struct {
	user      *chatUser
	sessionID string
	bodies    map[int64]string // by request id
	acked     map[int64]bool
}

func newSender(u *chatUser, name string, n int) *sender {
	s := &sender{user: u, sessionID: "fault-" + name + "-" + randomTag(), bodies: map[int64]string{}, acked: map[int64]bool{}}
	for i := 1; i <= n; i++ {
		s.bodies[int64(i)] = fmt.Sprintf("%s says message %d", name, i)
	}
	return s
}

// sendAll sends every message on sock (all of them again after a reconnect: a resent mutation
// must not commit twice) and collects acknowledgements until stop says so or the socket ends.
// It runs on goroutines of its own, so it returns its failure instead of failing the test.
func (s *sender) sendAll(sock *chatSocket, stop func(acked int) bool) error {
	for id := int64(1); id <= int64(len(s.bodies)); id++ {
		sock.send(id, s.user.conv, s.bodies[id])
	}
	timeout := time.After(2 * time.Minute)
	for !stop(len(s.acked)) {
		select {
		case ack, ok := <-sock.acks:
			if !ok {
				return nil
			}
			if !ack.success {
				return fmt.Errorf("request %d failed: %s", ack.requestID, ack.result)
			}
			s.acked[ack.requestID] = true
		case <-timeout:
			return fmt.Errorf("%s: %d of %d sends acknowledged after 2 minutes", s.sessionID, len(s.acked), len(s.bodies))
		}
	}
	return nil
}

// sendAllEach runs sendAll for every sender at once on fresh sockets to base.
func sendAllEach(t *testing.T, base string, senders []*sender, stop func(s *sender, acked int) bool) {
	t.Helper()
	errs := make([]error, len(senders))
	var wg sync.WaitGroup
	for i, s := range senders {
		sock := openChatSocket(t, base, s.user, s.sessionID)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.sendAll(sock, func(n int) bool { return stop(s, n) })
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
}

func randomTag() string { return fmt.Sprintf("%x", time.Now().UnixNano()) }

// requireEachMessageOnce checks that the conversation holds exactly the senders' messages, each
// once.
func requireEachMessageOnce(t *testing.T, db *testdb.Bundle, senders ...*sender) {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), "SELECT body, count(*) FROM messages GROUP BY body")
	require.NoError(t, err)
	got := map[string]int64{}
	for rows.Next() {
		var body string
		var n int64
		require.NoError(t, rows.Scan(&body, &n))
		got[body] = n
	}
	require.NoError(t, rows.Err())
	want := map[string]int64{}
	for _, s := range senders {
		for _, body := range s.bodies {
			want[body] = 1
		}
	}
	require.Equal(t, want, got, "every acknowledged send stored exactly once, nothing else")
}

// waitEmbedded waits (a liveness bound, not a performance one) until every message has its
// embedding and the queue is empty, checks each has exactly one, and returns how long it took.
func waitEmbedded(t *testing.T, db *testdb.Bundle, within time.Duration) time.Duration {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	deadline := start.Add(within)
	for {
		var messages, embedded, queued int64
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM messages),
			(SELECT count(DISTINCT message_id) FROM message_embeddings), (SELECT count(*) FROM message_embedding_queue)`).
			Scan(&messages, &embedded, &queued))
		if embedded == messages && queued == 0 {
			var extra int64
			require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*) - count(DISTINCT message_id) FROM message_embeddings").Scan(&extra))
			require.Zero(t, extra, "a message has more than one embedding")
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %d messages, %d embedded, %d still queued", within, messages, embedded, queued)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A server killed with SIGKILL in the middle of a burst and of an embedding sweep loses and
// duplicates nothing: the clients reconnect to its replacement and resend every mutation, each
// is stored once, and every message gets exactly one embedding, the dead sweep's included (its
// lock died with it, and the next sweep takes its messages back). The provider sees a text twice
// only if the first call for it was made before the crash.
func TestFaultKillMidBurst(t *testing.T) {
	t.Parallel()
	db := testdb.NewSchema(t)
	provider := newFakeEmbedder(t)
	vars := faultEnv(db, provider)
	addr := freeAddr(t)
	first := startServe(t, vars, db.Schema, addr)
	ada, bob := signUpPair(t, first.base(), "kill")

	// A sweep stuck in a provider call, holding its messages, when the server dies.
	provider.holdCalls()
	early := newSender(ada, "early", 10)
	sendAllEach(t, first.base(), []*sender{early}, func(_ *sender, n int) bool { return n == 10 })
	require.Eventually(t, func() bool { return provider.callCount() > 0 }, time.Minute, 10*time.Millisecond, "no sweep called the provider")

	const perUser = 60
	senders := []*sender{newSender(ada, "ada", perUser), newSender(bob, "bob", perUser)}
	// Crash once a third of the burst is acknowledged: the acknowledgement that reaches it
	// kills the server before anything else is read.
	var mu sync.Mutex
	var killedAt time.Time
	total := 0
	sendAllEach(t, first.base(), senders, func(_ *sender, n int) bool {
		mu.Lock()
		defer mu.Unlock()
		if n > 0 {
			total++
		}
		if killedAt.IsZero() && total >= 2*perUser/3 {
			killedAt = time.Now()
			first.kill()
		}
		return n == perUser
	})
	require.False(t, killedAt.IsZero(), "the burst ended before the crash")
	before := 0
	for _, s := range senders {
		before += len(s.acked)
	}
	var stuck int64
	require.NoError(t, db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM river_job WHERE state = 'running'").Scan(&stuck))
	t.Logf("killed with %d of %d sends acknowledged and %d jobs running", before, 2*perUser, stuck)
	require.Positive(t, stuck, "the sweep should have died running")

	provider.release()
	second := startServe(t, vars, db.Schema, addr)
	restarted := time.Now()
	sendAllEach(t, second.base(), senders, func(_ *sender, n int) bool { return n == perUser })
	t.Logf("every send acknowledged %s after the restart", time.Since(restarted).Round(time.Millisecond))
	requireEachMessageOnce(t, db, append(senders, early)...)

	// Bound: River elects the new process leader (it enqueues periodic jobs) when the dead
	// leader's term ends, then the next sweep runs; docs/engine.md states it.
	waitEmbedded(t, db, 2*time.Minute)
	t.Logf("every message embedded once %s after the restart", time.Since(restarted).Round(time.Millisecond))
	seen := provider.seen()
	for _, s := range append(senders, early) {
		for _, body := range s.bodies {
			calls := seen[body]
			require.NotEmpty(t, calls, "the provider never saw %q", body)
			if len(calls) > 1 {
				require.True(t, calls[0].Before(killedAt), "%q was embedded twice though its first call came after the crash", body)
			}
		}
	}
}

// SIGTERM while provider calls hang: the server exits 0 within its shutdown bound, River records
// the cancelled sweep (no job is left "running" for the rescuer), and a new server embeds every
// message exactly once when the provider answers again.
func TestFaultStopWithHungProvider(t *testing.T) {
	t.Parallel()
	db := testdb.NewSchema(t)
	provider := newFakeEmbedder(t)
	provider.holdCalls()
	vars := faultEnv(db, provider)
	addr := freeAddr(t)
	first := startServe(t, vars, db.Schema, addr)
	ada, _ := signUpPair(t, first.base(), "stop")

	s := newSender(ada, "ada", 20)
	sendAllEach(t, first.base(), []*sender{s}, func(_ *sender, n int) bool { return n == 20 })
	require.Eventually(t, func() bool { return provider.callCount() > 0 }, time.Minute, 20*time.Millisecond, "no sweep called the provider")

	stopped := time.Now()
	require.NoError(t, first.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-first.exited:
	case <-time.After(time.Minute):
		t.Fatalf("ripple serve did not exit within a minute of SIGTERM; stderr:\n%s", first.stderr.String())
	}
	require.NoError(t, *first.waitErr, "ripple serve should exit 0 after SIGTERM; stderr:\n%s", first.stderr.String())
	t.Logf("exited %s after SIGTERM with a provider call hanging", time.Since(stopped).Round(time.Millisecond))
	var running int64
	require.NoError(t, db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM river_job WHERE state = 'running'").Scan(&running))
	require.Zero(t, running, "a job was left running for the rescuer")

	provider.release()
	startServe(t, vars, db.Schema, addr)
	took := waitEmbedded(t, db, 2*time.Minute)
	t.Logf("every message embedded once %s after the restart", took.Round(time.Millisecond))
	requireEachMessageOnce(t, db, s)
}

// PostgreSQL restarted under load: sends during the outage fail with UNAVAILABLE (retryable,
// never INTERNAL), a client retrying each one under its request id gets every message stored
// exactly once, and the server recovers by itself once the database is back.
func TestFaultPostgresRestart(t *testing.T) {
	t.Parallel()
	// A server of the test's own, so restarting it disturbs no other test.
	pg := pglocal.ForTest(t)
	vars := map[string]string{"DATABASE_URL": pg.URL(), "RIPPLE_LOG_LEVEL": "error"}
	srv := startServe(t, vars, "public", "")
	ada, _ := signUpPair(t, srv.base(), "pg")

	type outcome struct {
		body string
		at   time.Time
	}
	acked := make(chan outcome, 1024)
	codes := map[string]int{}
	var codesMu sync.Mutex
	stop := make(chan struct{})
	sent := make(chan int, 1)
	go func() {
		// One message at a time, each retried under its own request id until it succeeds: a
		// retry of one that did commit gets the logged outcome, not a second message.
		sessionID := "fault-pg-" + randomTag()
		n := 0
		defer func() { sent <- n }()
		sock, err := dialChat(srv.base(), ada, sessionID)
		if err != nil {
			acked <- outcome{} // reported below
			return
		}
		defer func() { sock.Close() }()
		for id := int64(1); ; id++ {
			select {
			case <-stop:
				return
			default:
			}
			body := fmt.Sprintf("pg message %d", id)
			n++
			for done := false; !done; {
				sock.send(id, ada.conv, body)
				select {
				case ack, ok := <-sock.acks:
					if !ok { // the socket ended: reconnect and resend
						if sock, err = dialChat(srv.base(), ada, sessionID); err != nil {
							acked <- outcome{}
							return
						}
						continue
					}
					if ack.success {
						acked <- outcome{body: body, at: time.Now()}
						done = true
						continue
					}
					codesMu.Lock()
					codes[ack.code+" "+string(ack.result)]++
					codesMu.Unlock()
					time.Sleep(50 * time.Millisecond) // the client's backoff before it retries
				case <-time.After(time.Minute):
					acked <- outcome{} // a send hung: reported below
					return
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	waitAcks := func(n int) time.Time {
		var last time.Time
		for range n {
			select {
			case o := <-acked:
				require.NotEmpty(t, o.body, "a send got no answer for a minute, or the socket could not be opened")
				last = o.at
			case <-time.After(2 * time.Minute): // liveness only
				t.Fatal("no send acknowledged for 2 minutes")
			}
		}
		return last
	}
	waitAcks(10)
	require.NoError(t, pg.Shutdown(context.Background()))
	down := time.Now()
	// Down until a send has failed for it (the server gives up on a mutation after its retries).
	require.Eventually(t, func() bool {
		codesMu.Lock()
		defer codesMu.Unlock()
		return len(codes) > 0
	}, time.Minute, 10*time.Millisecond, "no send failed while the database was down")
	require.NoError(t, pg.Restart(context.Background()))
	up := time.Now()
	first := waitAcks(1)
	waitAcks(10)
	close(stop)
	total := <-sent
	t.Logf("Postgres down for %s; first send acknowledged %s after it was back", up.Sub(down).Round(time.Millisecond), first.Sub(up).Round(time.Millisecond))

	codesMu.Lock()
	for failure, n := range codes {
		require.True(t, strings.HasPrefix(failure, "UNAVAILABLE "), "a send failed with something other than UNAVAILABLE (%d times): %s", n, failure)
	}
	t.Logf("failures during the outage: %v", codes)
	codesMu.Unlock()
	pool, err := pgxpool.New(context.Background(), pg.URL())
	require.NoError(t, err)
	defer pool.Close()
	var stored, distinct int
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT count(*), count(DISTINCT body) FROM messages").Scan(&stored, &distinct))
	require.Equal(t, stored, distinct, "a message was stored twice")
	require.GreaterOrEqual(t, stored, total-1, "acknowledged messages are missing") // the last may still be in flight
	waitForOK(t, &http.Client{Timeout: 5 * time.Second}, srv.base()+"/readyz")
}
