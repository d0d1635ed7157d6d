package main

import (
	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// lateralReads recognises the per-key lookup
//
//	SELECT … FROM unnest($n::T[]) AS k(x)
//	CROSS JOIN LATERAL (SELECT … FROM t WHERE t.col = k.x [AND …] [ORDER BY … LIMIT …]) s
//
// and reads t as ReadParam(t, col, n): every row the subquery can see has col equal to one of
// the array's elements, whatever else it filters, orders or limits. This is how a query takes
// the newest row of each of several keys with one index probe each (DISTINCT ON would scan
// every row of every key). The subquery must be a plain SELECT with t as its only FROM item
// and the equality as one of the AND-ed terms of its WHERE.
func (a *selectAnalysis) lateralReads(narrow map[*pg_query.RangeVar]TableRead) {
	type arrayColumn struct {
		column string
		param  int
	}
	arrays := map[string]arrayColumn{} // unnest alias -> its column and parameter
	var laterals []*pg_query.RangeSubselect
	var visit func(n *pg_query.Node)
	visit = func(n *pg_query.Node) {
		switch f := n.Node.(type) {
		case *pg_query.Node_JoinExpr:
			visit(f.JoinExpr.Larg)
			visit(f.JoinExpr.Rarg)
		case *pg_query.Node_RangeFunction:
			rf := f.RangeFunction
			if rf.Alias == nil || len(rf.Functions) != 1 || rf.Ordinality || rf.IsRowsfrom {
				return
			}
			items := rf.Functions[0].GetList().GetItems()
			if len(items) == 0 {
				return
			}
			call := items[0].GetFuncCall()
			if call == nil || funcName(call) != "unnest" || len(call.Args) != 1 {
				return
			}
			n, ok := param(call.Args[0])
			if !ok {
				return
			}
			col := rf.Alias.Aliasname // a one-column function's column takes the alias's name
			switch len(rf.Alias.Colnames) {
			case 0:
			case 1:
				col = rf.Alias.Colnames[0].GetString_().GetSval()
			default:
				return
			}
			arrays[rf.Alias.Aliasname] = arrayColumn{column: col, param: n}
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
		if sel == nil || sel.Op != pg_query.SetOperation_SETOP_NONE || sel.WithClause != nil || len(sel.FromClause) != 1 {
			continue
		}
		rv := sel.FromClause[0].GetRangeVar()
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
				arr, isArray := arrays[outer[0]]
				if !isArray || arr.column != outer[1] || outer[0] == name {
					continue
				}
				switch {
				case len(inner) == 1, len(inner) == 2 && inner[0] == name:
					narrow[rv] = TableRead{Table: rv.Relname, Kind: ReadParam, Column: inner[len(inner)-1], Param: arr.param}
				}
			}
		}
	}
}
