package wire

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// A large transition is cut on rune boundaries into chunks that join back to it.
func TestChunksJoinBackOnRuneBoundaries(t *testing.T) {
	t.Parallel()
	buf := []byte(`{"type":"Transition","value":"` + strings.Repeat("héllo wörld ✓ ", 50) + `"}`)
	if frames := Chunks(buf, len(buf)); len(frames) != 1 || string(frames[0]) != string(buf) {
		t.Fatalf("a transition within the limit is sent as it is")
	}
	frames := Chunks(buf, 7)
	var joined strings.Builder
	for i, f := range frames {
		var c TransitionChunk
		if err := json.Unmarshal(f, &c); err != nil {
			t.Fatal(err)
		}
		if c.Type != "TransitionChunk" || c.PartNumber != i || c.TotalParts != len(frames) || !utf8.ValidString(c.Chunk) || len(c.Chunk) > 7 {
			t.Fatalf("chunk %d: %+v", i, c)
		}
		joined.WriteString(c.Chunk)
	}
	if joined.String() != string(buf) {
		t.Fatal("the chunks do not join back to the transition")
	}
}
