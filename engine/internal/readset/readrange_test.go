package readset

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ripplehq/ripple/engine/internal/changefeed"
)

func TestTupleBoundPadsPrefixes(t *testing.T) {
	t.Parallel()
	// (created_at) < 10 over (created_at, id): every id at 10 is outside, every id at 9 inside.
	for _, tt := range []struct {
		op     string
		inside [][]int64
		out    [][]int64
	}{
		{"<", [][]int64{{9, 1 << 62}}, [][]int64{{10, -1 << 62}, {10, 0}}},
		{"<=", [][]int64{{10, 1 << 62}, {9, 0}}, [][]int64{{11, -1 << 62}}},
		{">", [][]int64{{11, -1 << 62}}, [][]int64{{10, 1 << 62}}},
		{">=", [][]int64{{10, -1 << 62}, {11, 0}}, [][]int64{{9, 1 << 62}}},
	} {
		lo, hi, ok := tupleBound(tt.op, []int64{10}, 2)
		if !ok {
			t.Fatalf("%s: not ok", tt.op)
		}
		for _, p := range tt.inside {
			if !aboveLo(lo, p) || !belowHi(hi, p) {
				t.Errorf("%s 10: %v should be inside", tt.op, p)
			}
		}
		for _, p := range tt.out {
			if aboveLo(lo, p) && belowHi(hi, p) {
				t.Errorf("%s 10: %v should be outside", tt.op, p)
			}
		}
	}
	if _, _, ok := tupleBound("=", []int64{1}, 1); ok {
		t.Error("= is not a bound")
	}
}

// The interval lookup finds exactly what a scan of every range finds.
func TestRangeIndexMatchesBruteForce(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 8))
	randomBound := func() bound {
		if rng.IntN(6) == 0 {
			return bound{inf: true}
		}
		return bound{vals: []int64{int64(rng.IntN(20)), int64(rng.IntN(4))}, incl: rng.IntN(2) == 0}
	}
	for round := 0; round < 200; round++ {
		x := &rangeIndex[int64]{}
		var all []testEntry
		for i := 0; i < rng.IntN(30); i++ {
			e := testEntry{sub: int64(i), lo: randomBound(), hi: randomBound()}
			if rng.IntN(4) == 0 && len(all) > 0 { // the same range as another subscription
				e.lo, e.hi = all[0].lo, all[0].hi
			}
			x.add(e.sub, e.lo, e.hi)
			all = append(all, e)
			if rng.IntN(5) == 0 && len(all) > 0 { // removals interleaved with lookups
				gone := all[rng.IntN(len(all))]
				x.remove(gone.sub, gone.lo, gone.hi)
				all = slices.DeleteFunc(all, func(e testEntry) bool { return e.sub == gone.sub })
			}
			for probe := 0; probe < 5; probe++ {
				p := []int64{int64(rng.IntN(22) - 1), int64(rng.IntN(5) - 1)}
				var want, got []int64
				for _, e := range all {
					if aboveLo(e.lo, p) && belowHi(e.hi, p) {
						want = append(want, e.sub)
					}
				}
				x.containing(p, func(s int64) bool { got = append(got, s); return true })
				slices.Sort(want)
				slices.Sort(got)
				if !slices.Equal(want, got) {
					t.Fatalf("point %v: got %v, want %v", p, got, want)
				}
			}
		}
	}
}

type testEntry struct {
	sub    int64
	lo, hi bound
}

func TestRangeTablesMatchRowsKeysAndAll(t *testing.T) {
	t.Parallel()
	shape := rangeShape{table: "messages", eq: "conversation_id", order: "created_at,id"}
	page1 := int64(1) // conversation 7, the newest messages
	page2 := int64(2) // conversation 7, older ones
	other := int64(3) // conversation 8
	rt := rangeTables[int64]{}
	rt.add(page1, rangeRead{shape: shape, eqVals: "7", lo: bound{vals: []int64{100, 5}, incl: true}, hi: bound{inf: true}})
	rt.add(page2, rangeRead{shape: shape, eqVals: "7", lo: bound{vals: []int64{50, 2}, incl: true}, hi: bound{vals: []int64{100, 5}}})
	rt.add(other, rangeRead{shape: shape, eqVals: "8", lo: bound{inf: true}, hi: bound{inf: true}})

	s := func(v string) *string { return &v }
	match := func(c changefeed.Change) []int64 {
		var ids []int64
		rt.matching(c, func(sub int64) bool { ids = append(ids, sub); return true })
		slices.Sort(ids)
		return slices.Compact(ids)
	}
	cols := []string{"id", "conversation_id", "created_at"}
	for _, tt := range []struct {
		name string
		c    changefeed.Change
		want []int64
	}{
		{"new message", changefeed.Change{Table: "messages", Columns: cols, Rows: [][]*string{{s("9"), s("7"), s("200")}}}, []int64{1}},
		{"edge of page 1 (inclusive)", changefeed.Change{Table: "messages", Columns: cols, Rows: [][]*string{{s("5"), s("7"), s("100")}}}, []int64{1}},
		{"just below page 1", changefeed.Change{Table: "messages", Columns: cols, Rows: [][]*string{{s("4"), s("7"), s("100")}}}, []int64{2}},
		{"moved across the edge", changefeed.Change{Table: "messages", Columns: cols, Rows: [][]*string{{s("4"), s("7"), s("100")}, {s("4"), s("7"), s("101")}}}, []int64{1, 2}},
		{"older than everything", changefeed.Change{Table: "messages", Columns: cols, Rows: [][]*string{{s("1"), s("7"), s("10")}}}, nil},
		{"NULL order value", changefeed.Change{Table: "messages", Columns: cols, Rows: [][]*string{{s("1"), s("7"), nil}}}, []int64{1, 2}},
		{"NULL equality value", changefeed.Change{Table: "messages", Columns: cols, Rows: [][]*string{{s("1"), nil, s("200")}}}, nil},
		{"keys only", changefeed.Change{Table: "messages", Keys: map[string][]string{"conversation_id": {"8"}}}, []int64{3}},
		{"keys without the column", changefeed.Change{Table: "messages", Keys: map[string][]string{"id": {"8"}}}, []int64{1, 2, 3}},
		{"rows without the column", changefeed.Change{Table: "messages", Columns: []string{"id"}, Rows: [][]*string{{s("1")}}}, []int64{1, 2, 3}},
		{"all", changefeed.Change{Table: "messages", All: true}, []int64{1, 2, 3}},
		{"another table", changefeed.Change{Table: "users", All: true}, nil},
	} {
		if got := match(tt.c); !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
	rt.remove(page1, rangeRead{shape: shape, eqVals: "7", lo: bound{vals: []int64{100, 5}, incl: true}, hi: bound{inf: true}})
	rt.remove(page2, rangeRead{shape: shape, eqVals: "7", lo: bound{vals: []int64{50, 2}, incl: true}, hi: bound{vals: []int64{100, 5}}})
	rt.remove(other, rangeRead{shape: shape, eqVals: "8", lo: bound{inf: true}, hi: bound{inf: true}})
	if len(rt) != 0 {
		t.Errorf("empty index keeps %v", rt)
	}
}

func TestChangesSettings(t *testing.T) {
	t.Parallel()
	for sql, want := range map[string]bool{
		"SET LOCAL work_mem = '1MB'":                          true,
		"  reset work_mem":                                    true,
		"-- name: X :exec\nSET LOCAL jit = off":               true,
		"SELECT Set_Config('statement_timeout', '1', true)":   true,
		"-- name: MessagePage :many\nSELECT id FROM messages": false,
		"SELECT settings FROM t":                              false,
	} {
		if got := changesSettings(sql); got != want {
			t.Errorf("changesSettings(%q) = %v", sql, got)
		}
	}
}
