package changefeed

import (
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary NOTIFY payloads to the capture parser. Properties: it never panics;
// a marker is returned as it is; an accepted change names its table and xid, its keys are
// exactly the distinct non-null values of the row images (per column, never null) or, with a row
// of the wrong width, the change is table-wide; and re-encoding what it accepted in the
// trigger's format parses back to the same event.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`marker:abc`,
		`marker:`,
		`{"t":"messages","x":"42","k":["id","conversation_id","created_at"],"r":[["1","7","100"],["2","7",null]]}`,
		`{"t":"messages","x":"42","k":["id","conversation_id"],"r":[["1"]]}`,
		`{"t":"messages","x":"7","c":{"conversation_id":["3",null]}}`,
		`{"t":"messages","x":"7","all":true}`,
		`{"t":"m","x":"18446744073709551615","k":["a","a"],"r":[["1","2"],["1",null]]}`,
		`{"t":"m","x":"18446744073709551616"}`,
		`{"t":"m","x":"-1"}`,
		`{"t":"m","x":"1","k":[],"r":[["1"]]}`,
		`{"t":"m","x":"1","k":["a"],"r":null,"c":{"a":["z"]}}`,
		`{"x":"7","all":true}`, `{"t":"m","x":"seven"}`, `{`, ``, `null`, `[]`,
		`{"t":"m","x":"1","r":[[null]],"k":["id"]}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ev, ok := parse(s)
		if !ok {
			if !reflect.DeepEqual(ev, Event{}) {
				t.Fatalf("a refused payload returned %+v", ev)
			}
			return
		}
		if marker, isMarker := strings.CutPrefix(s, MarkerPrefix); isMarker {
			if ev.Kind != EventMarker || ev.Marker != marker {
				t.Fatalf("marker %q parsed as %+v", s, ev)
			}
			return
		}
		c := ev.Change
		if ev.Kind != EventChange || c.Table == "" {
			t.Fatalf("accepted change without a table: %+v", ev)
		}
		var p payload
		if err := json.Unmarshal([]byte(s), &p); err != nil {
			t.Fatalf("accepted a payload that is not JSON: %v", err)
		}
		if strconv.FormatUint(c.Xid, 10) != strings.TrimLeft(p.Xid, "+0") && !(c.Xid == 0 && strings.Trim(p.Xid, "+0") == "") {
			t.Fatalf("xid %q parsed as %d", p.Xid, c.Xid)
		}
		if c.All && c.Columns != nil {
			t.Fatalf("a table-wide change carries row images: %+v", c)
		}
		if c.Columns != nil {
			for _, row := range c.Rows {
				if len(row) != len(c.Columns) {
					t.Fatalf("row %v is not %d wide", row, len(c.Columns))
				}
			}
			for i, col := range c.Columns {
				var want []string
				for j := range c.Columns {
					if c.Columns[j] != col {
						continue
					}
					for _, row := range c.Rows {
						if v := row[j]; v != nil && !slices.Contains(want, *v) {
							want = append(want, *v)
						}
					}
				}
				got := c.Keys[col]
				dup := slices.Index(c.Columns, col) != i || slices.Index(c.Columns[i+1:], col) >= 0
				if !dup && !slices.Equal(got, want) {
					t.Fatalf("keys of %q = %q, want the distinct values %q", col, got, want)
				}
				// A column named twice (no trigger does) may list a value once per position.
				for _, v := range got {
					if !slices.Contains(want, v) {
						t.Fatalf("keys of %q = %q: %q is in no row", col, got, v)
					}
				}
				for _, v := range want {
					if !slices.Contains(got, v) {
						t.Fatalf("keys of %q = %q miss %q", col, got, v)
					}
				}
			}
		}
		// The trigger's format, from what was parsed: it must parse to the same event.
		enc := payload{Table: c.Table, Xid: strconv.FormatUint(c.Xid, 10), All: c.All}
		if c.Columns != nil {
			enc.Columns, enc.Rows = c.Columns, c.Rows
		} else if !c.All || len(c.Keys) > 0 {
			enc.Keys = map[string][]*string{}
			for col, vals := range c.Keys {
				ptrs := make([]*string, len(vals))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				enc.Keys[col] = ptrs
			}
		}
		buf, err := json.Marshal(enc)
		if err != nil {
			t.Fatal(err)
		}
		again, ok := parse(string(buf))
		if !ok || !reflect.DeepEqual(normalizeEvent(again), normalizeEvent(ev)) {
			t.Fatalf("re-encoded %s parsed as %+v, %v; want %+v", buf, again, ok, ev)
		}
	})
}

// normalizeEvent drops the difference between no keys and an empty key map, and between an
// empty and a nil key list.
func normalizeEvent(ev Event) Event {
	if len(ev.Change.Keys) == 0 {
		ev.Change.Keys = nil
	}
	for col, vals := range ev.Change.Keys {
		if len(vals) == 0 {
			ev.Change.Keys[col] = nil
		}
	}
	if len(ev.Change.Rows) == 0 {
		ev.Change.Rows = nil
	}
	return ev
}

func formatSnapshot(s Snapshot) string {
	xips := make([]uint64, 0, len(s.InProgress))
	for x := range s.InProgress {
		xips = append(xips, x)
	}
	slices.Sort(xips)
	parts := make([]string, len(xips))
	for i, x := range xips {
		parts[i] = strconv.FormatUint(x, 10)
	}
	return strconv.FormatUint(s.Xmin, 10) + ":" + strconv.FormatUint(s.Xmax, 10) + ":" + strings.Join(parts, ",")
}

// FuzzParseSnapshot: an accepted snapshot is consistent (xmin <= xmax, running xids inside
// [xmin, xmax)), prints back to a text that parses to the same snapshot, and Sees agrees with
// the definition for the xids around every edge.
func FuzzParseSnapshot(f *testing.F) {
	for _, seed := range []string{"10:20:12,15", "10:20:", "5:5:", "1:2", "a:2:", "1:b:", "1:2:x",
		"20:10:", "10:20:25", "10:20:9", "10:20:10,10", "0:18446744073709551615:", "10:20:,", "+10:20:"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		snap, ok := ParseSnapshot(s)
		if !ok {
			return
		}
		if snap.Xmin > snap.Xmax {
			t.Fatalf("accepted xmin %d > xmax %d", snap.Xmin, snap.Xmax)
		}
		probes := []uint64{0, snap.Xmin, snap.Xmax, snap.Xmin - 1, snap.Xmax - 1, snap.Xmax + 1}
		for x := range snap.InProgress {
			if x < snap.Xmin || x >= snap.Xmax {
				t.Fatalf("running xid %d outside [%d, %d)", x, snap.Xmin, snap.Xmax)
			}
			probes = append(probes, x, x+1, x-1)
		}
		for _, x := range probes {
			_, running := snap.InProgress[x]
			want := x < snap.Xmin || (x < snap.Xmax && !running)
			if snap.Sees(x) != want {
				t.Fatalf("%s: Sees(%d) = %v", s, x, !want)
			}
		}
		text := formatSnapshot(snap)
		again, ok := ParseSnapshot(text)
		if !ok || !reflect.DeepEqual(again, snap) {
			t.Fatalf("%q printed as %q parses to %+v, %v", s, text, again, ok)
		}
	})
}
