package benchchat

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

func TestPromCounter(t *testing.T) {
	const text = `# HELP ripple_db_statements_total Statements sent.
# TYPE ripple_db_statements_total counter
ripple_db_statements_total{kind="query"} 120
ripple_db_statements_total{kind="exec",note="a } inside"} 3.5e+01 1712345678000
ripple_db_statements_total_created 1.7e+09
ripple_db_statements_totally 99
ripple_transitions_total 7
`
	v, ok, err := promCounter(strings.NewReader(text), "ripple_db_statements_total")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, 155.0, v, "every label set summed, other metrics sharing the prefix ignored")

	v, ok, err = promCounter(strings.NewReader("ripple_db_statements_total 42\n"), "ripple_db_statements_total")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, 42.0, v)

	_, ok, err = promCounter(strings.NewReader(text), "ripple_missing_total")
	require.NoError(t, err)
	require.False(t, ok, "an absent metric is not a zero")

	_, _, err = promCounter(strings.NewReader("ripple_db_statements_total{kind=\"x\"} many\n"), "ripple_db_statements_total")
	require.Error(t, err)
}

func TestDiffCalls(t *testing.T) {
	a := stmtKey{userID: 10, queryID: 1, topLevel: true}
	b := stmtKey{userID: 10, queryID: 2, topLevel: true}
	c := stmtKey{userID: 10, queryID: 3, topLevel: false}
	d := stmtKey{userID: 10, queryID: 4, topLevel: true}
	before := map[stmtKey]int64{a: 100, b: 5, d: 7}
	after := map[stmtKey]int64{a: 130, b: 5, c: 40, d: 3}
	got, reset := diffCalls(before, after)
	require.True(t, reset, "d went down: evicted and recreated")
	require.Equal(t, []stmtDelta{{c, 40}, {a, 30}, {d, 3}}, got, "unchanged b left out, new c counted whole, most first")

	got, reset = diffCalls(after, after)
	require.False(t, reset)
	require.Empty(t, got)
}

func TestSplitCalls(t *testing.T) {
	mk := func(id int64, top bool) stmtKey { return stmtKey{userID: 10, queryID: id, topLevel: top} }
	deltas := []stmtDelta{
		{mk(1, true), 600},  // the mutation's statement
		{mk(2, false), 300}, // a trigger's, nested
		{mk(3, true), 210},  // the same text the bench ran 10 times
		{mk(4, true), 2},    // the bench's calls read, found by text
		{mk(5, true), 50},   // no text fetched
	}
	texts := map[stmtKey]string{
		mk(1, true):  "INSERT INTO messages\n   VALUES ($1)",
		mk(2, false): "SELECT pg_notify($1, $2)",
		mk(3, true):  "SELECT count(*) FROM q",
		mk(4, true):  pgssCallsSQL,
	}
	own := map[string]int64{"SELECT count(*) FROM q": 10, pgssCallsSQL: 2, "SELECT never seen": 1}
	top, nested, list, rest := splitCalls(deltas, texts, own, 13, 100)
	require.EqualValues(t, 600+210+2+50-13, top, "the bench's own come off the total, found by text or not")
	require.EqualValues(t, 300, nested)
	require.Equal(t, []StatementCalls{
		{Query: "INSERT INTO messages VALUES ($1)", Calls: 600, PerMsg: 6, TopLevel: true},
		{Query: "SELECT pg_notify($1, $2)", Calls: 300, PerMsg: 3},
		{Query: "SELECT count(*) FROM q", Calls: 200, PerMsg: 2, TopLevel: true},
		{Query: "queryid 5", Calls: 50, PerMsg: 0.5, TopLevel: true},
	}, list, "the bench's calls read gone from the list, its polls reduced")
	require.Nil(t, rest)

	// More statements than the list holds: the others are summed.
	deltas = nil
	for i := range topStatements + 3 {
		deltas = append(deltas, stmtDelta{mk(int64(i), true), int64(100 - i)})
	}
	_, _, list, rest = splitCalls(deltas, nil, nil, 0, 10)
	require.Len(t, list, topStatements)
	n := int64(100-topStatements) + int64(100-topStatements-1) + int64(100-topStatements-2)
	require.Equal(t, &StatementRest{Statements: 3, Calls: n, PerMsg: perMsg(n, 10)}, rest)
}

func TestPerMsgAndShortSQL(t *testing.T) {
	require.Equal(t, 34.975, perMsg(6995, 200))
	require.Equal(t, 0.333, perMsg(1, 3))
	require.Zero(t, perMsg(5, 0))

	require.Equal(t, "SELECT a FROM b WHERE c = $1", shortSQL("  SELECT a\n\tFROM b\n  WHERE c = $1 ", 100))
	require.Equal(t, "SELECT…", shortSQL("SELECT a FROM b", 7))
	require.Equal(t, "ééé", shortSQL("ééé", 3), "cut by rune, not byte")
}

func TestOwnStatements(t *testing.T) {
	var o ownStatements
	run := func(sql string, err error) {
		ctx := o.TraceQueryStart(context.Background(), nil, pgx.TraceQueryStartData{SQL: sql})
		o.TraceQueryEnd(ctx, nil, pgx.TraceQueryEndData{Err: err})
	}
	run("SELECT 1 ", nil)
	run("SELECT 1", nil)
	run("SELECT 2", errors.New("failed: pg_stat_statements does not count it either"))
	n, texts := o.snapshot()
	require.EqualValues(t, 2, n)
	require.Equal(t, map[string]int64{"SELECT 1": 2}, texts)
	texts["SELECT 1"] = 99
	_, again := o.snapshot()
	require.EqualValues(t, 2, again["SELECT 1"], "a snapshot is a copy")
}

func TestStatementsBetweenEngineOrNothing(t *testing.T) {
	m := &meter{srv: &Server{}, pgssWhy: "the pg_stat_statements extension is not created in this database"}
	st := m.statementsBetween(context.Background(), stmtSnapshot{engine: 1000, engineOK: true}, stmtSnapshot{engine: 3400, engineOK: true}, 200)
	require.Equal(t, sourceEngine, st.Source)
	require.EqualValues(t, 2400, st.Total)
	require.Equal(t, 12.0, st.PerMsg)

	st = m.statementsBetween(context.Background(), stmtSnapshot{}, stmtSnapshot{}, 200)
	require.Equal(t, sourceUnavailable, st.Source, "no metric: no number")
	require.Zero(t, st.PerMsg)
	require.Nil(t, m.statementsBetween(context.Background(), stmtSnapshot{}, stmtSnapshot{}, 0), "nothing delivered")
}

func TestPrintStatements(t *testing.T) {
	var b strings.Builder
	r := &Result{Scenario: "latency", Name: "x", Statements: &Statements{Source: sourceUnavailable}}
	printResult(&b, r, true)
	require.Contains(t, b.String(), "statements/msg n/a;")
	require.Contains(t, b.String(), "  statements: unavailable (load pg_stat_statements)\n")

	b.Reset()
	r.StatementsPerMsg = fptr(12)
	r.Statements = &Statements{Source: sourceEngine, Total: 2400, PerMsg: 12}
	printResult(&b, r, false)
	require.Contains(t, b.String(), "statements/msg 12.00;")
	require.Contains(t, b.String(), "statements: 12.00/msg (2400; the engine's own count, ripple_db_statements_total")

	b.Reset()
	r.Statements = &Statements{Source: sourcePGSS, Track: "all", Total: 2400, PerMsg: 12, NestedPerMsg: fptr(3), BenchOwn: 7,
		Top:  []StatementCalls{{Query: "commit", Calls: 400, PerMsg: 2, TopLevel: true}, {Query: "SELECT pg_notify($1, $2)", Calls: 200, PerMsg: 1}},
		Rest: &StatementRest{Statements: 9, Calls: 100, PerMsg: 0.5}}
	printResult(&b, r, true)
	out := b.String()
	require.Contains(t, out, "statements: 12.00/msg (2400 top-level; pg_stat_statements, track = all, and 3.00/msg run inside functions and triggers; the bench's own 7 subtracted)")
	require.Contains(t, out, fmt.Sprintf("    %6.2f %7d  commit\n", 2.0, 400))
	require.Contains(t, out, "SELECT pg_notify($1, $2) [nested]\n")
	require.Contains(t, out, "(9 other statements)\n")

	b.Reset()
	printResult(&b, r, false)
	require.NotContains(t, b.String(), "top statements", "the list only with --statements")
}
