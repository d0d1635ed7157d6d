package changefeed

import (
	"context"
	"errors"
	"reflect"
	"testing"
)

func TestParseChange(t *testing.T) {
	t.Parallel()
	s := func(v string) *string { return &v }
	tests := []struct {
		name    string
		payload string
		want    Event
		ok      bool
	}{
		{"marker", "marker:abc", Event{Kind: EventMarker, Marker: "abc"}, true},
		{"row images give rows and distinct keys",
			`{"t":"messages","x":"42","k":["id","conversation_id","created_at"],"r":[["1","7","100"],["2","7",null]]}`,
			Event{Kind: EventChange, Change: Change{Table: "messages", Xid: 42,
				Keys:    map[string][]string{"id": {"1", "2"}, "conversation_id": {"7"}, "created_at": {"100"}},
				Columns: []string{"id", "conversation_id", "created_at"},
				Rows:    [][]*string{{s("1"), s("7"), s("100")}, {s("2"), s("7"), nil}}}}, true},
		{"a row of the wrong width is a table-wide change",
			`{"t":"messages","x":"42","k":["id","conversation_id"],"r":[["1"]]}`,
			Event{Kind: EventChange, Change: Change{Table: "messages", Xid: 42, All: true}}, true},
		{"distinct keys only", `{"t":"messages","x":"7","c":{"conversation_id":["3",null]}}`,
			Event{Kind: EventChange, Change: Change{Table: "messages", Xid: 7, Keys: map[string][]string{"conversation_id": {"3"}}}}, true},
		{"all", `{"t":"messages","x":"7","all":true}`,
			Event{Kind: EventChange, Change: Change{Table: "messages", Xid: 7, All: true, Keys: map[string][]string{}}}, true},
		{"no table", `{"x":"7","all":true}`, Event{}, false},
		{"bad xid", `{"t":"m","x":"seven"}`, Event{}, false},
		{"not json", `{`, Event{}, false},
	}
	for _, tt := range tests {
		got, ok := parse(tt.payload)
		if ok != tt.ok || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: parse = %+v, %v; want %+v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

func TestSnapshotSees(t *testing.T) {
	t.Parallel()
	snap, ok := ParseSnapshot("10:20:12,15")
	if !ok {
		t.Fatal("not parsed")
	}
	for xid, want := range map[uint64]bool{9: true, 10: true, 11: true, 12: false, 15: false, 19: true, 20: false, 25: false} {
		if got := snap.Sees(xid); got != want {
			t.Errorf("Sees(%d) = %v, want %v", xid, got, want)
		}
	}
	for _, bad := range []string{"", "1:2", "a:2:", "1:b:", "1:2:x"} {
		if _, ok := ParseSnapshot(bad); ok {
			t.Errorf("ParseSnapshot(%q) accepted", bad)
		}
	}
}

// A probe whose notification could not be sent says so: that is the pool's or the database's
// trouble, and must not be taken for a listener that stopped delivering.
func TestProbeNotSentIsNotTheListeners(t *testing.T) {
	t.Parallel()
	l := New(Config{Schema: "public"})
	sendErr := errors.New("pool exhausted")
	err := l.Probe(context.Background(), func(context.Context, string, ...any) error { return sendErr })
	if !errors.Is(err, ErrProbeNotSent) || !errors.Is(err, sendErr) {
		t.Fatalf("got %v, want ErrProbeNotSent wrapping the send's error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = l.Probe(ctx, func(context.Context, string, ...any) error { return nil }) // sent, never heard
	if err == nil || errors.Is(err, ErrProbeNotSent) {
		t.Fatalf("a probe sent but not heard: got %v", err)
	}
}
