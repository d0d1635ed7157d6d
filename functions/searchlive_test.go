package functions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/engine/embedding"
	"github.com/ripplehq/ripple/functions"
	"github.com/ripplehq/ripple/internal/testdb"
	"github.com/ripplehq/ripple/queries"
)

// searchBundle is the chat served over HTTP with accounts, so tests hold real sync sockets.
type searchBundle struct {
	*testBundle
	srv    *httptest.Server
	counts *functions.QueryVectorCounts
}

type liveOpts struct {
	embedder     embedding.Provider
	queryVectors functions.QueryVectorConfig
}

func setupSearchLive(t *testing.T, opts liveOpts) *searchBundle {
	t.Helper()
	ctx := context.Background()
	db := testdb.NewSchema(t)
	embedder := opts.embedder
	if embedder == nil {
		var err error
		embedder, err = embedding.New(embedding.Config{Provider: embedding.ProviderLocal})
		require.NoError(t, err)
	}
	svc, err := engine.NewAuthService(db.Pool, &engine.AuthConfig{})
	require.NoError(t, err)
	require.NoError(t, svc.Start(ctx))
	counts := &functions.QueryVectorCounts{}
	reg := engine.NewRegistry()
	functions.Register(reg, &functions.Deps{Embedder: embedder, QueryVectors: opts.queryVectors, QueryVectorCounts: counts})
	e, err := engine.New(db.Pool, reg, &engine.Config{Schema: db.Schema, JobWorkers: 4, Auth: svc.Authenticator()})
	require.NoError(t, err)
	require.NoError(t, e.Start(ctx))
	mux := http.NewServeMux()
	svc.Routes(mux)
	mux.Handle("/api/", e.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, e.Stop(stopCtx))
		srv.Close()
	})
	return &searchBundle{testBundle: &testBundle{db: db, engine: e}, srv: srv, counts: counts}
}

type account struct {
	engine.Identity
	token string
}

// signUp makes an account through the auth API (name@school.test).
func (b *searchBundle) signUp(t *testing.T, name string) account {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"email": name + "@school.test", "password": "correct horse battery", "name": name})
	resp, err := http.Post(b.srv.URL+"/api/auth/signup", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(raw))
	var out struct {
		AccessToken string `json:"accessToken"`
		User        struct {
			ID string `json:"_id"`
		} `json:"user"`
	}
	require.NoError(t, json.Unmarshal(raw, &out))
	return account{Identity: engine.Identity{UserID: out.User.ID}, token: out.AccessToken}
}

// socket is a signed-in sync client: it keeps each query's newest value (or error) and tells
// waiters when a transition arrives.
type socket struct {
	t    *testing.T
	conn *websocket.Conn
	qs   int64

	mu     sync.Mutex
	values map[int64]json.RawMessage
	errs   map[int64]string
	// transitions holds, per transition, the queries it failed and updated.
	transitions []transition
	changed     chan struct{}
	closed      bool
}

type transition struct {
	failed, updated []int64
}

func (b *searchBundle) dial(t *testing.T, who account) *socket {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(b.srv.URL, "http")+"/api/1.48.0/sync", nil)
	require.NoError(t, err)
	conn.SetReadLimit(64 << 20)
	s := &socket{t: t, conn: conn, values: map[int64]json.RawMessage{}, errs: map[int64]string{}, changed: make(chan struct{}, 1)}
	done := make(chan struct{})
	go s.read(done)
	t.Cleanup(func() {
		conn.Close(websocket.StatusNormalClosure, "")
		<-done
	})
	s.send(map[string]any{"type": "Connect", "sessionId": fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano()), "connectionCount": 0, "lastCloseReason": nil, "clientTs": time.Now().UnixMilli()})
	s.send(map[string]any{"type": "Authenticate", "tokenType": "User", "value": who.token, "baseVersion": 0})
	return s
}

func (s *socket) send(m any) {
	buf, err := json.Marshal(m)
	require.NoError(s.t, err)
	require.NoError(s.t, s.conn.Write(context.Background(), websocket.MessageText, buf))
}

func (s *socket) read(done chan struct{}) {
	defer close(done)
	defer func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.notify()
	}()
	for {
		_, data, err := s.conn.Read(context.Background())
		if err != nil {
			return
		}
		var m struct {
			Type          string `json:"type"`
			Modifications []struct {
				Type         string          `json:"type"`
				QueryID      int64           `json:"queryId"`
				Value        json.RawMessage `json:"value"`
				ErrorMessage string          `json:"errorMessage"`
				ErrorData    json.RawMessage `json:"errorData"`
			} `json:"modifications"`
		}
		if json.Unmarshal(data, &m) != nil || m.Type != "Transition" {
			continue
		}
		var tr transition
		s.mu.Lock()
		for _, mod := range m.Modifications {
			switch mod.Type {
			case "QueryUpdated":
				s.values[mod.QueryID] = mod.Value
				delete(s.errs, mod.QueryID)
				tr.updated = append(tr.updated, mod.QueryID)
			case "QueryFailed":
				delete(s.values, mod.QueryID)
				s.errs[mod.QueryID] = mod.ErrorMessage + " " + string(mod.ErrorData)
				tr.failed = append(tr.failed, mod.QueryID)
			}
		}
		s.transitions = append(s.transitions, tr)
		s.mu.Unlock()
		s.notify()
	}
}

func (s *socket) notify() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// subscribe adds a query under id.
func (s *socket) subscribe(id int64, path string, args any) {
	s.send(map[string]any{"type": "ModifyQuerySet", "baseVersion": s.qs, "newVersion": s.qs + 1,
		"modifications": []any{map[string]any{"type": "Add", "queryId": id, "udfPath": path, "args": []any{args}}}})
	s.qs++
}

// waitFor waits until cond holds on the socket's state (held under its lock), at most a minute:
// a signal, not a timing assertion.
func (s *socket) waitFor(what string, cond func() bool) {
	s.t.Helper()
	deadline := time.After(time.Minute)
	for {
		s.mu.Lock()
		ok, closed := cond(), s.closed
		s.mu.Unlock()
		if ok {
			return
		}
		require.False(s.t, closed, "socket closed waiting for %s", what)
		select {
		case <-s.changed:
		case <-deadline:
			s.mu.Lock()
			defer s.mu.Unlock()
			s.t.Fatalf("waiting for %s: values %s, errors %v", what, rawValues(s.values), s.errs)
		}
	}
}

func rawValues(v map[int64]json.RawMessage) string {
	var b strings.Builder
	for id, raw := range v {
		fmt.Fprintf(&b, "%d=%s ", id, raw)
	}
	return b.String()
}

// search is query id's newest live search result (call under the lock, in waitFor).
func (s *socket) search(id int64) (functions.LiveSearch, bool) {
	raw, ok := s.values[id]
	if !ok {
		return functions.LiveSearch{}, false
	}
	var res functions.LiveSearch
	require.NoError(s.t, json.Unmarshal(raw, &res))
	return res, true
}

func bodies(res functions.LiveSearch) []string {
	out := make([]string, len(res.Hits))
	for i, h := range res.Hits {
		out[i] = h.Body
	}
	return out
}

func hasBody(res functions.LiveSearch, body string) bool {
	for _, h := range res.Hits {
		if h.Body == body {
			return true
		}
	}
	return false
}

func (b *searchBundle) waitEmbedded(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		var got int
		require.NoError(t, b.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM message_embeddings").Scan(&got))
		return got >= n
	}, time.Minute, 20*time.Millisecond)
}

// lexicalMatch says whether Postgres full text alone matches body to query (as
// MessageSearchText does).
func (b *searchBundle) lexicalMatch(t *testing.T, body, query string) bool {
	var ok bool
	require.NoError(t, b.db.Pool.QueryRow(context.Background(),
		"SELECT to_tsvector('english', $1) @@ replace(plainto_tsquery('english', $2)::text, ' & ', ' | ')::tsquery", body, query).Scan(&ok))
	return ok
}

func TestSearchLiveUpdatesByItself(t *testing.T) {
	t.Parallel()
	b := setupSearchLive(t, liveOpts{})
	ann, bob := b.signUp(t, "ann"), b.signUp(t, "bob")
	conv := b.direct(t, ann.Identity, bob.Identity, "bob")
	old := "the maths exam is on friday"
	b.send(t, bob.Identity, conv, old)
	b.send(t, bob.Identity, conv, "see you at lunch")
	b.waitEmbedded(t, 2)

	s := b.dial(t, ann)
	args := map[string]any{"conversationId": conv, "query": "Maths   EXAM"}
	s.subscribe(1, "messages:searchLive", args)
	// Words at once, meaning pending: no vector was asked for yet.
	s.waitFor("the words' matches", func() bool {
		r, ok := s.search(1)
		return ok && r.Semantic == functions.SemanticPending && len(r.Hits) == 1 && r.Hits[0].Body == old
	})
	require.Zero(t, b.counts.Provider.Load())

	var prepared functions.PreparedSearch
	require.NoError(t, b.call(t, ann.Identity, "messages:prepareSearch", args, &prepared))
	require.Equal(t, functions.SemanticReady, prepared.Semantic)
	s.waitFor("semantic ready", func() bool {
		r, ok := s.search(1)
		return ok && r.Semantic == functions.SemanticReady && len(r.Hits) >= 1 && r.Hits[0].Body == old
	})

	// A new message matching the words shows up in the open search.
	fresh := "exam results for maths are out"
	b.send(t, bob.Identity, conv, fresh)
	s.waitFor("the new words match", func() bool { r, _ := s.search(1); return hasBody(r, fresh) })

	// One that matches only by meaning shows up once the sweep has embedded it.
	// The local provider's "meaning" is shared word parts: one word where the query has two.
	meaning := "mathsexam"
	require.False(t, b.lexicalMatch(t, meaning, "maths exam"), "the test needs a text that full text does not match")
	b.send(t, ann.Identity, conv, meaning)
	s.waitFor("the meaning match", func() bool { r, _ := s.search(1); return hasBody(r, meaning) })
	var embedded bool
	require.NoError(t, b.db.Pool.QueryRow(context.Background(),
		"SELECT EXISTS (SELECT 1 FROM message_embeddings e JOIN messages m ON m.id = e.message_id WHERE m.body = $1)", meaning).Scan(&embedded))
	require.True(t, embedded)

	// An edit written by another service (psql) shows; a deleted hit goes.
	_, err := b.db.Pool.Exec(context.Background(), "UPDATE messages SET body = 'exam results for maths are out (edited)' WHERE body = $1", fresh)
	require.NoError(t, err)
	s.waitFor("the edit", func() bool {
		r, _ := s.search(1)
		return hasBody(r, fresh+" (edited)") && !hasBody(r, fresh)
	})
	_, err = b.db.Pool.Exec(context.Background(), "DELETE FROM messages WHERE body = $1", old)
	require.NoError(t, err)
	s.waitFor("the deleted hit to go", func() bool { r, ok := s.search(1); return ok && !hasBody(r, old) })
	// Every update above came from the stored vector: one provider call in all.
	require.Equal(t, int64(1), b.counts.Provider.Load())
}

func TestSearchLiveMembership(t *testing.T) {
	t.Parallel()
	b := setupSearchLive(t, liveOpts{})
	ann, bob, cat := b.signUp(t, "ann"), b.signUp(t, "bob"), b.signUp(t, "cat")
	conv := b.direct(t, ann.Identity, bob.Identity, "bob")
	b.send(t, ann.Identity, conv, "the maths exam is on friday")
	args := map[string]any{"conversationId": conv, "query": "maths exam"}

	// Not a member: refused, and no provider call spent on it.
	c := b.dial(t, cat)
	c.subscribe(1, "messages:searchLive", args)
	c.waitFor("FORBIDDEN", func() bool {
		return strings.Contains(c.errs[1], "FORBIDDEN") || strings.Contains(c.errs[1], "participant")
	})
	requireCode(t, b.call(t, cat.Identity, "messages:prepareSearch", args, nil), engine.CodeForbidden)
	requireCode(t, b.call(t, engine.Identity{}, "messages:prepareSearch", args, nil), engine.CodeUnauthenticated)
	require.Zero(t, b.counts.Provider.Load())
	// Bounds: a query too long or empty, a limit out of range.
	for _, bad := range []map[string]any{
		{"conversationId": conv, "query": strings.Repeat("x", functions.MaxSearchQueryBytes+1)},
		{"conversationId": conv, "query": "   "},
		{"conversationId": conv, "query": "a\x00b"},
		{"conversationId": conv, "query": "maths", "limit": functions.MaxSearchLimit + 1},
		{"conversationId": "nope", "query": "maths"},
	} {
		var res functions.LiveSearch
		requireCode(t, b.call(t, ann.Identity, "messages:searchLive", bad, &res), engine.CodeInvalidArgument)
	}

	// Bob loses access (removed from the conversation by another service): his live search fails
	// in the same transition as his page of messages.
	s := b.dial(t, bob)
	s.subscribe(1, "messages:list", map[string]any{"conversationId": conv, "paginationOpts": map[string]any{"numItems": 10, "cursor": nil}})
	s.subscribe(2, "messages:searchLive", args)
	s.waitFor("both results", func() bool { _, ok := s.search(2); return ok && s.values[1] != nil })
	_, err := b.db.Pool.Exec(context.Background(), "DELETE FROM conversation_participants WHERE conversation_id = $1 AND user_id = $2", conv, bob.UserID)
	require.NoError(t, err)
	s.waitFor("the search to fail", func() bool { return s.errs[2] != "" })
	s.mu.Lock()
	last := s.transitions[len(s.transitions)-1]
	s.mu.Unlock()
	require.ElementsMatch(t, []int64{1, 2}, last.failed, "one transition takes both away")
}

// cohereFake speaks Cohere's v2 embed API with the local provider's vectors and counts the
// query texts it was asked to embed.
type cohereFake struct {
	local   embedding.Provider
	mu      sync.Mutex
	queries map[string]int
	calls   atomic.Int64
}

func newCohereFake(t *testing.T) (*cohereFake, *httptest.Server) {
	local, err := embedding.New(embedding.Config{Provider: embedding.ProviderLocal})
	require.NoError(t, err)
	f := &cohereFake{local: local, queries: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			InputType string   `json:"input_type"`
			Texts     []string `json:"texts"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || r.URL.Path != "/v2/embed" {
			http.Error(w, `{"message":"bad request"}`, http.StatusBadRequest)
			return
		}
		f.calls.Add(1)
		if req.InputType == "search_query" {
			f.mu.Lock()
			for _, text := range req.Texts {
				f.queries[text]++
			}
			f.mu.Unlock()
		}
		vectors, err := f.local.Embed(r.Context(), req.Texts, embedding.InputDocument)
		if err != nil {
			http.Error(w, `{"message":"embedding"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"id":"x","embeddings":{"float":%s},"texts":%s,"meta":{}}`, mustJSON(vectors), mustJSON(req.Texts))
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *cohereFake) queryCalls() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for k, v := range f.queries {
		out[k] = v
	}
	return out
}

// TestSearchLiveOneProviderCallPerText: many subscribers preparing at once, many updates, the
// action beside them: the provider is asked for each distinct query text once.
func TestSearchLiveOneProviderCallPerText(t *testing.T) {
	t.Parallel()
	fake, srv := newCohereFake(t)
	embedder, err := embedding.New(embedding.Config{Provider: embedding.ProviderCohere, APIKey: "test-key", BaseURL: srv.URL})
	require.NoError(t, err)
	b := setupSearchLive(t, liveOpts{embedder: embedder})
	ann, bob := b.signUp(t, "ann"), b.signUp(t, "bob")
	conv := b.direct(t, ann.Identity, bob.Identity, "bob")
	b.send(t, bob.Identity, conv, "football practice moved to thursday")

	const tabs = 6
	sockets := make([]*socket, tabs)
	for i := range sockets {
		who := ann
		if i%2 == 1 {
			who = bob
		}
		sockets[i] = b.dial(t, who)
		// Spelled differently, normalised alike.
		q := []string{"football practice", "Football  practice", " FOOTBALL PRACTICE "}[i%3]
		sockets[i].subscribe(1, "messages:searchLive", map[string]any{"conversationId": conv, "query": q})
	}
	var wg sync.WaitGroup
	for i := range tabs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			who := ann
			if i%2 == 1 {
				who = bob
			}
			assertNoError(t, b.call(t, who.Identity, "messages:prepareSearch", map[string]any{"conversationId": conv, "query": "football practice"}, nil))
		}()
	}
	wg.Wait()
	for i, s := range sockets {
		s.waitFor(fmt.Sprintf("socket %d ready", i), func() bool { r, ok := s.search(1); return ok && r.Semantic == functions.SemanticReady })
	}
	// Updates: each new match reaches every open search, and none asks the provider.
	for n := range 5 {
		body := fmt.Sprintf("football practice note %d", n)
		b.send(t, ann.Identity, conv, body)
		for i, s := range sockets {
			s.waitFor(fmt.Sprintf("socket %d sees %q", i, body), func() bool { r, _ := s.search(1); return hasBody(r, body) })
		}
	}
	b.waitEmbedded(t, 6)
	// The action uses the same vector.
	var hits []functions.SearchHit
	require.NoError(t, b.call(t, ann.Identity, "messages:search", map[string]any{"conversationId": conv, "query": "football practice"}, &hits))
	require.NotEmpty(t, hits)
	// Another text: one more call, made by the action.
	require.NoError(t, b.call(t, ann.Identity, "messages:search", map[string]any{"conversationId": conv, "query": "thursday"}, &hits))
	require.NoError(t, b.call(t, bob.Identity, "messages:search", map[string]any{"conversationId": conv, "query": "Thursday"}, &hits))
	require.Equal(t, map[string]int{"football practice": 1, "thursday": 1}, fake.queryCalls())
	require.Equal(t, int64(2), b.counts.Provider.Load())
}

func assertNoError(t *testing.T, err error) {
	if err != nil {
		t.Error(err)
	}
}

// TestSearchQueryVectorCacheIsBounded: past the cap the least recently used stored vector goes;
// a live search reading it turns pending by itself and ready again once it is prepared again,
// from this process's cache while the text is still there, from the provider once it is not.
func TestSearchQueryVectorCacheIsBounded(t *testing.T) {
	t.Parallel()
	b := setupSearchLive(t, liveOpts{queryVectors: functions.QueryVectorConfig{MaxStored: 3, MaxCached: 2}})
	ann, bob := b.signUp(t, "ann"), b.signUp(t, "bob")
	conv := b.direct(t, ann.Identity, bob.Identity, "bob")
	b.send(t, bob.Identity, conv, "alpha beta gamma")
	prepare := func(q string) {
		t.Helper()
		require.NoError(t, b.call(t, ann.Identity, "messages:prepareSearch", map[string]any{"conversationId": conv, "query": q}, nil))
	}
	stored := func() []string {
		rows, err := b.db.Pool.Query(context.Background(), "SELECT key FROM search_query_vectors ORDER BY used_at, key")
		require.NoError(t, err)
		keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return keys
	}

	s := b.dial(t, ann)
	s.subscribe(1, "messages:searchLive", map[string]any{"conversationId": conv, "query": "alpha"})
	prepare("alpha")
	s.waitFor("alpha ready", func() bool { r, ok := s.search(1); return ok && r.Semantic == functions.SemanticReady })
	for _, q := range []string{"beta", "gamma", "delta"} {
		prepare(q)
	}
	require.Len(t, stored(), 3)
	require.Equal(t, int64(1), b.counts.Evicted.Load())
	require.Equal(t, int64(4), b.counts.Provider.Load())
	// alpha was the least recently used: gone, and its open search says so by itself.
	s.waitFor("alpha pending", func() bool { r, ok := s.search(1); return ok && r.Semantic == functions.SemanticPending })
	// Still stored: no provider call.
	prepare("delta")
	require.Equal(t, int64(4), b.counts.Provider.Load())
	// alpha left this process's cache too (2 entries: gamma, delta): the provider again.
	prepare("alpha")
	require.Equal(t, int64(5), b.counts.Provider.Load())
	s.waitFor("alpha ready again", func() bool { r, ok := s.search(1); return ok && r.Semantic == functions.SemanticReady })
	require.Len(t, stored(), 3)
	require.Equal(t, int64(2), b.counts.Evicted.Load())
}

// TestSearchLiveReadsOneConversation: the statements a live search runs read messages and
// embeddings by conversation and the query vector by key, never a table whole, so messages
// elsewhere do not re-run it.
func TestSearchLiveReadsOneConversation(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"SearchVectorGet", "MessageSearchText", "EmbeddingCountForConversation", "EmbeddingNearestInConversation", "EmbeddingSearchIndexed", "ParticipantGet"} {
		spec, ok := queries.ReadSpecs[name]
		require.True(t, ok, name)
		require.NotEmpty(t, spec.Tables, name)
		for _, tr := range spec.Tables {
			require.NotEqual(t, engine.ReadTable, tr.Kind, "%s reads %s whole", name, tr.Table)
		}
	}

	b := setupSearchLive(t, liveOpts{})
	ann, bob, cat := b.signUp(t, "ann"), b.signUp(t, "bob"), b.signUp(t, "cat")
	conv := b.direct(t, ann.Identity, bob.Identity, "bob")
	other := b.direct(t, bob.Identity, cat.Identity, "cat")
	b.send(t, ann.Identity, conv, "maths exam friday")
	require.NoError(t, b.call(t, ann.Identity, "messages:prepareSearch", map[string]any{"conversationId": conv, "query": "maths exam"}, nil))
	// Embedded before the search opens, so its first run already saw everything of its own
	// conversation and any later run would be the other conversation's doing.
	b.waitEmbedded(t, 1)

	s := b.dial(t, ann)
	s.subscribe(1, "messages:searchLive", map[string]any{"conversationId": conv, "query": "maths exam"})
	s.waitFor("the result", func() bool { r, ok := s.search(1); return ok && r.Semantic == functions.SemanticReady })
	runs := func() uint64 { return functionRuns(t, b.engine, "messages:searchLive") }
	before := runs()

	// Matching messages in another conversation, and their embeddings: bob's page of that
	// conversation shows them (so the batches that carried them are done); ann's search did
	// not run again.
	w := b.dial(t, bob)
	w.subscribe(1, "messages:list", map[string]any{"conversationId": other, "paginationOpts": map[string]any{"numItems": 10, "cursor": nil}})
	for i := range 3 {
		b.send(t, cat.Identity, other, fmt.Sprintf("maths exam elsewhere %d", i))
	}
	w.waitFor("the other conversation's messages", func() bool { return strings.Count(string(w.values[1]), "elsewhere") == 3 })
	b.waitEmbedded(t, 4)
	b.send(t, cat.Identity, other, "a marker after the embeddings")
	w.waitFor("the marker", func() bool { return strings.Contains(string(w.values[1]), "a marker") })
	require.Equal(t, before, runs(), "a message in another conversation re-ran the live search")
}

// functionRuns is how many runs of path the engine's duration histogram counted.
func functionRuns(t *testing.T, e *engine.Engine, path string) uint64 {
	t.Helper()
	families, err := e.MetricsRegistry().Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != "ripple_function_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "path" && l.GetValue() == path {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	t.Fatalf("no runs of %s recorded", path)
	return 0
}
