package readset

import (
	"slices"
	"testing"

	"github.com/ripplehq/ripple/engine/internal/changefeed"
)

// The index finds exactly the subscriptions whose reads a change may touch, by table, key,
// range and "everything", and forgets a subscription's reads when they are removed.
func TestIndexMatchesTablesKeysRangesAndEverything(t *testing.T) {
	t.Parallel()
	x := NewIndex[string]()
	whole := New()
	whole.AddTable("users")
	key7 := New()
	key7.AddKey("messages", "conversation_id", "7")
	key8 := New()
	key8.AddKey("messages", "conversation_id", "8")
	page := New()
	page.addRange(rangeRead{shape: rangeShape{table: "messages", eq: "conversation_id", order: "id"}, eqVals: "7",
		lo: bound{vals: []int64{100}, incl: true}, hi: bound{inf: true}})
	reads := map[string]*ReadSet{"whole": whole, "key7": key7, "key8": key8, "page": page, "all": Everything()}
	for name, rs := range reads {
		x.Add(name, rs)
	}
	match := func(c changefeed.Change) []string {
		var got []string
		x.Matching(c, func(s string) bool { got = append(got, s); return true })
		slices.Sort(got)
		return slices.Compact(got)
	}
	s := func(v string) *string { return &v }
	cols := []string{"id", "conversation_id"}
	for _, tt := range []struct {
		name string
		c    changefeed.Change
		want []string
	}{
		{"another table", changefeed.Change{Table: "users", Keys: map[string][]string{"id": {"1"}}}, []string{"all", "whole"}},
		{"a key", changefeed.Change{Table: "messages", Keys: map[string][]string{"conversation_id": {"8"}}}, []string{"all", "key8"}},
		{"a row inside the page", changefeed.Change{Table: "messages", Keys: map[string][]string{"conversation_id": {"7"}},
			Columns: cols, Rows: [][]*string{{s("150"), s("7")}}}, []string{"all", "key7", "page"}},
		{"a row below the page", changefeed.Change{Table: "messages", Keys: map[string][]string{"conversation_id": {"7"}},
			Columns: cols, Rows: [][]*string{{s("50"), s("7")}}}, []string{"all", "key7"}},
		{"the whole table", changefeed.Change{Table: "messages", All: true}, []string{"all", "key7", "key8", "page"}},
	} {
		if got := match(tt.c); !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}

	// Visiting stops when told to.
	n := 0
	x.Matching(changefeed.Change{Table: "messages", All: true}, func(string) bool { n++; return false })
	if n != 1 {
		t.Errorf("visited %d after being told to stop", n)
	}

	for name, rs := range reads {
		x.Remove(name, rs)
	}
	if got := match(changefeed.Change{Table: "messages", All: true}); len(got) != 0 {
		t.Errorf("after removing everything, still matched %v", got)
	}
	if len(x.byKey) != 0 || len(x.byTable) != 0 || len(x.ranges) != 0 || len(x.everything) != 0 {
		t.Errorf("removal left entries behind: %d keys, %d tables, %d range tables, %d everything",
			len(x.byKey), len(x.byTable), len(x.ranges), len(x.everything))
	}
}
