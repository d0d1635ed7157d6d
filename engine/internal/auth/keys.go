package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"

	"github.com/ripplehq/ripple/engine/internal/dbsqlc"
)

const (
	// keyCacheTTL is how long a process uses its cached key set before re-reading it, so a
	// rotation made by another process is picked up within this time.
	keyCacheTTL = time.Minute
	// clockLeeway tolerates clock skew between processes when checking exp/iat.
	clockLeeway = 5 * time.Second
	// forcedReloadInterval throttles re-reading keys for an unknown kid (forged tokens must not
	// turn into database load).
	forcedReloadInterval = time.Second
)

var (
	errUnknownKID = errors.New("unknown kid")
	errKeyRetired = errors.New("signing key no longer valid")
)

type signingKey struct {
	kid       string
	pub       ed25519.PublicKey
	priv      ed25519.PrivateKey // only for the active key
	createdAt time.Time
	retiredAt time.Time // zero while active
}

type keySet struct {
	active   *signingKey
	byKID    map[string]*signingKey
	ordered  []*signingKey // newest first
	loadedAt time.Time
}

// retiredKeyLifetime is how long a retired key keeps verifying (and stays in the JWKS): long
// enough for every token it signed to expire, including tokens another process signed with it
// before noticing the rotation.
func (s *Service) retiredKeyLifetime() time.Duration {
	return s.cfg.AccessTokenTTL + keyCacheTTL + clockLeeway + time.Minute
}

// Start makes sure an active signing key exists (generating one on first start) and loads the
// key set. It is safe to call again and from several processes at once.
func (s *Service) Start(ctx context.Context) error {
	if s.devMode {
		s.logger.Warn("auth: no key-encryption key configured (" + KeyEncryptionKeyEnv + "); " +
			"signing keys are stored under a public development key. Do not use this in production.")
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := s.q.SigningKeyLock(ctx, tx); err != nil {
			return err
		}
		n, err := s.q.SigningKeyCountActive(ctx, tx)
		if err != nil || n > 0 {
			return err
		}
		kid, err := s.insertNewKey(ctx, tx)
		if err == nil {
			s.logger.Info("auth: generated signing key", "kid", kid)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("auth: ensuring a signing key: %w", err)
	}
	_, err = s.loadKeys(ctx)
	return err
}

// RotateSigningKey makes a new key the signing key. Tokens signed by the previous key keep
// verifying, and it stays published in the JWKS, until they have all expired.
func (s *Service) RotateSigningKey(ctx context.Context) (string, error) {
	var kid string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := s.q.SigningKeyLock(ctx, tx); err != nil {
			return err
		}
		if err := s.q.SigningKeyRetireActive(ctx, tx, ts(s.now())); err != nil {
			return err
		}
		var err error
		kid, err = s.insertNewKey(ctx, tx)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("auth: rotating signing key: %w", err)
	}
	if _, err := s.loadKeys(ctx); err != nil {
		return "", err
	}
	s.logger.Info("auth: rotated signing key", "kid", kid)
	return kid, nil
}

func (s *Service) insertNewKey(ctx context.Context, tx pgx.Tx) (string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	kid := thumbprint(pub)
	sealed, err := seal(s.keySealKey, priv.Seed(), []byte(kid))
	if err != nil {
		return "", err
	}
	return kid, s.q.SigningKeyInsert(ctx, tx, dbsqlc.SigningKeyInsertParams{
		Kid:              kid,
		PublicKey:        pub,
		PrivateKeySealed: sealed,
		KekFingerprint:   s.kekFingerprint,
		Now:              ts(s.now()),
	})
}

// thumbprint is the RFC 7638 JWK thumbprint of an Ed25519 public key.
func thumbprint(pub ed25519.PublicKey) string {
	canonical := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// loadKeys reads the usable keys and replaces the cache.
func (s *Service) loadKeys(ctx context.Context) (*keySet, error) {
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	return s.loadKeysLocked(ctx)
}

func (s *Service) loadKeysLocked(ctx context.Context) (*keySet, error) {
	now := s.now()
	rows, err := s.q.SigningKeyListUsable(ctx, s.pool, ts(now.Add(-s.retiredKeyLifetime())))
	if err != nil {
		return nil, fmt.Errorf("auth: loading signing keys: %w", err)
	}
	set := &keySet{byKID: make(map[string]*signingKey, len(rows)), loadedAt: now}
	for _, r := range rows {
		if len(r.PublicKey) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("auth: signing key %s has a malformed public key", r.Kid)
		}
		k := &signingKey{kid: r.Kid, pub: ed25519.PublicKey(r.PublicKey), createdAt: r.CreatedAt.Time}
		if r.RetiredAt.Valid {
			k.retiredAt = r.RetiredAt.Time
		} else {
			if string(r.KekFingerprint) != string(s.kekFingerprint) {
				return nil, fmt.Errorf("auth: the active signing key %s was encrypted with a different key-encryption key "+
					"(%s changed, or was set/unset since the key was created)", r.Kid, KeyEncryptionKeyEnv)
			}
			seed, err := open(s.keySealKey, r.PrivateKeySealed, []byte(r.Kid))
			if err != nil || len(seed) != ed25519.SeedSize {
				return nil, fmt.Errorf("auth: decrypting signing key %s failed (wrong %s?)", r.Kid, KeyEncryptionKeyEnv)
			}
			k.priv = ed25519.NewKeyFromSeed(seed)
			if !k.pub.Equal(k.priv.Public()) {
				return nil, fmt.Errorf("auth: signing key %s: private key does not match public key", r.Kid)
			}
			set.active = k
		}
		set.byKID[k.kid] = k
		set.ordered = append(set.ordered, k)
	}
	if set.active == nil {
		return nil, errNotStarted
	}
	s.keys = set
	return set, nil
}

// keySet returns the cached key set, re-reading it when it is older than keyCacheTTL.
func (s *Service) keySet(ctx context.Context) (*keySet, error) {
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	if s.keys != nil && s.now().Sub(s.keys.loadedAt) < keyCacheTTL {
		return s.keys, nil
	}
	return s.loadKeysLocked(ctx)
}

// verificationKey returns the public key for kid, re-reading the key set once (throttled) when
// kid is unknown, since another process may just have rotated.
func (s *Service) verificationKey(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	set, err := s.keySet(ctx)
	if err != nil {
		return nil, err
	}
	k := set.byKID[kid]
	if k == nil && s.now().Sub(set.loadedAt) >= forcedReloadInterval {
		if set, err = s.loadKeys(ctx); err != nil {
			return nil, err
		}
		k = set.byKID[kid]
	}
	if k == nil {
		return nil, errUnknownKID
	}
	if !k.retiredAt.IsZero() && s.now().After(k.retiredAt.Add(s.retiredKeyLifetime())) {
		return nil, errKeyRetired
	}
	return k.pub, nil
}

// tokenClaims is the access token's payload.
type tokenClaims struct {
	jwt.RegisteredClaims
	SessionID string `json:"sid,omitempty"`
}

// issueAccessToken signs an access token for the user in the given session.
func (s *Service) issueAccessToken(ctx context.Context, userID, sessionID int64) (string, time.Time, error) {
	set, err := s.keySet(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	iat := s.now().Truncate(time.Second)
	exp := iat.Add(s.cfg.AccessTokenTTL)
	return s.signClaims(set.active, tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.cfg.Issuer,
			Subject:   strconv.FormatInt(userID, 10),
			Audience:  jwt.ClaimStrings{s.cfg.Audience},
			IssuedAt:  jwt.NewNumericDate(iat),
			ExpiresAt: jwt.NewNumericDate(exp),
			ID:        randomString(12), // jti: two tokens issued in one second still differ
		},
		SessionID: strconv.FormatInt(sessionID, 10),
	}), exp, nil
}

func (s *Service) signClaims(k *signingKey, c tokenClaims) string {
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["kid"] = k.kid
	signed, err := t.SignedString(k.priv)
	if err != nil {
		panic(fmt.Sprintf("auth: signing with Ed25519: %v", err)) // cannot fail with a valid key
	}
	return signed
}

// VerifyAccessToken checks an access token: EdDSA only, a kid naming a known key, a valid
// signature, the configured issuer and audience, a subject, iat, and exp not passed. Every
// failure wraps ErrInvalidToken; an expired but otherwise valid token wraps ErrTokenExpired.
func (s *Service) VerifyAccessToken(ctx context.Context, token string) (*Claims, error) {
	if len(token) > 8192 {
		return nil, fmt.Errorf("%w: too long", ErrInvalidToken)
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(s.cfg.Issuer),
		jwt.WithAudience(s.cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(clockLeeway),
		jwt.WithTimeFunc(s.now),
		jwt.WithStrictDecoding(),
	)
	var c tokenClaims
	var keyErr error
	_, err := parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, errors.New("missing kid")
		}
		pub, err := s.verificationKey(ctx, kid)
		if err != nil && !errors.Is(err, errUnknownKID) && !errors.Is(err, errKeyRetired) {
			keyErr = err // not started, or the database failed: not the token's fault
		}
		return pub, err
	})
	if keyErr != nil {
		return nil, keyErr
	}
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, ErrTokenExpired
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if c.Subject == "" || c.IssuedAt == nil {
		return nil, fmt.Errorf("%w: missing sub or iat", ErrInvalidToken)
	}
	if _, err := strconv.ParseInt(c.Subject, 10, 64); err != nil {
		return nil, fmt.Errorf("%w: malformed sub", ErrInvalidToken)
	}
	return &Claims{
		UserID:    c.Subject,
		SessionID: c.SessionID,
		IssuedAt:  c.IssuedAt.Time,
		ExpiresAt: c.ExpiresAt.Time,
	}, nil
}

type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// jwks returns the published key set: the active key and retired keys still verifying.
func (s *Service) jwks(ctx context.Context) ([]jwk, error) {
	set, err := s.keySet(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]jwk, 0, len(set.ordered))
	for _, k := range set.ordered {
		if !k.retiredAt.IsZero() && s.now().After(k.retiredAt.Add(s.retiredKeyLifetime())) {
			continue
		}
		out = append(out, jwk{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(k.pub), Kid: k.kid, Alg: "EdDSA", Use: "sig"})
	}
	return out, nil
}

func (s *Service) handleJWKS(w http.ResponseWriter, r *http.Request) {
	keys, err := s.jwks(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=60")
	_ = json.NewEncoder(w).Encode(map[string]any{"keys": keys})
}
