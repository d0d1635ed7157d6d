package auth

import (
	"context"
	"encoding/hex"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/ripplehq/ripple/engine/internal/dbsqlc"
)

// limit is one fixed-window rate limit. Counters live in ripple_auth_rate_limits, keyed by the
// limit's name and a SHA-256 of the subject, so every process shares them.
type limit struct {
	name   string
	max    int
	window time.Duration
}

func (s *Service) limitSignInAccount() limit {
	return limit{"signin_fail_account", s.cfg.SignInFailuresPerAccount, s.cfg.SignInFailuresPerAccountWindow}
}

func (s *Service) limitSignInAccountAddress() limit {
	return limit{"signin_fail_account_address", s.cfg.SignInFailuresPerAccountAddress, s.cfg.SignInFailuresPerAccountAddressWindow}
}

func (s *Service) limitSignInAddress() limit {
	return limit{"signin_fail_address", s.cfg.SignInFailuresPerAddress, s.cfg.SignInFailuresPerAddressWindow}
}

func (s *Service) limitSignUpAddress() limit {
	return limit{"signup_address", s.cfg.SignUpsPerAddress, s.cfg.SignUpsPerAddressWindow}
}

func (l limit) bucket(subject string) string {
	return l.name + ":" + hex.EncodeToString(sha256Sum(subject))
}

func (l limit) windowStart(now time.Time) time.Time { return now.Truncate(l.window) }

func (l limit) rateLimited(now time.Time) *apiError {
	retry := l.windowStart(now).Add(l.window).Sub(now)
	return errRateLimited(retry)
}

// rateHit counts one event against the limit and fails with RATE_LIMITED when that goes past it.
func (s *Service) rateHit(ctx context.Context, l limit, subject string) error {
	_, err := s.rateReserve(ctx, l, subject)
	return err
}

// rateReserve counts an attempt against the limit before the work it guards, and fails with
// RATE_LIMITED when that goes past it. Counting first is what bounds concurrent attempts: a
// check before the work and a count after it let every attempt sent at once through. release
// takes the count back for an attempt that turns out not to count (a sign-in that succeeded).
func (s *Service) rateReserve(ctx context.Context, l limit, subject string) (release func(context.Context), err error) {
	now := s.now()
	start := l.windowStart(now)
	bucket := l.bucket(subject)
	n, err := s.q.RateLimitIncrement(ctx, s.pool, dbsqlc.RateLimitIncrementParams{
		Bucket:      bucket,
		WindowStart: ts(start),
		ExpiresAt:   ts(start.Add(l.window)),
	})
	release = func(ctx context.Context) {
		if err := s.q.RateLimitDecrement(ctx, s.pool, dbsqlc.RateLimitDecrementParams{Bucket: bucket, WindowStart: ts(start)}); err != nil {
			s.logger.Warn("auth: releasing a rate-limit count", "limit", l.name, "error", err)
		}
	}
	if err != nil {
		return nil, err
	}
	if int(n) > l.max {
		return nil, l.rateLimited(now)
	}
	return release, nil
}

// RemoteAddrHost is the default Config.ClientAddress: the host of r.RemoteAddr, with IPv6
// addresses reduced to their /64 (one client usually owns a whole /64). Proxy headers such as
// X-Forwarded-For are deliberately ignored: behind a trusted reverse proxy, configure
// Config.ClientAddress to read the header that proxy sets.
func RemoteAddrHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	addr = addr.Unmap()
	if addr.Is6() {
		if p, err := addr.Prefix(64); err == nil {
			return p.String()
		}
	}
	return addr.String()
}
