package main

import (
	"slices"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// outputKeyReads recognises a statement driven by the rows of some tables (the core) and
// decorated, per driving row, by outer-joined reads keyed on a column the statement returns:
//
//	SELECT d.key, … FROM d
//	LEFT JOIN LATERAL (SELECT … FROM t WHERE t.col = d.key [AND …] …) x ON true
//	LEFT JOIN (u [JOIN …]) ON u.col = d.key [AND …]
//	[JOIN c ON c.id = d.key]
//	WHERE d.user_id = $1
//
// and reads t (and u) as ReadOutputKey(t, col, k): the rows of t whose col equals a value the
// statement returned at output position k, which is exactly d.key. It is sound because
//
//   - every row of the core (the leftmost FROM item and the tables inner-joined to it, filtered
//     by WHERE and the inner joins' ON) appears in the output whatever t holds: the reads of t
//     sit on the nullable side of LEFT JOINs, which never drop a row of their left side, and
//     nothing that can drop rows (WHERE, an inner join's ON, GROUP BY/HAVING, DISTINCT, LIMIT/
//     OFFSET, a set-returning function in the target list) refers to them. So the set of keys
//     returned does not depend on t, and a write that moves a core row in or out (a new
//     participation) is caught by the core tables' own reads;
//   - what t contributes to the rows of the driving row with key v comes from rows with col = v
//     only (the equality is an AND-ed term of the only level that reads t, or of the LEFT
//     JOIN's ON over the nullable side holding t).
//
// The key must be a column of a table in the core, returned as the bare column. A key read
// through an inner join (CROSS JOIN LATERAL, JOIN … ON) is not accepted: a driving row with no
// matching row of t would be missing from the output, and the first such row would be missed.
// The engine records the keys from the rows actually returned, and falls back to the whole
// table for a NULL key or rows not read to their end.
func (a *selectAnalysis) outputKeyReads(narrow map[*pg_query.RangeVar]TableRead) {
	sel := a.sel
	if len(sel.FromClause) != 1 || a.natural || len(a.using) > 0 || len(sel.DistinctClause) > 0 ||
		len(sel.GroupClause) > 0 || sel.HavingClause != nil || len(sel.WindowClause) > 0 ||
		sel.LimitCount != nil || sel.LimitOffset != nil || sel.GroupDistinct {
		return
	}
	// No function outside a subquery in the target list or ORDER BY: a set-returning one
	// there drops the rows it returns nothing for.
	for _, t := range sel.TargetList {
		if callsFunction(t) {
			return
		}
	}
	for _, s := range sel.SortClause {
		if callsFunction(s) {
			return
		}
	}

	// The left spine of the join tree, top down.
	var spine []*pg_query.JoinExpr
	node := sel.FromClause[0]
	for node.GetJoinExpr() != nil {
		j := node.GetJoinExpr()
		spine = append(spine, j)
		node = j.Larg
	}
	core := map[*item]bool{}
	for _, it := range a.itemsUnder(node) {
		core[it] = true
	}
	decoNames := map[string]bool{}
	var decorations []*pg_query.JoinExpr
	for i := len(spine) - 1; i >= 0; i-- { // bottom up
		j := spine[i]
		switch j.Jointype {
		case pg_query.JoinType_JOIN_LEFT:
			decorations = append(decorations, j)
			for _, n := range topLevelNames(j.Rarg) {
				decoNames[n] = true
			}
		case pg_query.JoinType_JOIN_INNER:
			// An inner join above decorations may filter the core only by the core: its right
			// side a table or a non-lateral subquery (a function in FROM is implicitly lateral),
			// its ON free of the decorations' names.
			switch r := j.Rarg.Node.(type) {
			case *pg_query.Node_RangeVar:
			case *pg_query.Node_RangeSubselect:
				if r.RangeSubselect.Lateral {
					return
				}
			default:
				return
			}
			if !refsAvoid(decoNames, j.Quals) {
				return
			}
			for _, it := range a.itemsUnder(j.Rarg) {
				core[it] = true
			}
		default:
			return
		}
	}
	if len(decorations) == 0 || !refsAvoid(decoNames, sel.WhereClause) {
		return
	}

	// key resolves a qualified column of a core table that the statement returns.
	key := func(n *pg_query.Node) (int, bool) {
		fields, ok := columnFields(n)
		if !ok || len(fields) != 2 {
			return 0, false
		}
		it, col, ok := a.resolve(n)
		if !ok || !core[it] {
			return 0, false
		}
		return a.outputPosition(it, col)
	}
	set := func(rv *pg_query.RangeVar, col string, k int) {
		if _, done := narrow[rv]; !done {
			narrow[rv] = TableRead{Table: rv.Relname, Kind: ReadOutputKey, Column: col, Output: k}
		}
	}
	for _, j := range decorations {
		// Tables of the nullable side, filtered by the LEFT JOIN's ON.
		quals := conjuncts(j.Quals, nil)
		for _, it := range a.itemsUnder(j.Rarg) {
			if it.rv == nil || it.colAliases {
				continue
			}
		quals:
			for _, c := range quals {
				e := c.GetAExpr()
				if e == nil || e.Kind != pg_query.A_Expr_Kind_AEXPR_OP || opName(e) != "=" {
					continue
				}
				for _, side := range [][2]*pg_query.Node{{e.Lexpr, e.Rexpr}, {e.Rexpr, e.Lexpr}} {
					t, col, ok := a.resolve(side[0])
					if !ok || t != it {
						continue
					}
					if k, ok := key(side[1]); ok {
						set(it.rv, col, k)
						break quals
					}
				}
			}
		}
		// Lateral subqueries of the nullable side.
		for _, sub := range lateralsUnder(j.Rarg) {
			rv, sel, levels := lateralTable(sub)
			if rv == nil {
				continue
			}
			name := rv.Relname
			if rv.Alias != nil {
				name = rv.Alias.Aliasname
			}
		conj:
			for _, c := range conjuncts(sel.WhereClause, nil) {
				e := c.GetAExpr()
				if e == nil || e.Kind != pg_query.A_Expr_Kind_AEXPR_OP || opName(e) != "=" {
					continue
				}
				for _, side := range [][2]*pg_query.Node{{e.Lexpr, e.Rexpr}, {e.Rexpr, e.Lexpr}} {
					inner, ok1 := columnFields(side[0])
					outer, ok2 := columnFields(side[1])
					if !ok1 || !ok2 || len(outer) != 2 || outer[0] == name || slices.Contains(levels, outer[0]) {
						continue
					}
					if len(inner) != 1 && !(len(inner) == 2 && inner[0] == name) {
						continue
					}
					if k, ok := key(side[1]); ok {
						set(rv, inner[len(inner)-1], k)
						break conj
					}
				}
			}
		}
	}
}

// lateralTable follows a lateral subquery down a chain of plain subqueries, each the only FROM
// item of the one above, to the one table it reads: that table, the SELECT that reads it, and
// the names of the levels above it. nil when the subquery is not such a chain.
func lateralTable(sub *pg_query.RangeSubselect) (*pg_query.RangeVar, *pg_query.SelectStmt, []string) {
	sel := sub.Subquery.GetSelectStmt()
	var levels []string
	for sel != nil && sel.Op == pg_query.SetOperation_SETOP_NONE && sel.WithClause == nil && len(sel.FromClause) == 1 {
		if rv := sel.FromClause[0].GetRangeVar(); rv != nil {
			if rv.Alias != nil && len(rv.Alias.Colnames) > 0 {
				return nil, nil, nil
			}
			return rv, sel, levels
		}
		inner := sel.FromClause[0].GetRangeSubselect()
		if inner == nil || inner.Lateral || inner.Alias == nil {
			return nil, nil, nil
		}
		levels = append(levels, inner.Alias.Aliasname)
		sel = inner.Subquery.GetSelectStmt()
	}
	return nil, nil, nil
}

// itemsUnder is the FROM items of the top-level SELECT inside n (a FROM item or a join tree).
func (a *selectAnalysis) itemsUnder(n *pg_query.Node) []*item {
	var out []*item
	var visit func(n *pg_query.Node)
	visit = func(n *pg_query.Node) {
		if j := n.GetJoinExpr(); j != nil {
			visit(j.Larg)
			visit(j.Rarg)
			return
		}
		for _, it := range a.items {
			if it.node == n {
				out = append(out, it)
			}
		}
	}
	visit(n)
	return out
}

// lateralsUnder is the lateral subqueries of a join tree (not inside subqueries).
func lateralsUnder(n *pg_query.Node) []*pg_query.RangeSubselect {
	if j := n.GetJoinExpr(); j != nil {
		return append(lateralsUnder(j.Larg), lateralsUnder(j.Rarg)...)
	}
	if s := n.GetRangeSubselect(); s != nil && s.Lateral {
		return []*pg_query.RangeSubselect{s}
	}
	return nil
}

// topLevelNames is every name a column of the join tree n could be qualified with.
func topLevelNames(n *pg_query.Node) []string {
	switch f := n.Node.(type) {
	case *pg_query.Node_JoinExpr:
		names := append(topLevelNames(f.JoinExpr.Larg), topLevelNames(f.JoinExpr.Rarg)...)
		if f.JoinExpr.Alias != nil {
			names = append(names, f.JoinExpr.Alias.Aliasname)
		}
		return names
	case *pg_query.Node_RangeVar:
		names := []string{f.RangeVar.Relname}
		if f.RangeVar.Alias != nil {
			names = append(names, f.RangeVar.Alias.Aliasname)
		}
		return names
	case *pg_query.Node_RangeSubselect:
		if f.RangeSubselect.Alias != nil {
			return []string{f.RangeSubselect.Alias.Aliasname}
		}
	case *pg_query.Node_RangeFunction:
		if f.RangeFunction.Alias != nil {
			return []string{f.RangeFunction.Alias.Aliasname}
		}
	}
	return nil
}

// refsAvoid reports whether no column reference under the nodes (subqueries included) can name
// a column of the given FROM items: every reference is qualified, by a name not among them.
func refsAvoid(names map[string]bool, nodes ...*pg_query.Node) bool {
	ok := true
	walkNodes(func(m protoreflect.Message) {
		ref, isRef := m.Interface().(*pg_query.ColumnRef)
		if !isRef || !ok {
			return
		}
		fields, plain := columnFields(&pg_query.Node{Node: &pg_query.Node_ColumnRef{ColumnRef: ref}})
		switch {
		case !plain || len(fields) < 2 || len(fields) > 3:
			ok = false // unqualified, `*`, or too many parts: could be anything
		default:
			ok = !names[fields[len(fields)-2]]
		}
	}, nodes...)
	return ok
}

// callsFunction reports whether a function is called under n outside a subquery.
func callsFunction(n *pg_query.Node) bool {
	found := false
	var visit func(m protoreflect.Message)
	visit = func(m protoreflect.Message) {
		if found {
			return
		}
		switch m.Interface().(type) {
		case *pg_query.FuncCall:
			found = true
			return
		case *pg_query.SubLink:
			return // a scalar subquery yields one value per row
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			if fd.Message() == nil || fd.IsMap() {
				return true
			}
			if fd.IsList() {
				l := v.List()
				for i := 0; i < l.Len(); i++ {
					visit(l.Get(i).Message())
				}
			} else {
				visit(v.Message())
			}
			return !found
		})
	}
	if n != nil {
		visit(n.ProtoReflect())
	}
	return found
}
