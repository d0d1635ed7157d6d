// Package ratelimit bounds how fast one caller may run mutations in this process: a token bucket
// per caller, forgetting callers whose bucket has refilled once it tracks many.
package ratelimit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter holds one token bucket per caller (Config.MutationsPerSecond, Config.MutationBurst), so
// a client cannot fill the database, and the embedding queue, as fast as it can send.
type Limiter struct {
	every rate.Limit
	burst int

	mu      sync.Mutex
	callers map[string]*callerLimit
}

type callerLimit struct {
	limiter  *rate.Limiter
	lastUsed time.Time
}

// maxTrackedCallers is how many callers the limiter remembers before forgetting idle ones.
const maxTrackedCallers = 10_000

// New returns a limiter refilling perSecond up to burst; nil (allowing everything) when perSecond
// is not positive.
func New(perSecond float64, burst int) *Limiter {
	if perSecond <= 0 {
		return nil
	}
	return &Limiter{every: rate.Limit(perSecond), burst: burst, callers: map[string]*callerLimit{}}
}

// Allow takes one token for caller, or says how long until one is there. A nil limiter allows
// everything.
func (m *Limiter) Allow(caller string, now time.Time) (bool, time.Duration) {
	if m == nil {
		return true, 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.callers[caller]
	if c == nil {
		if len(m.callers) >= maxTrackedCallers {
			m.forgetIdle(now)
		}
		c = &callerLimit{limiter: rate.NewLimiter(m.every, m.burst)}
		m.callers[caller] = c
	}
	c.lastUsed = now
	r := c.limiter.ReserveN(now, 1)
	if delay := r.DelayFrom(now); delay > 0 {
		r.CancelAt(now)
		return false, delay
	}
	return true, 0
}

// forgetIdle drops callers whose bucket has refilled: they would start full anyway.
func (m *Limiter) forgetIdle(now time.Time) {
	full := time.Duration(float64(m.burst) / float64(m.every) * float64(time.Second))
	for k, c := range m.callers {
		if now.Sub(c.lastUsed) > full {
			delete(m.callers, k)
		}
	}
}
