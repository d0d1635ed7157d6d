package functions

import (
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/pgvector/pgvector-go"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/engine/embedding"
	"github.com/ripplehq/ripple/queries"
)

// ExactSearchMaxRows is the conversation size (in embeddings) up to which search scans every
// vector of the conversation exactly; above it, search walks the HNSW index with pgvector's
// iterative scan. See README ("Search") for how it was measured.
const ExactSearchMaxRows = 8_000

func registerSearch(reg *engine.Registry, deps *Deps) {
	cfg := deps.QueryVectors.WithDefaults()
	if err := cfg.validate(); err != nil {
		panic(err)
	}
	vectors := newQueryVectors(deps.Embedder, cfg, deps.QueryVectorCounts)
	registerLiveSearch(reg, deps, vectors)
	engine.AddAction(reg, "messages:search", func(ctx *engine.ActionCtx, args searchArgs) ([]SearchHit, error) {
		return messagesSearch(ctx, vectors, args)
	}, &engine.FunctionOpts{RateLimit: &engine.RateLimit{Every: time.Second, Burst: 20}}) // each search is a paid provider call
	engine.AddQuery(reg, "messages:searchVectors", messagesSearchVectors, &engine.FunctionOpts{Internal: true})
	engine.AddQuery(reg, "messages:searchHybrid", messagesSearchHybrid, &engine.FunctionOpts{Internal: true})
	engine.AddAction(reg, "messages:handleSentMessage", func(ctx *engine.ActionCtx, args handleSentArgs) (any, error) {
		return nil, handleSentMessage(ctx, args)
	}, &engine.FunctionOpts{Internal: true})
	engine.AddMutation(reg, "messages:queueEmbedding", messagesQueueEmbedding, &engine.FunctionOpts{Internal: true})
	engine.AddAction(reg, "messages:embedDue", func(ctx *engine.ActionCtx, _ struct{}) (any, error) {
		return nil, embedDue(ctx, deps)
	}, &engine.FunctionOpts{Internal: true})
	engine.AddPeriodic(reg, engine.PeriodicFunction{Path: "messages:embedDue", Args: struct{}{}, Interval: EmbeddingSweepInterval})
	engine.AddMutation(reg, "messages:leaseEmbeddings", func(ctx *engine.MutationCtx, args leaseArgs) ([]pendingEmbedding, error) {
		return messagesLeaseEmbeddings(ctx, embeddingLease, args)
	}, &engine.FunctionOpts{Internal: true})
	engine.AddMutation(reg, "messages:releaseEmbeddings", messagesReleaseEmbeddings, &engine.FunctionOpts{Internal: true})
	engine.AddMutation(reg, "messages:storeEmbeddings", messagesStoreEmbeddings, &engine.FunctionOpts{Internal: true})
}

type searchArgs struct {
	ConversationID string `json:"conversationId"`
	Query          string `json:"query"`
	Limit          *int   `json:"limit"`
}

// SearchHit is one result of messages:search.
type SearchHit struct {
	ID           string  `json:"_id"`
	CreationTime float64 `json:"_creationTime"`
	SenderID     string  `json:"senderId"`
	Body         string  `json:"body"`
	Score        float64 `json:"score"`
}

// Hybrid search: the nearest vectors (meaning) and Postgres full-text matches (words) are
// ranked together with reciprocal rank fusion, each list contributing 1/(rrfK + rank) per
// message. A vector neighbour counts only above the provider's similarity floor, so a query
// that means nothing in the conversation finds nothing instead of the ten least unlike
// messages; a text match always counts.
const (
	rrfK = 60
	// searchCandidates is how many of each list enter the fusion.
	searchCandidates = 50
)

// minSimilarity is the cosine similarity a vector neighbour needs to count as a match. The
// local provider's vectors share features only when texts share words or word parts (unrelated
// texts score about 0 to 0.05, related ones 0.3 and up); neural models place unrelated texts
// higher, so theirs is higher.
func minSimilarity(model string) float64 {
	if strings.HasPrefix(model, string(embedding.ProviderLocal)) {
		return 0.2
	}
	return 0.3
}

// messagesSearch searches one conversation's messages once (messages:searchLive is the live
// one; both share hybridSearch and the query vector caches). Membership is checked before the
// query's vector is looked for, and again by the internal query, in the same snapshot as the
// search.
func messagesSearch(ctx *engine.ActionCtx, vectors *queryVectors, args searchArgs) ([]SearchHit, error) {
	if _, err := callerID(ctx); err != nil {
		return nil, err
	}
	if _, err := parseID("conversationId", args.ConversationID); err != nil {
		return nil, err
	}
	limit, err := searchLimit(args.Limit)
	if err != nil {
		return nil, err
	}
	text, err := normalizeQuery(args.Query)
	if err != nil {
		return nil, err
	}
	// Refuse non-members before spending a provider call.
	if err := ctx.RunQuery("messages:searchVectors", searchVectorsArgs{ConversationID: args.ConversationID, Limit: limit}, nil); err != nil {
		return nil, err
	}
	vector, err := vectors.queryVector(ctx, text)
	if err != nil {
		return nil, err
	}
	var hits []SearchHit
	err = ctx.RunQuery("messages:searchHybrid", searchHybridArgs{
		searchVectorsArgs: searchVectorsArgs{ConversationID: args.ConversationID, Vector: vector, Limit: limit, Model: vectors.provider.Model()},
		Query:             text,
	}, &hits)
	return hits, err
}

type searchVectorsArgs struct {
	ConversationID string    `json:"conversationId"`
	Vector         []float32 `json:"vector,omitempty"`
	Model          string    `json:"model,omitempty"`
	Limit          int       `json:"limit"`
}

type searchHybridArgs struct {
	searchVectorsArgs
	// Query is the search's text, for the full-text half.
	Query string `json:"query"`
}

// messagesSearchVectors checks membership, then returns the nearest messages of that one
// conversation by vector alone (with no vector, only the membership check runs).
func messagesSearchVectors(ctx *engine.QueryCtx, args searchVectorsArgs) ([]SearchHit, error) {
	convID, err := searchMember(ctx, args)
	if err != nil || len(args.Vector) == 0 {
		return []SearchHit{}, err
	}
	return nearestMessages(ctx, convID, args, args.Limit)
}

// searchMember checks identity, the arguments and membership; it gives the conversation.
func searchMember(ctx *engine.QueryCtx, args searchVectorsArgs) (int64, error) {
	me, err := callerID(ctx)
	if err != nil {
		return 0, err
	}
	convID, err := parseID("conversationId", args.ConversationID)
	if err != nil {
		return 0, err
	}
	if args.Limit < 1 || args.Limit > 50 {
		return 0, engine.InvalidArgument("argument %q must be between 1 and 50", "limit")
	}
	return convID, requireParticipant(ctx, ctx.DB(), convID, me)
}

// messagesSearchHybrid checks membership, then returns the best matches of that one
// conversation (hybridSearch).
func messagesSearchHybrid(ctx *engine.QueryCtx, args searchHybridArgs) ([]SearchHit, error) {
	convID, err := searchMember(ctx, args.searchVectorsArgs)
	if err != nil {
		return nil, err
	}
	if len(args.Vector) == 0 || args.Query == "" || len(args.Query) > MaxSearchQueryBytes {
		return nil, engine.InvalidArgument("arguments %q and %q are required (query: at most %d bytes)", "vector", "query", MaxSearchQueryBytes)
	}
	return hybridSearch(ctx, convID, args.Query, args.Vector, args.Model, args.Limit)
}

// hybridSearch is the best matches of one conversation: the nearest vectors above the model's
// floor and the full-text matches of the text, fused by reciprocal rank. With no vector, the
// full-text matches alone (a live search whose query vector is not made yet).
func hybridSearch(ctx *engine.QueryCtx, convID int64, text string, vector []float32, model string, limit int) ([]SearchHit, error) {
	var nearest []SearchHit
	if len(vector) > 0 {
		var err error
		nearest, err = nearestMessages(ctx, convID, searchVectorsArgs{Vector: vector, Model: model}, max(limit, searchCandidates))
		if err != nil {
			return nil, err
		}
	}
	textHits, err := queries.New().MessageSearchText(ctx, ctx.DB(), queries.MessageSearchTextParams{
		Query: text, ConversationID: convID, MaxRows: searchCandidates,
	})
	if err != nil {
		return nil, err
	}
	type fused struct {
		hit   SearchHit
		score float64
	}
	byID := map[string]*fused{}
	add := func(h SearchHit, rank int) {
		f, ok := byID[h.ID]
		if !ok {
			f = &fused{hit: h}
			byID[h.ID] = f
		}
		f.score += 1 / float64(rrfK+rank)
	}
	floor := minSimilarity(model)
	rank := 0
	for _, h := range nearest {
		if h.Score < floor {
			continue
		}
		rank++
		add(h, rank)
	}
	for i, r := range textHits {
		add(SearchHit{ID: formatID(r.ID), CreationTime: millis(r.CreatedAt), SenderID: formatID(r.SenderID), Body: r.Body}, i+1)
	}
	out := make([]fused, 0, len(byID))
	for _, f := range byID {
		out = append(out, *f)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].score != out[j].score {
			return out[i].score > out[j].score
		}
		if out[i].hit.CreationTime != out[j].hit.CreationTime {
			return out[i].hit.CreationTime > out[j].hit.CreationTime
		}
		return out[i].hit.ID > out[j].hit.ID
	})
	hits := make([]SearchHit, 0, min(len(out), limit))
	for _, f := range out[:min(len(out), limit)] {
		f.hit.Score = f.score
		hits = append(hits, f.hit)
	}
	return hits, nil
}

// nearestMessages is the conversation's messages nearest to the vector, best first, with their
// cosine similarity as Score.
func nearestMessages(ctx *engine.QueryCtx, convID int64, args searchVectorsArgs, limit int) ([]SearchHit, error) {
	q := queries.New()
	count, err := q.EmbeddingCountForConversation(ctx, ctx.DB(), convID)
	if err != nil {
		return nil, err
	}
	vec := pgvector.NewVector(args.Vector)
	hits := []SearchHit{}
	if count <= ExactSearchMaxRows {
		// The nearest ids first, then their messages: two statements, each reading one
		// conversation's rows or the hits only (see EmbeddingNearestInConversation).
		near, err := q.EmbeddingNearestInConversation(ctx, ctx.DB(), queries.EmbeddingNearestInConversationParams{ConversationID: convID, Embedding: vec, MaxRows: int32(limit), Model: args.Model})
		if err != nil || len(near) == 0 {
			return hits, err
		}
		ids := make([]int64, len(near))
		for i, n := range near {
			ids[i] = n.MessageID
		}
		msgs, err := q.MessageListByIDs(ctx, ctx.DB(), ids)
		if err != nil {
			return nil, err
		}
		byID := make(map[int64]queries.Message, len(msgs))
		for _, m := range msgs {
			byID[m.ID] = m
		}
		for _, n := range near {
			if m, ok := byID[n.MessageID]; ok {
				hits = append(hits, SearchHit{ID: formatID(m.ID), CreationTime: millis(m.CreatedAt), SenderID: formatID(m.SenderID), Body: m.Body, Score: n.Score})
			}
		}
		return hits, nil
	}
	// Large conversation: HNSW with iterative scans keeps going until enough rows of this
	// conversation are found (pgvector 0.8). enable_sort = off makes the planner take the index
	// (it prices a distance as cheap and would sort the conversation's rows instead); jit = off
	// keeps the disabled sort's cost from triggering JIT. See README ("Search").
	for _, stmt := range []string{"SET LOCAL hnsw.iterative_scan = relaxed_order", "SET LOCAL hnsw.ef_search = 300", "SET LOCAL hnsw.max_scan_tuples = 100000", "SET LOCAL enable_sort = off", "SET LOCAL jit = off"} {
		if _, err := ctx.DB().Exec(ctx, stmt); err != nil {
			return nil, err
		}
	}
	rows, err := q.EmbeddingSearchIndexed(ctx, ctx.DB(), queries.EmbeddingSearchIndexedParams{ConversationID: convID, Embedding: vec, Limit: int32(limit), Model: args.Model})
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		hits = append(hits, searchHit(r))
	}
	// relaxed_order may return neighbours slightly out of order.
	sort.SliceStable(hits, func(i, j int) bool { return hits[i].Score > hits[j].Score })
	return hits, nil
}

// searchHit converts a row of either search statement (they return the same columns).
func searchHit(r queries.EmbeddingSearchIndexedRow) SearchHit {
	return SearchHit{ID: formatID(r.ID), CreationTime: millis(r.CreatedAt), SenderID: formatID(r.SenderID), Body: r.Body, Score: r.Score}
}

// leasedMessage is what the sweep carries of a leased message from the lease to the store, so
// the store reads no message: a long SERIALIZABLE store that read messages conflicted with the
// sends committing meanwhile and was retried over and over.
type leasedMessage struct {
	MessageID      string `json:"messageId"`
	ConversationID string `json:"conversationId"`
	SenderID       string `json:"senderId"`
}

type pendingEmbedding struct {
	leasedMessage
	Body string `json:"body"`
}

type storeEmbeddingsArgs struct {
	Model    string            `json:"model"`
	Items    []storedEmbedding `json:"items,omitempty"`
	Failures []failedEmbedding `json:"failures,omitempty"`
}

type storedEmbedding struct {
	leasedMessage
	Vector []float32 `json:"vector"`
}

type failedEmbedding struct {
	leasedMessage
	Reason string `json:"reason"`
}

// storeChunk is how many vectors one store mutation writes: short transactions, each HNSW
// insert being a few milliseconds.
const storeChunk = 16

// EmbeddingSweepInterval is how often the embedding sweep runs: a message is searchable about
// this long after it was sent (longer during a burst bigger than a sweep embeds at once).
const EmbeddingSweepInterval = time.Second

// embeddingLease is how long a sweep holds the messages it leased. It is longer than a sweep
// may run (sweepBudget, plus one provider call). Sweeps run one at a time and the next one
// takes back a dead sweep's messages at once (sweep's reclaim), so the lease only matters to a
// caller that leases outside a sweep.
const embeddingLease = 2 * time.Minute

// sweepBudget bounds one sweep; what is left is the next sweep's.
const sweepBudget = 20 * time.Second

// sweepGiveWay bounds how long the sweep waits for live updates before embedding what it leased
// and before each stored chunk (engine WaitForIdle): during a burst it stores a chunk every quarter second at
// most, so deliveries get the database first, and it catches up once the burst is over.
const sweepGiveWay = 250 * time.Millisecond

// embedDue is the embedding sweep, a periodic job that never overlaps itself (across processes:
// it runs under an exclusive lock that dies with its holder): it leases the oldest queued
// messages (messages:send queues each one), embeds them (as many per provider call as the
// provider takes) and stores the vectors, until the queue is empty. The embedding work thus
// never runs at the moment a message is delivered, and a burst costs a few transactions and
// calls, not a job per message.
func embedDue(ctx *engine.ActionCtx, deps *Deps) error {
	_, err := ctx.Exclusive("messages:embedDue", func() error { return sweep(ctx, deps) })
	return err
}

// sweep embeds queued messages until the queue is empty or its budget is spent.
func sweep(ctx *engine.ActionCtx, deps *Deps) error {
	deadline := time.Now().Add(sweepBudget)
	// Alone (embedDue's lock): a lease still held is a sweep's that died with its process, so
	// the first lease takes its messages back at once instead of when the lease runs out.
	reclaim := true
	for time.Now().Before(deadline) {
		var pending []pendingEmbedding
		limit := deps.Embedder.MaxBatch()
		if err := ctx.RunMutation("messages:leaseEmbeddings", leaseArgs{Limit: limit, Reclaim: reclaim}, &pending); err != nil {
			return err
		}
		reclaim = false
		if len(pending) == 0 {
			return nil
		}
		// Embedding and storing are the costly part: deliveries first.
		if err := ctx.WaitForIdle(sweepGiveWay); err != nil {
			releaseLeased(ctx, pending)
			return err
		}
		if err := embedAndStore(ctx, deps, pending); err != nil {
			releaseLeased(ctx, pending)
			return err
		}
		if len(pending) < limit {
			return nil
		}
	}
	return nil
}

// releaseLeased gives leased messages back, so the next sweep takes them at once, not after the
// lease. Its own failure is only logged: the lease runs out anyway.
func releaseLeased(ctx *engine.ActionCtx, pending []pendingEmbedding) {
	ids := make([]string, len(pending))
	for i, p := range pending {
		ids[i] = p.MessageID
	}
	if err := ctx.RunMutation("messages:releaseEmbeddings", releaseArgs{MessageIDs: ids}, nil); err != nil {
		ctx.Logger().Warn("giving leased messages back to the embedding queue", "error", err)
	}
}

type leaseArgs struct {
	Limit int `json:"limit"`
	// Reclaim takes leased messages too: only a sweep that knows it is alone sets it.
	Reclaim bool `json:"reclaim,omitempty"`
}

// messagesLeaseEmbeddings leases up to Limit queued messages to the calling sweep and loads them.
func messagesLeaseEmbeddings(ctx *engine.MutationCtx, lease time.Duration, args leaseArgs) ([]pendingEmbedding, error) {
	q := queries.New()
	until := pgtype.Timestamptz{Time: time.Now().Add(lease), Valid: true}
	ids, err := q.EmbeddingQueueLease(ctx, ctx.DB(), queries.EmbeddingQueueLeaseParams{LeaseUntil: until, MaxRows: int32(max(1, args.Limit)), Reclaim: args.Reclaim})
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	rows, err := q.MessageListByIDs(ctx, ctx.DB(), ids)
	if err != nil {
		return nil, err
	}
	if len(rows) < len(ids) {
		// Queue rows whose message is gone (the queue has no foreign key: 0012) leave the queue.
		found := make(map[int64]bool, len(rows))
		for _, r := range rows {
			found[r.ID] = true
		}
		var gone []int64
		for _, id := range ids {
			if !found[id] {
				gone = append(gone, id)
			}
		}
		if err := q.EmbeddingQueueDone(ctx, ctx.DB(), gone); err != nil {
			return nil, err
		}
	}
	out := make([]pendingEmbedding, len(rows))
	for i, r := range rows {
		out[i] = pendingEmbedding{Body: r.Body, leasedMessage: leasedMessage{
			MessageID: formatID(r.ID), ConversationID: formatID(r.ConversationID), SenderID: formatID(r.SenderID),
		}}
	}
	return out, nil
}

type releaseArgs struct {
	MessageIDs []string `json:"messageIds"`
}

// messagesReleaseEmbeddings puts leased messages back in the queue for the next sweep.
func messagesReleaseEmbeddings(ctx *engine.MutationCtx, args releaseArgs) (bool, error) {
	ids, err := parseIDs("messageIds", args.MessageIDs)
	if err != nil {
		return false, err
	}
	return true, queries.New().EmbeddingQueueRelease(ctx, ctx.DB(), ids)
}

func parseIDs(field string, raw []string) ([]int64, error) {
	ids := make([]int64, len(raw))
	for i, r := range raw {
		id, err := parseID(field, r)
		if err != nil {
			return nil, err
		}
		ids[i] = id
	}
	return ids, nil
}

type handleSentArgs struct {
	MessageID string `json:"messageId"`
}

// handleSentMessage is the job messages:send scheduled per message before the embedding queue
// existed; such a job still queued when a server is upgraded queues its message.
func handleSentMessage(ctx *engine.ActionCtx, args handleSentArgs) error {
	return ctx.RunMutation("messages:queueEmbedding", args, nil)
}

func messagesQueueEmbedding(ctx *engine.MutationCtx, args handleSentArgs) (bool, error) {
	id, err := parseID("messageId", args.MessageID)
	if err != nil {
		return false, err
	}
	if _, err := queries.New().MessageGet(ctx, ctx.DB(), id); errors.Is(err, pgx.ErrNoRows) {
		return false, nil // deleted meanwhile
	} else if err != nil {
		return false, err
	}
	return true, queries.New().EmbeddingQueueEnsure(ctx, ctx.DB(), id)
}

// embedAndStore embeds one leased batch and stores the vectors, or records a permanent failure.
func embedAndStore(ctx *engine.ActionCtx, deps *Deps, pending []pendingEmbedding) error {
	texts := make([]string, len(pending))
	for i, p := range pending {
		texts[i] = p.Body
	}
	vectors, err := deps.Embedder.Embed(ctx, texts, embedding.InputDocument)
	if err != nil {
		var limited *embedding.RateLimitedError
		switch {
		case errors.As(err, &limited):
			wait := limited.RetryAfter
			if wait <= 0 {
				wait = 5 * time.Second
			}
			return engine.Snooze(wait)
		case errors.Is(err, embedding.ErrPermanent):
			store := storeEmbeddingsArgs{Model: deps.Embedder.Model()}
			for _, p := range pending {
				store.Failures = append(store.Failures, failedEmbedding{leasedMessage: p.leasedMessage, Reason: err.Error()})
			}
			return ctx.RunMutation("messages:storeEmbeddings", store, nil)
		}
		return err
	}
	for start := 0; start < len(pending); start += storeChunk {
		end := min(start+storeChunk, len(pending))
		store := storeEmbeddingsArgs{Model: deps.Embedder.Model(), Items: make([]storedEmbedding, 0, end-start)}
		for i := start; i < end; i++ {
			store.Items = append(store.Items, storedEmbedding{leasedMessage: pending[i].leasedMessage, Vector: vectors[i]})
		}
		if start > 0 {
			if err := ctx.WaitForIdle(sweepGiveWay); err != nil {
				return err
			}
		}
		if err := ctx.RunMutation("messages:storeEmbeddings", store, nil); err != nil {
			return err
		}
	}
	return nil
}

// messagesStoreEmbeddings stores a batch's vectors (or failures) and takes them off the queue.
// It reads no message (see leasedMessage) and writes no conversation (conversations:list takes
// last activity from the newest message), so it does not conflict with sends; a message deleted
// since its lease fails the foreign key, and the next sweep takes what is left.
func messagesStoreEmbeddings(ctx *engine.MutationCtx, args storeEmbeddingsArgs) (int64, error) {
	q := queries.New()
	released := make([]int64, 0, len(args.Items)+len(args.Failures))
	// parse reads the ids of a leased message and notes it for taking off the queue.
	parse := func(c leasedMessage) (id, conv, sender int64, err error) {
		if id, err = parseID("messageId", c.MessageID); err != nil {
			return
		}
		if conv, err = parseID("conversationId", c.ConversationID); err != nil {
			return
		}
		if sender, err = parseID("senderId", c.SenderID); err != nil {
			return
		}
		released = append(released, id)
		return
	}
	var stored int64
	for _, item := range args.Items {
		id, conv, sender, err := parse(item.leasedMessage)
		if err != nil {
			return 0, err
		}
		n, err := q.EmbeddingInsert(ctx, ctx.DB(), queries.EmbeddingInsertParams{
			MessageID: id, ConversationID: conv, SenderID: sender,
			Embedding: pgvector.NewVector(item.Vector), Model: args.Model,
		})
		if err != nil {
			return 0, err
		}
		stored += n
	}
	for _, f := range args.Failures {
		id, _, _, err := parse(f.leasedMessage)
		if err != nil {
			return 0, err
		}
		if err := q.EmbeddingFailureInsert(ctx, ctx.DB(), queries.EmbeddingFailureInsertParams{MessageID: id, Reason: f.Reason}); err != nil {
			return 0, err
		}
	}
	return stored, q.EmbeddingQueueDone(ctx, ctx.DB(), released)
}
