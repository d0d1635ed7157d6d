package readset

import "github.com/ripplehq/ripple/engine/internal/changefeed"

// Index holds the read sets of live subscriptions (any comparable handle S) for finding the ones
// a change may affect: by table, by key, by index range, and those that read "everything".
// It is not safe for concurrent use; the reactor owns it.
type Index[S comparable] struct {
	byKey      map[key]map[S]struct{}
	byTable    map[string]map[S]struct{}
	ranges     rangeTables[S]
	everything map[S]struct{}
}

// NewIndex returns an empty index.
func NewIndex[S comparable]() *Index[S] {
	return &Index[S]{
		byKey:      map[key]map[S]struct{}{},
		byTable:    map[string]map[S]struct{}{},
		ranges:     rangeTables[S]{},
		everything: map[S]struct{}{},
	}
}

// Add indexes s under every read of reads.
func (x *Index[S]) Add(s S, reads *ReadSet) {
	if reads.all {
		x.everything[s] = struct{}{}
	}
	for t := range reads.tables {
		addTo(x.byTable, t, s)
	}
	for k := range reads.keys {
		addTo(x.byKey, k, s)
	}
	for _, rr := range reads.ranges {
		x.ranges.add(s, rr)
	}
}

// Remove undoes Add(s, reads).
func (x *Index[S]) Remove(s S, reads *ReadSet) {
	if reads == nil {
		return
	}
	if reads.all {
		delete(x.everything, s)
	}
	for t := range reads.tables {
		removeFrom(x.byTable, t, s)
	}
	for k := range reads.keys {
		removeFrom(x.byKey, k, s)
	}
	for _, rr := range reads.ranges {
		x.ranges.remove(s, rr)
	}
}

func addTo[K comparable, S comparable](m map[K]map[S]struct{}, k K, s S) {
	if m[k] == nil {
		m[k] = map[S]struct{}{}
	}
	m[k][s] = struct{}{}
}

func removeFrom[K comparable, S comparable](m map[K]map[S]struct{}, k K, s S) {
	delete(m[k], s)
	if len(m[k]) == 0 {
		delete(m, k)
	}
}

// Matching calls visit for every subscription whose read set c may touch (some more than
// once), until visit returns false.
func (x *Index[S]) Matching(c changefeed.Change, visit func(S) bool) {
	if !visitAll(x.everything, visit) || !visitAll(x.byTable[c.Table], visit) {
		return
	}
	if c.All {
		for k, subs := range x.byKey {
			if k.table == c.Table && !visitAll(subs, visit) {
				return
			}
		}
	} else {
		for col, values := range c.Keys {
			for _, v := range values {
				if !visitAll(x.byKey[key{c.Table, col, v}], visit) {
					return
				}
			}
		}
	}
	x.ranges.matching(c, visit)
}
