package benchchat

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/ripplehq/ripple/engine/embedding"
)

// The embedding's CPU, reported apart from delivery's. The server embeds every message in the
// background (the embedding sweep, functions/search.go), and that work is inside the phase's
// server and Postgres CPU. Its share is measured in two parts:
//
//   - Postgres: the executor + planner time (total_exec_time + total_plan_time, from the same
//     pg_stat_statements snapshots as the statement count) of the sweep's statements, known by
//     their sqlc "-- name:" headers. For in-memory work (the bench's data is all cached)
//     executor time is a good proxy for CPU; it leaves out parsing, the protocol and commit,
//     planner time counts only with pg_stat_statements.track_planning = on, and being elapsed
//     time it also holds lock waits and, on a machine short of cores, time spent descheduled.
//   - Server: the provider's compute. For the local provider it is measured once in the bench
//     process, before any server runs: the bench's own kind of message bodies, embedded in
//     batches of MaxBatch (as the sweep leases them), timed with getrusage (user + sys, the Go
//     GC the batches cause included). A network provider's share is not measured.
//
// Per phase, provider ms/text × the texts the sweep stored in the window (its EmbeddingInsert and
// EmbeddingFailureInsert calls) + the Postgres time, per delivered message, is the embedding;
// delivery is server + Postgres CPU less that. What the sweep costs besides (its transactions,
// the engine's mutation plumbing, the vectors' JSON and pgvector encoding, River's job rows) has
// no sqlc name and stays in delivery's figure: the embedding figure is a floor.
//
// Window: the phase's CPU and statements run from its first send to the end of the wait for the
// embedding queue to empty (env.waitBackground, bounded by Config.JobsTimeout), so embedding the
// sweep put off while it gave way to deliveries is counted in the phase that caused it. What is
// still queued when that wait gives up is embedded after the window and is not in the phase's
// figures (and beginPhase waits it out before the next phase starts).

// sweepStatementNames are the sqlc names of the statements the embedding sweep runs: leasing
// (messages:leaseEmbeddings: EmbeddingQueueLease, then MessageListByIDs to load the bodies),
// storing (messages:storeEmbeddings: EmbeddingInsert, EmbeddingFailureInsert, EmbeddingQueueDone)
// and giving back (messages:releaseEmbeddings). Not every "Embedding…" statement is the sweep's:
// EmbeddingQueueEnsure queues a message (a legacy job; messages:send queues inside MessageSend),
// the searches and the reembed command's statements run elsewhere.
var sweepStatementNames = map[string]bool{
	"EmbeddingQueueLease":    true,
	"MessageListByIDs":       true,
	"EmbeddingInsert":        true,
	"EmbeddingFailureInsert": true,
	"EmbeddingQueueDone":     true,
	"EmbeddingQueueRelease":  true,
}

// embeddedTextNames are the statements run once per text the sweep embedded (stored, or
// recorded as failed).
var embeddedTextNames = map[string]bool{"EmbeddingInsert": true, "EmbeddingFailureInsert": true}

// sqlcName is the name in a statement's sqlc header ("-- name: EmbeddingInsert :execrows"), or
// "". pg_stat_statements keeps the text as sent, leading comment included.
func sqlcName(text string) string {
	rest, ok := strings.CutPrefix(strings.TrimSpace(text), "-- name:")
	if !ok {
		return ""
	}
	if i := strings.IndexByte(rest, '\n'); i >= 0 {
		rest = rest[:i]
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// EmbeddingStatements is the embedding sweep's statements in a phase.
type EmbeddingStatements struct {
	// Statements are the sweep's statements seen, by sqlc name.
	Statements []string `json:"statements"`
	Calls      int64    `json:"calls"`
	// Texts is the calls of EmbeddingInsert and EmbeddingFailureInsert: messages embedded.
	Texts int64 `json:"texts"`
	// ExecPlanMs is their total_exec_time + total_plan_time.
	ExecPlanMs float64 `json:"execPlanMs"`
}

// sweepStatements picks the sweep's statements out of a phase's deltas by the sqlc names in
// texts and sums their calls and time between snapshots a and b. Only top-level rows count: a
// top-level statement's time already holds what ran inside it (triggers, functions). A
// statement evicted and back (its calls went down) counts its new totals whole, as diffCalls
// does.
func sweepStatements(a, b stmtSnapshot, deltas []stmtDelta, texts map[stmtKey]string) *EmbeddingStatements {
	if len(texts) == 0 && len(deltas) > 0 {
		return nil // the texts could not be read: the sweep's statements are unknown
	}
	out := &EmbeddingStatements{Statements: []string{}}
	seen := map[string]bool{}
	for _, d := range deltas {
		name := sqlcName(texts[d.key])
		if !d.key.topLevel || !sweepStatementNames[name] {
			continue
		}
		t := b.pgssMs[d.key] - a.pgssMs[d.key]
		if b.pgss[d.key] < a.pgss[d.key] || t < 0 {
			t = b.pgssMs[d.key]
		}
		out.Calls += d.calls
		out.ExecPlanMs += t
		if embeddedTextNames[name] {
			out.Texts += d.calls
		}
		if !seen[name] {
			seen[name] = true
			out.Statements = append(out.Statements, name)
		}
	}
	sort.Strings(out.Statements)
	out.ExecPlanMs = round3(out.ExecPlanMs)
	return out
}

// ProviderCost is the embedding provider's compute, measured in the bench process.
type ProviderCost struct {
	Provider string `json:"provider"`
	Model    string `json:"model,omitempty"`
	// MsPerText is CPU ms per embedded text; nil when not measured (Note says why).
	MsPerText *float64 `json:"msPerText"`
	// Texts were embedded in batches of Batch to measure it.
	Texts int    `json:"texts,omitempty"`
	Batch int    `json:"batch,omitempty"`
	Note  string `json:"note,omitempty"`
}

// Bounds of the provider measurement: enough CPU for getrusage's figure to be steady, little
// enough to be a moment at the start of a run (the local provider takes ~10 µs a text).
const (
	providerMinCPU     = 100 * time.Millisecond
	providerMinBatches = 4
	providerMaxBatches = 64
	providerMaxWall    = 3 * time.Second
)

// measureProvider measures cfg's provider on the bench's own kind of message bodies. It must
// run when the process is otherwise quiet: getrusage counts every thread.
func measureProvider(ctx context.Context, cfg embedding.Config) *ProviderCost {
	cfg = cfg.WithDefaults()
	pc := &ProviderCost{Provider: cfg.Provider, Model: cfg.Model}
	if cfg.Provider != embedding.ProviderLocal {
		pc.Note = "a network provider, its compute not measured"
		return pc
	}
	p, err := embedding.New(cfg)
	if err != nil {
		pc.Note = "not measured: " + err.Error()
		return pc
	}
	pc.Model, pc.Batch = p.Model(), p.MaxBatch()
	// Bodies as tracker.send writes them, a phase tag and a send time each.
	t := newTracker(fmt.Sprintf("%s%d", randomHex(3), 500), 0)
	texts := make([]string, pc.Batch)
	for i := range texts {
		texts[i] = t.body(i)
	}
	// One batch first, uncounted: the provider's scratch pool and the heap warm up.
	if _, err := p.Embed(ctx, texts, embedding.InputDocument); err != nil {
		pc.Note = "not measured: " + err.Error()
		return pc
	}
	cpu0, ok := processCPU()
	if !ok {
		pc.Note = "not measured: getrusage failed"
		return pc
	}
	start := time.Now()
	var used time.Duration
	n := 0
	for n < providerMaxBatches && (n < providerMinBatches || used < providerMinCPU) && time.Since(start) < providerMaxWall {
		if _, err := p.Embed(ctx, texts, embedding.InputDocument); err != nil {
			pc.Note = "not measured: " + err.Error()
			return pc
		}
		n++
		cpu1, _ := processCPU()
		used = cpu1 - cpu0
	}
	pc.Texts = n * len(texts)
	pc.MsPerText = round6(fptr(ms(used) / float64(pc.Texts)))
	return pc
}

// processCPU is this process's user + system CPU.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

// embeddingSplit fills r's embedding and delivery figures, per delivered message: pgMs is the
// sweep's executor + planner ms in the phase (nil: unknown), texts how many texts it embedded
// (nil: unknown), msPerText the provider's compute (nil: not measured). The embedding total, and
// with it delivery, is set only when both parts are known.
func embeddingSplit(r *Result, pgMs *float64, texts *int64, msPerText *float64) {
	if r.Delivered <= 0 {
		return
	}
	defer func() {
		r.EmbeddingPostgresMsPerMsg, r.EmbeddingProviderMsPerMsg = round6(r.EmbeddingPostgresMsPerMsg), round6(r.EmbeddingProviderMsPerMsg)
		r.EmbeddingCPUMsPerMsg, r.DeliveryCPUMsPerMsg = round6(r.EmbeddingCPUMsPerMsg), round6(r.DeliveryCPUMsPerMsg)
	}()
	n := float64(r.Delivered)
	if pgMs != nil {
		r.EmbeddingPostgresMsPerMsg = fptr(*pgMs / n)
	}
	if texts != nil && msPerText != nil {
		r.EmbeddingProviderMsPerMsg = fptr(float64(*texts) * *msPerText / n)
	}
	if r.EmbeddingPostgresMsPerMsg == nil || r.EmbeddingProviderMsPerMsg == nil {
		return
	}
	r.EmbeddingCPUMsPerMsg = fptr(*r.EmbeddingPostgresMsPerMsg + *r.EmbeddingProviderMsPerMsg)
	if r.ServerCPUMsPerMsg != nil && r.PostgresCPUMsPerMsg != nil {
		r.DeliveryCPUMsPerMsg = fptr(*r.ServerCPUMsPerMsg + *r.PostgresCPUMsPerMsg - *r.EmbeddingCPUMsPerMsg)
	}
}

// round6 keeps six decimals: the provider's share is a few µs a message.
func round6(p *float64) *float64 {
	if p == nil {
		return nil
	}
	return fptr(math.Round(*p*1e6) / 1e6)
}

// embeddingCPUText is the embedding and delivery part of a result's cpu line. With one part
// unknown the known one is a floor of the embedding, and delivery has a ceiling.
func embeddingCPUText(r *Result) string {
	pg, prov := r.EmbeddingPostgresMsPerMsg, r.EmbeddingProviderMsPerMsg
	if r.EmbeddingCPUMsPerMsg != nil {
		return fmt.Sprintf("embedding ≈ %.3f (postgres %.3f + provider %.3f);  delivery ≈ %s",
			*r.EmbeddingCPUMsPerMsg, *pg, *prov, fmtOpt(r.DeliveryCPUMsPerMsg, "%.3f"))
	}
	if pg == nil && prov == nil {
		return "embedding unknown;  delivery unknown"
	}
	pgText, provText, floor := "postgres unknown", "provider not measured", 0.0
	if pg != nil {
		pgText, floor = fmt.Sprintf("postgres %.3f", *pg), floor+*pg
	}
	if prov != nil {
		provText, floor = fmt.Sprintf("provider %.3f", *prov), floor+*prov
	}
	delivery := "unknown"
	if r.ServerCPUMsPerMsg != nil && r.PostgresCPUMsPerMsg != nil {
		delivery = fmt.Sprintf("≤ %.3f", *r.ServerCPUMsPerMsg+*r.PostgresCPUMsPerMsg-floor)
	}
	return fmt.Sprintf("embedding ≥ %.3f (%s + %s);  delivery %s", floor, pgText, provText, delivery)
}

// embeddingMethod is the one line that says how the embedding is split off.
func embeddingMethod(pc *ProviderCost) string {
	names := make([]string, 0, len(sweepStatementNames))
	for n := range sweepStatementNames {
		names = append(names, n)
	}
	sort.Strings(names)
	provider := "provider not measured"
	switch {
	case pc == nil:
	case pc.MsPerText != nil:
		provider = fmt.Sprintf("provider = %s compute measured in the bench before the run, %.4f ms/text (%d bench-like texts in batches of %d, getrusage) × texts the sweep stored in the phase",
			pc.Model, *pc.MsPerText, pc.Texts, pc.Batch)
	case pc.Note != "":
		provider = fmt.Sprintf("provider (%s): %s", pc.Provider, pc.Note)
	}
	return "embedding apart: postgres = executor+planner ms of the sweep's statements (" + strings.Join(names, ", ") +
		") from pg_stat_statements, a proxy for CPU of in-memory work; " + provider +
		"; delivery = server + postgres − embedding; the sweep's transactions and vector plumbing have no sqlc name and stay in delivery"
}
