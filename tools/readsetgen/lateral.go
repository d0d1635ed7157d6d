package main

import (
	"slices"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// unnestColumns returns, for `unnest($a[, $b…]) AS k(x[, y…])` or `ROWS FROM (unnest($a),
// unnest($b)…) AS k(x, y…)`, each column's parameter: column i holds the elements of array i
// (NULL past a shorter array's end, which equals nothing). With several arrays each must be cast
// to an array of a scalar type, so none expands to several columns and shifts the names.
// Anything else, or a column list that does not name every array's column, gives nil.
func unnestColumns(rf *pg_query.RangeFunction) map[string]int {
	if rf.Alias == nil || rf.Ordinality || len(rf.Functions) == 0 || (!rf.IsRowsfrom && len(rf.Functions) != 1) {
		return nil
	}
	var args []*pg_query.Node
	for _, fn := range rf.Functions {
		items := fn.GetList().GetItems()
		if len(items) == 0 || (len(items) > 1 && items[1].Node != nil) { // a column definition list
			return nil
		}
		call := items[0].GetFuncCall()
		if call == nil || funcName(call) != "unnest" || len(call.Args) == 0 || call.AggStar || call.FuncVariadic ||
			(rf.IsRowsfrom && len(call.Args) != 1) {
			return nil
		}
		args = append(args, call.Args...)
	}
	names := make([]string, len(args))
	switch {
	case len(rf.Alias.Colnames) == len(args):
		for i, c := range rf.Alias.Colnames {
			names[i] = c.GetString_().GetSval()
		}
	case len(rf.Alias.Colnames) == 0 && len(args) == 1:
		names[0] = rf.Alias.Aliasname // a one-column function's column takes the alias's name
	default:
		return nil
	}
	cols := make(map[string]int, len(names))
	for i, arg := range args {
		n, ok := param(arg)
		if !ok || names[i] == "" || (len(args) > 1 && !scalarArrayCast(arg)) {
			return nil
		}
		cols[names[i]] = n
	}
	return cols
}

// scalarTypes are the built-in types whose arrays unnest to one column.
var scalarTypes = map[string]bool{
	"int2": true, "int4": true, "int8": true, "smallint": true, "integer": true, "int": true, "bigint": true,
	"text": true, "varchar": true, "bool": true, "boolean": true, "uuid": true, "date": true,
	"timestamp": true, "timestamptz": true, "numeric": true, "float4": true, "float8": true,
}

// scalarArrayCast reports whether n is cast to a one-dimensional array of a scalarTypes type.
func scalarArrayCast(n *pg_query.Node) bool {
	c := n.GetTypeCast()
	if c == nil || c.TypeName == nil || len(c.TypeName.ArrayBounds) != 1 || len(c.TypeName.Names) == 0 {
		return false
	}
	names := c.TypeName.Names
	if len(names) == 2 && names[0].GetString_().GetSval() != "pg_catalog" || len(names) > 2 {
		return false
	}
	return scalarTypes[names[len(names)-1].GetString_().GetSval()]
}

// lateralReads recognises the per-key lookup
//
//	SELECT … FROM unnest($n::T[]) AS k(x)
//	CROSS JOIN LATERAL (SELECT … FROM t WHERE t.col = k.x [AND …] [ORDER BY … LIMIT …]) s
//
// and reads t as ReadParam(t, col, n): every row the subquery can see has col equal to one of
// the array's elements, whatever else it filters, orders or limits. This is how a query takes
// the newest row of each of several keys with one index probe each (DISTINCT ON would scan
// every row of every key). The subquery must be a plain SELECT with t as its only FROM item
// and the equality as one of the AND-ed terms of its WHERE. The unnest may take several arrays
// (`unnest($1, $2) AS k(x, y)`, or ROWS FROM); the key is whichever column the equality names.
//
// The subquery may also reach t through a chain of plain subqueries, each the only FROM item of
// the one above (`SELECT count(*) FROM (SELECT 1 FROM t WHERE t.col = k.x LIMIT $m) s`: a
// capped count): the outer levels only see rows t's level let through. No level's FROM item may
// be named k, so k.x still names the unnest's column.
func (a *selectAnalysis) lateralReads(narrow map[*pg_query.RangeVar]TableRead) {
	arrays := map[string]map[string]int{} // unnest alias -> its columns' parameters
	var laterals []*pg_query.RangeSubselect
	var visit func(n *pg_query.Node)
	visit = func(n *pg_query.Node) {
		switch f := n.Node.(type) {
		case *pg_query.Node_JoinExpr:
			visit(f.JoinExpr.Larg)
			visit(f.JoinExpr.Rarg)
		case *pg_query.Node_RangeFunction:
			if cols := unnestColumns(f.RangeFunction); cols != nil {
				arrays[f.RangeFunction.Alias.Aliasname] = cols
			}
		case *pg_query.Node_RangeSubselect:
			if f.RangeSubselect.Lateral {
				laterals = append(laterals, f.RangeSubselect)
			}
		}
	}
	for _, n := range a.sel.FromClause {
		visit(n)
	}
	for _, sub := range laterals {
		sel := sub.Subquery.GetSelectStmt()
		var levels []string // the FROM item names of the levels between the lateral and t
		var rv *pg_query.RangeVar
		for sel != nil && sel.Op == pg_query.SetOperation_SETOP_NONE && sel.WithClause == nil && len(sel.FromClause) == 1 {
			if rv = sel.FromClause[0].GetRangeVar(); rv != nil {
				break
			}
			inner := sel.FromClause[0].GetRangeSubselect()
			if inner == nil || inner.Lateral || inner.Alias == nil {
				break
			}
			levels = append(levels, inner.Alias.Aliasname)
			sel = inner.Subquery.GetSelectStmt()
		}
		if rv == nil || (rv.Alias != nil && len(rv.Alias.Colnames) > 0) {
			continue
		}
		name := rv.Relname
		if rv.Alias != nil {
			name = rv.Alias.Aliasname
		}
		for _, c := range conjuncts(sel.WhereClause, nil) {
			e := c.GetAExpr()
			if e == nil || e.Kind != pg_query.A_Expr_Kind_AEXPR_OP || opName(e) != "=" {
				continue
			}
			for _, side := range [][2]*pg_query.Node{{e.Lexpr, e.Rexpr}, {e.Rexpr, e.Lexpr}} {
				inner, ok1 := columnFields(side[0])
				outer, ok2 := columnFields(side[1])
				// The key side must name the array's column qualified by its alias, so it
				// cannot be a column of t; t's side may be qualified or not.
				if !ok1 || !ok2 || len(outer) != 2 {
					continue
				}
				n, isArray := arrays[outer[0]][outer[1]]
				if !isArray || outer[0] == name || slices.Contains(levels, outer[0]) {
					continue
				}
				switch {
				case len(inner) == 1, len(inner) == 2 && inner[0] == name:
					narrow[rv] = TableRead{Table: rv.Relname, Kind: ReadParam, Column: inner[len(inner)-1], Param: n}
				}
			}
		}
	}
}
