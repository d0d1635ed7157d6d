package main

import (
	"cmp"
	"slices"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Kind mirrors engine.ReadKind.
type Kind int

const (
	ReadTable Kind = iota
	ReadParam
	ReadOutput
	ReadRange
	ReadOutputKey
)

// TableRead mirrors engine.TableRead.
type TableRead struct {
	Table  string
	Kind   Kind
	Column string
	Param  int // 1-based, for ReadParam
	Output int // 0-based, for ReadOutput and ReadOutputKey
	Range  *RangeSpec
}

// RangeSpec mirrors engine.RangeSpec.
type RangeSpec struct {
	Eq         []EqParam
	Order      []string
	Desc       bool
	Bounds     []RangeBound
	Limit      int
	LimitConst int64
	Outputs    []int
}

// EqParam mirrors engine.EqParam.
type EqParam struct {
	Column string
	Param  int
}

// RangeBound mirrors engine.RangeBound.
type RangeBound struct {
	Op     string
	Params []int
	Guard  int
}

// Analyze returns the read set of one parsed statement. The analysis is sound: every table the
// statement mentions anywhere (subqueries, CTEs, set operations, writes…) is ReadTable unless
// one of the rules below proves a narrower read for that occurrence.
//
// Only a plain top-level SELECT (no UNION/INTERSECT/EXCEPT, no VALUES) gets narrower reads, and
// only for the tables named directly in its FROM clause (including nested JOINs):
//
//   - ReadParam(T, col, n) when a conjunct that filters T is `T.col = $n`, `$n = T.col`,
//     `T.col = ANY($n)` ($n possibly cast), or `T.col = k.x` where FROM item k is
//     `unnest($n…) AS k(x…)` and x is $n's column (T joined to a list of keys: every row of T
//     that passes has col equal to an element of $n). The conjuncts that filter T are the
//     AND-ed terms of WHERE, of the ON of every inner join above T, and of the ON of every outer
//     join that has T on its nullable side. An unqualified column counts only when FROM has a
//     single table.
//
//   - ReadOutput(T, c, k) when T is on no preserved side of an outer join, a conjunct that
//     filters T is `T.c = U.d` (U another FROM item), target k is exactly `T.c` (and no `*`
//     comes before it), and T's other columns are not used where they could decide which rows
//     are returned: anywhere in FROM/ON, WHERE, HAVING, WINDOW, DISTINCT ON, and ORDER BY when
//     there is a LIMIT/OFFSET or DISTINCT ON. (So the rows of T that matter are exactly those
//     returned, assuming c is T's primary key, which the engine checks.) Not for NATURAL joins,
//     aliased joins, or tables with column aliases.
//
//   - ReadOutputKey(T, col, k) when T is read on the nullable side of a LEFT JOIN (a table
//     there, or the only table of a LEFT JOIN LATERAL subquery) through `T.col = d.key`, d a
//     table of the statement's driving core whose key column is target k, and nothing that can
//     drop a driving row depends on the LEFT JOINs (see outputKeyReads in outputkey.go). The
//     engine reads T by the keys the statement returns. Only when no rule above applies.
//
//   - ReadRange(T, spec) when T is the only FROM item and the statement reads one index range
//     of it (see rangeRead): equalities on parameters, bounds on an order tuple, and with a
//     LIMIT an ORDER BY on that tuple whose columns are returned, so the engine can take the
//     far edge of the range from the last row.
//
// sqlc named parameters (sqlc.arg, sqlc.narg, @name) are numbered as sqlc numbers them (see
// bindNamedParams); sqlc.slice is rejected.
func Analyze(stmt *pg_query.Node) ([]TableRead, error) {
	if err := bindNamedParams(stmt); err != nil {
		return nil, err
	}
	var tables []*pg_query.RangeVar
	cteRefs := map[*pg_query.RangeVar]bool{}
	err := walk(stmt.ProtoReflect(), nil, func(m protoreflect.Message, sc scope) error {
		switch n := m.Interface().(type) {
		case *pg_query.RangeVar:
			if n.Schemaname == "" && n.Catalogname == "" && sc[n.Relname] {
				cteRefs[n] = true
			} else {
				tables = append(tables, n)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	narrow := map[*pg_query.RangeVar]TableRead{}
	if sel := stmt.GetSelectStmt(); sel != nil && sel.Op == pg_query.SetOperation_SETOP_NONE &&
		len(sel.ValuesLists) == 0 && sel.IntoClause == nil {
		newSelect(sel, cteRefs).analyze(narrow)
	}

	var reads []TableRead
	whole := map[string]bool{}
	for _, rv := range tables {
		r, ok := narrow[rv]
		if !ok {
			r = TableRead{Table: rv.Relname, Kind: ReadTable}
			whole[rv.Relname] = true
		}
		reads = append(reads, r)
	}
	// A table read whole makes its narrower reads redundant.
	reads = slices.DeleteFunc(reads, func(r TableRead) bool { return r.Kind != ReadTable && whole[r.Table] })
	slices.SortFunc(reads, func(a, b TableRead) int {
		return cmp.Or(cmp.Compare(a.Table, b.Table), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Column, b.Column),
			cmp.Compare(a.Param, b.Param), cmp.Compare(a.Output, b.Output))
	})
	return slices.Compact(reads), nil
}

// item is one FROM item of the top-level SELECT: a table (rv != nil) or anything else
// (subquery, function, CTE reference…), which only matters for name resolution.
type item struct {
	node       *pg_query.Node
	rv         *pg_query.RangeVar
	name       string // the name columns are qualified with; "" if none is known
	colAliases bool   // `t AS x(a, b)`: column names differ from the table's
	preserved  bool   // on the preserved side of some outer join
	filters    []*pg_query.Node
	arrays     map[string]int // for `unnest($n…) AS k(x…)`: each column's parameter
}

type selectAnalysis struct {
	sel     *pg_query.SelectStmt
	items   []*item
	where   []*pg_query.Node
	natural bool // NATURAL join, or a join with an alias (hides the names inside it)
	using   []string
}

func newSelect(sel *pg_query.SelectStmt, cteRefs map[*pg_query.RangeVar]bool) *selectAnalysis {
	a := &selectAnalysis{sel: sel, where: conjuncts(sel.WhereClause, nil)}
	for _, n := range sel.FromClause {
		a.fromItem(n, cteRefs)
	}
	return a
}

func (a *selectAnalysis) fromItem(n *pg_query.Node, cteRefs map[*pg_query.RangeVar]bool) []*item {
	switch f := n.Node.(type) {
	case *pg_query.Node_RangeVar:
		rv := f.RangeVar
		it := &item{node: n, name: rv.Relname}
		if rv.Alias != nil {
			it.name = rv.Alias.Aliasname
			it.colAliases = len(rv.Alias.Colnames) > 0
		}
		if !cteRefs[rv] {
			it.rv = rv
		}
		a.items = append(a.items, it)
		return []*item{it}
	case *pg_query.Node_JoinExpr:
		j := f.JoinExpr
		left := a.fromItem(j.Larg, cteRefs)
		right := a.fromItem(j.Rarg, cteRefs)
		if j.IsNatural || j.Alias != nil {
			a.natural = true
		}
		for _, u := range j.UsingClause {
			a.using = append(a.using, u.GetString_().GetSval())
		}
		quals := conjuncts(j.Quals, nil)
		var filtered []*item
		switch j.Jointype {
		case pg_query.JoinType_JOIN_INNER:
			filtered = append(append(filtered, left...), right...)
		case pg_query.JoinType_JOIN_LEFT:
			filtered = right
			markPreserved(left)
		case pg_query.JoinType_JOIN_RIGHT:
			filtered = left
			markPreserved(right)
		default: // FULL, or anything unexpected: nothing is filtered, everything is preserved
			markPreserved(left)
			markPreserved(right)
		}
		for _, it := range filtered {
			it.filters = append(it.filters, quals...)
		}
		return append(left, right...)
	default:
		it := &item{node: n}
		switch f := n.Node.(type) {
		case *pg_query.Node_RangeSubselect:
			if f.RangeSubselect.Alias != nil {
				it.name = f.RangeSubselect.Alias.Aliasname
			}
		case *pg_query.Node_RangeFunction:
			if f.RangeFunction.Alias != nil {
				it.name = f.RangeFunction.Alias.Aliasname
			}
			it.arrays = unnestColumns(f.RangeFunction)
		}
		a.items = append(a.items, it)
		return []*item{it}
	}
}

func markPreserved(items []*item) {
	for _, it := range items {
		it.preserved = true
	}
}

// conjuncts appends the AND-ed terms of n.
func conjuncts(n *pg_query.Node, out []*pg_query.Node) []*pg_query.Node {
	if n == nil {
		return out
	}
	if b := n.GetBoolExpr(); b != nil && b.Boolop == pg_query.BoolExprType_AND_EXPR {
		for _, arg := range b.Args {
			out = conjuncts(arg, out)
		}
		return out
	}
	return append(out, n)
}

// resolve returns the FROM table and column a column reference names, when that is certain.
func (a *selectAnalysis) resolve(n *pg_query.Node) (*item, string, bool) {
	fields, ok := columnFields(n)
	if !ok {
		return nil, "", false
	}
	var it *item
	switch len(fields) {
	case 1:
		if len(a.items) != 1 {
			return nil, "", false
		}
		it = a.items[0]
	case 2:
		it = a.byName(fields[0])
	case 3:
		for _, c := range a.items {
			if c.rv != nil && c.rv.Alias == nil && c.rv.Schemaname == fields[0] && c.rv.Relname == fields[1] {
				if it != nil {
					return nil, "", false
				}
				it = c
			}
		}
	}
	if it == nil || it.rv == nil || it.colAliases {
		return nil, "", false
	}
	return it, fields[len(fields)-1], true
}

// byName is the only FROM item with the given name, or nil.
func (a *selectAnalysis) byName(name string) *item {
	var found *item
	for _, it := range a.items {
		if it.name == name && name != "" {
			if found != nil {
				return nil
			}
			found = it
		}
	}
	return found
}

// columnFields is the names of a ColumnRef without `*`.
func columnFields(n *pg_query.Node) ([]string, bool) {
	ref := n.GetColumnRef()
	if ref == nil {
		return nil, false
	}
	fields := make([]string, len(ref.Fields))
	for i, f := range ref.Fields {
		s := f.GetString_()
		if s == nil {
			return nil, false
		}
		fields[i] = s.Sval
	}
	return fields, len(fields) > 0
}

// param is the number of a parameter reference, possibly cast.
func param(n *pg_query.Node) (int, bool) {
	for n != nil {
		if c := n.GetTypeCast(); c != nil {
			n = c.Arg
			continue
		}
		if p := n.GetParamRef(); p != nil && p.Number > 0 {
			return int(p.Number), true
		}
		return 0, false
	}
	return 0, false
}

// scalarParam is like param but refuses a cast to an array type, which would make the engine
// read the bound array as a set of keys.
func scalarParam(n *pg_query.Node) (int, bool) {
	for c := n.GetTypeCast(); c != nil; c = c.Arg.GetTypeCast() {
		if c.TypeName != nil && len(c.TypeName.ArrayBounds) > 0 {
			return 0, false
		}
	}
	return param(n)
}

func opName(e *pg_query.A_Expr) string {
	if len(e.Name) != 1 {
		return ""
	}
	return e.Name[0].GetString_().GetSval()
}

func funcName(f *pg_query.FuncCall) string {
	s := ""
	for i, n := range f.Funcname {
		if i > 0 {
			s += "."
		}
		s += n.GetString_().GetSval()
	}
	return s
}

// filters is every conjunct that filters the rows of it.
func (a *selectAnalysis) filters(it *item) []*pg_query.Node {
	return append(slices.Clip(a.where), it.filters...)
}

func (a *selectAnalysis) analyze(narrow map[*pg_query.RangeVar]TableRead) {
	a.lateralReads(narrow)
	for _, it := range a.items {
		if it.rv == nil {
			continue
		}
		if spec, ok := a.rangeRead(it); ok {
			narrow[it.rv] = TableRead{Table: it.rv.Relname, Kind: ReadRange, Range: spec}
		} else if col, n, ok := a.paramRead(it); ok {
			narrow[it.rv] = TableRead{Table: it.rv.Relname, Kind: ReadParam, Column: col, Param: n}
		} else if col, k, ok := a.outputRead(it); ok {
			narrow[it.rv] = TableRead{Table: it.rv.Relname, Kind: ReadOutput, Column: col, Output: k}
		}
	}
	a.outputKeyReads(narrow)
}

func (a *selectAnalysis) paramRead(it *item) (string, int, bool) {
	for _, c := range a.filters(it) {
		e := c.GetAExpr()
		if e == nil || opName(e) != "=" {
			continue
		}
		switch e.Kind {
		case pg_query.A_Expr_Kind_AEXPR_OP:
			for _, side := range [][2]*pg_query.Node{{e.Lexpr, e.Rexpr}, {e.Rexpr, e.Lexpr}} {
				if t, col, ok := a.resolve(side[0]); ok && t == it {
					if n, ok := scalarParam(side[1]); ok {
						return col, n, true
					}
					if n, ok := a.unnestKey(side[1], it); ok {
						return col, n, true
					}
				}
			}
		case pg_query.A_Expr_Kind_AEXPR_OP_ANY:
			if t, col, ok := a.resolve(e.Lexpr); ok && t == it {
				if n, ok := param(e.Rexpr); ok {
					return col, n, true
				}
			}
		}
	}
	return "", 0, false
}

// unnestKey is the parameter whose elements n, a qualified column of an unnest FROM item other
// than it, takes.
func (a *selectAnalysis) unnestKey(n *pg_query.Node, it *item) (int, bool) {
	fields, ok := columnFields(n)
	if !ok || len(fields) != 2 || a.natural {
		return 0, false
	}
	k := a.byName(fields[0])
	if k == nil || k == it || k.rv != nil || fields[0] == it.name {
		return 0, false
	}
	p, ok := k.arrays[fields[1]]
	return p, ok
}

func (a *selectAnalysis) outputRead(it *item) (string, int, bool) {
	if it.preserved || it.colAliases || a.natural || len(a.items) < 2 {
		return "", 0, false
	}
	for _, c := range a.filters(it) {
		e := c.GetAExpr()
		if e == nil || e.Kind != pg_query.A_Expr_Kind_AEXPR_OP || opName(e) != "=" {
			continue
		}
		for _, side := range [][2]*pg_query.Node{{e.Lexpr, e.Rexpr}, {e.Rexpr, e.Lexpr}} {
			t, col, ok := a.resolve(side[0])
			if !ok || t != it || !a.otherItem(side[1], it) {
				continue
			}
			k, ok := a.outputPosition(it, col)
			if ok && !a.rowsDependOn(it, col) {
				return col, k, true
			}
		}
	}
	return "", 0, false
}

// otherItem reports whether n is a qualified column of a FROM item other than it.
func (a *selectAnalysis) otherItem(n *pg_query.Node, it *item) bool {
	fields, ok := columnFields(n)
	if !ok || len(fields) != 2 {
		return false
	}
	other := a.byName(fields[0])
	return other != nil && other != it && fields[0] != it.name
}

// outputPosition is the 0-based position of the target that is exactly it.col.
func (a *selectAnalysis) outputPosition(it *item, col string) (int, bool) {
	for k, t := range a.sel.TargetList {
		val := t.GetResTarget().GetVal()
		if ref := val.GetColumnRef(); ref != nil {
			if slices.ContainsFunc(ref.Fields, func(f *pg_query.Node) bool { return f.GetAStar() != nil }) {
				return 0, false // `*` expands to an unknown number of columns
			}
		}
		if f := val.GetFuncCall(); f != nil && funcName(f) == "sqlc.embed" {
			return 0, false
		}
		if t, c, ok := a.resolve(val); ok && t == it && c == col {
			return k, true
		}
	}
	return 0, false
}

// rowsDependOn reports whether any column of it other than col (or a reference that might be
// one) is used where it could decide which rows the statement returns.
func (a *selectAnalysis) rowsDependOn(it *item, col string) bool {
	sel := a.sel
	nodes := slices.Clone(sel.FromClause)
	nodes = append(nodes, sel.WhereClause, sel.HavingClause)
	nodes = append(nodes, sel.WindowClause...)
	distinctOn := false
	for _, d := range sel.DistinctClause {
		if d.Node != nil {
			distinctOn = true
			nodes = append(nodes, d)
		}
	}
	if distinctOn || sel.LimitCount != nil || sel.LimitOffset != nil {
		for _, s := range sel.SortClause {
			if sb := s.GetSortBy(); sb != nil && sb.Node.GetAConst() != nil {
				return true // ORDER BY <output position>
			}
			nodes = append(nodes, s)
		}
		nodes = append(nodes, sel.LimitCount, sel.LimitOffset)
	}
	for _, u := range a.using {
		if u != col {
			return true
		}
	}
	depends := false
	walkNodes(func(m protoreflect.Message) {
		ref, ok := m.Interface().(*pg_query.ColumnRef)
		if !ok || depends {
			return
		}
		var fields []string
		for _, f := range ref.Fields {
			s := f.GetString_()
			if s == nil { // `*` or `t.*`
				depends = true
				return
			}
			fields = append(fields, s.Sval)
		}
		switch len(fields) {
		case 1:
			depends = fields[0] != col
		case 2:
			depends = fields[0] == it.name && fields[1] != col
		case 3:
			depends = fields[1] == it.rv.Relname && fields[2] != col
		default:
			depends = true
		}
	}, nodes...)
	return depends
}
