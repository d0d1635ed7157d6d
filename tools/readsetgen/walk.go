package main

import (
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// scope is the set of CTE names visible at a point of the tree.
type scope map[string]bool

func (s scope) with(names ...string) scope {
	if len(names) == 0 {
		return s
	}
	out := make(scope, len(s)+len(names))
	for n := range s {
		out[n] = true
	}
	for _, n := range names {
		out[n] = true
	}
	return out
}

// walk calls fn on every protobuf message in the tree rooted at m (reaching every field, so no
// node kind can hide a table), with the CTE names visible at that message. A WITH clause's
// names are visible in the statement that owns it and, for WITH RECURSIVE, in every CTE body;
// otherwise a CTE body sees only the CTEs defined before it.
func walk(m protoreflect.Message, sc scope, fn func(protoreflect.Message, scope) error) error {
	if err := fn(m, sc); err != nil {
		return err
	}
	var skip protoreflect.FieldDescriptor
	if f := m.Descriptor().Fields().ByName("with_clause"); f != nil && f.Message() != nil && m.Has(f) {
		if wc, ok := m.Get(f).Message().Interface().(*pg_query.WithClause); ok {
			skip = f
			var names []string
			for _, c := range wc.Ctes {
				if cte := c.GetCommonTableExpr(); cte != nil {
					names = append(names, cte.Ctename)
				}
			}
			for i, c := range wc.Ctes {
				inner := sc.with(names[:min(i, len(names))]...)
				if wc.Recursive {
					inner = sc.with(names...)
				}
				if err := walk(c.ProtoReflect(), inner, fn); err != nil {
					return err
				}
			}
			sc = sc.with(names...)
		}
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd == skip || fd.Message() == nil || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				err = walk(l.Get(i).Message(), sc, fn)
			}
		} else {
			err = walk(v.Message(), sc, fn)
		}
		return err == nil
	})
	return err
}

// walkNodes calls fn on every message under the given nodes (nil nodes are skipped).
func walkNodes(fn func(protoreflect.Message), nodes ...*pg_query.Node) {
	for _, n := range nodes {
		if n == nil {
			continue
		}
		_ = walk(n.ProtoReflect(), nil, func(m protoreflect.Message, _ scope) error {
			fn(m)
			return nil
		})
	}
}
