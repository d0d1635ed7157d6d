package functions

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ripplehq/ripple/engine"
)

// FuzzDecodeCursor feeds arbitrary strings to the pagination cursor decoder (no database).
// Properties: it never panics; a refusal is an INVALID_ARGUMENT *engine.Error naming the field;
// "end" is the end of the list; an accepted cursor is a UTC time in years 1–9999 and re-encodes
// to a cursor that decodes to the same position; and every position encodes to a cursor that
// decodes back to it.
func FuzzDecodeCursor(f *testing.F) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC)
	for _, seed := range []string{
		encodeCursor(position{at: now, id: 42}),
		encodeCursor(position{at: time.UnixMicro(0), id: 1}),
		endOfList, "", "!!!", "MTox", "MTox=", "LTE6LTE", "OTIyMzM3MjAzNjg1NDc3NTgwNzox",
		"LTkyMjMzNzIwMzY4NTQ3NzU4MDg6MQ", "KzE6KzE", "MTox Cg", "bm9jb2xvbg",
	} {
		f.Add(seed, now.UnixMicro(), int64(7))
	}
	f.Add("", int64(math.MaxInt64), int64(math.MinInt64))
	f.Fuzz(func(t *testing.T, s string, micros, id int64) {
		pos, err := decodeCursor("paginationOpts.cursor", s)
		switch {
		case err != nil:
			var e *engine.Error
			if !errors.As(err, &e) || e.Code != engine.CodeInvalidArgument || !strings.Contains(e.Message, `"paginationOpts.cursor"`) {
				t.Fatalf("refusal is not an INVALID_ARGUMENT naming the field: %#v", err)
			}
			if pos != nil {
				t.Fatalf("refused with a position %+v", pos)
			}
		case s == endOfList:
			if pos != nil {
				t.Fatalf("%q decoded to %+v", s, pos)
			}
		case pos == nil:
			t.Fatalf("%q accepted without a position", s)
		default:
			if pos.at.Location() != time.UTC || pos.at.Year() < 1 || pos.at.Year() > 9999 {
				t.Fatalf("%q decoded to a time out of range: %v", s, pos.at)
			}
			again, err := decodeCursor("c", encodeCursor(*pos))
			if err != nil || again == nil || !again.at.Equal(pos.at) || again.id != pos.id {
				t.Fatalf("%q: re-encoded position decodes to %+v, %v; want %+v", s, again, err, pos)
			}
		}

		// Any position a message can have (microsecond times in range) round trips exactly.
		p := position{at: time.UnixMicro(micros).UTC(), id: id}
		got, err := decodeCursor("c", encodeCursor(p))
		if micros < minCursorMicros || micros > maxCursorMicros {
			if err == nil {
				t.Fatalf("a cursor at %v was accepted", p.at)
			}
			return
		}
		if err != nil || got == nil || got.at != p.at || got.id != p.id {
			t.Fatalf("position %+v round trips to %+v, %v", p, got, err)
		}
	})
}
