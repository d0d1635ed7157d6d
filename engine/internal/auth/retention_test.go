package auth

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/engine/internal/dbsqlc"
)

func TestRetentionDefaults(t *testing.T) {
	t.Parallel()
	c := (&Config{}).WithDefaults()
	require.Equal(t, c.SessionIdleTTL, c.SpentTokenRetention)
	require.Equal(t, 7*24*time.Hour, c.EndedSessionRetention)
	require.Equal(t, 1000, c.PruneBatchSize)
	require.NoError(t, c.validate())
	for _, bad := range []*Config{
		{SpentTokenRetention: time.Second},
		{EndedSessionRetention: -time.Hour},
		{PruneBatchSize: -1},
	} {
		require.Error(t, bad.WithDefaults().validate())
	}
}

// A spent refresh token presented again within SpentTokenRetention revokes its session; one
// Prune deletes spent tokens past the retention (never a session's current token) and sessions
// ended longer ago than EndedSessionRetention, with their tokens.
func TestRetentionRefreshTokensAndSessions(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) {
		c.SpentTokenRetention = 48 * time.Hour
		c.EndedSessionRetention = 24 * time.Hour
		c.PruneBatchSize = 2
	})
	// Session A stays in use; session B's spent token is reused (stolen) later.
	a1 := h.signUp("ann@example.com", pw, "Ann")
	a2 := h.authOK("/api/auth/refresh", map[string]string{"refreshToken": a1.RefreshToken})
	b1 := h.signUp("bob@example.com", pw, "Bob")
	b2 := h.authOK("/api/auth/refresh", map[string]string{"refreshToken": b1.RefreshToken})

	// A day later, within the retention: nothing is pruned, and reuse is still detected.
	h.clock.Advance(24 * time.Hour)
	require.NoError(t, h.svc.Prune(h.ctx))
	require.Equal(t, 4, h.count(`SELECT count(*) FROM ripple_auth_refresh_tokens`))
	r := requireAPIError(t, h.refresh(b1.RefreshToken), http.StatusUnauthorized, "UNAUTHENTICATED")
	require.Contains(t, r["message"], "session has ended")
	requireAPIError(t, h.refresh(b2.RefreshToken), http.StatusUnauthorized, "UNAUTHENTICATED")
	require.Equal(t, 1, h.count(`SELECT count(*) FROM ripple_auth_sessions WHERE revoked_reason = 'refresh_token_reuse'`))
	a3 := h.authOK("/api/auth/refresh", map[string]string{"refreshToken": a2.RefreshToken})

	// Within EndedSessionRetention the revoked session is kept.
	h.clock.Advance(23 * time.Hour)
	require.NoError(t, h.svc.Prune(h.ctx))
	require.Equal(t, 2, h.count(`SELECT count(*) FROM ripple_auth_sessions`))

	// Past both: a1 (spent 49 h ago) and Bob's session (revoked 25 h ago, with its tokens) are
	// deleted; a2 (spent 25 h ago) and the live a3 are kept.
	h.clock.Advance(2 * time.Hour)
	require.NoError(t, h.svc.Prune(h.ctx))
	require.Equal(t, 1, h.count(`SELECT count(*) FROM ripple_auth_sessions`))
	require.Equal(t, 2, h.count(`SELECT count(*) FROM ripple_auth_refresh_tokens`))
	require.Equal(t, 1, h.count(`SELECT count(*) FROM ripple_auth_refresh_tokens WHERE spent_at IS NULL`))

	// a1 is now unknown: refused, and nothing is revoked; a2 is still detected as reused.
	r = requireAPIError(t, h.refresh(a1.RefreshToken), http.StatusUnauthorized, "UNAUTHENTICATED")
	require.Contains(t, r["message"], "invalid refresh token")
	a4 := h.authOK("/api/auth/refresh", map[string]string{"refreshToken": a3.RefreshToken})
	h.clock.Advance(time.Minute)
	r = requireAPIError(t, h.refresh(a2.RefreshToken), http.StatusUnauthorized, "UNAUTHENTICATED")
	require.Contains(t, r["message"], "session has ended")
	requireAPIError(t, h.refresh(a4.RefreshToken), http.StatusUnauthorized, "UNAUTHENTICATED")
}

// Prune's statements are bounded by PruneBatchSize, and one Prune deletes everything past its
// retention: expired rate-limit windows, sessions idle past SessionIdleTTL plus
// EndedSessionRetention. Live and recent rows are kept.
func TestRetentionPruneInBatches(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) {
		c.SessionIdleTTL = 10 * 24 * time.Hour
		c.EndedSessionRetention = 24 * time.Hour
		c.PruneBatchSize = 3
	})
	now := h.clock.Now()
	user := h.signUp("cat@example.com", pw, "Cat").User.ID
	const expiredWindows, liveWindows = 7, 2
	for i := range expiredWindows {
		h.exec(`INSERT INTO ripple_auth_rate_limits (bucket, window_start, count, expires_at) VALUES ($1, $2, 1, $3)`,
			"test:old", now.Add(-time.Duration(i+2)*time.Hour), now.Add(-time.Duration(i+1)*time.Hour))
	}
	for i := range liveWindows {
		h.exec(`INSERT INTO ripple_auth_rate_limits (bucket, window_start, count, expires_at) VALUES ($1, $2, 1, $3)`,
			"test:live", now.Add(-time.Duration(i)*time.Minute), now.Add(time.Hour))
	}
	// Sessions idle for 12 days (ended 2 days ago: pruned) and 10.5 days (ended half a day
	// ago: kept), besides the sign-up's live one.
	for range 4 {
		h.exec(`INSERT INTO ripple_auth_sessions (user_id, created_at, last_used_at) VALUES ($1, $2, $2)`, user, now.Add(-12*24*time.Hour))
	}
	h.exec(`INSERT INTO ripple_auth_sessions (user_id, created_at, last_used_at) VALUES ($1, $2, $2)`, user, now.Add(-10*24*time.Hour-12*time.Hour))

	// One statement touches at most its batch.
	n, err := h.svc.q.RateLimitPrune(h.ctx, h.db.Pool, dbsqlc.RateLimitPruneParams{Now: ts(now), BatchSize: 3})
	require.NoError(t, err)
	require.EqualValues(t, 3, n)
	n, err = h.svc.q.AuthSessionPrune(h.ctx, h.db.Pool, dbsqlc.AuthSessionPruneParams{
		IdleBefore: ts(now.Add(-11 * 24 * time.Hour)), RevokedBefore: ts(now.Add(-24 * time.Hour)), BatchSize: 3})
	require.NoError(t, err)
	require.EqualValues(t, 3, n)

	// A whole run finishes the job, batch after batch.
	require.NoError(t, h.svc.Prune(h.ctx))
	require.Equal(t, 0, h.count(`SELECT count(*) FROM ripple_auth_rate_limits WHERE bucket = 'test:old'`))
	require.Equal(t, liveWindows, h.count(`SELECT count(*) FROM ripple_auth_rate_limits WHERE bucket = 'test:live'`))
	require.Equal(t, 2, h.count(`SELECT count(*) FROM ripple_auth_sessions`))

	// pruneBatches stops at the first short batch.
	var calls int
	total, err := pruneBatches(h.ctx, 3, func() (int64, error) {
		calls++
		return []int64{3, 3, 1, 3}[calls-1], nil
	})
	require.NoError(t, err)
	require.EqualValues(t, 7, total)
	require.Equal(t, 3, calls)
}

func (h *harness) count(query string, args ...any) int {
	h.t.Helper()
	var n int
	require.NoError(h.t, h.db.Pool.QueryRow(h.ctx, query, args...).Scan(&n))
	return n
}

func (h *harness) exec(query string, args ...any) {
	h.t.Helper()
	_, err := h.db.Pool.Exec(h.ctx, query, args...)
	require.NoError(h.t, err)
}
