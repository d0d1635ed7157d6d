package readset

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/ripplehq/ripple/engine/internal/changefeed"
)

// Index-range read sets.
//
// A paginated query reads one range of an index: the rows whose equality columns hold the bound
// values (conversation_id = $1) and whose order columns lie between the bounds the parameters
// give and the last row a LIMIT let through. A change re-runs the query only when one of the
// changed rows (old or new image) falls inside that range, so a new message re-runs the page
// that covers the newest messages, not every loaded page of the conversation.
//
// Order values are compared as int64: integer columns as they are, timestamptz columns as
// microseconds since the epoch (how pgx binds a time and how the capture trigger reports one).
// Whatever cannot be compared exactly (a NULL, an infinite timestamp, a type not listed) makes
// the comparison coarser, never narrower.

// RangeSpec is the generated analysis of a statement that reads one index range of a table:
// the rows where every Eq column equals its parameter and the Order tuple satisfies every
// bound, returned in Order (descending when Desc), at most LIMIT of them.
type RangeSpec struct {
	Eq     []EqParam
	Order  []string
	Desc   bool
	Bounds []RangeBound
	// Limit is the parameter holding the LIMIT, or 0; LimitConst a constant LIMIT, or 0.
	Limit      int
	LimitConst int64
	// Outputs is the 0-based output position of each Order column, so the last returned row
	// gives the edge of the range. Empty when the statement has no LIMIT.
	Outputs []int
}

// EqParam is `Column = $Param`.
type EqParam struct {
	Column string
	Param  int
}

// RangeBound is `(Order[0], …, Order[len(Params)-1]) Op ($Params…)`. With Guard set, the
// statement says `$Guard IS NULL OR …`: a NULL there means no bound.
type RangeBound struct {
	Op     string // "<", "<=", ">" or ">="
	Params []int
	Guard  int
}

// rangeShape names a family of ranges: one table, its equality columns and its order columns.
type rangeShape struct {
	table, eq, order string // columns joined by ","
}

// bound is one end of a range over order tuples. Infinite bounds have no values.
type bound struct {
	vals []int64
	incl bool
	inf  bool
}

// rangeRead is one range a query read: the rows of shape whose equality columns hold eqVals
// (joined by "\x00") and whose order tuple lies in [lo, hi].
type rangeRead struct {
	shape  rangeShape
	eqVals string
	lo, hi bound
}

func (r rangeRead) String() string {
	show := func(b bound, inf, open, closed string, suffix bool) string {
		if b.inf {
			return inf
		}
		parts := make([]string, len(b.vals))
		for i, v := range b.vals {
			parts[i] = strconv.FormatInt(v, 10)
		}
		mark := open
		if b.incl {
			mark = closed
		}
		if suffix {
			return strings.Join(parts, ",") + mark
		}
		return mark + strings.Join(parts, ",")
	}
	return fmt.Sprintf("%s[%s=%s](%s) in %s .. %s", r.shape.table, r.shape.eq, strings.ReplaceAll(r.eqVals, "\x00", ","),
		r.shape.order, show(r.lo, "(-inf", "(", "[", false), show(r.hi, "+inf)", ")", "]", true))
}

// aboveLo reports whether p is not below lo.
func aboveLo(lo bound, p []int64) bool {
	if lo.inf {
		return true
	}
	c := slices.Compare(lo.vals, p)
	return c < 0 || (c == 0 && lo.incl)
}

// belowHi reports whether p is not above hi.
func belowHi(hi bound, p []int64) bool {
	if hi.inf {
		return true
	}
	c := slices.Compare(p, hi.vals)
	return c < 0 || (c == 0 && hi.incl)
}

// cmpLo orders lower bounds from the loosest to the tightest.
func cmpLo(a, b bound) int {
	if a.inf || b.inf {
		return cmpBool(b.inf, a.inf)
	}
	return cmp.Or(slices.Compare(a.vals, b.vals), cmpBool(!a.incl, !b.incl))
}

// cmpHi orders upper bounds from the tightest to the loosest.
func cmpHi(a, b bound) int {
	if a.inf || b.inf {
		return cmpBool(a.inf, b.inf)
	}
	return cmp.Or(slices.Compare(a.vals, b.vals), cmpBool(a.incl, b.incl))
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// tupleBound turns `(Order[:len(p)]) op p` into a bound on the whole order tuple of n columns:
// the columns after the prefix are padded so the comparison means the same.
func tupleBound(op string, p []int64, n int) (lo, hi bound, ok bool) {
	lo, hi = bound{inf: true}, bound{inf: true}
	pad := func(fill int64) []int64 {
		v := slices.Grow(slices.Clone(p), n-len(p))
		for len(v) < n {
			v = append(v, fill)
		}
		return v
	}
	switch op {
	case "<":
		hi = bound{vals: pad(math.MinInt64)}
	case "<=":
		hi = bound{vals: pad(math.MaxInt64), incl: true}
	case ">":
		lo = bound{vals: pad(math.MaxInt64)}
	case ">=":
		lo = bound{vals: pad(math.MinInt64), incl: true}
	default:
		return lo, hi, false
	}
	return lo, hi, true
}

// orderValue converts a bound parameter or a scanned value of an order column to its int64
// form. null reports SQL NULL (or an infinite timestamp); ok is false for a type it does not
// know, which makes the caller fall back to a coarser read.
func orderValue(v any) (n int64, null, ok bool) {
	switch t := v.(type) {
	case nil:
		return 0, true, true
	case int64:
		return t, false, true
	case int32:
		return int64(t), false, true
	case int16:
		return int64(t), false, true
	case int:
		return int64(t), false, true
	case time.Time:
		return t.UnixMicro(), false, true
	case pgtype.Int8:
		return t.Int64, !t.Valid, true
	case pgtype.Int4:
		return int64(t.Int32), !t.Valid, true
	case pgtype.Int2:
		return int64(t.Int16), !t.Valid, true
	case pgtype.Timestamptz:
		return t.Time.UnixMicro(), !t.Valid || t.InfinityModifier != pgtype.Finite, true
	// Scan destinations: the common ones without reflection (this runs for every row).
	case *int64:
		if t == nil {
			return 0, true, true
		}
		return *t, false, true
	case *pgtype.Timestamptz:
		if t == nil {
			return 0, true, true
		}
		return orderValue(*t)
	case *time.Time:
		if t == nil {
			return 0, true, true
		}
		return t.UnixMicro(), false, true
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return 0, true, true
		}
		return orderValue(rv.Elem().Interface())
	}
	return 0, false, false
}

// rangeEntry is one distinct range within a rangeIndex and the subscriptions that read it:
// every device of one user showing the same page shares one entry.
type rangeEntry[S comparable] struct {
	lo, hi bound
	subs   map[S]struct{}
}

// rangeIndex holds the ranges of one (shape, equality values). Entries are sorted by lower
// bound on first use after a range came or went, with the running maximum of the upper bounds
// beside them, so a point lookup is a binary search plus a walk over the entries that may
// contain it. Adding or removing a subscription of an existing range costs a map operation.
type rangeIndex[S comparable] struct {
	byBounds map[string]*rangeEntry[S]
	entries  []*rangeEntry[S] // sorted by lower bound when sorted
	maxHi    []bound
	sorted   bool
	subs     int
}

// boundsKey names a range exactly.
func boundsKey(lo, hi bound) string {
	b := make([]byte, 0, 8*(len(lo.vals)+len(hi.vals))+4)
	for _, x := range []bound{lo, hi} {
		b = append(b, byte('0'+boolInt(x.inf)+2*boolInt(x.incl)))
		for _, v := range x.vals {
			b = binary.BigEndian.AppendUint64(b, uint64(v))
		}
	}
	return string(b)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (x *rangeIndex[S]) add(sub S, lo, hi bound) {
	key := boundsKey(lo, hi)
	e := x.byBounds[key]
	if e == nil {
		if x.byBounds == nil {
			x.byBounds = map[string]*rangeEntry[S]{}
		}
		e = &rangeEntry[S]{lo: lo, hi: hi, subs: map[S]struct{}{}}
		x.byBounds[key] = e
		x.entries = append(x.entries, e)
		x.sorted = false
	}
	if _, ok := e.subs[sub]; !ok {
		e.subs[sub] = struct{}{}
		x.subs++
	}
}

func (x *rangeIndex[S]) remove(sub S, lo, hi bound) {
	key := boundsKey(lo, hi)
	e := x.byBounds[key]
	if e == nil {
		return
	}
	if _, ok := e.subs[sub]; !ok {
		return
	}
	delete(e.subs, sub)
	x.subs--
	if len(e.subs) == 0 {
		delete(x.byBounds, key)
		x.entries = slices.DeleteFunc(x.entries, func(o *rangeEntry[S]) bool { return o == e })
		x.sorted = false
	}
}

func (x *rangeIndex[S]) sort() {
	if x.sorted {
		return
	}
	slices.SortFunc(x.entries, func(a, b *rangeEntry[S]) int { return cmpLo(a.lo, b.lo) })
	x.maxHi = x.maxHi[:0]
	for i, e := range x.entries {
		if i == 0 || cmpHi(e.hi, x.maxHi[i-1]) > 0 {
			x.maxHi = append(x.maxHi, e.hi)
		} else {
			x.maxHi = append(x.maxHi, x.maxHi[i-1])
		}
	}
	x.sorted = true
}

// containing calls visit for every subscription whose range contains p, until visit returns
// false.
func (x *rangeIndex[S]) containing(p []int64, visit func(S) bool) bool {
	x.sort()
	// Entries whose lower bound admits p form a prefix (they are sorted loosest first).
	i := sort.Search(len(x.entries), func(i int) bool { return !aboveLo(x.entries[i].lo, p) })
	for i--; i >= 0 && belowHi(x.maxHi[i], p); i-- {
		if belowHi(x.entries[i].hi, p) && !visitAll(x.entries[i].subs, visit) {
			return false
		}
	}
	return true
}

// all calls visit for every subscription, until visit returns false.
func (x *rangeIndex[S]) all(visit func(S) bool) bool {
	for _, e := range x.entries {
		if !visitAll(e.subs, visit) {
			return false
		}
	}
	return true
}

func visitAll[S comparable](subs map[S]struct{}, visit func(S) bool) bool {
	for s := range subs {
		if !visit(s) {
			return false
		}
	}
	return true
}

// rangeTables indexes live range reads: table → shape → equality values → ranges.
type rangeTables[S comparable] map[string]map[rangeShape]map[string]*rangeIndex[S]

func (t rangeTables[S]) add(sub S, rr rangeRead) {
	shapes := t[rr.shape.table]
	if shapes == nil {
		shapes = map[rangeShape]map[string]*rangeIndex[S]{}
		t[rr.shape.table] = shapes
	}
	byVals := shapes[rr.shape]
	if byVals == nil {
		byVals = map[string]*rangeIndex[S]{}
		shapes[rr.shape] = byVals
	}
	x := byVals[rr.eqVals]
	if x == nil {
		x = &rangeIndex[S]{}
		byVals[rr.eqVals] = x
	}
	x.add(sub, rr.lo, rr.hi)
}

func (t rangeTables[S]) remove(sub S, rr rangeRead) {
	byVals := t[rr.shape.table][rr.shape]
	x := byVals[rr.eqVals]
	if x == nil {
		return
	}
	x.remove(sub, rr.lo, rr.hi)
	if x.subs > 0 {
		return
	}
	delete(byVals, rr.eqVals)
	if len(byVals) == 0 {
		delete(t[rr.shape.table], rr.shape)
		if len(t[rr.shape.table]) == 0 {
			delete(t, rr.shape.table)
		}
	}
}

// matching calls visit for each subscription with a range that a changed row falls in (old or
// new image), until visit returns false. Without row images (a statement over many rows) it
// matches every range with a matching equality value, and with a table-wide change every range.
func (t rangeTables[S]) matching(c changefeed.Change, visit func(S) bool) bool {
	for shape, byVals := range t[c.Table] {
		if !matchShape(c, shape, byVals, visit) {
			return false
		}
	}
	return true
}

func matchShape[S comparable](c changefeed.Change, shape rangeShape, byVals map[string]*rangeIndex[S], visit func(S) bool) bool {
	everything := func() bool {
		for _, x := range byVals {
			if !x.all(visit) {
				return false
			}
		}
		return true
	}
	if c.All {
		return everything()
	}
	eqCols := splitColumns(shape.eq)
	if c.Rows == nil {
		// Distinct values per column only: a single equality column can still be looked up.
		if vals, ok := c.Keys[shape.eq]; ok && len(eqCols) == 1 {
			for _, v := range vals {
				if x := byVals[v]; x != nil && !x.all(visit) {
					return false
				}
			}
			return true
		}
		return everything()
	}
	eqPos, ok1 := columnPositions(c.Columns, eqCols)
	orderPos, ok2 := columnPositions(c.Columns, splitColumns(shape.order))
	if !ok1 || !ok2 {
		return everything()
	}
	vals := make([]string, len(eqPos))
	p := make([]int64, len(orderPos))
rows:
	for _, row := range c.Rows {
		for i, pos := range eqPos {
			if row[pos] == nil {
				continue rows // NULL equals no bound value
			}
			vals[i] = *row[pos]
		}
		x := byVals[strings.Join(vals, "\x00")]
		if x == nil {
			continue
		}
		exact := true
		for i, pos := range orderPos {
			var err error
			if row[pos] == nil {
				exact = false
				break
			}
			if p[i], err = strconv.ParseInt(*row[pos], 10, 64); err != nil {
				exact = false
				break
			}
		}
		if exact && !x.containing(p, visit) || !exact && !x.all(visit) {
			return false
		}
	}
	return true
}

func splitColumns(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// columnPositions finds each of cols in columns.
func columnPositions(columns, cols []string) ([]int, bool) {
	pos := make([]int, len(cols))
	for i, col := range cols {
		pos[i] = slices.Index(columns, col)
		if pos[i] < 0 {
			return nil, false
		}
	}
	return pos, true
}
