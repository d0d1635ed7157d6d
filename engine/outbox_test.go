package engine

import (
	"bytes"
	"testing"
)

func TestOutboxBoundsFramesAndBytes(t *testing.T) {
	t.Parallel()
	o := newOutbox(4, 100)
	big := bytes.Repeat([]byte("x"), 500)
	if !o.push(big) {
		t.Fatal("an empty queue refused a message larger than the byte bound")
	}
	if o.push([]byte("a")) {
		t.Fatal("a queue over its byte bound took more")
	}
	if f, ok := o.pop(); !ok || len(f) != 500 {
		t.Fatalf("pop = %d bytes, %v", len(f), ok)
	}
	for i := 0; i < 4; i++ {
		if !o.push([]byte{byte('0' + i)}) {
			t.Fatalf("frame %d refused", i)
		}
	}
	if o.push([]byte("5")) {
		t.Fatal("a queue at its frame bound took more")
	}
	if !o.halfFull() {
		t.Fatal("4 of 4 frames is not half full")
	}
	for i := 0; i < 4; i++ {
		if f, ok := o.pop(); !ok || f[0] != byte('0'+i) {
			t.Fatalf("frame %d: %q %v", i, f, ok)
		}
	}
	if !o.empty() || o.halfFull() {
		t.Fatal("drained queue not empty")
	}
	// Frames pushed together are refused together.
	if !o.push([]byte("p")) || o.push(bytes.Repeat([]byte("y"), 60), bytes.Repeat([]byte("z"), 60)) {
		t.Fatal("a group that passes the byte bound was taken")
	}
	if f, _ := o.pop(); string(f) != "p" || !o.empty() {
		t.Fatal("part of a refused group was queued")
	}
}
