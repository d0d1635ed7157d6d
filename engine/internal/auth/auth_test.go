package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

const pw = "correct horse battery"

func TestSignUpAndSignIn(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)

	r := h.post("/api/auth/signup", map[string]string{"email": "  Ada@Example.COM ", "password": pw, "name": " Ada "})
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	raw := r.json(t)
	require.ElementsMatch(t, []string{"accessToken", "refreshToken", "expiresAt", "user"}, keys(raw))
	_, isNumber := raw["expiresAt"].(float64)
	require.True(t, isNumber, "expiresAt must be a JSON number")
	user := raw["user"].(map[string]any)
	require.Equal(t, "ada@example.com", user["email"])
	require.Equal(t, "Ada", user["name"])
	id, isString := user["_id"].(string)
	require.True(t, isString, "_id must be a string")
	require.Equal(t, "no-store", r.header.Get("Cache-Control"))

	var first authResponse
	require.NoError(t, json.Unmarshal(r.body, &first))
	require.Len(t, first.RefreshToken, 43) // 32 bytes, base64url
	require.Equal(t, h.clock.Now().Add(15*time.Minute).UnixMilli(), first.ExpiresAt)
	claims, err := h.svc.VerifyAccessToken(h.ctx, first.AccessToken)
	require.NoError(t, err)
	require.Equal(t, id, claims.UserID)
	require.Equal(t, first.ExpiresAt, claims.ExpiresAt.UnixMilli())

	// The users row and the credential exist; the credential is an argon2id PHC string.
	var name, email, hash string
	uid, _ := strconv.ParseInt(id, 10, 64)
	require.NoError(t, h.db.Pool.QueryRow(h.ctx, `SELECT u.name, u.email, c.password_hash FROM users u
		JOIN ripple_auth_credentials c ON c.user_id = u.id WHERE u.id = $1`, uid).Scan(&name, &email, &hash))
	require.Equal(t, "Ada", name)
	require.Equal(t, "ada@example.com", email)
	require.True(t, strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1$"), hash)

	// Sign in with differently formatted email.
	r = h.signIn("ADA@example.com ", pw)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	var second authResponse
	require.NoError(t, json.Unmarshal(r.body, &second))
	require.Equal(t, id, second.User.ID)
	require.NotEqual(t, first.RefreshToken, second.RefreshToken)
	_, err = h.svc.VerifyAccessToken(h.ctx, second.AccessToken)
	require.NoError(t, err)

	// Duplicate email, any case: CONFLICT, and no second users row.
	r = h.post("/api/auth/signup", map[string]string{"email": "ada@EXAMPLE.com", "password": pw, "name": "Other"})
	requireAPIError(t, r, http.StatusConflict, "CONFLICT")
	var n int
	require.NoError(t, h.db.Pool.QueryRow(h.ctx, `SELECT count(*) FROM users`).Scan(&n))
	require.Equal(t, 1, n)
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestRequestValidation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	long := strings.Repeat("x", 129)
	for _, tc := range []struct {
		name, path, body string
	}{
		{"short password", "/api/auth/signup", `{"email":"a@b.co","password":"1234567","name":"A"}`},
		{"password over 128 bytes is refused, not truncated", "/api/auth/signup", `{"email":"a@b.co","password":"` + long + `","name":"A"}`},
		{"bad email", "/api/auth/signup", `{"email":"not-an-email","password":"` + pw + `","name":"A"}`},
		{"email with display name", "/api/auth/signup", `{"email":"Ada <a@b.co>","password":"` + pw + `","name":"A"}`},
		{"missing name", "/api/auth/signup", `{"email":"a@b.co","password":"` + pw + `"}`},
		{"unknown field", "/api/auth/signup", `{"email":"a@b.co","password":"` + pw + `","name":"A","admin":true}`},
		{"wrong type", "/api/auth/signin", `{"email":"a@b.co","password":12345678}`},
		{"trailing data", "/api/auth/signin", `{"email":"a@b.co","password":"` + pw + `"} {}`},
		{"not json", "/api/auth/signin", `email=a@b.co`},
		{"empty", "/api/auth/refresh", ``},
		{"missing refresh token", "/api/auth/refresh", `{}`},
		{"too large", "/api/auth/signin", `{"email":"a@b.co","password":"` + strings.Repeat("y", 70<<10) + `"}`},
		{"signin password over 128 bytes", "/api/auth/signin", `{"email":"a@b.co","password":"` + long + `"}`},
	} {
		r := h.postRaw(tc.path, tc.body)
		m := requireAPIError(t, r, http.StatusBadRequest, "INVALID_ARGUMENT")
		t.Logf("%s: %s", tc.name, m["message"])
	}
	m := requireAPIError(t, h.postRaw("/api/auth/signin", `{"email":"a@b.co","password":12345678}`), 400, "INVALID_ARGUMENT")
	require.Contains(t, m["message"], "password")

	// A 128-byte password is accepted and exactly those bytes sign in.
	p128 := strings.Repeat("p", 128)
	h.signUp("long@example.com", p128, "Long")
	require.Equal(t, http.StatusOK, h.signIn("long@example.com", p128).status)
	requireAPIError(t, h.signIn("long@example.com", p128[:127]), 401, "UNAUTHENTICATED")

	r := h.post("/api/auth/signin", nil)
	requireAPIError(t, r, http.StatusBadRequest, "INVALID_ARGUMENT")
	resp, err := http.Get(h.srv.URL + "/api/auth/signin")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

func TestSignInFailuresAreIndistinguishable(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.signUp("bob@example.com", pw, "Bob")

	wrong := h.signIn("bob@example.com", "wrong password")
	unknown := h.signIn("nobody@example.com", pw)
	requireAPIError(t, wrong, http.StatusUnauthorized, "UNAUTHENTICATED")
	requireAPIError(t, unknown, http.StatusUnauthorized, "UNAUTHENTICATED")
	require.Equal(t, string(wrong.body), string(unknown.body))
	require.Equal(t, wrong.header.Get("Content-Type"), unknown.header.Get("Content-Type"))
}

func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	p1 := h.signUp("carol@example.com", pw, "Carol")

	h.clock.Advance(time.Minute)
	r := h.refresh(p1.RefreshToken)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	require.ElementsMatch(t, []string{"accessToken", "refreshToken", "expiresAt", "user"}, keys(r.json(t)))
	var p2 authResponse
	require.NoError(t, json.Unmarshal(r.body, &p2))
	require.NotEqual(t, p1.RefreshToken, p2.RefreshToken)
	require.NotEqual(t, p1.AccessToken, p2.AccessToken)
	require.Equal(t, p1.User, p2.User)
	require.Equal(t, h.clock.Now().Add(15*time.Minute).UnixMilli(), p2.ExpiresAt)
	c1, err := h.svc.VerifyAccessToken(h.ctx, p1.AccessToken)
	require.NoError(t, err)
	c2, err := h.svc.VerifyAccessToken(h.ctx, p2.AccessToken)
	require.NoError(t, err)
	require.Equal(t, c1.SessionID, c2.SessionID, "same family")

	p3 := h.authOK("/api/auth/refresh", map[string]string{"refreshToken": p2.RefreshToken})
	require.NotEqual(t, p2.RefreshToken, p3.RefreshToken)

	// Only the SHA-256 of a refresh token is stored.
	var stored int
	require.NoError(t, h.db.Pool.QueryRow(h.ctx, `SELECT count(*) FROM ripple_auth_refresh_tokens
		WHERE token_hash = sha256(convert_to($1, 'UTF8'))`, p3.RefreshToken).Scan(&stored))
	require.Equal(t, 1, stored)
	var rowsText string
	require.NoError(t, h.db.Pool.QueryRow(h.ctx, `SELECT coalesce(string_agg(t::text, ' '), '') FROM ripple_auth_refresh_tokens t`).Scan(&rowsText))
	require.NotContains(t, rowsText, p3.RefreshToken)

	requireAPIError(t, h.refresh("not-a-token"), http.StatusUnauthorized, "UNAUTHENTICATED")
}

func TestRefreshReuseWithinGraceReturnsSamePair(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	p1 := h.signUp("dan@example.com", pw, "Dan")

	first := h.refresh(p1.RefreshToken)
	require.Equal(t, http.StatusOK, first.status)
	h.clock.Advance(9 * time.Second)
	again := h.refresh(p1.RefreshToken)
	require.Equal(t, http.StatusOK, again.status, "body: %s", again.body)
	require.JSONEq(t, string(first.body), string(again.body), "a retry within the grace window gets the identical pair")

	// The successor is still good, and rotates normally.
	var p2 authResponse
	require.NoError(t, json.Unmarshal(first.body, &p2))
	require.Equal(t, http.StatusOK, h.refresh(p2.RefreshToken).status)

	// Sealed successors are cleared once the grace window has passed.
	h.clock.Advance(11 * time.Second)
	require.NoError(t, h.svc.Prune(h.ctx))
	var sealed int
	require.NoError(t, h.db.Pool.QueryRow(h.ctx, `SELECT count(*) FROM ripple_auth_refresh_tokens WHERE successor_sealed IS NOT NULL`).Scan(&sealed))
	require.Zero(t, sealed)
}

func TestConcurrentRefreshOfOneTokenReturnsSamePair(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	p1 := h.signUp("erin@example.com", pw, "Erin")

	const n = 4
	bodies := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := h.refresh(p1.RefreshToken)
			if r.status == http.StatusOK {
				bodies[i] = string(r.body)
			}
		})
	}
	wg.Wait()
	for i := 1; i < n; i++ {
		require.NotEmpty(t, bodies[i])
		require.JSONEq(t, bodies[0], bodies[i])
	}
}

func TestRefreshReuseAfterGraceRevokesFamily(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	p1 := h.signUp("frank@example.com", pw, "Frank")
	other := h.authOK("/api/auth/signin", map[string]string{"email": "frank@example.com", "password": pw})

	p2 := h.authOK("/api/auth/refresh", map[string]string{"refreshToken": p1.RefreshToken})
	h.clock.Advance(10*time.Second + time.Millisecond)
	requireAPIError(t, h.refresh(p1.RefreshToken), http.StatusUnauthorized, "UNAUTHENTICATED")
	// The whole family is dead, including the legitimate successor.
	requireAPIError(t, h.refresh(p2.RefreshToken), http.StatusUnauthorized, "UNAUTHENTICATED")
	requireAPIError(t, h.refresh(p1.RefreshToken), http.StatusUnauthorized, "UNAUTHENTICATED")

	var reason string
	require.NoError(t, h.db.Pool.QueryRow(h.ctx, `SELECT revoked_reason FROM ripple_auth_sessions WHERE revoked_at IS NOT NULL`).Scan(&reason))
	require.Equal(t, "refresh_token_reuse", reason)

	// Another session of the same user is untouched.
	require.Equal(t, http.StatusOK, h.refresh(other.RefreshToken).status)
	require.Contains(t, h.logs.String(), "spent refresh token reused")
}

func TestSignOut(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	p1 := h.signUp("gina@example.com", pw, "Gina")
	other := h.authOK("/api/auth/signin", map[string]string{"email": "gina@example.com", "password": pw})
	p2 := h.authOK("/api/auth/refresh", map[string]string{"refreshToken": p1.RefreshToken})

	r := h.post("/api/auth/signout", map[string]string{"refreshToken": p2.RefreshToken})
	require.Equal(t, http.StatusOK, r.status)
	require.JSONEq(t, `{}`, string(r.body))
	requireAPIError(t, h.refresh(p2.RefreshToken), http.StatusUnauthorized, "UNAUTHENTICATED")
	// Even within the grace window, the spent predecessor no longer yields a pair.
	requireAPIError(t, h.refresh(p1.RefreshToken), http.StatusUnauthorized, "UNAUTHENTICATED")
	require.Equal(t, http.StatusOK, h.refresh(other.RefreshToken).status)

	// Signing out twice, or with an unknown token, is fine.
	require.Equal(t, http.StatusOK, h.post("/api/auth/signout", map[string]string{"refreshToken": p2.RefreshToken}).status)
	require.Equal(t, http.StatusOK, h.post("/api/auth/signout", map[string]string{"refreshToken": "unknown"}).status)
	requireAPIError(t, h.post("/api/auth/signout", map[string]string{}), http.StatusBadRequest, "INVALID_ARGUMENT")
}

func TestSessionIdleExpiry(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	p := h.signUp("hana@example.com", pw, "Hana")

	// Refreshing keeps a session alive past 30 days in total.
	for range 2 {
		h.clock.Advance(29 * 24 * time.Hour)
		p = h.authOK("/api/auth/refresh", map[string]string{"refreshToken": p.RefreshToken})
	}
	h.clock.Advance(30*24*time.Hour + time.Second)
	m := requireAPIError(t, h.refresh(p.RefreshToken), http.StatusUnauthorized, "UNAUTHENTICATED")
	require.Contains(t, m["message"], "expired")
	var reason string
	require.NoError(t, h.db.Pool.QueryRow(h.ctx, `SELECT revoked_reason FROM ripple_auth_sessions`).Scan(&reason))
	require.Equal(t, "idle", reason)
}

func TestAccessTokenExpiry(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	p := h.signUp("ivan@example.com", pw, "Ivan")

	h.clock.Advance(15*time.Minute - time.Second)
	_, err := h.svc.VerifyAccessToken(h.ctx, p.AccessToken)
	require.NoError(t, err)

	h.clock.Advance(time.Second + clockLeeway + time.Second)
	_, err = h.svc.VerifyAccessToken(h.ctx, p.AccessToken)
	require.ErrorIs(t, err, ErrTokenExpired)
	require.ErrorIs(t, err, ErrInvalidToken)
}

func TestSigningKeyRotation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.KeyEncryptionKey = testKEK() })
	p := h.signUp("judy@example.com", pw, "Judy")
	oldKID := tokenKID(t, p.AccessToken)
	require.Equal(t, []string{oldKID}, kids(h.jwks()))

	// Another process (a second Service on the same database) with its own cache.
	other := newHarnessOn(t, h.db, func(c *Config) { c.KeyEncryptionKey = testKEK(); c.Now = h.clock.Now })

	newKID, err := h.svc.RotateSigningKey(h.ctx)
	require.NoError(t, err)
	require.NotEqual(t, oldKID, newKID)
	p2 := h.authOK("/api/auth/signin", map[string]string{"email": "judy@example.com", "password": pw})
	require.Equal(t, newKID, tokenKID(t, p2.AccessToken))

	for _, tok := range []string{p.AccessToken, p2.AccessToken} {
		_, err := h.svc.VerifyAccessToken(h.ctx, tok)
		require.NoError(t, err)
	}
	ks := h.jwks()
	require.ElementsMatch(t, []string{oldKID, newKID}, kids(ks))
	for _, k := range ks {
		require.Equal(t, "OKP", k.Kty)
		require.Equal(t, "Ed25519", k.Crv)
		require.Equal(t, "EdDSA", k.Alg)
		require.Equal(t, "sig", k.Use)
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		require.NoError(t, err)
		require.Equal(t, k.Kid, thumbprint(ed25519.PublicKey(x)))
	}

	// The other process learns the new kid when it first sees it (throttled reload).
	h.clock.Advance(2 * time.Second)
	_, err = other.svc.VerifyAccessToken(h.ctx, p2.AccessToken)
	require.NoError(t, err)
	_, err = other.svc.VerifyAccessToken(h.ctx, p.AccessToken)
	require.NoError(t, err)

	// Once everything the old key signed has expired, it is no longer published or accepted.
	h.clock.Advance(h.svc.retiredKeyLifetime())
	require.Equal(t, []string{newKID}, kids(h.jwks()))
	_, err = h.svc.VerifyAccessToken(h.ctx, p.AccessToken)
	require.ErrorIs(t, err, ErrInvalidToken)
	require.NoError(t, h.svc.Prune(h.ctx))
	var n int
	require.NoError(t, h.db.Pool.QueryRow(h.ctx, `SELECT count(*) FROM ripple_auth_signing_keys`).Scan(&n))
	require.Equal(t, 1, n)

	// A process with a different key-encryption key (or none) refuses to start.
	for _, kek := range [][]byte{nil, make([]byte, 32)} {
		svc, err := New(h.db.Pool, &Config{KeyEncryptionKey: kek, Now: h.clock.Now})
		require.NoError(t, err)
		err = svc.Start(h.ctx)
		require.ErrorContains(t, err, KeyEncryptionKeyEnv)
	}
}

func testKEK() []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = byte(i * 7)
	}
	return k
}

func kids(ks []jwk) []string {
	var out []string
	for _, k := range ks {
		out = append(out, k.Kid)
	}
	return out
}

func tokenKID(t *testing.T, token string) string {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	require.NoError(t, err)
	return tok.Header["kid"].(string)
}

func TestForgedTokensAreRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	p := h.signUp("kim@example.com", pw, "Kim")
	kid := tokenKID(t, p.AccessToken)
	set, err := h.svc.keySet(h.ctx)
	require.NoError(t, err)
	active := set.active

	now := h.clock.Now()
	valid := func() tokenClaims {
		return tokenClaims{RegisteredClaims: jwt.RegisteredClaims{
			Issuer: "ripple", Audience: jwt.ClaimStrings{"ripple"}, Subject: p.User.ID,
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)),
		}}
	}
	// Sanity: a token built this way with the real key verifies.
	_, err = h.svc.VerifyAccessToken(h.ctx, h.svc.signClaims(active, valid()))
	require.NoError(t, err)

	sign := func(method jwt.SigningMethod, key any, kid string, c tokenClaims) string {
		tok := jwt.NewWithClaims(method, c)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		require.NoError(t, err)
		return s
	}
	_, strangerKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)

	withClaims := func(f func(*tokenClaims)) tokenClaims { c := valid(); f(&c); return c }
	parts := strings.Split(p.AccessToken, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	tamperedPayload := strings.Replace(string(payload), `"sub":"`+p.User.ID+`"`, `"sub":"999"`, 1)
	require.NotEqual(t, string(payload), tamperedPayload)

	cases := map[string]string{
		"alg none":                    sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, valid()),
		"HS256 with public key bytes": sign(jwt.SigningMethodHS256, []byte(active.pub), kid, valid()),
		"HS256 with JWK x as secret":  sign(jwt.SigningMethodHS256, []byte(base64.RawURLEncoding.EncodeToString(active.pub)), kid, valid()),
		"unknown kid":                 sign(jwt.SigningMethodEdDSA, strangerKey, "not-a-kid", valid()),
		"real kid, stranger's key":    sign(jwt.SigningMethodEdDSA, strangerKey, kid, valid()),
		"no kid":                      sign(jwt.SigningMethodEdDSA, active.priv, "", valid()),
		"wrong issuer":                h.svc.signClaims(active, withClaims(func(c *tokenClaims) { c.Issuer = "evil" })),
		"wrong audience":              h.svc.signClaims(active, withClaims(func(c *tokenClaims) { c.Audience = jwt.ClaimStrings{"other"} })),
		"no subject":                  h.svc.signClaims(active, withClaims(func(c *tokenClaims) { c.Subject = "" })),
		"no exp":                      h.svc.signClaims(active, withClaims(func(c *tokenClaims) { c.ExpiresAt = nil })),
		"no iat":                      h.svc.signClaims(active, withClaims(func(c *tokenClaims) { c.IssuedAt = nil })),
		"iat in the future":           h.svc.signClaims(active, withClaims(func(c *tokenClaims) { c.IssuedAt = jwt.NewNumericDate(now.Add(time.Hour)) })),
		"tampered payload":            parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(tamperedPayload)) + "." + parts[2],
		"tampered signature":          parts[0] + "." + parts[1] + "." + flipLast(parts[2]),
		"garbage":                     "abc.def.ghi",
		"empty":                       "",
		"expired": h.svc.signClaims(active, withClaims(func(c *tokenClaims) {
			c.IssuedAt = jwt.NewNumericDate(now.Add(-time.Hour))
			c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute))
		})),
	}
	for name, tok := range cases {
		claims, err := h.svc.VerifyAccessToken(h.ctx, tok)
		require.ErrorIs(t, err, ErrInvalidToken, name)
		require.Nil(t, claims, name)
	}
	// Expiry is reported as such only for an otherwise valid token.
	_, err = h.svc.VerifyAccessToken(h.ctx, cases["expired"])
	require.ErrorIs(t, err, ErrTokenExpired)
	_, err = h.svc.VerifyAccessToken(h.ctx, sign(jwt.SigningMethodEdDSA, strangerKey, kid, withClaims(func(c *tokenClaims) {
		c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute))
	})))
	require.ErrorIs(t, err, ErrInvalidToken)
	require.False(t, errors.Is(err, ErrTokenExpired), "a forged expired token is invalid, not merely expired")
}

func flipLast(s string) string {
	b := []byte(s)
	if b[len(b)-2] == 'A' {
		b[len(b)-2] = 'B'
	} else {
		b[len(b)-2] = 'A'
	}
	return string(b)
}

func TestRateLimits(t *testing.T) {
	t.Parallel()

	t.Run("failed sign-ins per account and address", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, func(c *Config) {
			c.SignInFailuresPerAccountAddress = 3
			c.ClientAddress = testAddress
		})
		h.signUp("leo@example.com", pw, "Leo")
		for range 3 {
			requireAPIError(t, h.signInFrom("203.0.113.9", "leo@example.com", "wrong password"), 401, "UNAUTHENTICATED")
		}
		// Throttled now from the guesser's address, even with the right password; other
		// accounts are unaffected.
		r := h.signInFrom("203.0.113.9", "LEO@example.com", pw)
		m := requireAPIError(t, r, http.StatusTooManyRequests, "RATE_LIMITED")
		window := 15 * time.Minute
		wantRetry := h.clock.Now().Truncate(window).Add(window).Sub(h.clock.Now())
		require.Equal(t, float64(wantRetry.Milliseconds()), m["retryAfterMs"])
		require.Equal(t, strconv.Itoa(int(wantRetry.Seconds())), r.header.Get("Retry-After"))
		h.signUp("mia@example.com", pw, "Mia")
		require.Equal(t, http.StatusOK, h.signInFrom("203.0.113.9", "mia@example.com", pw).status)
		// A stranger's guesses do not lock Leo out from Leo's own address.
		require.Equal(t, http.StatusOK, h.signInFrom("198.51.100.7", "leo@example.com", pw).status)

		// Unknown emails are limited the same way (no enumeration through the limiter).
		for range 3 {
			requireAPIError(t, h.signInFrom("203.0.113.9", "ghost@example.com", "wrong password"), 401, "UNAUTHENTICATED")
		}
		requireAPIError(t, h.signInFrom("203.0.113.9", "ghost@example.com", "wrong password"), 429, "RATE_LIMITED")

		h.clock.Advance(wantRetry)
		require.Equal(t, http.StatusOK, h.signInFrom("203.0.113.9", "leo@example.com", pw).status)
	})

	t.Run("failed sign-ins per account over every address", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, func(c *Config) {
			c.SignInFailuresPerAccount = 4
			c.ClientAddress = testAddress
		})
		h.signUp("max@example.com", pw, "Max")
		for i := range 4 { // guesses spread over addresses, each under its own throttle
			requireAPIError(t, h.signInFrom(fmt.Sprintf("192.0.2.%d", i+1), "max@example.com", "wrong password"), 401, "UNAUTHENTICATED")
		}
		requireAPIError(t, h.signInFrom("192.0.2.99", "max@example.com", pw), 429, "RATE_LIMITED")
		h.clock.Advance(time.Hour)
		require.Equal(t, http.StatusOK, h.signInFrom("192.0.2.99", "max@example.com", pw).status)
	})

	t.Run("guesses sent at once are counted before any is verified", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, func(c *Config) { c.SignInFailuresPerAccountAddress = 10 })
		h.signUp("ola@example.com", pw, "Ola")
		statuses := make(chan int, 30)
		var wg sync.WaitGroup
		for range 30 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				statuses <- h.signIn("ola@example.com", "wrong password").status
			}()
		}
		wg.Wait()
		close(statuses)
		verified := 0
		for s := range statuses {
			if s == http.StatusUnauthorized {
				verified++
			} else {
				require.Equal(t, http.StatusTooManyRequests, s)
			}
		}
		require.LessOrEqual(t, verified, 10, "more guesses were checked than the limit allows")
		requireAPIError(t, h.signIn("ola@example.com", pw), 429, "RATE_LIMITED")
	})

	t.Run("failed sign-ins per address", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, func(c *Config) {
			c.SignInFailuresPerAddress = 2
			c.SignInFailuresPerAddressWindow = 10 * time.Minute
		})
		h.signUp("nia@example.com", pw, "Nia")
		requireAPIError(t, h.signIn("a@example.com", pw), 401, "UNAUTHENTICATED")
		requireAPIError(t, h.signIn("b@example.com", pw), 401, "UNAUTHENTICATED")
		r := h.signIn("nia@example.com", pw)
		requireAPIError(t, r, 429, "RATE_LIMITED")
		require.NotEmpty(t, r.header.Get("Retry-After"))
		h.clock.Advance(10 * time.Minute)
		require.Equal(t, http.StatusOK, h.signIn("nia@example.com", pw).status)
	})

	t.Run("a class signs up from one address", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil) // the defaults
		var wg sync.WaitGroup
		statuses := make(chan int, 30)
		for i := range 30 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				statuses <- h.post("/api/auth/signup", map[string]string{"email": fmt.Sprintf("pupil%d@school.example", i), "password": pw, "name": "Pupil"}).status
			}()
		}
		wg.Wait()
		close(statuses)
		for s := range statuses {
			require.Equal(t, http.StatusOK, s, "a pupil of a class signing up at once was refused")
		}
	})

	t.Run("sign-ups per address", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, func(c *Config) { c.SignUpsPerAddress = 2 })
		h.signUp("o1@example.com", pw, "O")
		h.signUp("o2@example.com", pw, "O")
		r := h.post("/api/auth/signup", map[string]string{"email": "o3@example.com", "password": pw, "name": "O"})
		m := requireAPIError(t, r, 429, "RATE_LIMITED")
		require.Greater(t, m["retryAfterMs"], float64(0))
		h.clock.Advance(time.Hour)
		h.signUp("o3@example.com", pw, "O")
	})
}

func TestAdminKeys(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	key, err := h.svc.CreateAdminKey(h.ctx)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(key, adminKeyPrefix))
	require.NoError(t, h.svc.VerifyAdminKey(h.ctx, key))
	require.ErrorIs(t, h.svc.VerifyAdminKey(h.ctx, key+"x"), ErrInvalidAdminKey)
	require.ErrorIs(t, h.svc.VerifyAdminKey(h.ctx, ""), ErrInvalidAdminKey)
	key2, err := h.svc.CreateAdminKey(h.ctx)
	require.NoError(t, err)
	require.NotEqual(t, key, key2)

	var found int
	require.NoError(t, h.db.Pool.QueryRow(h.ctx, `SELECT count(*) FROM ripple_auth_admin_keys WHERE encode(key_hash, 'escape') LIKE '%' || $1 || '%'`, key).Scan(&found))
	require.Zero(t, found)
	a := h.svc.Authenticator()
	require.NoError(t, a.VerifyAdminKey(h.ctx, key))
	p := h.signUp("admin@example.com", pw, "Admin")
	uid, err := a.VerifyAccessToken(h.ctx, p.AccessToken)
	require.NoError(t, err)
	require.Equal(t, p.User.ID, uid)
	_, err = a.VerifyAccessToken(h.ctx, "x")
	require.ErrorIs(t, err, ErrInvalidToken)

	_, err = h.db.Pool.Exec(h.ctx, `UPDATE ripple_auth_admin_keys SET revoked_at = now()`)
	require.NoError(t, err)
	require.ErrorIs(t, h.svc.VerifyAdminKey(h.ctx, key), ErrInvalidAdminKey)
}

func TestNoSecretsInLogs(t *testing.T) {
	t.Parallel()
	kek := testKEK()
	h := newHarness(t, func(c *Config) { c.KeyEncryptionKey = kek; c.SignInFailuresPerAccountAddress = 2 })
	var secrets []string
	add := func(p authResponse) {
		secrets = append(secrets, p.AccessToken, p.RefreshToken, strings.Split(p.AccessToken, ".")[2])
	}
	passwords := []string{"s3cret-passphrase-1", "wrong-passphrase-2", "s3cret-passphrase-3"}
	secrets = append(secrets, passwords...)

	p := h.signUp("nora@example.com", passwords[0], "Nora")
	add(p)
	h.signIn("nora@example.com", passwords[1])
	h.signIn("zed@example.com", passwords[1])
	h.signIn("nora@example.com", passwords[1])
	h.signIn("nora@example.com", passwords[0]) // rate limited
	h.clock.Advance(time.Hour)
	p2 := h.authOK("/api/auth/signin", map[string]string{"email": "nora@example.com", "password": passwords[0]})
	add(p2)
	p3 := h.authOK("/api/auth/refresh", map[string]string{"refreshToken": p2.RefreshToken})
	add(p3)
	h.refresh(p2.RefreshToken) // grace retry
	h.clock.Advance(time.Minute)
	h.refresh(p2.RefreshToken) // reuse: revokes
	h.refresh(p3.RefreshToken)
	h.post("/api/auth/signout", map[string]string{"refreshToken": p.RefreshToken})
	h.post("/api/auth/signup", map[string]string{"email": "nora@example.com", "password": passwords[2], "name": "N"})
	_, err := h.svc.VerifyAccessToken(h.ctx, p.AccessToken+"x")
	require.Error(t, err)
	_, err = h.svc.RotateSigningKey(h.ctx)
	require.NoError(t, err)
	admin, err := h.svc.CreateAdminKey(h.ctx)
	require.NoError(t, err)
	require.NoError(t, h.svc.VerifyAdminKey(h.ctx, admin))
	secrets = append(secrets, admin)

	set, err := h.svc.keySet(h.ctx)
	require.NoError(t, err)
	secrets = append(secrets,
		base64.StdEncoding.EncodeToString(kek), base64.RawURLEncoding.EncodeToString(kek), string(kek),
		base64.RawURLEncoding.EncodeToString(set.active.priv.Seed()), base64.StdEncoding.EncodeToString(set.active.priv.Seed()))

	logs := h.logs.String()
	require.Contains(t, logs, "auth: signed in", "the flows did log")
	require.Contains(t, logs, "auth: sign-in failed")
	for _, s := range secrets {
		require.NotContains(t, logs, s)
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	cfg := (&Config{}).WithDefaults()
	require.NoError(t, cfg.validate())
	require.Equal(t, 15*time.Minute, cfg.AccessTokenTTL)
	require.Equal(t, 30*24*time.Hour, cfg.SessionIdleTTL)
	require.Equal(t, 10*time.Second, cfg.RefreshReuseGrace)
	require.Equal(t, "ripple", cfg.Issuer)
	require.Equal(t, "ripple", cfg.Audience)

	for name, c := range map[string]*Config{
		"grace over 10s": {RefreshReuseGrace: 11 * time.Second},
		"short kek":      {KeyEncryptionKey: make([]byte, 16)},
		"negative limit": {SignUpsPerAddress: -1},
		"idle < access":  {AccessTokenTTL: time.Hour, SessionIdleTTL: time.Minute},
	} {
		require.Error(t, c.WithDefaults().validate(), name)
	}

	k, err := ParseKeyEncryptionKey(base64.StdEncoding.EncodeToString(testKEK()))
	require.NoError(t, err)
	require.Equal(t, testKEK(), k)
	k, err = ParseKeyEncryptionKey("")
	require.NoError(t, err)
	require.Nil(t, k)
	_, err = ParseKeyEncryptionKey(base64.StdEncoding.EncodeToString([]byte("short")))
	require.Error(t, err)
}

func TestPasswordHashing(t *testing.T) {
	t.Parallel()
	h1, err := hashPassword(pw)
	require.NoError(t, err)
	h2, err := hashPassword(pw)
	require.NoError(t, err)
	require.NotEqual(t, h1, h2, "per-hash random salt")
	ok, rehash, err := checkPassword(pw, h1)
	require.NoError(t, err)
	require.True(t, ok)
	require.False(t, rehash)
	ok, _, err = checkPassword(pw+"x", h1)
	require.NoError(t, err)
	require.False(t, ok)

	// A weaker stored hash still verifies and asks to be upgraded.
	weak := "$argon2id$v=19$m=4096,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$" // salt "saltsaltsaltsalt"
	_, salt, _, err := parsePHC(h1)
	require.NoError(t, err)
	require.Len(t, salt, 16)
	weak += b64.EncodeToString(argon2IDKey(pw, "saltsaltsaltsalt", 1, 4096))
	ok, rehash, err = checkPassword(pw, weak)
	require.NoError(t, err)
	require.True(t, ok)
	require.True(t, rehash)

	for _, bad := range []string{"", "$argon2i$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", "$argon2id$v=19$m=999999999,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"} {
		_, _, err := checkPassword(pw, bad)
		require.Error(t, err)
	}
}

// Sign-up refuses addresses that only look like ASCII and names with hidden characters, so no
// new account can read like an existing one.
func TestSignUpRefusesLookAlikes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.signUp("eve@example.com", pw, "Eve")
	for _, email := range []string{
		"e\u200bve@example.com", // zero-width space
		"\uff45ve@example.com",  // fullwidth e
		"\u0435ve@example.com",  // Cyrillic e
		"e\u0301ve@example.com", // combining accent
	} {
		r := h.post("/api/auth/signup", map[string]string{"email": email, "password": pw, "name": "Not Eve"})
		m := requireAPIError(t, r, http.StatusBadRequest, "INVALID_ARGUMENT")
		require.Contains(t, m["message"], "ASCII", email)
	}
	for _, name := range []string{"Ev\x00e", "Eve\u202e", "Eve\tTeacher"} {
		r := h.post("/api/auth/signup", map[string]string{"email": "x" + strconv.Itoa(len(name)) + "@example.com", "password": pw, "name": name})
		requireAPIError(t, r, http.StatusBadRequest, "INVALID_ARGUMENT")
	}
}

func TestForwardedForTrustsOnlyItsProxies(t *testing.T) {
	t.Parallel()
	trusted, err := ParseTrusted("10.0.0.0/8, 127.0.0.1, ::1")
	require.NoError(t, err)
	addr := ForwardedFor(trusted)
	req := func(peer string, xff ...string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/api/auth/signin", nil)
		r.RemoteAddr = peer
		for _, v := range xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		return r
	}
	for _, tt := range []struct {
		name string
		r    *http.Request
		want string
	}{
		{"a direct client is its peer, whatever it claims", req("203.0.113.9:5000", "198.51.100.1"), "203.0.113.9"},
		{"through the proxy", req("127.0.0.1:4000", "198.51.100.7"), "198.51.100.7"},
		{"the right-most untrusted hop; the client's own claims left of it are ignored", req("127.0.0.1:4000", "6.6.6.6, 198.51.100.7, 10.1.2.3"), "198.51.100.7"},
		{"hops in several headers", req("[::1]:4000", "6.6.6.6", "198.51.100.7"), "198.51.100.7"},
		{"IPv6 clients by /64", req("127.0.0.1:4000", "2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64"},
		{"a malformed hop ends the walk", req("127.0.0.1:4000", "6.6.6.6, nonsense, 10.1.2.3"), "10.1.2.3"},
		{"no header: the proxy itself", req("127.0.0.1:4000"), "127.0.0.1"},
	} {
		require.Equal(t, tt.want, addr(tt.r), tt.name)
	}
	_, err = ParseTrusted("10.0.0.0/8, not-an-address")
	require.Error(t, err)
}
