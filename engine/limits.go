package engine

import (
	"time"

	"github.com/ripplehq/ripple/engine/internal/ratelimit"
)

// Rate limits on what clients call: Config's on all mutations, FunctionOpts.RateLimit on one
// function. Both are token buckets per caller, kept in this process.

// limitMutation is the rate limit for a mutation sent by a client; nil when it may run.
// anonymous names an anonymous caller (its socket's session or its address).
func (e *Engine) limitMutation(identity Identity, anonymous string) error {
	return limitCaller(e.mutationLimit, identity, anonymous)
}

// limitClientCall applies the limits on a client's call of fn: Config's on mutations and the
// function's own (FunctionOpts.RateLimit).
func (e *Engine) limitClientCall(fn *function, identity Identity, anonymous string) error {
	if fn.kind == KindMutation {
		if err := e.limitMutation(identity, anonymous); err != nil {
			return err
		}
	}
	return limitCaller(fn.limit, identity, anonymous)
}

// limitCaller takes a token for the caller from l (nil: no limit); admins are not limited.
func limitCaller(l *ratelimit.Limiter, identity Identity, anonymous string) error {
	if identity.Admin {
		return nil
	}
	caller := identity.Key()
	if identity.UserID == "" {
		caller = "anonymous:" + anonymous
	}
	if ok, wait := l.Allow(caller, time.Now()); !ok {
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
