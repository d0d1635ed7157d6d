package benchchat

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Statements per delivered message: how many SQL statements Postgres ran for the server during a
// phase, divided by the deliveries. The first choice is pg_stat_statements, which sees every
// statement whoever sent it; without it, the engine's own counter ripple_db_statements_total
// scraped from the server's /metrics; without either, nothing (never an estimate).

// Statement-count sources, as written in Statements.Source.
const (
	sourcePGSS        = "pg_stat_statements"
	sourceEngine      = "engine"
	sourceUnavailable = "unavailable"
)

// engineStatementsMetric is the engine's counter of statements its connections sent.
const engineStatementsMetric = "ripple_db_statements_total"

// topStatements is how many statements the breakdown lists.
const topStatements = 15

// Statements is a phase's statement count.
type Statements struct {
	// Source is pg_stat_statements, engine (its ripple_db_statements_total) or unavailable.
	Source string `json:"source"`
	// Track is pg_stat_statements.track: "top" counts statements clients sent, "all" also those
	// run inside functions and triggers (counted apart, in Nested).
	Track string `json:"track,omitempty"`
	// Total is the top-level statements of the phase (the bench's own subtracted); PerMsg is Total
	// per delivered message.
	Total  int64   `json:"total"`
	PerMsg float64 `json:"perMsg"`
	// Nested is statements run inside functions and triggers (track = all only).
	Nested       int64    `json:"nested,omitempty"`
	NestedPerMsg *float64 `json:"nestedPerMsg,omitempty"`
	// BenchOwn is how many of the bench's own monitoring statements were subtracted.
	BenchOwn int64 `json:"benchOwn,omitempty"`
	// EnginePerMsg is the engine's own count per message, when it exports one (beside
	// pg_stat_statements, a cross-check).
	EnginePerMsg *float64 `json:"enginePerMsg,omitempty"`
	// Top is the statements run most often in the phase, and Rest the calls of all the others
	// (pg_stat_statements only).
	Top  []StatementCalls `json:"top,omitempty"`
	Rest *StatementRest   `json:"rest,omitempty"`
	// Embedding is the embedding sweep's statements (pg_stat_statements only).
	Embedding *EmbeddingStatements `json:"embedding,omitempty"`
	Notes     []string             `json:"notes,omitempty"`
}

// StatementRest is the calls of the statements the list leaves out.
type StatementRest struct {
	Statements int     `json:"statements"`
	Calls      int64   `json:"calls"`
	PerMsg     float64 `json:"perMsg"`
}

// StatementCalls is one normalized statement's calls in a phase.
type StatementCalls struct {
	Query    string  `json:"query"`
	Calls    int64   `json:"calls"`
	PerMsg   float64 `json:"perMsg"`
	TopLevel bool    `json:"topLevel"`
}

// ---------- the engine's counter, from /metrics ----------

// promCounter sums every sample of the metric name in a Prometheus text exposition (all its
// label sets). ok is false when the metric has no sample.
func promCounter(r io.Reader, name string) (sum float64, ok bool, err error) {
	samples, err := promByLabels(r, name)
	if err != nil {
		return 0, false, err
	}
	for _, v := range samples {
		sum += v
	}
	return sum, len(samples) > 0, nil
}

// promByLabels reads every sample of the metric name in a Prometheus text exposition, by its
// label set as written ("" when it has none).
func promByLabels(r io.Reader, name string) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || !strings.HasPrefix(line, name) {
			continue
		}
		rest, labels := line[len(name):], ""
		switch {
		case strings.HasPrefix(rest, "{"):
			// Label values may hold '}' inside quotes; the value follows the last one.
			i := strings.LastIndexByte(rest, '}')
			if i < 0 {
				return nil, fmt.Errorf("malformed sample %q", line)
			}
			rest, labels = rest[i+1:], rest[1:i]
		case rest == "" || (rest[0] != ' ' && rest[0] != '\t'):
			continue // another metric sharing the prefix (name_created, name_foo)
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return nil, fmt.Errorf("malformed sample %q", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("malformed sample %q", line)
		}
		out[labels] += v
	}
	return out, sc.Err()
}

// scrape hands the server's /metrics to read; an error when there is no metrics address or the
// server did not answer.
func (m *meter) scrape(ctx context.Context, read func(io.Reader) error) error {
	if m.srv.MetricsURL == "" {
		return errors.New("no metrics address")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.srv.MetricsURL, nil)
	if err != nil {
		return err
	}
	resp, err := m.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return fmt.Errorf("metrics: %s", resp.Status)
	}
	return read(resp.Body)
}

// ---------- the bench's own statements ----------

// ownStatements counts the statements the bench's meter connection ran successfully, by text, so
// they can be taken out of pg_stat_statements' figures: they share the server's database and
// role, and pg_stat_statements keeps neither application_name nor backend pid. Counting them
// where they are sent is exact; failed statements are left out, as pg_stat_statements does.
type ownStatements struct {
	mu     sync.Mutex
	total  int64
	byText map[string]int64
}

type ownSQLKey struct{}

func (o *ownStatements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, ownSQLKey{}, data.SQL)
}

func (o *ownStatements) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	if data.Err != nil {
		return
	}
	sql, _ := ctx.Value(ownSQLKey{}).(string)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.total++
	if o.byText == nil {
		o.byText = map[string]int64{}
	}
	o.byText[strings.TrimSpace(sql)]++
}

func (o *ownStatements) snapshot() (int64, map[string]int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	texts := make(map[string]int64, len(o.byText))
	for k, v := range o.byText {
		texts[k] = v
	}
	return o.total, texts
}

// ---------- pg_stat_statements ----------

// pgssInfo says how pg_stat_statements counts.
type pgssInfo struct {
	// track is pg_stat_statements.track as the bench's session has it: the server's sessions
	// have the same unless they set their own (a child server inherits PGOPTIONS, so
	// PGOPTIONS='-c pg_stat_statements.track=all' sets it for both).
	track string
	// trackPlanning is pg_stat_statements.track_planning: without it total_plan_time stays 0.
	trackPlanning bool
}

// The bench's own statements take parameters rather than literals: pg_stat_statements keeps a
// statement without constants under its text as sent, so ownStatements' texts find its rows.
const (
	pgssCallsSQL = "SELECT userid, coalesce(queryid, 0), toplevel, calls, total_exec_time + total_plan_time FROM pg_stat_statements($1) " +
		"WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
	pgssInfoSQL  = "SELECT now(), dealloc FROM pg_stat_statements_info"
	pgssTextsSQL = "SELECT userid, queryid, toplevel, query FROM pg_stat_statements($1) " +
		"WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND queryid = ANY($2)"
)

// probePGSS returns how pg_stat_statements counts in this database, or a reason it cannot be
// used. It runs before any phase, so its statements are in nobody's window.
func probePGSS(ctx context.Context, conn *pgx.Conn) (*pgssInfo, string) {
	var present bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = $1)", "pg_stat_statements").Scan(&present); err != nil || !present {
		return nil, "the pg_stat_statements extension is not created in this database"
	}
	var version int
	var track, queryID, planning string
	err := conn.QueryRow(ctx, "SELECT current_setting($1)::int, current_setting($2, true), current_setting($3, true), coalesce(current_setting($4, true), '')",
		"server_version_num", "pg_stat_statements.track", "compute_query_id", "pg_stat_statements.track_planning").Scan(&version, &track, &queryID, &planning)
	switch {
	case err != nil:
		return nil, "reading settings: " + err.Error()
	case version < 140000:
		return nil, "the bench reads pg_stat_statements' toplevel column and pg_stat_statements_info (PostgreSQL 14 and later)"
	case track == "none" || track == "":
		return nil, "pg_stat_statements.track is none"
	case queryID == "off":
		return nil, "compute_query_id is off, so pg_stat_statements records nothing"
	}
	// Reading the view fails when the library is not in shared_preload_libraries.
	var n int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_statements($1)", false).Scan(&n); err != nil {
		return nil, "pg_stat_statements is not readable: " + err.Error()
	}
	return &pgssInfo{track: track, trackPlanning: planning == "on"}, ""
}

// stmtKey is pg_stat_statements' key within one database.
type stmtKey struct {
	userID   uint32
	queryID  int64
	topLevel bool
}

// stmtSnapshot is the counters at one moment.
type stmtSnapshot struct {
	pgss     map[stmtKey]int64   // nil: not read
	pgssMs   map[stmtKey]float64 // total_exec_time + total_plan_time, with pgss
	dealloc  int64
	pgNow    time.Time
	own      int64 // the bench's statements sent before this snapshot's
	ownTexts map[string]int64
	engine   float64
	engineOK bool
	phases   phaseTotals // the engine's phase histogram; nil: not exported
	// counters are the engineCounters the server exports, by name.
	counters map[string]float64
}

// statementSnapshot reads the counters, at the start of a phase (start) or at its end.
//
// The bench's statements between two snapshots are the ones ownStatements counted between the
// moments each snapshot read it, just before its read of pg_stat_statements: pg_stat_statements
// records a statement when it ends, so the first read is in the second's figures, not its own.
//
// Scraping /metrics makes the server run a statement of its own (the River jobs gauge), so the
// scrape comes before the first read and after the second, outside pg_stat_statements' window.
// The engine's counter may or may not include those (the registry gathers in parallel): at most
// two statements of noise in the phase.
func (m *meter) statementSnapshot(ctx context.Context, start bool) stmtSnapshot {
	var s stmtSnapshot
	if start {
		m.scrapeEngine(ctx, &s)
	}
	if m.pgss != nil {
		m.readPGSS(ctx, &s)
	}
	if !start {
		m.scrapeEngine(ctx, &s)
	}
	return s
}

func (m *meter) readPGSS(ctx context.Context, s *stmtSnapshot) {
	if err := m.conn.QueryRow(ctx, pgssInfoSQL).Scan(&s.pgNow, &s.dealloc); err != nil {
		return
	}
	s.own, s.ownTexts = m.own.snapshot()
	rows, err := m.conn.Query(ctx, pgssCallsSQL, false)
	if err != nil {
		return
	}
	calls := map[stmtKey]int64{}
	times := map[stmtKey]float64{}
	var k stmtKey
	var n int64
	var t float64
	_, err = pgx.ForEachRow(rows, []any{&k.userID, &k.queryID, &k.topLevel, &n, &t}, func() error {
		calls[k], times[k] = n, t
		return nil
	})
	if err == nil {
		s.pgss, s.pgssMs = calls, times
	}
}

// stmtDelta is one statement's calls between two snapshots.
type stmtDelta struct {
	key   stmtKey
	calls int64
}

// diffCalls is each statement's calls between two snapshots, most first. A statement whose
// count went down was evicted and came back (pg_stat_statements.max): its new count is all
// that is known, and reset says so.
func diffCalls(before, after map[stmtKey]int64) (out []stmtDelta, reset bool) {
	for k, n := range after {
		d := n - before[k]
		if d < 0 {
			d, reset = n, true
		}
		if d > 0 {
			out = append(out, stmtDelta{k, d})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].calls != out[j].calls {
			return out[i].calls > out[j].calls
		}
		return out[i].key.queryID < out[j].key.queryID
	})
	return out, reset
}

// perMsg is n per delivered message, three decimals.
func perMsg(n int64, delivered int) float64 {
	if delivered <= 0 {
		return 0
	}
	return round3(float64(n) / float64(delivered))
}

// shortSQL is a statement on one line, at most max runes.
func shortSQL(q string, max int) string {
	q = strings.Join(strings.Fields(q), " ")
	if r := []rune(q); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return q
}

// statementsBetween computes a phase's figures from its two snapshots; nil when nothing was
// delivered.
func (m *meter) statementsBetween(ctx context.Context, a, b stmtSnapshot, delivered int) *Statements {
	if delivered <= 0 {
		return nil
	}
	st := &Statements{Source: sourceUnavailable}
	var enginePerMsg *float64
	if a.engineOK && b.engineOK {
		enginePerMsg = fptr(perMsg(int64(b.engine-a.engine), delivered))
	}
	if a.pgss == nil || b.pgss == nil {
		if m.pgssWhy != "" {
			st.Notes = append(st.Notes, "pg_stat_statements: "+m.pgssWhy)
		}
		if enginePerMsg != nil {
			st.Source, st.Total, st.PerMsg = sourceEngine, int64(b.engine-a.engine), *enginePerMsg
		}
		return st
	}
	st.Source, st.Track, st.EnginePerMsg = sourcePGSS, m.pgss.track, enginePerMsg
	deltas, reset := diffCalls(a.pgss, b.pgss)
	ownTexts := map[string]int64{}
	for t, n := range b.ownTexts {
		if d := n - a.ownTexts[t]; d > 0 {
			ownTexts[t] = d
		}
	}
	texts := m.statementTexts(ctx, deltas)
	st.BenchOwn = b.own - a.own
	st.Total, st.Nested, st.Top, st.Rest = splitCalls(deltas, texts, ownTexts, st.BenchOwn, delivered)
	st.Embedding = sweepStatements(a, b, deltas, texts)
	st.PerMsg = perMsg(st.Total, delivered)
	if m.pgss.track == "all" {
		st.NestedPerMsg = fptr(perMsg(st.Nested, delivered))
	}
	if reset || b.dealloc != a.dealloc {
		st.Notes = append(st.Notes, "pg_stat_statements evicted entries during the phase (pg_stat_statements.max): the count may be low")
	}
	if note := m.otherSessions(ctx, a.pgNow); note != "" {
		st.Notes = append(st.Notes, note)
	}
	return st
}

// splitCalls totals the phase's calls, top level and nested, less the bench's own (own in all,
// ownTexts by text, all of them top level), lists the topStatements most frequent and sums the
// others in rest. A bench statement whose row is not found by its text still comes off the
// total (and stays in the list or rest).
func splitCalls(deltas []stmtDelta, texts map[stmtKey]string, ownTexts map[string]int64, own int64, delivered int) (top, nested int64, list []StatementCalls, rest *StatementRest) {
	ownLeft := map[string]int64{}
	for t, n := range ownTexts {
		ownLeft[t] = n
	}
	for _, d := range deltas {
		if !d.key.topLevel {
			nested += d.calls
		} else {
			top += d.calls
		}
	}
	top = max(0, top-own)
	for _, d := range deltas {
		n := d.calls
		text, known := texts[d.key]
		if d.key.topLevel && known {
			take := min(n, ownLeft[strings.TrimSpace(text)])
			ownLeft[strings.TrimSpace(text)] -= take
			n -= take
		}
		if n <= 0 {
			continue
		}
		if !known {
			text = fmt.Sprintf("queryid %d", d.key.queryID)
		}
		list = append(list, StatementCalls{Query: shortSQL(text, 160), Calls: n, PerMsg: perMsg(n, delivered), TopLevel: d.key.topLevel})
	}
	sort.SliceStable(list, func(i, j int) bool { return list[i].Calls > list[j].Calls })
	if len(list) > topStatements {
		rest = &StatementRest{Statements: len(list) - topStatements}
		for _, c := range list[topStatements:] {
			rest.Calls += c.Calls
		}
		rest.PerMsg = perMsg(rest.Calls, delivered)
		list = list[:topStatements]
	}
	return top, nested, list, rest
}

// statementTexts fetches the texts of every statement of deltas: the list needs the most
// frequent ones, the embedding sweep's share the sqlc names of all of them (the view reads its
// whole text file whatever the filter, so asking for all costs little more). It runs after the
// phase's last snapshot, outside every window.
func (m *meter) statementTexts(ctx context.Context, deltas []stmtDelta) map[stmtKey]string {
	ids := make([]int64, 0, len(deltas))
	for _, d := range deltas {
		ids = append(ids, d.key.queryID)
	}
	out := map[stmtKey]string{}
	if len(ids) == 0 {
		return out
	}
	rows, err := m.conn.Query(ctx, pgssTextsSQL, true, ids)
	if err != nil {
		return out
	}
	var k stmtKey
	var q string
	_, _ = pgx.ForEachRow(rows, []any{&k.userID, &k.queryID, &k.topLevel, &q}, func() error {
		out[k] = q
		return nil
	})
	return out
}

// otherSessions says whether another session worked in the database since the phase began:
// pg_stat_statements counts by database, and the server's schema shares it (with tests, say).
// It sees sessions still connected only, so it is a warning, not a proof of a clean count.
func (m *meter) otherSessions(ctx context.Context, since time.Time) string {
	if m.srv.AppName == "" {
		return "the server's connections cannot be told apart (no application_name): the count is the whole database's"
	}
	if since.IsZero() {
		return ""
	}
	var n int64
	var names string
	err := m.conn.QueryRow(ctx, `SELECT count(*), coalesce(string_agg(DISTINCT nullif(application_name, ''), ', '), '')
		FROM pg_stat_activity
		WHERE datname = current_database() AND backend_type = $1 AND pid <> pg_backend_pid()
		  AND application_name <> $2 AND (state = $3 OR state_change >= $4 OR backend_start >= $4)`,
		"client backend", m.srv.AppName, "active", since).Scan(&n, &names)
	if err != nil || n == 0 {
		return ""
	}
	if names == "" {
		names = "no application_name"
	}
	return fmt.Sprintf("%d other session(s) used the database during the phase (%s): their statements are in the count", n, names)
}
