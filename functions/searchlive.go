package functions

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgvector/pgvector-go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/engine/embedding"
	"github.com/ripplehq/ripple/queries"
)

// Live search. messages:searchLive is a query, and queries may not call the network, so the
// vector of its query text is made beforehand and stored: messages:prepareSearch (an action)
// asks the provider once per model and normalised text and stores the vector in
// search_query_vectors; the query reads that row, so it returns the words' matches with
// semantic "pending" until the row exists and re-runs by itself when it appears. messages:search
// (the action kept for HTTP and the CLI) takes its vector the same way. A vector is looked for in
// this process's cache, then in the table, and only then asked of the provider, with one call
// per text in flight in this process however many ask at once.

// MaxSearchQueryBytes bounds a search's text (after normalising), and MaxSearchLimit the hits
// one search returns.
const (
	MaxSearchQueryBytes = 2000
	MaxSearchLimit      = 50
	defaultSearchLimit  = 10
)

// Semantic states of a live search's result.
const (
	SemanticReady   = "ready"
	SemanticPending = "pending"
)

// QueryVectorConfig bounds the caches of search query vectors.
type QueryVectorConfig struct {
	// MaxStored bounds the rows of search_query_vectors: when a new vector is stored past it, the
	// least recently used go. Default 10,000 (about 60 MB at 1,536 dimensions).
	MaxStored int
	// MaxCached bounds this process's in-memory cache of query vectors (least recently used
	// out first). It saves a provider call when a stored row was evicted while its text is still
	// searched. Default 1,000.
	MaxCached int
	// TouchEvery is how seldom a stored vector's last use moves forward: each move re-runs the
	// live searches reading it, so only once in this long. Default 5 minutes.
	TouchEvery time.Duration
}

// WithDefaults returns the configuration with zero fields set to their defaults.
func (c QueryVectorConfig) WithDefaults() QueryVectorConfig {
	if c.MaxStored == 0 {
		c.MaxStored = 10_000
	}
	if c.MaxCached == 0 {
		c.MaxCached = 1_000
	}
	if c.TouchEvery == 0 {
		c.TouchEvery = 5 * time.Minute
	}
	return c
}

func (c QueryVectorConfig) validate() error {
	if c.MaxStored < 1 || c.MaxCached < 1 || c.TouchEvery < 0 {
		return fmt.Errorf("functions: QueryVectorConfig: MaxStored and MaxCached must be positive and TouchEvery not negative (%+v)", c)
	}
	return nil
}

// QueryVectorCounts counts where search query vectors came from. Safe for concurrent use; pass
// one in Deps to read it (tests, `ripple bench chat`) or export it (Collector).
type QueryVectorCounts struct {
	// Memory: this process's cache. Stored: search_query_vectors. Provider: a provider call.
	Memory, Stored, Provider atomic.Int64
	// Evicted counts stored rows deleted past QueryVectorConfig.MaxStored.
	Evicted atomic.Int64
}

var queryVectorsDesc = prometheus.NewDesc("ripple_chat_search_query_vectors_total",
	"Search query vectors looked up, by where they were found (memory, stored, provider: a provider call).", []string{"source"}, nil)

var queryVectorsEvictedDesc = prometheus.NewDesc("ripple_chat_search_query_vectors_evicted_total",
	"Stored search query vectors deleted past the cap.", nil, nil)

// Collector exports the counts as ripple_chat_search_query_vectors_total{source} and
// ripple_chat_search_query_vectors_evicted_total.
func (c *QueryVectorCounts) Collector() prometheus.Collector { return countsCollector{c} }

type countsCollector struct{ c *QueryVectorCounts }

func (k countsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queryVectorsDesc
	ch <- queryVectorsEvictedDesc
}

func (k countsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range []struct {
		name string
		n    *atomic.Int64
	}{{"memory", &k.c.Memory}, {"stored", &k.c.Stored}, {"provider", &k.c.Provider}} {
		ch <- prometheus.MustNewConstMetric(queryVectorsDesc, prometheus.CounterValue, float64(s.n.Load()), s.name)
	}
	ch <- prometheus.MustNewConstMetric(queryVectorsEvictedDesc, prometheus.CounterValue, float64(k.c.Evicted.Load()))
}

// normalizeQuery makes the text a search looks for, and its cache key, from what the caller
// typed: spaces trimmed and collapsed, lower case (the full-text half ignores case anyway), so
// "Maths  exam" and "maths exam" share one vector.
func normalizeQuery(raw string) (string, error) {
	if len(raw) > 4*MaxSearchQueryBytes {
		return "", engine.InvalidArgument("argument %q must be 1 to %d bytes", "query", MaxSearchQueryBytes)
	}
	if strings.ContainsRune(raw, 0) {
		return "", engine.InvalidArgument("argument %q must not contain NUL characters", "query")
	}
	text := strings.ToLower(strings.Join(strings.Fields(raw), " "))
	if text == "" || len(text) > MaxSearchQueryBytes {
		return "", engine.InvalidArgument("argument %q must be 1 to %d bytes", "query", MaxSearchQueryBytes)
	}
	return text, nil
}

// searchLimit checks a search's limit (nil: the default).
func searchLimit(limit *int) (int, error) {
	if limit == nil {
		return defaultSearchLimit, nil
	}
	if *limit < 1 || *limit > MaxSearchLimit {
		return 0, engine.InvalidArgument("argument %q must be between 1 and %d", "limit", MaxSearchLimit)
	}
	return *limit, nil
}

// queryVectorKey is a query text's row in search_query_vectors: vectors of different models are
// never compared, so the model is part of it.
func queryVectorKey(model, text string) string {
	sum := sha256.Sum256([]byte(model + "\x00" + text))
	return hex.EncodeToString(sum[:])
}

// queryVectors finds the vector of a query text: this process's cache, the stored row, or the
// provider (one call per key in flight).
type queryVectors struct {
	provider embedding.Provider
	cfg      QueryVectorConfig
	counts   *QueryVectorCounts

	mu       sync.Mutex
	lru      *list.List // of *cachedVector, most recently used first
	byKey    map[string]*list.Element
	inflight map[string]*vectorCall
}

type cachedVector struct {
	key    string
	vector []float32
}

type vectorCall struct {
	done   chan struct{}
	vector []float32
	err    error
}

func newQueryVectors(provider embedding.Provider, cfg QueryVectorConfig, counts *QueryVectorCounts) *queryVectors {
	if counts == nil {
		counts = &QueryVectorCounts{}
	}
	return &queryVectors{provider: provider, cfg: cfg, counts: counts, lru: list.New(),
		byKey: map[string]*list.Element{}, inflight: map[string]*vectorCall{}}
}

func (q *queryVectors) cached(key string) ([]float32, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	el, ok := q.byKey[key]
	if !ok {
		return nil, false
	}
	q.lru.MoveToFront(el)
	return el.Value.(*cachedVector).vector, true
}

func (q *queryVectors) remember(key string, v []float32) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if el, ok := q.byKey[key]; ok {
		q.lru.MoveToFront(el)
		return
	}
	q.byKey[key] = q.lru.PushFront(&cachedVector{key: key, vector: v})
	for q.lru.Len() > q.cfg.MaxCached {
		last := q.lru.Back()
		q.lru.Remove(last)
		delete(q.byKey, last.Value.(*cachedVector).key)
	}
}

// once runs fn for key, or, while another caller's fn for that key is running, waits for
// it and shares its outcome: one provider call and one store per text in flight in this process.
func (q *queryVectors) once(ctx context.Context, key string, fn func() ([]float32, error)) ([]float32, error) {
	q.mu.Lock()
	call, running := q.inflight[key]
	if !running {
		call = &vectorCall{done: make(chan struct{})}
		q.inflight[key] = call
	}
	q.mu.Unlock()
	if running {
		select {
		case <-call.done:
			return call.vector, call.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	call.vector, call.err = fn()
	q.mu.Lock()
	delete(q.inflight, key)
	q.mu.Unlock()
	close(call.done)
	return call.vector, call.err
}

// queryVector is the text's vector for the current model, stored in search_query_vectors when it
// returns, so live searches of the text read it from there. The lookups are queries (no
// serialization conflicts between the many searches of one text); only a new vector, a stale
// last use and an eviction write.
func (q *queryVectors) queryVector(ctx *engine.ActionCtx, text string) ([]float32, error) {
	model := q.provider.Model()
	key := queryVectorKey(model, text)
	var stored []storedVector
	if err := ctx.RunQuery("messages:searchVectorGet", searchVectorKey{Key: key, Model: model}, &stored); err != nil {
		return nil, err
	}
	if len(stored) > 0 {
		q.counts.Stored.Add(1)
		q.remember(key, stored[0].Vector)
		if time.Since(time.UnixMilli(stored[0].UsedAt)) > q.cfg.TouchEvery {
			// Its failure costs only eviction order.
			if err := ctx.RunMutation("messages:touchSearchVector", searchVectorKey{Key: key, Model: model}, nil); err != nil {
				ctx.Logger().Warn("marking a search query vector used", "error", err)
			}
		}
		return stored[0].Vector, nil
	}
	return q.once(ctx, key, func() ([]float32, error) {
		vec, ok := q.cached(key)
		if ok {
			q.counts.Memory.Add(1)
		} else {
			q.counts.Provider.Add(1)
			vectors, err := q.provider.Embed(ctx, []string{text}, embedding.InputQuery)
			if err == nil && len(vectors) != 1 {
				err = fmt.Errorf("%d vectors for one text", len(vectors))
			}
			if err != nil {
				return nil, providerError(err)
			}
			vec = vectors[0]
			q.remember(key, vec)
		}
		if err := ctx.RunMutation("messages:storeSearchVector", storeVectorArgs{Key: key, Model: model, Vector: vec}, nil); err != nil {
			return nil, err
		}
		q.evict(ctx)
		return vec, nil
	})
}

// evict deletes the least recently used stored vectors past the cap, in a transaction of its
// own after the store, so stores never wait on it; its failure leaves the table over the cap
// until the next store.
func (q *queryVectors) evict(ctx *engine.ActionCtx) {
	var n int64
	if err := ctx.RunQuery("messages:searchVectorCount", struct{}{}, &n); err != nil || n <= int64(q.cfg.MaxStored) {
		if err != nil {
			ctx.Logger().Warn("counting search query vectors", "error", err)
		}
		return
	}
	if err := ctx.RunMutation("messages:evictSearchVectors", struct{}{}, &n); err != nil {
		ctx.Logger().Warn("evicting search query vectors", "error", err)
		return
	}
	q.counts.Evicted.Add(n)
}

// providerError turns a provider's failure into what the caller sees.
func providerError(err error) error {
	var limited *embedding.RateLimitedError
	if errors.As(err, &limited) {
		e := engine.NewError(engine.CodeRateLimited, "search is busy; try again shortly")
		if limited.RetryAfter > 0 {
			e.Data = map[string]any{"retryAfterMs": limited.RetryAfter.Milliseconds()}
		}
		return e
	}
	return fmt.Errorf("embedding the search query: %w", err)
}

type searchVectorKey struct {
	Key   string `json:"key"`
	Model string `json:"model"`
}

// storedVector is a row of search_query_vectors as functions pass it to each other.
type storedVector struct {
	Vector []float32 `json:"vector"`
	// UsedAt is the last use, in Unix milliseconds.
	UsedAt int64 `json:"usedAt"`
}

type storeVectorArgs struct {
	Key    string    `json:"key"`
	Model  string    `json:"model"`
	Vector []float32 `json:"vector"`
}

// validKey refuses anything but a key queryVectorKey made (internal functions, but still).
func validKey(key string) error {
	if len(key) != 2*sha256.Size {
		return engine.InvalidArgument("argument %q is not a query vector key", "key")
	}
	if _, err := hex.DecodeString(key); err != nil {
		return engine.InvalidArgument("argument %q is not a query vector key", "key")
	}
	return nil
}

// registerLiveSearch adds messages:searchLive, messages:prepareSearch and the internal
// mutations behind the query vector cache.
func registerLiveSearch(reg *engine.Registry, deps *Deps, vectors *queryVectors) {
	cfg := vectors.cfg
	// Shared: everyone in the conversation searching the same text sees the same result, so a
	// new message re-runs it once for all of them; each one's membership check is kept apart
	// and re-runs only when the conversation's membership changes.
	engine.AddSharedQuery(reg, "messages:searchLive", engine.SharedQuery[liveSearchArgs, LiveSearch]{
		Access: searchLiveAccess,
		Result: func(ctx *engine.QueryCtx, args liveSearchArgs) (LiveSearch, error) {
			return searchLive(ctx, deps.Embedder.Model(), args)
		},
	}, nil)
	engine.AddAction(reg, "messages:prepareSearch", func(ctx *engine.ActionCtx, args prepareSearchArgs) (PreparedSearch, error) {
		if _, err := callerID(ctx); err != nil {
			return PreparedSearch{}, err
		}
		if _, err := parseID("conversationId", args.ConversationID); err != nil {
			return PreparedSearch{}, err
		}
		text, err := normalizeQuery(args.Query)
		if err != nil {
			return PreparedSearch{}, err
		}
		// Refuse non-members before spending a provider call.
		if err := ctx.RunQuery("messages:searchVectors", searchVectorsArgs{ConversationID: args.ConversationID, Limit: 1}, nil); err != nil {
			return PreparedSearch{}, err
		}
		if _, err := vectors.queryVector(ctx, text); err != nil {
			return PreparedSearch{}, err
		}
		return PreparedSearch{Semantic: SemanticReady}, nil
	}, &engine.FunctionOpts{RateLimit: &engine.RateLimit{Every: time.Second, Burst: 20}}) // may be a paid provider call
	engine.AddQuery(reg, "messages:searchVectorGet", func(ctx *engine.QueryCtx, args searchVectorKey) ([]storedVector, error) {
		if err := validKey(args.Key); err != nil {
			return nil, err
		}
		rows, err := queries.New().SearchVectorGet(ctx, ctx.DB(), queries.SearchVectorGetParams{Key: args.Key, Model: args.Model})
		out := make([]storedVector, len(rows))
		for i, r := range rows {
			out[i] = storedVector{Vector: r.Embedding.Slice(), UsedAt: r.UsedAt.Time.UnixMilli()}
		}
		return out, err
	}, &engine.FunctionOpts{Internal: true})
	engine.AddQuery(reg, "messages:searchVectorCount", func(ctx *engine.QueryCtx, _ struct{}) (int64, error) {
		return queries.New().SearchVectorCount(ctx, ctx.DB())
	}, &engine.FunctionOpts{Internal: true})
	engine.AddMutation(reg, "messages:touchSearchVector", func(ctx *engine.MutationCtx, args searchVectorKey) (bool, error) {
		if err := validKey(args.Key); err != nil {
			return false, err
		}
		return true, queries.New().SearchVectorTouch(ctx, ctx.DB(), queries.SearchVectorTouchParams{Key: args.Key, TouchEverySeconds: cfg.TouchEvery.Seconds()})
	}, &engine.FunctionOpts{Internal: true})
	engine.AddMutation(reg, "messages:storeSearchVector", func(ctx *engine.MutationCtx, args storeVectorArgs) (bool, error) {
		if err := validKey(args.Key); err != nil {
			return false, err
		}
		if len(args.Vector) == 0 {
			return false, engine.InvalidArgument("argument %q is required", "vector")
		}
		n, err := queries.New().SearchVectorInsert(ctx, ctx.DB(), queries.SearchVectorInsertParams{
			Key: args.Key, Model: args.Model, Embedding: pgvector.NewVector(args.Vector),
		})
		return n > 0, err
	}, &engine.FunctionOpts{Internal: true})
	engine.AddMutation(reg, "messages:evictSearchVectors", func(ctx *engine.MutationCtx, _ struct{}) (int64, error) {
		return queries.New().SearchVectorEvict(ctx, ctx.DB(), int64(cfg.MaxStored))
	}, &engine.FunctionOpts{Internal: true})
}

type liveSearchArgs struct {
	ConversationID string `json:"conversationId"`
	Query          string `json:"query"`
	Limit          *int   `json:"limit"`
}

type prepareSearchArgs struct {
	ConversationID string `json:"conversationId"`
	Query          string `json:"query"`
}

// LiveSearch is the result of messages:searchLive.
type LiveSearch struct {
	Hits []SearchHit `json:"hits"`
	// Semantic is "ready" when the hits include matches by meaning, "pending" while the query
	// text has no stored vector yet (messages:prepareSearch makes it): words only until then.
	Semantic string `json:"semantic"`
}

// PreparedSearch is the result of messages:prepareSearch.
type PreparedSearch struct {
	Semantic string `json:"semantic"`
}

// searchLiveAccess checks identity, the arguments and membership, in that order.
func searchLiveAccess(ctx *engine.QueryCtx, args liveSearchArgs) error {
	me, err := callerID(ctx)
	if err != nil {
		return err
	}
	convID, err := parseID("conversationId", args.ConversationID)
	if err != nil {
		return err
	}
	if _, err := normalizeQuery(args.Query); err != nil {
		return err
	}
	if _, err := searchLimit(args.Limit); err != nil {
		return err
	}
	return requireParticipant(ctx, ctx.DB(), convID, me)
}

// searchLive is the hybrid search of one conversation with the query text's stored vector, or
// by words alone while there is none. What it reads: the text's row of search_query_vectors, the
// conversation's messages (full text) and embeddings, and the hits' messages; so it re-runs on a
// change to the conversation's messages or vectors, or to that row, and on nothing elsewhere.
func searchLive(ctx *engine.QueryCtx, model string, args liveSearchArgs) (LiveSearch, error) {
	convID, err := parseID("conversationId", args.ConversationID)
	if err != nil {
		return LiveSearch{}, err
	}
	text, err := normalizeQuery(args.Query)
	if err != nil {
		return LiveSearch{}, err
	}
	limit, err := searchLimit(args.Limit)
	if err != nil {
		return LiveSearch{}, err
	}
	rows, err := queries.New().SearchVectorGet(ctx, ctx.DB(), queries.SearchVectorGetParams{Key: queryVectorKey(model, text), Model: model})
	if err != nil {
		return LiveSearch{}, err
	}
	res := LiveSearch{Semantic: SemanticPending}
	var vec []float32
	if len(rows) > 0 {
		vec, res.Semantic = rows[0].Embedding.Slice(), SemanticReady
	}
	res.Hits, err = hybridSearch(ctx, convID, text, vec, model, limit)
	return res, err
}
