// Package auth is Ripple's email + password authentication service.
//
// Passwords are hashed with argon2id (PHC strings that carry their parameters). A credential
// imported from Convex Auth (`ripple import --convex`) holds lucia's Scrypt hash behind
// ConvexScryptPrefix; sign-in verifies it and replaces it with argon2id. Sign-up and
// sign-in return a short-lived JWT access token (EdDSA / Ed25519, published at
// /.well-known/jwks.json) and an opaque refresh token. Refresh tokens are stored only as SHA-256
// hashes, are single use and rotate on every refresh within a session ("family"); presenting a
// spent token again within a short grace window returns the very same successor pair (a retry
// after a lost response), and after the window it revokes the whole family. Failed sign-ins and
// sign-ups are rate limited with counters in Postgres, so every process shares them.
//
// Everything the service stores lives in ripple_* tables (engine/internal/migrate/sql/auth), which
// change capture ignores. Revocation takes effect at the next refresh: an access token stays
// valid until it expires (AccessTokenTTL), which is why that TTL is short.
//
// Nothing secret (password, token, key) is ever logged.
package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ripplehq/ripple/engine/internal/dbsqlc"
)

// KeyEncryptionKeyEnv is the environment variable the engine reads Config.KeyEncryptionKey from
// (base64 of 32 random bytes, e.g. `openssl rand -base64 32`); see ParseKeyEncryptionKey.
const KeyEncryptionKeyEnv = "RIPPLE_KEY_ENCRYPTION_KEY"

// MaxRefreshReuseGrace bounds Config.RefreshReuseGrace.
const MaxRefreshReuseGrace = 10 * time.Second

// Config configures a Service. Zero values take the defaults listed on each field (see
// WithDefaults).
type Config struct {
	// Issuer is the access tokens' "iss" claim, checked on verification. Default "ripple".
	Issuer string
	// Audience is the access tokens' "aud" claim, checked on verification. Default "ripple".
	Audience string

	// AccessTokenTTL is how long an access token is valid. Default 15 minutes.
	AccessTokenTTL time.Duration
	// SessionIdleTTL ends a session (refresh-token family) that has not been refreshed for this
	// long. Default 30 days.
	SessionIdleTTL time.Duration
	// RefreshReuseGrace is how long after a refresh token was spent presenting it again returns
	// the same successor pair instead of revoking the session (a client retrying after a lost
	// response, or two tabs refreshing at once). Default and maximum 10 seconds.
	RefreshReuseGrace time.Duration

	// Retention (Prune, run by the engine's housekeeping; docs/security.md, Retention).
	//
	// SpentTokenRetention is how long a spent refresh token is kept after it was spent. While
	// it is kept, presenting it again revokes its session (reuse detection: the holder of a
	// copy stolen and spent by someone else finds out, and so does the thief); afterwards it is
	// an unknown token, refused without revoking anything. Default SessionIdleTTL, so a client
	// coming back within the time its session would have lasted untouched still detects the
	// reuse; at least RefreshReuseGrace.
	SpentTokenRetention time.Duration
	// EndedSessionRetention is how long a session (with its refresh tokens) is kept after it
	// ended: revoked (sign-out, reuse), or idle past SessionIdleTTL. While kept, its tokens are
	// refused as "session ended" rather than unknown, and the revocation's reason stays for
	// audit. Default 7 days.
	EndedSessionRetention time.Duration
	// PruneBatchSize bounds the rows one statement of Prune deletes (or updates), so no
	// statement holds its locks long; Prune repeats it until a batch comes back short.
	// Default 1,000.
	PruneBatchSize int

	// KeyEncryptionKey (32 bytes, from RIPPLE_KEY_ENCRYPTION_KEY) encrypts the signing keys'
	// private halves at rest and the successor pairs kept for the reuse grace window
	// (AES-256-GCM under keys derived from it).
	//
	// Nil means development mode: a fixed development key derived from a public constant is used
	// instead, so private keys are stored encrypted in form only (anyone with the database can
	// decrypt them), and Start logs a warning. Keys written in development mode are refused
	// once a real key is configured (and the other way round): rotate by starting on a fresh
	// database or deleting ripple_auth_signing_keys, which invalidates outstanding access tokens.
	KeyEncryptionKey []byte

	// SignInFailuresPerAccountAddress failed sign-ins for one email from one client address
	// within its window make further sign-ins for that email from that address fail with
	// RATE_LIMITED until the window ends: the throttle a guesser meets. It is kept per address
	// (as the OWASP authentication cheat sheet advises) so that a stranger's wrong guesses cannot
	// lock a student out from the student's own network path. Defaults 10 per 15 minutes.
	// Unknown emails are counted the same way as known ones.
	SignInFailuresPerAccountAddress       int
	SignInFailuresPerAccountAddressWindow time.Duration
	// SignInFailuresPerAccount bounds the failures for one email over every address, against
	// guessing spread over many addresses; it is high, since reaching it locks the account out
	// everywhere. Defaults 100 per hour.
	SignInFailuresPerAccount       int
	SignInFailuresPerAccountWindow time.Duration
	// SignInFailuresPerAddress is the limit per client address, over every email. Defaults 100
	// per hour.
	SignInFailuresPerAddress       int
	SignInFailuresPerAddressWindow time.Duration
	// SignUpsPerAddress limits sign-up attempts per client address. A school's classes sign up
	// from one network address, a class at once, so it is generous. Defaults 100 per hour.
	SignUpsPerAddress       int
	SignUpsPerAddressWindow time.Duration

	// ClientAddress returns the address rate limits are keyed on. The default is the host part
	// of http.Request.RemoteAddr (IPv6 addresses grouped by /64). X-Forwarded-For and similar
	// headers are NOT trusted by default, since any client can set them: behind a reverse proxy,
	// supply a function that reads the header your proxy sets and that only it can set.
	ClientAddress func(r *http.Request) string

	// Now is the clock. Default time.Now; tests inject one.
	Now func() time.Time
	// Logger receives the service's logs. Default discards.
	Logger *slog.Logger
}

// WithDefaults returns a copy of the config with zero values replaced by defaults.
func (c *Config) WithDefaults() *Config {
	if c == nil {
		c = &Config{}
	}
	out := *c
	setStr := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	setDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	setInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	setStr(&out.Issuer, "ripple")
	setStr(&out.Audience, "ripple")
	setDur(&out.AccessTokenTTL, 15*time.Minute)
	setDur(&out.SessionIdleTTL, 30*24*time.Hour)
	setDur(&out.RefreshReuseGrace, MaxRefreshReuseGrace)
	setDur(&out.SpentTokenRetention, out.SessionIdleTTL)
	setDur(&out.EndedSessionRetention, 7*24*time.Hour)
	setInt(&out.PruneBatchSize, 1000)
	setInt(&out.SignInFailuresPerAccountAddress, 10)
	setDur(&out.SignInFailuresPerAccountAddressWindow, 15*time.Minute)
	setInt(&out.SignInFailuresPerAccount, 100)
	setDur(&out.SignInFailuresPerAccountWindow, time.Hour)
	setInt(&out.SignInFailuresPerAddress, 100)
	setDur(&out.SignInFailuresPerAddressWindow, time.Hour)
	setInt(&out.SignUpsPerAddress, 100)
	setDur(&out.SignUpsPerAddressWindow, time.Hour)
	if out.ClientAddress == nil {
		out.ClientAddress = RemoteAddrHost
	}
	if out.Now == nil {
		out.Now = time.Now
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	return &out
}

func (c *Config) validate() error {
	if c.AccessTokenTTL < time.Second {
		return errors.New("auth: AccessTokenTTL must be at least 1s")
	}
	if c.SessionIdleTTL < c.AccessTokenTTL {
		return errors.New("auth: SessionIdleTTL must be at least AccessTokenTTL")
	}
	if c.RefreshReuseGrace < 0 || c.RefreshReuseGrace > MaxRefreshReuseGrace {
		return fmt.Errorf("auth: RefreshReuseGrace must be between 0 and %s", MaxRefreshReuseGrace)
	}
	if c.SpentTokenRetention < c.RefreshReuseGrace {
		return errors.New("auth: SpentTokenRetention must be at least RefreshReuseGrace")
	}
	if c.EndedSessionRetention < 0 {
		return errors.New("auth: EndedSessionRetention must not be negative")
	}
	if c.PruneBatchSize < 1 || c.PruneBatchSize > 1_000_000 {
		return errors.New("auth: PruneBatchSize must be between 1 and 1,000,000")
	}
	if c.KeyEncryptionKey != nil && len(c.KeyEncryptionKey) != 32 {
		return fmt.Errorf("auth: KeyEncryptionKey must be 32 bytes, got %d", len(c.KeyEncryptionKey))
	}
	for _, l := range []struct {
		name string
		n    int
		w    time.Duration
	}{
		{"SignInFailuresPerAccountAddress", c.SignInFailuresPerAccountAddress, c.SignInFailuresPerAccountAddressWindow},
		{"SignInFailuresPerAccount", c.SignInFailuresPerAccount, c.SignInFailuresPerAccountWindow},
		{"SignInFailuresPerAddress", c.SignInFailuresPerAddress, c.SignInFailuresPerAddressWindow},
		{"SignUpsPerAddress", c.SignUpsPerAddress, c.SignUpsPerAddressWindow},
	} {
		if l.n < 0 {
			return fmt.Errorf("auth: %s must not be negative", l.name)
		}
		if l.w < time.Second {
			return fmt.Errorf("auth: %sWindow must be at least 1s", l.name)
		}
	}
	return nil
}

// ParseKeyEncryptionKey decodes a key-encryption key given as base64 (standard or URL alphabet,
// padded or not) of exactly 32 bytes. An empty string returns nil (development mode).
func ParseKeyEncryptionKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != 32 {
				return nil, fmt.Errorf("%s must decode to 32 bytes, got %d", KeyEncryptionKeyEnv, len(b))
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("%s is not valid base64", KeyEncryptionKeyEnv)
}

// Errors returned by VerifyAccessToken and VerifyAdminKey. ErrTokenExpired wraps
// ErrInvalidToken, so errors.Is(err, ErrInvalidToken) holds for every rejected token.
var (
	ErrInvalidToken    = errors.New("invalid access token")
	ErrTokenExpired    = fmt.Errorf("%w: token expired", ErrInvalidToken)
	ErrInvalidAdminKey = errors.New("invalid admin key")
	errNotStarted      = errors.New("auth: service not started (call Start)")
)

// Claims is what a verified access token says.
type Claims struct {
	UserID    string // users.id as a decimal string ("sub")
	SessionID string // the refresh-token family the token was issued in ("sid")
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// Service is the auth service. It is safe for concurrent use.
type Service struct {
	pool    *pgxpool.Pool
	cfg     *Config
	q       *dbsqlc.Queries
	logger  *slog.Logger
	devMode bool

	kekFingerprint []byte
	keySealKey     []byte // AES-256 key for signing-key private halves
	pairSealKey    []byte // AES-256 key for successor pairs

	dummyHash string        // hashed against when the email is unknown, to equalise timing
	hashSem   chan struct{} // bounds concurrent password hash computations (memory)

	keysMu sync.Mutex
	keys   *keySet
}

// New returns a Service. Call Start before serving.
func New(pool *pgxpool.Pool, cfg *Config) (*Service, error) {
	if pool == nil {
		return nil, errors.New("auth: pool is nil")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Service{
		pool:    pool,
		cfg:     cfg,
		q:       dbsqlc.New(),
		logger:  cfg.Logger,
		hashSem: make(chan struct{}, max(1, runtime.GOMAXPROCS(0))),
	}
	kek := cfg.KeyEncryptionKey
	if kek == nil {
		s.devMode = true
		sum := sha256.Sum256([]byte("ripple development key-encryption key; not secret, never use in production"))
		kek = sum[:]
	}
	s.kekFingerprint = deriveKey(kek, "ripple auth kek fingerprint v1")[:8]
	s.keySealKey = deriveKey(kek, "ripple auth signing key v1")
	s.pairSealKey = deriveKey(kek, "ripple auth refresh successor v1")

	dummy, err := hashPassword(randomString(24))
	if err != nil {
		return nil, err
	}
	s.dummyHash = dummy
	return s, nil
}

func (s *Service) now() time.Time { return s.cfg.Now() }

// Prune deletes what is no longer needed: rate-limit counters whose window ended, successor
// pairs past the grace window, spent refresh tokens past SpentTokenRetention, sessions ended
// (revoked, or idle past SessionIdleTTL) longer ago than EndedSessionRetention, and signing
// keys that can no longer verify anything. Each statement touches at most PruneBatchSize rows
// and is repeated until a batch comes back short. The engine calls it periodically (its
// housekeeping); nothing depends on it for correctness.
func (s *Service) Prune(ctx context.Context) error {
	now := s.now()
	batch := int32(s.cfg.PruneBatchSize)
	steps := []struct {
		what string
		run  func() (int64, error)
	}{
		{"rate-limit windows", func() (int64, error) {
			return s.q.RateLimitPrune(ctx, s.pool, dbsqlc.RateLimitPruneParams{Now: ts(now), BatchSize: batch})
		}},
		{"sealed successor pairs", func() (int64, error) {
			return s.q.RefreshTokenPruneSealed(ctx, s.pool, dbsqlc.RefreshTokenPruneSealedParams{
				SpentBefore: ts(now.Add(-s.cfg.RefreshReuseGrace)), BatchSize: batch})
		}},
		{"spent refresh tokens", func() (int64, error) {
			return s.q.RefreshTokenPruneSpent(ctx, s.pool, dbsqlc.RefreshTokenPruneSpentParams{
				SpentBefore: ts(now.Add(-s.cfg.SpentTokenRetention)), BatchSize: batch})
		}},
		{"ended sessions", func() (int64, error) {
			return s.q.AuthSessionPrune(ctx, s.pool, dbsqlc.AuthSessionPruneParams{
				IdleBefore:    ts(now.Add(-s.cfg.SessionIdleTTL - s.cfg.EndedSessionRetention)),
				RevokedBefore: ts(now.Add(-s.cfg.EndedSessionRetention)),
				BatchSize:     batch,
			})
		}},
	}
	for _, step := range steps {
		n, err := pruneBatches(ctx, int64(batch), step.run)
		if err != nil {
			return fmt.Errorf("auth: pruning %s: %w", step.what, err)
		}
		if n > 0 {
			s.logger.Debug("auth: pruned", "what", step.what, "rows", n)
		}
	}
	_, err := s.q.SigningKeyPrune(ctx, s.pool, ts(now.Add(-s.retiredKeyLifetime())))
	return err
}

// pruneBatches runs one bounded statement (each its own short transaction) until it affects
// fewer than batch rows, and returns the total.
func pruneBatches(ctx context.Context, batch int64, run func() (int64, error)) (int64, error) {
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := run()
		total += n
		if err != nil || n < batch {
			return total, err
		}
	}
}

func ts(t time.Time) pgtype.Timestamptz { return pgtype.Timestamptz{Time: t, Valid: true} }
