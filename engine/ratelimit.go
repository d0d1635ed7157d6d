package engine

import (
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// mutationLimiter bounds how fast one caller may run mutations in this process (a token bucket
// per caller: Config.MutationsPerSecond, Config.MutationBurst), so a client cannot fill the
// database, and the embedding queue, as fast as it can send. Admins are not limited, nor are
// mutations run by jobs and actions (their caller was counted already).
type mutationLimiter struct {
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

func newMutationLimiter(perSecond float64, burst int) *mutationLimiter {
	if perSecond <= 0 {
		return nil
	}
	return &mutationLimiter{every: rate.Limit(perSecond), burst: burst, callers: map[string]*callerLimit{}}
}

// allow takes one token for caller, or says how long until one is there. A nil limiter allows
// everything.
func (m *mutationLimiter) allow(caller string, now time.Time) (bool, time.Duration) {
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
func (m *mutationLimiter) forgetIdle(now time.Time) {
	full := time.Duration(float64(m.burst) / float64(m.every) * float64(time.Second))
	for k, c := range m.callers {
		if now.Sub(c.lastUsed) > full {
			delete(m.callers, k)
		}
	}
}

// limitMutation is the rate limit for a mutation sent by a client; nil when it may run.
// anonymous names an anonymous caller (its socket's session or its address).
func (e *Engine) limitMutation(identity Identity, anonymous string) error {
	if identity.Admin {
		return nil
	}
	caller := identity.key()
	if identity.UserID == "" {
		caller = "anonymous:" + anonymous
	}
	if ok, wait := e.mutationLimit.allow(caller, time.Now()); !ok {
		return newRateLimited(wait)
	}
	return nil
}

func newRateLimited(wait time.Duration) *Error {
	wait = max(wait, time.Millisecond)
	err := NewError(CodeRateLimited, "too many changes at once; try again in %s", wait.Round(time.Millisecond))
	err.Data = map[string]any{"retryAfterMs": wait.Milliseconds()}
	return err
}

// remoteHost is an HTTP caller's address without its port.
func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
