package reactor

import (
	"testing"
	"time"
)

func TestLoadMeterSettlesAtTheDutyCycle(t *testing.T) {
	var m loadMeter
	start := time.Unix(0, 0)
	// Batches of 3 ms every 10 ms for two seconds: a duty cycle of 0.3.
	for i := range 200 {
		s := start.Add(time.Duration(i) * 10 * time.Millisecond)
		m.add(s, s.Add(3*time.Millisecond))
	}
	end := start.Add(2 * time.Second)
	if got := m.read(end); got < 0.25 || got > 0.35 {
		t.Fatalf("load at a 0.3 duty cycle = %.3f", got)
	}
	// Idle for a second: it forgets.
	if got := m.read(end.Add(time.Second)); got > 0.01 {
		t.Fatalf("load after a second idle = %.3f", got)
	}
}
