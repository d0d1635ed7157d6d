package session

import (
	"bytes"
	"testing"
)

func TestOutboxBoundsFramesAndBytes(t *testing.T) {
	t.Parallel()
	o := newOutbox(4, 100)
	big := bytes.Repeat([]byte("x"), 500)
	if ok, start := o.push(big); !ok || !start {
		t.Fatal("an empty queue refused a message larger than the byte bound, or wanted no writer")
	}
	if ok, start := o.push([]byte("a")); ok || start {
		t.Fatal("a queue over its byte bound took more")
	}
	if f, ok := o.next(); !ok || len(f) != 500 {
		t.Fatalf("pop = %d bytes, %v", len(f), ok)
	}
	for i := 0; i < 4; i++ {
		if ok, start := o.push([]byte{byte('0' + i)}); !ok || start {
			t.Fatalf("frame %d refused, or a second writer asked for", i)
		}
	}
	if ok, _ := o.push([]byte("5")); ok {
		t.Fatal("a queue at its frame bound took more")
	}
	if !o.halfFull() {
		t.Fatal("4 of 4 frames is not half full")
	}
	for i := 0; i < 4; i++ {
		if f, ok := o.next(); !ok || f[0] != byte('0'+i) {
			t.Fatalf("frame %d: %q %v", i, f, ok)
		}
	}
	if _, ok := o.next(); ok || o.halfFull() {
		t.Fatal("drained queue not empty")
	}
	// The writer stopped: the next push asks for a new one. Frames pushed together are refused
	// together.
	if ok, start := o.push([]byte("p")); !ok || !start {
		t.Fatal("no writer asked for after the last one stopped")
	}
	if ok, _ := o.push(bytes.Repeat([]byte("y"), 60), bytes.Repeat([]byte("z"), 60)); ok {
		t.Fatal("a group that passes the byte bound was taken")
	}
	if f, _ := o.next(); string(f) != "p" {
		t.Fatal("part of a refused group was queued")
	}
	if _, ok := o.next(); ok {
		t.Fatal("part of a refused group was queued")
	}
	o.writerDone() // the two writers asked for
	o.writerDone()
	o.close()
	o.wait()
	if ok, start := o.push([]byte("late")); !ok || start {
		t.Fatal("a closed queue should drop frames quietly")
	}
	if _, ok := o.next(); ok {
		t.Fatal("a closed queue took a frame")
	}
}
