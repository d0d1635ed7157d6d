package reactor

import (
	"testing"
	"time"
)

// The clock never goes back: not below its own last ts, nor below a ts a client saw elsewhere.
func TestClockIsMonotonicAboveTheObservedFloor(t *testing.T) {
	t.Parallel()
	r := New(Config{})
	first := r.clockNext()
	if now := uint64(time.Now().UnixNano()); first > now+uint64(time.Second) {
		t.Fatalf("ts %d is far from wall-clock nanoseconds %d", first, now)
	}
	prev := first
	for range 1000 {
		ts := r.clockNext()
		if ts <= prev {
			t.Fatalf("ts went from %d to %d", prev, ts)
		}
		prev = ts
	}
	future := uint64(time.Now().Add(time.Minute).UnixNano())
	r.Observe(future)
	r.Observe(future - 5) // a lower floor changes nothing
	if ts := r.clockNext(); ts != future+1 {
		t.Fatalf("after observing %d the next ts is %d", future, ts)
	}
}
