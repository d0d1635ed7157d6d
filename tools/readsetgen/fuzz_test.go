package main

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// FuzzRangeAnalysis is a soundness check of the read-set analysis. From the fuzzer's bytes it
// builds a SELECT over a toy table t(id, a, b) with random WHERE conjuncts (equalities, single
// and tuple bounds, NULL-guarded bounds, constants, <>, ORs), ORDER BY, LIMIT and OFFSET, a small
// table and parameter values (NULL for guards), and runs Analyze. The statement is evaluated in
// Go on the table; then for every row x of a small universe that lies outside the recorded read
// (the parameter's key, the range with the last returned row as its far edge, or nothing for a
// whole-table read), inserting x (when absent) or deleting it (when present) must leave the
// result unchanged. It also checks that the analysis is deterministic and that a range's
// Outputs name the order columns in the target list.
func FuzzRangeAnalysis(f *testing.F) {
	for _, seed := range []string{
		"\x02\x00\x01\x01\x03\x02\x00\x01\x01\x02\x01\x00\x01\x02\x03",
		"\x03\x03\x00\x02\x02\x01\x01\x00\x01\x00\x01\x01\x02\x00\x00\x01\x02\x03\x04\x00\x01\x02",
		"\x01\x00\x02\x01\x00\x02\x00\x01\x01\x00\x03\x02\x01\x00\x02\x01\x00\x01\x02\x00\x01",
		"\x04\x06\x01\x02\x07\x02\x01\x05\x00\x01\x02\x01\x01\x02\x02\x01\x00\x01\x04\x02\x03\x01\x02\x00",
		"", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g := &gen{data: data}
		q := g.query()
		res, err := pg_query.Parse(q.sql())
		if err != nil {
			t.Fatalf("generated SQL does not parse: %v\n%s", err, q.sql())
		}
		reads, err := Analyze(res.Stmts[0].Stmt)
		if err != nil {
			t.Fatalf("Analyze: %v\n%s", err, q.sql())
		}
		res2, _ := pg_query.Parse(q.sql())
		if again, err := Analyze(res2.Stmts[0].Stmt); err != nil || !reflect.DeepEqual(again, reads) {
			t.Fatalf("Analyze is not deterministic: %+v then %+v, %v", reads, again, err)
		}
		if len(reads) != 1 || reads[0].Table != "t" {
			t.Fatalf("reads of a one-table statement: %+v\n%s", reads, q.sql())
		}
		read := reads[0]
		if read.Kind == ReadRange {
			for i, k := range read.Range.Outputs {
				if k >= len(q.targets) || q.targets[k] != read.Range.Order[i] {
					t.Fatalf("Outputs %v do not name the order %v in %v", read.Range.Outputs, read.Range.Order, q.targets)
				}
			}
		}
		table := g.table()
		params := g.params(q)
		base := q.eval(table, params)
		inRead := q.readFilter(read, params, table, base)
		for id := range 6 {
			for a := range 3 {
				for b := range 3 {
					x := row{id, a, b}
					if inRead(x) {
						continue
					}
					var changed []row
					if i := slices.IndexFunc(table, func(r row) bool { return r[0] == id }); i < 0 {
						changed = append(slices.Clone(table), x)
					} else if table[i] == x {
						changed = slices.Delete(slices.Clone(table), i, i+1)
					} else {
						continue
					}
					if got := q.eval(changed, params); !reflect.DeepEqual(got, base) {
						t.Fatalf("read set %s too narrow: row %v outside it changes the result\n%s\nparams %v\ntable %v -> %v\nresult %v -> %v",
							describe(read), x, q.sql(), fmtParams(params), table, changed, base, got)
					}
				}
			}
		}
	})
}

type row [3]int // id, a, b

var columns = []string{"id", "a", "b"}

func colIndex(c string) int { return slices.Index(columns, c) }

// gen draws choices from the fuzzer's bytes (zeros once they run out).
type gen struct {
	data []byte
	pos  int
}

func (g *gen) next(n int) int {
	if g.pos >= len(g.data) {
		return 0
	}
	b := g.data[g.pos]
	g.pos++
	return int(b) % n
}

func (g *gen) col() string { return columns[g.next(3)] }
func (g *gen) param() int  { return 1 + g.next(4) }

var ops = []string{"<", "<=", ">", ">="}

type conjunct struct {
	kind    int // see where()
	cols    []string
	params  []int
	op      string
	konst   int
	flip    bool // written `$n op col`
	guard   int
	inner   *conjunct
	orParam [2]int
}

type query struct {
	targets []string // column names, or "count(*)"
	where   []conjunct
	order   []string
	desc    []bool
	limit   int // 0 none, >0 a constant, <0 the parameter -limit
	offset  bool
	guards  map[int]bool
}

func (g *gen) bound() conjunct {
	if g.next(2) == 0 {
		return conjunct{kind: 1, cols: []string{g.col()}, params: []int{g.param()}, op: ops[g.next(4)], flip: g.next(2) == 0}
	}
	return conjunct{kind: 2, cols: []string{g.col(), g.col()}, params: []int{g.param(), g.param()}, op: ops[g.next(4)], flip: g.next(2) == 0}
}

func (g *gen) query() *query {
	q := &query{guards: map[int]bool{}}
	for range g.next(4) {
		var c conjunct
		switch k := g.next(8); k {
		case 0:
			c = conjunct{kind: 0, cols: []string{g.col()}, params: []int{g.param()}, flip: g.next(2) == 0}
		case 1, 2:
			c = g.bound()
		case 3:
			inner := g.bound()
			c = conjunct{kind: 3, inner: &inner}
			if g.next(2) == 0 {
				c.guard = inner.params[0]
			} else {
				c.guard = g.param()
			}
			q.guards[c.guard] = true
		case 4:
			c = conjunct{kind: 4, cols: []string{g.col()}, op: ops[g.next(4)], konst: g.next(3)}
		case 5:
			c = conjunct{kind: 5, cols: []string{g.col()}, params: []int{g.param()}}
		case 6:
			c = conjunct{kind: 6, cols: []string{g.col()}, orParam: [2]int{g.param(), g.param()}}
		case 7:
			c = conjunct{kind: 7, cols: []string{g.col()}, konst: g.next(3)}
		}
		q.where = append(q.where, c)
	}
	n := g.next(3)
	first := g.next(2) == 0
	for i := range n {
		q.order = append(q.order, g.col())
		q.desc = append(q.desc, first != (i > 0 && g.next(4) == 0))
	}
	switch g.next(3) {
	case 1:
		q.limit = -g.param()
	case 2:
		q.limit = 1 + g.next(3)
	}
	q.offset = q.limit != 0 && g.next(5) == 0
	if len(q.order) == 0 && q.limit == 0 && g.next(4) == 0 {
		q.targets = []string{"count(*)"}
	} else {
		perm := []string{"id", "a", "b"}
		for i := range perm {
			j := i + g.next(3-i)
			perm[i], perm[j] = perm[j], perm[i]
		}
		q.targets = perm[:1+g.next(3)]
	}
	return q
}

func (c conjunct) sql() string {
	p := func(n int) string { return fmt.Sprintf("$%d", n) }
	switch c.kind {
	case 0:
		if c.flip {
			return p(c.params[0]) + " = " + c.cols[0]
		}
		return c.cols[0] + " = " + p(c.params[0])
	case 1, 2:
		l, r := c.cols[0], p(c.params[0])
		if c.kind == 2 {
			l = "(" + c.cols[0] + ", " + c.cols[1] + ")"
			r = "(" + p(c.params[0]) + ", " + p(c.params[1]) + ")"
		}
		if c.flip {
			return r + " " + flipped[c.op] + " " + l
		}
		return l + " " + c.op + " " + r
	case 3:
		return "(" + p(c.guard) + "::int IS NULL OR " + c.inner.sql() + ")"
	case 4:
		return fmt.Sprintf("%s %s %d", c.cols[0], c.op, c.konst)
	case 5:
		return c.cols[0] + " <> " + p(c.params[0])
	case 6:
		return "(" + c.cols[0] + " = " + p(c.orParam[0]) + " OR " + c.cols[0] + " = " + p(c.orParam[1]) + ")"
	default:
		return fmt.Sprintf("%s = %d", c.cols[0], c.konst)
	}
}

func (q *query) sql() string {
	var b strings.Builder
	b.WriteString("SELECT " + strings.Join(q.targets, ", ") + " FROM t")
	for i, c := range q.where {
		b.WriteString([]string{" WHERE ", " AND "}[min(i, 1)] + c.sql())
	}
	for i, c := range q.order {
		b.WriteString([]string{" ORDER BY ", ", "}[min(i, 1)] + c)
		if q.desc[i] {
			b.WriteString(" DESC")
		}
	}
	if q.limit > 0 {
		fmt.Fprintf(&b, " LIMIT %d", q.limit)
	} else if q.limit < 0 {
		fmt.Fprintf(&b, " LIMIT $%d", -q.limit)
	}
	if q.offset {
		b.WriteString(" OFFSET 1")
	}
	return b.String()
}

func (g *gen) table() []row {
	var rows []row
	for id := range 6 {
		if g.next(2) == 0 {
			rows = append(rows, row{id, g.next(3), g.next(3)})
		}
	}
	return rows
}

// params gives $1..$4 values 0..3; a guard parameter may be NULL (nil).
func (g *gen) params(q *query) map[int]*int {
	out := map[int]*int{}
	for n := 1; n <= 4; n++ {
		v := g.next(5)
		if v == 4 && !q.guards[n] {
			v = 0
		}
		if v < 4 {
			out[n] = &v
		} else {
			out[n] = nil
		}
	}
	return out
}

// tri is SQL's three-valued logic: 1 true, 0 false, -1 NULL.
type tri int

func cmpOp(op string, c int) bool {
	switch op {
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	case ">=":
		return c >= 0
	}
	return c == 0
}

// rowCompare is Postgres's row-wise comparison of (l...) op (r...).
func rowCompare(op string, l []int, r []*int) tri {
	for i := range l {
		if r[i] == nil {
			return -1
		}
		if l[i] != *r[i] {
			return toTri(cmpOp(op, l[i]-*r[i]))
		}
	}
	return toTri(cmpOp(op, 0))
}

func toTri(b bool) tri {
	if b {
		return 1
	}
	return 0
}

func (c conjunct) eval(r row, params map[int]*int) tri {
	val := func(col string) int { return r[colIndex(col)] }
	switch c.kind {
	case 0, 1, 2:
		op := c.op
		if c.kind == 0 {
			op = "="
		}
		l := make([]int, len(c.cols))
		ps := make([]*int, len(c.cols))
		for i, col := range c.cols {
			l[i], ps[i] = val(col), params[c.params[i]]
		}
		return rowCompare(op, l, ps)
	case 3:
		if params[c.guard] == nil {
			return 1
		}
		return c.inner.eval(r, params)
	case 4:
		return toTri(cmpOp(c.op, val(c.cols[0])-c.konst))
	case 5:
		p := params[c.params[0]]
		if p == nil {
			return -1
		}
		return toTri(val(c.cols[0]) != *p)
	case 6:
		res := tri(0)
		for _, n := range c.orParam {
			p := params[n]
			switch {
			case p == nil:
				if res == 0 {
					res = -1
				}
			case val(c.cols[0]) == *p:
				res = 1
			}
		}
		return res
	default:
		return toTri(val(c.cols[0]) == c.konst)
	}
}

func (q *query) matches(r row, params map[int]*int) bool {
	for _, c := range q.where {
		if c.eval(r, params) != 1 {
			return false
		}
	}
	return true
}

// sorted is the rows that pass, in ORDER BY order (ties broken by the whole row), after
// OFFSET and LIMIT.
func (q *query) sorted(table []row, params map[int]*int) []row {
	var rows []row
	for _, r := range table {
		if q.matches(r, params) {
			rows = append(rows, r)
		}
	}
	slices.SortFunc(rows, func(x, y row) int {
		for i, col := range q.order {
			k := colIndex(col)
			if x[k] != y[k] {
				if q.desc[i] {
					return y[k] - x[k]
				}
				return x[k] - y[k]
			}
		}
		for k := range x {
			if x[k] != y[k] {
				return x[k] - y[k]
			}
		}
		return 0
	})
	if q.offset {
		rows = rows[min(1, len(rows)):]
	}
	if n, ok := q.limitValue(params); ok {
		rows = rows[:min(n, len(rows))]
	}
	return rows
}

func (q *query) limitValue(params map[int]*int) (int, bool) {
	switch {
	case q.limit > 0:
		return q.limit, true
	case q.limit < 0 && params[-q.limit] != nil:
		return *params[-q.limit], true
	}
	return 0, false // no LIMIT, or LIMIT NULL
}

func (q *query) eval(table []row, params map[int]*int) [][]int {
	rows := q.sorted(table, params)
	if q.targets[0] == "count(*)" {
		return [][]int{{len(rows)}}
	}
	out := [][]int{}
	for _, r := range rows {
		var o []int
		for _, col := range q.targets {
			o = append(o, r[colIndex(col)])
		}
		out = append(out, o)
	}
	return out
}

// readFilter is the recorded read as a set of rows, for these parameters and this result, as
// the engine reads it (engine/internal/readset): a parameter's key, or a range whose far edge,
// with a LIMIT that the result fills, is the last returned row (inclusive).
func (q *query) readFilter(read TableRead, params map[int]*int, table []row, result [][]int) func(row) bool {
	switch read.Kind {
	case ReadTable:
		return func(row) bool { return true }
	case ReadParam:
		k, p := colIndex(read.Column), params[read.Param]
		return func(r row) bool { return p != nil && r[k] == *p }
	case ReadRange:
	default:
		panic(fmt.Sprintf("unexpected read %+v", read))
	}
	spec := read.Range
	orderOf := func(r row) []int {
		out := make([]int, len(spec.Order))
		for i, col := range spec.Order {
			out[i] = r[colIndex(col)]
		}
		return out
	}
	var edge []*int
	limit := 0
	if spec.LimitConst > 0 {
		limit = int(spec.LimitConst)
	} else if spec.Limit > 0 && params[spec.Limit] != nil {
		limit = *params[spec.Limit]
	}
	if limit > 0 && len(result) == limit {
		last := result[len(result)-1]
		for _, k := range spec.Outputs {
			v := last[k]
			edge = append(edge, &v)
		}
	}
	return func(r row) bool {
		for _, eq := range spec.Eq {
			p := params[eq.Param]
			if p == nil || r[colIndex(eq.Column)] != *p {
				return false
			}
		}
		ord := orderOf(r)
		for _, b := range spec.Bounds {
			if b.Guard != 0 && params[b.Guard] == nil {
				continue
			}
			ps := make([]*int, len(b.Params))
			null := false
			for i, n := range b.Params {
				ps[i] = params[n]
				null = null || ps[i] == nil
			}
			if null {
				continue // coarser: no bound
			}
			if rowCompare(b.Op, ord[:len(ps)], ps) != 1 {
				return false
			}
		}
		if edge != nil {
			op := "<="
			if spec.Desc {
				op = ">="
			}
			if rowCompare(op, ord, edge) != 1 {
				return false
			}
		}
		return true
	}
}

func describe(r TableRead) string {
	if r.Range != nil {
		return fmt.Sprintf("%+v", *r.Range)
	}
	return fmt.Sprintf("%+v", r)
}

func fmtParams(params map[int]*int) string {
	var parts []string
	for n := 1; n <= 4; n++ {
		if params[n] == nil {
			parts = append(parts, fmt.Sprintf("$%d=NULL", n))
		} else {
			parts = append(parts, fmt.Sprintf("$%d=%d", n, *params[n]))
		}
	}
	return strings.Join(parts, " ")
}
