package reactor

import (
	"math"
	"sync"
	"time"
)

// loadTau is how fast the load forgets: a batch's weight halves in about 140 ms.
const loadTau = 200 * time.Millisecond

// loadMeter measures how much of the recent past batches ran: an exponentially decaying sum
// of batch time over loadTau, which settles at the duty cycle (0.3 when batches run 30% of the
// time, 1 when they run back to back).
type loadMeter struct {
	mu    sync.Mutex
	value float64
	at    time.Time
}

func (m *loadMeter) decayLocked(now time.Time) {
	if !m.at.IsZero() && now.After(m.at) {
		m.value *= math.Exp(-float64(now.Sub(m.at)) / float64(loadTau))
	}
	m.at = now
}

// add records a batch that ran from start to end.
func (m *loadMeter) add(start, end time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.decayLocked(end)
	m.value += float64(end.Sub(start)) / float64(loadTau)
}

func (m *loadMeter) read(now time.Time) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.decayLocked(now)
	return m.value
}
