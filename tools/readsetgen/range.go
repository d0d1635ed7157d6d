package main

import (
	"fmt"
	"slices"
	"sort"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// rangeRead recognises a statement that reads one index range of its only table:
//
//	SELECT … FROM t
//	WHERE eq_col = $1 [AND …]
//	  AND ($2 IS NULL OR (a, b) < ($2, $3))   -- bounds, optionally guarded by a NULL test
//	ORDER BY a DESC, b DESC                   -- one direction, plain columns of t
//	LIMIT $4                                  -- a parameter or a constant
//
// Equalities are the conjuncts `col = $n` (scalar); bounds are the conjuncts comparing a tuple
// of columns (or one column) with parameters by <, <=, > or >=, alone or as `$g IS NULL OR
// bound`. Every other conjunct only removes rows, which cannot widen what the result depends
// on, so it is ignored. The order tuple is the ORDER BY when there is a LIMIT (every bound must
// then be on a prefix of it), else the longest bound's columns. The result then depends only on
// the rows inside the bounds and, with a LIMIT, up to the last row returned: the engine takes
// that edge from the output columns listed in Outputs.
//
// With a LIMIT, anything that lets rows beyond the last one returned change the result is
// refused: OFFSET, FETCH … WITH TIES, DISTINCT, GROUP BY, HAVING, window functions, and an
// ORDER BY that is not plain columns of the table. Without a LIMIT, rows outside the bounds can
// never be seen, whatever the statement computes from the rest.
func (a *selectAnalysis) rangeRead(it *item) (*RangeSpec, bool) {
	sel := a.sel
	if len(a.items) != 1 || it.rv == nil || it.colAliases || a.natural {
		return nil, false
	}
	spec := &RangeSpec{}
	type boundCols struct {
		cols []string
		b    RangeBound
	}
	var bounds []boundCols
	for _, c := range a.filters(it) {
		if col, n, ok := a.equality(it, c); ok {
			spec.Eq = append(spec.Eq, EqParam{Column: col, Param: n})
			continue
		}
		guard := 0
		if b := c.GetBoolExpr(); b != nil && b.Boolop == pg_query.BoolExprType_OR_EXPR && len(b.Args) == 2 {
			for i, arg := range b.Args {
				if nt := arg.GetNullTest(); nt != nil && nt.Nulltesttype == pg_query.NullTestType_IS_NULL {
					if g, ok := scalarParam(nt.Arg); ok {
						guard, c = g, b.Args[1-i]
						break
					}
				}
			}
			if guard == 0 {
				continue
			}
		}
		if cols, b, ok := a.bound(it, c); ok {
			b.Guard = guard
			bounds = append(bounds, boundCols{cols, b})
		}
	}

	if sel.LimitCount != nil {
		if sel.LimitOffset != nil || sel.LimitOption != pg_query.LimitOption_LIMIT_OPTION_COUNT ||
			len(sel.DistinctClause) > 0 || len(sel.GroupClause) > 0 || sel.HavingClause != nil ||
			len(sel.WindowClause) > 0 || hasWindowFunction(sel) {
			return nil, false
		}
		desc, cols, ok := a.orderColumns(it)
		if !ok {
			return nil, false
		}
		spec.Order, spec.Desc = cols, desc
		if n, ok := scalarParam(sel.LimitCount); ok {
			spec.Limit = n
		} else if c := sel.LimitCount.GetAConst(); c != nil && c.GetIval() != nil && c.GetIval().Ival > 0 {
			spec.LimitConst = int64(c.GetIval().Ival)
		} else {
			return nil, false
		}
		// The edge comes from the last row: every order column must be returned as it is.
		for _, col := range spec.Order {
			k, ok := a.outputPosition(it, col)
			if !ok {
				spec.Limit, spec.LimitConst, spec.Outputs = 0, 0, nil
				break
			}
			spec.Outputs = append(spec.Outputs, k)
		}
	} else {
		for _, b := range bounds {
			if len(b.cols) > len(spec.Order) {
				spec.Order = b.cols
			}
		}
	}
	if len(spec.Order) == 0 {
		return nil, false
	}
	for _, b := range bounds {
		if len(b.cols) <= len(spec.Order) && slices.Equal(b.cols, spec.Order[:len(b.cols)]) {
			spec.Bounds = append(spec.Bounds, b.b)
		}
	}
	if len(spec.Bounds) == 0 && spec.Limit == 0 && spec.LimitConst == 0 {
		return nil, false // nothing narrows the read beyond the equalities
	}
	return spec, true
}

// equality matches `col = $n` or `$n = col` for a column of it and a scalar parameter.
func (a *selectAnalysis) equality(it *item, c *pg_query.Node) (string, int, bool) {
	e := c.GetAExpr()
	if e == nil || e.Kind != pg_query.A_Expr_Kind_AEXPR_OP || opName(e) != "=" {
		return "", 0, false
	}
	for _, side := range [][2]*pg_query.Node{{e.Lexpr, e.Rexpr}, {e.Rexpr, e.Lexpr}} {
		if t, col, ok := a.resolve(side[0]); ok && t == it {
			if n, ok := scalarParam(side[1]); ok {
				return col, n, true
			}
		}
	}
	return "", 0, false
}

var flipped = map[string]string{"<": ">", "<=": ">=", ">": "<", ">=": "<="}

// bound matches `(cols) op (params)` or `col op param`, either way round.
func (a *selectAnalysis) bound(it *item, c *pg_query.Node) ([]string, RangeBound, bool) {
	e := c.GetAExpr()
	if e == nil || e.Kind != pg_query.A_Expr_Kind_AEXPR_OP {
		return nil, RangeBound{}, false
	}
	op := opName(e)
	if _, ok := flipped[op]; !ok {
		return nil, RangeBound{}, false
	}
	for i, side := range [][2]*pg_query.Node{{e.Lexpr, e.Rexpr}, {e.Rexpr, e.Lexpr}} {
		cols, ok := a.columnsOf(it, side[0])
		if !ok {
			continue
		}
		params, ok := paramsOf(side[1])
		if !ok || len(params) != len(cols) {
			continue
		}
		if i == 1 {
			op = flipped[op]
		}
		return cols, RangeBound{Op: op, Params: params}, true
	}
	return nil, RangeBound{}, false
}

// columnsOf is a column of it, or a ROW of distinct columns of it.
func (a *selectAnalysis) columnsOf(it *item, n *pg_query.Node) ([]string, bool) {
	items := []*pg_query.Node{n}
	if r := n.GetRowExpr(); r != nil {
		items = r.Args
	}
	var cols []string
	for _, x := range items {
		t, col, ok := a.resolve(x)
		if !ok || t != it || slices.Contains(cols, col) {
			return nil, false
		}
		cols = append(cols, col)
	}
	return cols, len(cols) > 0
}

// paramsOf is a scalar parameter, or a ROW of them.
func paramsOf(n *pg_query.Node) ([]int, bool) {
	items := []*pg_query.Node{n}
	if r := n.GetRowExpr(); r != nil {
		items = r.Args
	}
	var params []int
	for _, x := range items {
		p, ok := scalarParam(x)
		if !ok {
			return nil, false
		}
		params = append(params, p)
	}
	return params, len(params) > 0
}

// orderColumns is the ORDER BY as plain, distinct columns of it, all in one direction.
func (a *selectAnalysis) orderColumns(it *item) (desc bool, cols []string, ok bool) {
	for i, s := range a.sel.SortClause {
		sb := s.GetSortBy()
		if sb == nil || len(sb.UseOp) > 0 {
			return false, nil, false
		}
		t, col, ok := a.resolve(sb.Node)
		if !ok || t != it || slices.Contains(cols, col) {
			return false, nil, false
		}
		d := sb.SortbyDir == pg_query.SortByDir_SORTBY_DESC
		if sb.SortbyDir == pg_query.SortByDir_SORTBY_USING || (i > 0 && d != desc) {
			return false, nil, false
		}
		desc = d
		cols = append(cols, col)
	}
	return desc, cols, len(cols) > 0
}

func hasWindowFunction(sel *pg_query.SelectStmt) bool {
	found := false
	nodes := append(slices.Clone(sel.TargetList), sel.SortClause...)
	walkNodes(func(m protoreflect.Message) {
		if f, ok := m.Interface().(*pg_query.FuncCall); ok && f.Over != nil {
			found = true
		}
	}, nodes...)
	return found
}

// bindNamedParams replaces sqlc's named parameters (sqlc.arg(name), sqlc.narg(name), @name)
// with the positional parameters sqlc gives them: numbered from 1 by first appearance in the
// text, one number per name. A statement may not mix them with $n, as sqlc requires.
func bindNamedParams(stmt *pg_query.Node) error {
	type use struct {
		node *pg_query.Node
		name string
		loc  int32
	}
	var uses []use
	positional := false
	var err error
	_ = walk(stmt.ProtoReflect(), nil, func(m protoreflect.Message, _ scope) error {
		n, ok := m.Interface().(*pg_query.Node)
		if !ok {
			if _, ok := m.Interface().(*pg_query.ParamRef); ok {
				positional = true
			}
			return nil
		}
		switch x := n.Node.(type) {
		case *pg_query.Node_FuncCall:
			switch name := funcName(x.FuncCall); name {
			case "sqlc.slice":
				err = fmt.Errorf("sqlc.slice(...) is not supported on PostgreSQL: use = ANY(sqlc.arg(name)::type[])")
			case "sqlc.arg", "sqlc.narg":
				arg, ok := namedArg(x.FuncCall.Args)
				if !ok {
					err = fmt.Errorf("%s takes one name", name)
				}
				uses = append(uses, use{n, arg, x.FuncCall.Location})
			}
		case *pg_query.Node_AExpr:
			e := x.AExpr
			if e.Kind == pg_query.A_Expr_Kind_AEXPR_OP && e.Lexpr == nil && opName(e) == "@" {
				// `@name::type` parses as `@ (name::type)`: the cast moves outside.
				target, cast := n, e.Rexpr.GetTypeCast()
				ref := e.Rexpr
				if cast != nil {
					ref = cast.Arg
					n.Node = &pg_query.Node_TypeCast{TypeCast: cast}
					target = cast.Arg
				}
				if f, ok := columnFields(ref); ok && len(f) == 1 {
					uses = append(uses, use{target, f[0], e.Location})
				} else {
					err = fmt.Errorf("@ must be followed by a parameter name")
				}
			}
		}
		return nil
	})
	if err != nil || len(uses) == 0 {
		return err
	}
	if positional {
		return fmt.Errorf("the statement mixes named (sqlc.arg, @name) and positional ($n) parameters")
	}
	sort.SliceStable(uses, func(i, j int) bool { return uses[i].loc < uses[j].loc })
	numbers := map[string]int32{}
	for _, u := range uses {
		if numbers[u.name] == 0 {
			numbers[u.name] = int32(len(numbers) + 1)
		}
		u.node.Node = &pg_query.Node_ParamRef{ParamRef: &pg_query.ParamRef{Number: numbers[u.name], Location: u.loc}}
	}
	return nil
}

// namedArg is the name in sqlc.arg(name) or sqlc.arg('name').
func namedArg(args []*pg_query.Node) (string, bool) {
	if len(args) != 1 {
		return "", false
	}
	if f, ok := columnFields(args[0]); ok && len(f) == 1 {
		return f[0], true
	}
	if c := args[0].GetAConst(); c != nil && c.GetSval() != nil {
		return c.GetSval().Sval, true
	}
	return "", false
}
