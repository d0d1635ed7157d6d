package functions_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/engine/embedding"
	"github.com/ripplehq/ripple/functions"
	"github.com/ripplehq/ripple/internal/synctest"
	"github.com/ripplehq/ripple/queries"
)

// liveSearch is query id's newest live search result on c (false while it has none, or when it
// failed).
func liveSearch(t *testing.T, c *synctest.Client, id int64) (functions.LiveSearch, bool) {
	v, ok := c.Values[id]
	if !ok || synctest.ErrorOf(v) != "" {
		return functions.LiveSearch{}, false
	}
	var res functions.LiveSearch
	require.NoError(t, json.Unmarshal([]byte(mustJSON(v)), &res))
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

func (b *liveBundle) waitEmbedded(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		var got int
		require.NoError(t, b.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM message_embeddings").Scan(&got))
		return got >= n
	}, time.Minute, 20*time.Millisecond)
}

// lexicalMatch says whether Postgres full text alone matches body to query (as
// MessageSearchText does).
func (b *liveBundle) lexicalMatch(t *testing.T, body, query string) bool {
	var ok bool
	require.NoError(t, b.db.Pool.QueryRow(context.Background(),
		"SELECT to_tsvector('english', $1) @@ replace(plainto_tsquery('english', $2)::text, ' & ', ' | ')::tsquery", body, query).Scan(&ok))
	return ok
}

func TestSearchLiveUpdatesByItself(t *testing.T) {
	t.Parallel()
	b := setupLive(t, liveOpts{})
	ann, bob := b.signUp(t, "ann"), b.signUp(t, "bob")
	conv := b.direct(t, ann.Identity, bob.Identity, "bob")
	old := "the maths exam is on friday"
	b.send(t, bob.Identity, conv, old)
	b.send(t, bob.Identity, conv, "see you at lunch")
	b.waitEmbedded(t, 2)

	s := b.dial(t, ann)
	args := map[string]any{"conversationId": conv, "query": "Maths   EXAM"}
	s.Subscribe(1, "messages:searchLive", args)
	// Words at once, meaning pending: no vector was asked for yet.
	s.WaitFor(func() bool {
		r, ok := liveSearch(t, s, 1)
		return ok && r.Semantic == functions.SemanticPending && len(r.Hits) == 1 && r.Hits[0].Body == old
	}, "the words' matches")
	require.Zero(t, b.counts.Provider.Load())

	var prepared functions.PreparedSearch
	require.NoError(t, b.call(t, ann.Identity, "messages:prepareSearch", args, &prepared))
	require.Equal(t, functions.SemanticReady, prepared.Semantic)
	s.WaitFor(func() bool {
		r, ok := liveSearch(t, s, 1)
		return ok && r.Semantic == functions.SemanticReady && len(r.Hits) >= 1 && r.Hits[0].Body == old
	}, "semantic ready")

	// A new message matching the words shows up in the open search.
	fresh := "exam results for maths are out"
	b.send(t, bob.Identity, conv, fresh)
	s.WaitFor(func() bool { r, _ := liveSearch(t, s, 1); return hasBody(r, fresh) }, "the new words match")

	// One that matches only by meaning shows up once the sweep has embedded it.
	// The local provider's "meaning" is shared word parts: one word where the query has two.
	meaning := "mathsexam"
	require.False(t, b.lexicalMatch(t, meaning, "maths exam"), "the test needs a text that full text does not match")
	b.send(t, ann.Identity, conv, meaning)
	s.WaitFor(func() bool { r, _ := liveSearch(t, s, 1); return hasBody(r, meaning) }, "the meaning match")
	var embedded bool
	require.NoError(t, b.db.Pool.QueryRow(context.Background(),
		"SELECT EXISTS (SELECT 1 FROM message_embeddings e JOIN messages m ON m.id = e.message_id WHERE m.body = $1)", meaning).Scan(&embedded))
	require.True(t, embedded)

	// An edit written by another service (psql) shows; a deleted hit goes.
	_, err := b.db.Pool.Exec(context.Background(), "UPDATE messages SET body = 'exam results for maths are out (edited)' WHERE body = $1", fresh)
	require.NoError(t, err)
	s.WaitFor(func() bool {
		r, _ := liveSearch(t, s, 1)
		return hasBody(r, fresh+" (edited)") && !hasBody(r, fresh)
	}, "the edit")
	_, err = b.db.Pool.Exec(context.Background(), "DELETE FROM messages WHERE body = $1", old)
	require.NoError(t, err)
	s.WaitFor(func() bool { r, ok := liveSearch(t, s, 1); return ok && !hasBody(r, old) }, "the deleted hit to go")
	// Every update above came from the stored vector: one provider call in all.
	require.Equal(t, int64(1), b.counts.Provider.Load())
}

func TestSearchLiveMembership(t *testing.T) {
	t.Parallel()
	b := setupLive(t, liveOpts{})
	ann, bob, cat := b.signUp(t, "ann"), b.signUp(t, "bob"), b.signUp(t, "cat")
	conv := b.direct(t, ann.Identity, bob.Identity, "bob")
	b.send(t, ann.Identity, conv, "the maths exam is on friday")
	args := map[string]any{"conversationId": conv, "query": "maths exam"}

	// Not a member: refused, and no provider call spent on it.
	c := b.dial(t, cat)
	c.Subscribe(1, "messages:searchLive", args)
	c.WaitFor(func() bool {
		err := synctest.ErrorOf(c.Values[1])
		return strings.Contains(err, "FORBIDDEN") || strings.Contains(err, "participant")
	}, "FORBIDDEN")
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
	s.Subscribe(1, "messages:list", map[string]any{"conversationId": conv, "paginationOpts": map[string]any{"numItems": 10, "cursor": nil}})
	s.Subscribe(2, "messages:searchLive", args)
	s.WaitFor(func() bool { _, ok := liveSearch(t, s, 2); return ok && s.Values[1] != nil }, "both results")
	_, err := b.db.Pool.Exec(context.Background(), "DELETE FROM conversation_participants WHERE conversation_id = $1 AND user_id = $2", conv, bob.UserID)
	require.NoError(t, err)
	s.WaitFor(func() bool { return synctest.ErrorOf(s.Values[2]) != "" }, "the search to fail")
	require.ElementsMatch(t, []int64{1, 2}, s.Failed, "one transition takes both away")
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
	b := setupLive(t, liveOpts{embedder: embedder})
	ann, bob := b.signUp(t, "ann"), b.signUp(t, "bob")
	conv := b.direct(t, ann.Identity, bob.Identity, "bob")
	b.send(t, bob.Identity, conv, "football practice moved to thursday")

	const tabs = 6
	sockets := make([]*synctest.Client, tabs)
	for i := range sockets {
		who := ann
		if i%2 == 1 {
			who = bob
		}
		sockets[i] = b.dial(t, who)
		// Spelled differently, normalised alike.
		q := []string{"football practice", "Football  practice", " FOOTBALL PRACTICE "}[i%3]
		sockets[i].Subscribe(1, "messages:searchLive", map[string]any{"conversationId": conv, "query": q})
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
		s.WaitFor(func() bool { r, ok := liveSearch(t, s, 1); return ok && r.Semantic == functions.SemanticReady }, fmt.Sprintf("socket %d ready", i))
	}
	// Updates: each new match reaches every open search, and none asks the provider.
	for n := range 5 {
		body := fmt.Sprintf("football practice note %d", n)
		b.send(t, ann.Identity, conv, body)
		for i, s := range sockets {
			s.WaitFor(func() bool { r, _ := liveSearch(t, s, 1); return hasBody(r, body) }, fmt.Sprintf("socket %d sees %q", i, body))
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
	b := setupLive(t, liveOpts{queryVectors: functions.QueryVectorConfig{MaxStored: 3, MaxCached: 2}})
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
	s.Subscribe(1, "messages:searchLive", map[string]any{"conversationId": conv, "query": "alpha"})
	prepare("alpha")
	s.WaitFor(func() bool { r, ok := liveSearch(t, s, 1); return ok && r.Semantic == functions.SemanticReady }, "alpha ready")
	for _, q := range []string{"beta", "gamma", "delta"} {
		prepare(q)
	}
	require.Len(t, stored(), 3)
	require.Equal(t, int64(1), b.counts.Evicted.Load())
	require.Equal(t, int64(4), b.counts.Provider.Load())
	// alpha was the least recently used: gone, and its open search says so by itself.
	s.WaitFor(func() bool { r, ok := liveSearch(t, s, 1); return ok && r.Semantic == functions.SemanticPending }, "alpha pending")
	// Still stored: no provider call.
	prepare("delta")
	require.Equal(t, int64(4), b.counts.Provider.Load())
	// alpha left this process's cache too (2 entries: gamma, delta): the provider again.
	prepare("alpha")
	require.Equal(t, int64(5), b.counts.Provider.Load())
	s.WaitFor(func() bool { r, ok := liveSearch(t, s, 1); return ok && r.Semantic == functions.SemanticReady }, "alpha ready again")
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

	b := setupLive(t, liveOpts{})
	ann, bob, cat := b.signUp(t, "ann"), b.signUp(t, "bob"), b.signUp(t, "cat")
	conv := b.direct(t, ann.Identity, bob.Identity, "bob")
	other := b.direct(t, bob.Identity, cat.Identity, "cat")
	b.send(t, ann.Identity, conv, "maths exam friday")
	require.NoError(t, b.call(t, ann.Identity, "messages:prepareSearch", map[string]any{"conversationId": conv, "query": "maths exam"}, nil))
	// Embedded before the search opens, so its first run already saw everything of its own
	// conversation and any later run would be the other conversation's doing.
	b.waitEmbedded(t, 1)

	s := b.dial(t, ann)
	s.Subscribe(1, "messages:searchLive", map[string]any{"conversationId": conv, "query": "maths exam"})
	s.WaitFor(func() bool { r, ok := liveSearch(t, s, 1); return ok && r.Semantic == functions.SemanticReady }, "the result")
	runs := func() uint64 { return functionRuns(t, b.engine, "messages:searchLive") }
	before := runs()

	// Matching messages in another conversation, and their embeddings: bob's page of that
	// conversation shows them (so the batches that carried them are done); ann's search did
	// not run again.
	w := b.dial(t, bob)
	w.Subscribe(1, "messages:list", map[string]any{"conversationId": other, "paginationOpts": map[string]any{"numItems": 10, "cursor": nil}})
	for i := range 3 {
		b.send(t, cat.Identity, other, fmt.Sprintf("maths exam elsewhere %d", i))
	}
	w.WaitFor(func() bool { return strings.Count(mustJSON(w.Values[1]), "elsewhere") == 3 }, "the other conversation's messages")
	b.waitEmbedded(t, 4)
	b.send(t, cat.Identity, other, "a marker after the embeddings")
	w.WaitFor(func() bool { return strings.Contains(mustJSON(w.Values[1]), "a marker") }, "the marker")
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
