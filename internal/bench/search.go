package bench

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgvector/pgvector-go"

	"github.com/ripplehq/ripple/engine/embedding"
	"github.com/ripplehq/ripple/functions"
	"github.com/ripplehq/ripple/queries"
)

// SearchOpts configures RunSearch.
type SearchOpts struct {
	DatabaseURL string
	// Sizes are the conversation sizes (in embeddings) searched: one conversation of each size
	// is seeded.
	Sizes []int
	// Total is how many embeddings the table holds; those not in Sizes' conversations go to many
	// small conversations (10 to 400 messages each).
	Total int
	// Queries is how many searches are timed per size and path.
	Queries int
	// Tune lists further HNSW settings to time beside production's (for tuning; optional).
	Tune []HNSWSettings
	// Out receives the report.
	Out io.Writer
}

// HNSWSettings are what the HNSW path runs a search under: pgvector's iterative-scan settings
// (hnsw.iterative_scan is always relaxed_order) and two planner settings.
type HNSWSettings struct {
	EfSearch      int
	MaxScanTuples int
	// ScanMemMultiplier is hnsw.scan_mem_multiplier (0: the server's, by default 1).
	ScanMemMultiplier int
	// DisableSort sets enable_sort = off: every plan but the HNSW index scan sorts, so the planner
	// (which prices a distance at one cpu_operator_cost however large the vector) takes the index.
	DisableSort bool
	// DisableJIT sets jit = off (a plan with a disabled node costs more than jit_above_cost).
	DisableJIT bool
}

// ProductionHNSW mirrors the SET LOCAL statements of messagesSearchVectors in functions/search.go.
// Keep the two in step.
var ProductionHNSW = HNSWSettings{EfSearch: 300, MaxScanTuples: 100_000, DisableSort: true, DisableJIT: true}

// Statements returns the SET LOCAL statements that apply s.
func (s HNSWSettings) Statements() []string {
	stmts := []string{
		"SET LOCAL hnsw.iterative_scan = relaxed_order",
		fmt.Sprintf("SET LOCAL hnsw.ef_search = %d", s.EfSearch),
		fmt.Sprintf("SET LOCAL hnsw.max_scan_tuples = %d", s.MaxScanTuples),
	}
	if s.ScanMemMultiplier > 0 {
		stmts = append(stmts, fmt.Sprintf("SET LOCAL hnsw.scan_mem_multiplier = %d", s.ScanMemMultiplier))
	}
	if s.DisableSort {
		stmts = append(stmts, "SET LOCAL enable_sort = off")
	}
	if s.DisableJIT {
		stmts = append(stmts, "SET LOCAL jit = off")
	}
	return stmts
}

func (s HNSWSettings) String() string {
	out := fmt.Sprintf("ef=%d max_scan=%d", s.EfSearch, s.MaxScanTuples)
	if s.ScanMemMultiplier > 0 {
		out += fmt.Sprintf(" mem=%dx", s.ScanMemMultiplier)
	}
	if s.DisableSort {
		out += " sort=off"
	}
	if s.DisableJIT {
		out += " jit=off"
	}
	return out
}

// Search paths.
const (
	PathExact = "exact"
	PathHNSW  = "hnsw"
)

// searchK is the k of recall@k: messages:search returns 10 hits by default.
const searchK = 10

// SearchPathResult is one path's searches of one conversation.
type SearchPathResult struct {
	Path     string       // PathExact or PathHNSW
	Settings HNSWSettings // the HNSW path's settings; zero for exact
	// Production marks the HNSW row that runs production's settings (and the exact row).
	Production bool
	Samples    []time.Duration
	// Recall is the mean recall@10 against the exact path, ties counted as hits: a hit is right
	// when its distance is no larger than the exact path's 10th.
	Recall float64
	// Short counts searches that returned fewer than min(10, size) rows.
	Short int
	// IndexScans counts searches whose plan scanned the HNSW index.
	IndexScans int
}

// Percentile returns the p-th percentile (0..100) of the samples.
func (r *SearchPathResult) Percentile(p float64) time.Duration { return percentile(r.Samples, p) }

// SearchSizeResult is every path's searches of the conversation of one size.
type SearchSizeResult struct {
	Size int
	// ProductionPath is the path messagesSearchVectors takes at this size.
	ProductionPath string
	Paths          []SearchPathResult
}

// Production returns the result of the path (and settings) production uses at this size.
func (s *SearchSizeResult) Production() *SearchPathResult {
	for i := range s.Paths {
		if s.Paths[i].Path == s.ProductionPath && s.Paths[i].Production {
			return &s.Paths[i]
		}
	}
	return nil
}

// Targets for the path production uses.
const (
	TargetP99    = 30 * time.Millisecond
	TargetRecall = 0.95
)

// TargetsHold reports whether production's path meets TargetP99 and TargetRecall at this size.
func (s *SearchSizeResult) TargetsHold() bool {
	p := s.Production()
	return p != nil && p.Percentile(99) <= TargetP99 && p.Recall >= TargetRecall
}

// SearchReport is what RunSearch measured.
type SearchReport struct {
	Conversations int
	// Seeding is the time to insert users, conversations, messages and embeddings (embedding
	// the messages included), IndexBuild the time to build the HNSW index afterwards.
	Seeding, IndexBuild time.Duration
	Sizes               []SearchSizeResult
	// HNSWFasterFrom is the smallest measured size from which the HNSW path (production's
	// settings) has a lower p50 than the exact path at every larger measured size; 0 if none.
	// HNSWFasterP99From is the same for p99.
	HNSWFasterFrom, HNSWFasterP99From int
}

// RunSearch seeds a private schema with opts.Total embeddings, one conversation of each of
// opts.Sizes and many small ones, then times both search paths of messagesSearchVectors on each
// of those conversations and writes a report. The schema is dropped afterwards.
func RunSearch(ctx context.Context, opts SearchOpts) (*SearchReport, error) {
	plan, err := newSeedPlan(opts)
	if err != nil {
		return nil, err
	}
	pool, name, drop, err := privateSchema(ctx, opts.DatabaseURL, 4)
	if err != nil {
		return nil, err
	}
	defer drop()
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	embedder, err := embedding.New(embedding.Config{Provider: embedding.ProviderLocal})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "search bench: %d embeddings (%d-d, %s) in %d conversations; sizes %s; %d queries per size and path\n",
		opts.Total, embedder.Dimensions(), embedder.Model(), len(plan.convs), joinInts(opts.Sizes), opts.Queries)

	report := &SearchReport{Conversations: len(plan.convs)}
	convIDs, err := seed(ctx, pool, name, plan, embedder, report, out)
	if err != nil {
		return nil, err
	}

	// A connection per path, as production's pool only ever runs one path's statement under that
	// path's settings: Postgres may switch a prepared statement to a generic plan after five
	// executions, and that plan, made under the settings of the moment, is kept.
	conns := make([]*pgx.Conn, 2+len(opts.Tune))
	for i := range conns {
		if conns[i], err = pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy()); err != nil {
			return nil, err
		}
		defer conns[i].Close(context.Background())
	}
	fmt.Fprintf(out, "each search: BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; count; [SET LOCAL ...;] search (limit %d); COMMIT\n", searchK)
	fmt.Fprintf(out, "%7s  %-5s %9s %9s %9s %5s %9s  %s\n", "size", "path", "p50", "p99", "recall@10", "short", "hnsw-used", "settings")
	for i, size := range opts.Sizes {
		res, err := measureSearch(ctx, conns, embedder, plan, i, convIDs[i], opts)
		if err != nil {
			return nil, err
		}
		for _, p := range res.Paths {
			settings := "-"
			if p.Path == PathHNSW {
				settings = p.Settings.String()
				if p.Production {
					settings += " (production)"
				}
			}
			fmt.Fprintf(out, "%7d  %-5s %9s %9s %9.3f %5d %9s  %s\n", size, p.Path, roundMs(p.Percentile(50)), roundMs(p.Percentile(99)),
				p.Recall, p.Short, fmt.Sprintf("%d/%d", p.IndexScans, len(p.Samples)), settings)
		}
		report.Sizes = append(report.Sizes, *res)
	}

	for _, s := range report.Sizes {
		p := s.Production()
		verdict := "targets hold"
		if !s.TargetsHold() {
			verdict = "targets MISSED"
		}
		fmt.Fprintf(out, "size %d: production uses %s (ExactSearchMaxRows=%d): p99 %s (target <= %s), recall@10 %.3f (target >= %.2f): %s\n",
			s.Size, s.ProductionPath, functions.ExactSearchMaxRows, roundMs(p.Percentile(99)), TargetP99, p.Recall, TargetRecall, verdict)
	}
	report.HNSWFasterFrom = hnswFasterFrom(report.Sizes, 50)
	report.HNSWFasterP99From = hnswFasterFrom(report.Sizes, 99)
	for _, c := range []struct {
		name string
		from int
	}{{"p50", report.HNSWFasterFrom}, {"p99", report.HNSWFasterP99From}} {
		below := 0
		for _, s := range report.Sizes {
			if s.Size < c.from || c.from == 0 {
				below = max(below, s.Size)
			}
		}
		switch {
		case c.from == 0:
			fmt.Fprintf(out, "crossover (%s): exact is faster at %d rows, the largest size measured\n", c.name, below)
		case below == 0:
			fmt.Fprintf(out, "crossover (%s): HNSW is faster at every measured size (from %d rows)\n", c.name, c.from)
		default:
			fmt.Fprintf(out, "crossover (%s): HNSW is faster from %d rows on; exact is faster at %d\n", c.name, c.from, below)
		}
	}
	return report, nil
}

// hnswFasterFrom is the smallest measured size from which the HNSW path (production's settings)
// has a lower p-th percentile than the exact path at every larger measured size; 0 if none.
func hnswFasterFrom(sizes []SearchSizeResult, pct float64) int {
	sorted := slices.Clone(sizes)
	slices.SortFunc(sorted, func(a, b SearchSizeResult) int { return a.Size - b.Size })
	from := 0
	for i := len(sorted) - 1; i >= 0; i-- {
		var exact, hnsw time.Duration = -1, -1
		for _, p := range sorted[i].Paths {
			switch {
			case p.Path == PathExact:
				exact = p.Percentile(pct)
			case p.Path == PathHNSW && p.Production:
				hnsw = p.Percentile(pct)
			}
		}
		if exact < 0 || hnsw < 0 || hnsw >= exact {
			break
		}
		from = sorted[i].Size
	}
	return from
}

// roundMs prints d in milliseconds with 0.1 ms resolution.
func roundMs(d time.Duration) string {
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}

// ---- The synthetic chat ----

// seedPlan is every conversation to seed; the first len(opts.Sizes) are the measured ones.
type seedPlan struct {
	users int
	convs []convPlan
	total int
}

type convPlan struct {
	size         int
	topics       []int // indexes into benchTopics, most frequent first
	participants []int // user indexes
}

const seedRand = 0x5ea4c4

func newSeedPlan(opts SearchOpts) (*seedPlan, error) {
	if len(opts.Sizes) == 0 {
		return nil, errors.New("bench search: no sizes")
	}
	if opts.Queries < 1 {
		return nil, errors.New("bench search: queries must be positive")
	}
	sum := 0
	for _, s := range opts.Sizes {
		if s < 1 {
			return nil, fmt.Errorf("bench search: size %d is not positive", s)
		}
		sum += s
	}
	if opts.Total < sum {
		return nil, fmt.Errorf("bench search: total %d is less than the sum of the sizes (%d)", opts.Total, sum)
	}
	rng := rand.New(rand.NewPCG(seedRand, 1))
	p := &seedPlan{users: max(50, min(2000, opts.Total/100)), total: opts.Total}
	newConv := func(size, participants, topics int) convPlan {
		c := convPlan{size: size}
		for _, t := range rng.Perm(len(benchTopics))[:topics] {
			c.topics = append(c.topics, t)
		}
		for _, u := range rng.Perm(p.users)[:min(participants, p.users)] {
			c.participants = append(c.participants, u)
		}
		return c
	}
	for _, s := range opts.Sizes {
		p.convs = append(p.convs, newConv(s, 50, 4))
	}
	// The rest in small conversations of 10 to 400 messages, most of them short.
	for left := opts.Total - sum; left > 0; {
		u := rng.Float64()
		n := min(left, 10+int(390*u*u))
		if left-n < 10 {
			n = left
		}
		p.convs = append(p.convs, newConv(n, 2+rng.IntN(7), 1+rng.IntN(2)))
		left -= n
	}
	return p, nil
}

// benchTopics are the subjects conversations talk about; a conversation mostly uses the words of
// its own few topics, so its messages' vectors cluster, as real chats' do.
var benchTopics = [][]string{
	strings.Fields("deploy release rollback staging production pipeline build version tag hotfix canary cluster outage pager incident"),
	strings.Fields("lunch pizza sushi coffee dinner restaurant menu salad burger tacos dessert kitchen order delivery noodles"),
	strings.Fields("flight hotel trip airport luggage passport train booking beach mountains itinerary visa rental museum tickets"),
	strings.Fields("budget invoice payment expense revenue forecast quarter salary receipt refund accounting tax pricing margin cost"),
	strings.Fields("design mockup figma color typography layout button icon prototype wireframe feedback accessibility spacing font logo"),
	strings.Fields("database query index migration postgres schema table backup replica vacuum latency transaction lock shard cache"),
	strings.Fields("football match score goal team league season coach player stadium referee transfer injury tournament final"),
	strings.Fields("movie series episode actor trailer cinema netflix season director soundtrack review spoiler plot character sequel"),
	strings.Fields("hiring interview candidate offer onboarding resume recruiter role salary reference contract intern manager team culture"),
	strings.Fields("bug crash error stacktrace regression test flaky timeout exception memory leak profiler debugger fix patch"),
	strings.Fields("garden plants tomatoes watering soil seeds flowers compost harvest weeds roses balcony sunlight pots herbs"),
	strings.Fields("birthday party gift cake balloons invitation celebration surprise candles music guests venue dress photos toast"),
	strings.Fields("doctor appointment pharmacy prescription fever headache vaccine checkup dentist insurance clinic symptoms rest recovery allergy"),
	strings.Fields("apartment rent lease landlord moving boxes furniture couch deposit neighbors repair plumber heating keys utilities"),
	strings.Fields("running gym workout marathon yoga cycling swimming training stretching weights cardio trainer race shoes injury"),
	strings.Fields("security password login token certificate vulnerability audit firewall encryption phishing breach access permissions key rotation"),
	strings.Fields("roadmap milestone deadline sprint planning estimate backlog priority scope retro demo stakeholder launch objective metrics"),
	strings.Fields("weather rain snow storm forecast sunny umbrella temperature wind cold heatwave cloudy humidity jacket frost"),
	strings.Fields("book chapter author novel library reading poetry publisher fiction essay bookmark audiobook translation series shelf"),
	strings.Fields("music concert guitar piano album playlist festival band singer vinyl drums lyrics rehearsal tickets headphones"),
}

var (
	benchCommon = strings.Fields(`today tomorrow yesterday later soon morning evening weekend week monday friday time
		think need want check update send share look help try thanks sorry sure great good nice cool
		maybe really probably quick question idea plan news call meet talk wait ready done start finish
		everyone someone nothing something again still already almost enough people thing place`)
	benchStop  = strings.Fields("the a to and is it we i for of on in this that with you can be so just are have will at my")
	benchNames = strings.Fields("alice bob carol dave erin frank grace heidi ivan judy mallory oscar peggy trent victor")
	benchEnds  = []string{".", ".", ".", "!", "?", ""}
)

// topicWord picks a word of one of c's topics, the first topic most often.
func (c *convPlan) topicWord(rng *rand.Rand) string {
	t := c.topics[0]
	if len(c.topics) > 1 && rng.IntN(10) >= 6 {
		t = c.topics[1+rng.IntN(len(c.topics)-1)]
	}
	words := benchTopics[t]
	return words[rng.IntN(len(words))]
}

// messageBody is a chat message of 3 to 18 words.
func (c *convPlan) messageBody(rng *rand.Rand) string {
	n := 3 + rng.IntN(16)
	words := make([]string, n)
	for i := range words {
		switch r := rng.IntN(100); {
		case r < 30:
			words[i] = benchStop[rng.IntN(len(benchStop))]
		case r < 75:
			words[i] = c.topicWord(rng)
		case r < 95:
			words[i] = benchCommon[rng.IntN(len(benchCommon))]
		default:
			words[i] = benchNames[rng.IntN(len(benchNames))]
		}
	}
	words[0] = strings.ToUpper(words[0][:1]) + words[0][1:]
	return strings.Join(words, " ") + benchEnds[rng.IntN(len(benchEnds))]
}

// queryText is a search of 1 to 4 words, mostly about c's topics.
func (c *convPlan) queryText(rng *rand.Rand) string {
	n := 1 + rng.IntN(4)
	words := make([]string, n)
	for i := range words {
		if rng.IntN(4) == 0 {
			words[i] = benchCommon[rng.IntN(len(benchCommon))]
		} else {
			words[i] = c.topicWord(rng)
		}
	}
	return strings.Join(words, " ")
}

// ---- Seeding ----

// seed fills the schema and builds the HNSW index; it returns the IDs of plan.convs.
func seed(ctx context.Context, pool *pgxpool.Pool, schemaName string, plan *seedPlan, embedder embedding.Provider, report *SearchReport, out io.Writer) ([]int64, error) {
	// A connection of its own for the bulk load: pgvector's binary codec for COPY, and notices
	// (the HNSW build reports when its graph outgrows maintenance_work_mem).
	cfg := pool.Config().ConnConfig.Copy()
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		fmt.Fprintf(out, "postgres %s: %s\n", strings.ToLower(n.Severity), n.Message)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	var vectorOID uint32
	if err := conn.QueryRow(ctx, "SELECT 'vector'::regtype::oid").Scan(&vectorOID); err != nil {
		return nil, err
	}
	conn.TypeMap().RegisterType(&pgtype.Type{Name: "vector", OID: vectorOID, Codec: copyVectorCodec{}})

	// Load without the HNSW index, then build it once.
	var indexDef string
	if err := conn.QueryRow(ctx, "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = 'message_embeddings_hnsw'", schemaName).Scan(&indexDef); err != nil {
		return nil, fmt.Errorf("finding the HNSW index: %w", err)
	}
	if _, err := conn.Exec(ctx, "DROP INDEX message_embeddings_hnsw"); err != nil {
		return nil, err
	}

	start := time.Now()
	rng := rand.New(rand.NewPCG(seedRand, 2))
	userIDs, err := insertIDs(ctx, conn, "INSERT INTO users (name, email) SELECT 'user ' || g, 'user' || g || '@bench.example' FROM generate_series(1, $1) g RETURNING id", plan.users)
	if err != nil {
		return nil, err
	}
	convIDs, err := insertIDs(ctx, conn, "INSERT INTO conversations (type) SELECT 'group' FROM generate_series(1, $1) RETURNING id", len(plan.convs))
	if err != nil {
		return nil, err
	}
	var parts [][]any
	for i, c := range plan.convs {
		for _, u := range c.participants {
			parts = append(parts, []any{convIDs[i], userIDs[u]})
		}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"conversation_participants"}, []string{"conversation_id", "user_id"}, pgx.CopyFromRows(parts)); err != nil {
		return nil, err
	}
	// Messages arrive interleaved across conversations, as they would over time.
	order := make([]int32, 0, plan.total)
	for i, c := range plan.convs {
		for range c.size {
			order = append(order, int32(i))
		}
	}
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	next := 0
	_, err = conn.CopyFrom(ctx, pgx.Identifier{"messages"}, []string{"sender_id", "conversation_id", "body"}, pgx.CopyFromFunc(func() ([]any, error) {
		if next == len(order) {
			return nil, nil
		}
		c := &plan.convs[order[next]]
		next++
		sender := userIDs[c.participants[rng.IntN(len(c.participants))]]
		return []any{sender, convIDs[order[next-1]], c.messageBody(rng)}, nil
	}))
	if err != nil {
		return nil, fmt.Errorf("copying messages: %w", err)
	}
	messagesDone := time.Since(start)

	// Embed every stored message (on this side, one batch ahead of the COPY) and copy the vectors.
	type msgRow struct {
		id, conv, sender int64
		body             string
	}
	rows, err := conn.Query(ctx, "SELECT id, conversation_id, sender_id, body FROM messages ORDER BY id")
	if err != nil {
		return nil, err
	}
	msgs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (msgRow, error) {
		var m msgRow
		err := r.Scan(&m.id, &m.conv, &m.sender, &m.body)
		return m, err
	})
	if err != nil {
		return nil, err
	}
	type batch struct {
		msgs    []msgRow
		vectors [][]float32
		err     error
	}
	batches := make(chan batch, 4)
	embedCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(batches)
		for lo := 0; lo < len(msgs); lo += embedder.MaxBatch() {
			b := batch{msgs: msgs[lo:min(lo+embedder.MaxBatch(), len(msgs))]}
			texts := make([]string, len(b.msgs))
			for i, m := range b.msgs {
				texts[i] = m.body
			}
			b.vectors, b.err = embedder.Embed(embedCtx, texts, embedding.InputDocument)
			select {
			case batches <- b:
			case <-embedCtx.Done():
				return
			}
			if b.err != nil {
				return
			}
		}
	}()
	var cur batch
	pos := 0
	model := embedder.Model()
	_, err = conn.CopyFrom(ctx, pgx.Identifier{"message_embeddings"}, []string{"message_id", "conversation_id", "sender_id", "embedding", "model"}, pgx.CopyFromFunc(func() ([]any, error) {
		if pos == len(cur.msgs) {
			var ok bool
			if cur, ok = <-batches; !ok {
				return nil, nil
			}
			if cur.err != nil {
				return nil, cur.err
			}
			pos = 0
		}
		m := cur.msgs[pos]
		v := cur.vectors[pos]
		pos++
		return []any{m.id, m.conv, m.sender, pgvector.NewVector(v), model}, nil
	}))
	if err != nil {
		return nil, fmt.Errorf("copying embeddings: %w", err)
	}
	report.Seeding = time.Since(start)
	fmt.Fprintf(out, "seeding: %d users, %d conversations, %d messages in %s; embedding and copying %d vectors in %s; total %s\n",
		plan.users, len(plan.convs), len(msgs), messagesDone.Round(time.Millisecond), len(msgs), (report.Seeding - messagesDone).Round(time.Millisecond), report.Seeding.Round(time.Millisecond))

	// The index, with room and helpers for a fast build.
	workers := max(1, min(runtime.NumCPU(), 8))
	for _, stmt := range []string{"SET maintenance_work_mem = '2GB'", fmt.Sprintf("SET max_parallel_maintenance_workers = %d", workers)} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return nil, err
		}
	}
	start = time.Now()
	if _, err := conn.Exec(ctx, indexDef); err != nil {
		return nil, fmt.Errorf("building the HNSW index: %w", err)
	}
	report.IndexBuild = time.Since(start)
	if _, err := conn.Exec(ctx, "VACUUM (ANALYZE) users, conversations, conversation_participants, messages, message_embeddings"); err != nil {
		return nil, err
	}
	var tableSize, indexSize string
	if err := conn.QueryRow(ctx, "SELECT pg_size_pretty(pg_total_relation_size('message_embeddings') - pg_relation_size('message_embeddings_hnsw')), pg_size_pretty(pg_relation_size('message_embeddings_hnsw'))").Scan(&tableSize, &indexSize); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "HNSW index built in %s (maintenance_work_mem=2GB, max_parallel_maintenance_workers=%d); message_embeddings %s + HNSW index %s\n",
		report.IndexBuild.Round(time.Millisecond), workers, tableSize, indexSize)
	return convIDs, nil
}

// copyVectorCodec sends pgvector.Vector in pgvector's binary format, which COPY needs (it is
// only registered on the loading connection; searches send vectors as text, as production does).
type copyVectorCodec struct{}

func (copyVectorCodec) FormatSupported(format int16) bool { return format == pgtype.BinaryFormatCode }
func (copyVectorCodec) PreferredFormat() int16            { return pgtype.BinaryFormatCode }

func (copyVectorCodec) PlanEncode(_ *pgtype.Map, _ uint32, format int16, value any) pgtype.EncodePlan {
	if _, ok := value.(pgvector.Vector); ok && format == pgtype.BinaryFormatCode {
		return encodeVectorBinary{}
	}
	return nil
}

func (copyVectorCodec) PlanScan(*pgtype.Map, uint32, int16, any) pgtype.ScanPlan { return nil }

func (copyVectorCodec) DecodeDatabaseSQLValue(*pgtype.Map, uint32, int16, []byte) (driver.Value, error) {
	return nil, errors.New("bench: vectors are not read on the loading connection")
}

func (copyVectorCodec) DecodeValue(*pgtype.Map, uint32, int16, []byte) (any, error) {
	return nil, errors.New("bench: vectors are not read on the loading connection")
}

type encodeVectorBinary struct{}

func (encodeVectorBinary) Encode(value any, buf []byte) ([]byte, error) {
	return value.(pgvector.Vector).EncodeBinary(buf)
}

// insertIDs runs an INSERT ... RETURNING id of n rows and returns the IDs in ascending order.
func insertIDs(ctx context.Context, conn *pgx.Conn, sql string, n int) ([]int64, error) {
	rows, err := conn.Query(ctx, sql, n)
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, err
	}
	slices.Sort(ids)
	return ids, nil
}

// ---- Measuring ----

type searchHit struct {
	id    int64
	score float64
}

// measureSearch times every path on the conversation plan.convs[ci].
func measureSearch(ctx context.Context, conns []*pgx.Conn, embedder embedding.Provider, plan *seedPlan, ci int, convID int64, opts SearchOpts) (*SearchSizeResult, error) {
	c := &plan.convs[ci]
	res := &SearchSizeResult{Size: c.size, ProductionPath: PathHNSW}
	if c.size <= functions.ExactSearchMaxRows {
		res.ProductionPath = PathExact
	}
	res.Paths = append(res.Paths, SearchPathResult{Path: PathExact, Production: true, Recall: 1})
	res.Paths = append(res.Paths, SearchPathResult{Path: PathHNSW, Settings: ProductionHNSW, Production: true})
	for _, s := range opts.Tune {
		res.Paths = append(res.Paths, SearchPathResult{Path: PathHNSW, Settings: s})
	}

	rng := rand.New(rand.NewPCG(seedRand, uint64(3+ci)))
	texts := make([]string, opts.Queries)
	for i := range texts {
		texts[i] = c.queryText(rng)
	}
	vectors, err := embedder.Embed(ctx, texts, embedding.InputQuery)
	if err != nil {
		return nil, err
	}
	want := min(searchK, c.size)
	// A few untimed searches first, so every path starts with warm caches and prepared statements.
	warm := min(5, len(vectors))
	for _, v := range vectors[:warm] {
		for pi, p := range res.Paths {
			if _, _, _, err := timeSearch(ctx, conns[pi], convID, embedder.Model(), v, p); err != nil {
				return nil, err
			}
		}
	}
	recallSum := make([]float64, len(res.Paths))
	order := make([]int, len(res.Paths))
	for i := range order {
		order[i] = i
	}
	hits := make([][]searchHit, len(res.Paths))
	for _, v := range vectors {
		// Paths take turns query by query, so drifting load on the machine hits them alike, in a
		// shuffled order, so that no path always finds the pages another just read.
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, pi := range order {
			p := &res.Paths[pi]
			got, d, scanned, err := timeSearch(ctx, conns[pi], convID, embedder.Model(), v, *p)
			if err != nil {
				return nil, err
			}
			hits[pi] = got
			p.Samples = append(p.Samples, d)
			if len(got) < want {
				p.Short++
			}
			if scanned {
				p.IndexScans++
			}
		}
		for pi, p := range res.Paths {
			if p.Path != PathExact {
				recallSum[pi] += recallAt(hits[0], hits[pi], searchK)
			}
		}
	}
	for pi := range res.Paths {
		if res.Paths[pi].Path != PathExact {
			res.Paths[pi].Recall = recallSum[pi] / float64(len(vectors))
		}
	}
	return res, nil
}

// timeSearch runs one search the way messagesSearchVectors does (after its membership check): in
// a read-only repeatable-read transaction, count the conversation's embeddings, then run the
// path's statement(s). It reports the hits, the time from BEGIN to the end of COMMIT (less the
// index-usage probe), and whether the HNSW index was scanned.
func timeSearch(ctx context.Context, conn *pgx.Conn, convID int64, model string, v []float32, p SearchPathResult) ([]searchHit, time.Duration, bool, error) {
	q := queries.New()
	vec := pgvector.NewVector(v)
	start := time.Now()
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, 0, false, err
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	// The index's scan count before and after the search, read inside the transaction (a backend
	// publishes its statistics between transactions only) and left out of the time.
	probeStart := time.Now()
	scansBefore, err := hnswScans(ctx, tx)
	if err != nil {
		return nil, 0, false, err
	}
	probe := time.Since(probeStart)
	if _, err := q.EmbeddingCountForConversation(ctx, tx, convID); err != nil {
		return nil, 0, false, err
	}
	var hits []searchHit
	if p.Path == PathExact {
		rows, err := q.EmbeddingSearchExact(ctx, tx, queries.EmbeddingSearchExactParams{ConversationID: convID, Embedding: vec, Limit: searchK, Model: model})
		if err != nil {
			return nil, 0, false, err
		}
		for _, r := range rows {
			hits = append(hits, searchHit{r.ID, r.Score})
		}
	} else {
		for _, stmt := range p.Settings.Statements() {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return nil, 0, false, err
			}
		}
		rows, err := q.EmbeddingSearchIndexed(ctx, tx, queries.EmbeddingSearchIndexedParams{ConversationID: convID, Embedding: vec, Limit: searchK, Model: model})
		if err != nil {
			return nil, 0, false, err
		}
		for _, r := range rows {
			hits = append(hits, searchHit{r.ID, r.Score})
		}
	}
	elapsed := time.Since(start) - probe
	scansAfter, err := hnswScans(ctx, tx)
	if err != nil {
		return nil, 0, false, err
	}
	commit := time.Now()
	if err := tx.Commit(ctx); err != nil {
		return nil, 0, false, err
	}
	return hits, elapsed + time.Since(commit), scansAfter > scansBefore, nil
}

// hnswScans is how many scans of the HNSW index this backend has counted and not yet published.
func hnswScans(ctx context.Context, tx pgx.Tx) (int64, error) {
	var n int64
	err := tx.QueryRow(ctx, "SELECT pg_stat_get_xact_numscans('message_embeddings_hnsw'::regclass)").Scan(&n)
	return n, err
}

// recallAt is recall@k of got against the exact top hits, ties counted as hits: a hit is right
// when its score is at least the exact k-th score (HNSW may return any of several rows at the
// same distance; the exact path breaks ties by message ID).
func recallAt(exact, got []searchHit, k int) float64 {
	k = min(k, len(exact))
	if k == 0 {
		return 1
	}
	threshold := exact[k-1].score - 1e-9
	n := 0
	for _, h := range got[:min(k, len(got))] {
		if h.score >= threshold {
			n++
		}
	}
	return float64(n) / float64(k)
}
