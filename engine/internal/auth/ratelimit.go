package auth

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
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

// ForwardedFor is a Config.ClientAddress for a server behind reverse proxies it trusts: when the
// TCP peer is one of trusted, the client is the right-most X-Forwarded-For entry that is not (each
// trusted proxy appends the address it saw, so entries left of the first untrusted one are the
// client's own claims and are ignored). A request from any other peer is keyed on that peer, so a
// client reaching the server directly cannot choose its address. Addresses are reduced as
// RemoteAddrHost reduces them.
func ForwardedFor(trusted []netip.Prefix) func(r *http.Request) string {
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a.Unmap()) {
				return true
			}
		}
		return false
	}
	return func(r *http.Request) string {
		peer, ok := peerAddr(r.RemoteAddr)
		if !ok || !isTrusted(peer) {
			return RemoteAddrHost(r)
		}
		client := peer
		hops := r.Header.Values("X-Forwarded-For")
		entries := strings.Split(strings.Join(hops, ","), ",")
		for i := len(entries) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(strings.TrimSpace(entries[i]))
			if err != nil {
				break // a malformed hop: trust nothing further left
			}
			client = a
			if !isTrusted(a) {
				break
			}
		}
		return reduce(client)
	}
}

// ParseTrusted reads a comma-separated list of addresses and CIDR prefixes.
func ParseTrusted(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if p, err := netip.ParsePrefix(item); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR prefix", item)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

func peerAddr(remote string) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	return a.Unmap(), err == nil
}

// reduce is the key an address is limited under: IPv6 addresses grouped by /64.
func reduce(addr netip.Addr) string {
	addr = addr.Unmap()
	if addr.Is6() {
		if p, err := addr.Prefix(64); err == nil {
			return p.String()
		}
	}
	return addr.String()
}

// RemoteAddrHost is the default Config.ClientAddress: the host of r.RemoteAddr, with IPv6
// addresses reduced to their /64 (one client usually owns a whole /64). Proxy headers such as
// X-Forwarded-For are deliberately ignored: behind a trusted reverse proxy, configure
// Config.ClientAddress to read the header that proxy sets.
func RemoteAddrHost(r *http.Request) string {
	addr, ok := peerAddr(r.RemoteAddr)
	if !ok {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			return r.RemoteAddr
		}
		return host
	}
	return reduce(addr)
}
