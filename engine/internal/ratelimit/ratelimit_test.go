package ratelimit

import (
	"testing"
	"time"
)

func TestMutationLimiterBurstThenRate(t *testing.T) {
	t.Parallel()
	m := New(2, 3)
	now := time.Unix(1000, 0)
	for i := range 3 {
		if ok, _ := m.Allow("user:1", now); !ok {
			t.Fatalf("mutation %d of the burst refused", i)
		}
	}
	ok, wait := m.Allow("user:1", now)
	if ok || wait <= 0 || wait > 500*time.Millisecond {
		t.Fatalf("past the burst: ok=%v wait=%s", ok, wait)
	}
	if ok, _ := m.Allow("user:2", now); !ok {
		t.Fatal("another caller was limited")
	}
	if ok, _ := m.Allow("user:1", now.Add(wait)); !ok {
		t.Fatal("refused after the wait it gave")
	}
	if New(-1, 3) != nil {
		t.Fatal("a negative rate should turn the limit off")
	}
	var off *Limiter
	if ok, _ := off.Allow("x", now); !ok {
		t.Fatal("a nil limiter refused")
	}
}

func TestMutationLimiterForgetsIdleCallers(t *testing.T) {
	t.Parallel()
	m := New(10, 10)
	now := time.Unix(1000, 0)
	for i := range maxTrackedCallers {
		m.Allow(string(rune(i)), now)
	}
	m.Allow("late", now.Add(2*time.Second)) // everyone else has refilled by then
	if len(m.callers) != 1 {
		t.Fatalf("%d callers kept", len(m.callers))
	}
}
