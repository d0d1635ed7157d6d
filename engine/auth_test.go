package engine_test

// Auth through the engine: Ripple's auth service (sign-up over HTTP, EdDSA access tokens,
// admin keys) in front of the sync socket and the HTTP function API. See docs/protocol.md
// (Authenticate, AuthError) and docs/design.md (Auth).

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/internal/synctest"
	"github.com/ripplehq/ripple/internal/testdb"
	"github.com/ripplehq/ripple/internal/testlog"
)

// whoami is what the identity-dependent test functions return.
type whoami struct {
	UserID *string `json:"userId"`
	Name   *string `json:"name"`
	Admin  bool    `json:"admin"`
}

const sqlUserName = `-- name: TestUserName :one
SELECT name FROM users WHERE id = $1`

func registerAuthTestFunctions(reg *engine.Registry) {
	reg.AddReadSpecs(map[string]engine.ReadSpec{
		"TestUserName": {Tables: []engine.TableRead{{Table: "users", Kind: engine.ReadParam, Column: "id", Param: 1}}},
	})
	// whoami:get depends on nothing but the identity (and the signed-in user's row).
	engine.AddQuery(reg, "whoami:get", func(ctx *engine.QueryCtx, _ struct{}) (whoami, error) {
		id := ctx.Identity()
		out := whoami{Admin: id.Admin}
		if id.UserID == "" {
			return out, nil
		}
		uid := id.UserID
		out.UserID = &uid
		var name string
		if err := ctx.DB().QueryRow(ctx, sqlUserName, mustInt(uid)).Scan(&name); err == nil {
			out.Name = &name
		}
		return out, nil
	}, nil)
	// whoami:mutate reports the identity a mutation ran as.
	engine.AddMutation(reg, "whoami:mutate", func(ctx *engine.MutationCtx, _ struct{}) (whoami, error) {
		id := ctx.Identity()
		out := whoami{Admin: id.Admin}
		if id.UserID != "" {
			uid := id.UserID
			out.UserID = &uid
		}
		return out, nil
	}, nil)
	// whoami:require fails for an anonymous caller.
	engine.AddMutation(reg, "whoami:require", func(ctx *engine.MutationCtx, _ struct{}) (string, error) {
		return engine.RequireAuth(ctx)
	}, nil)
	// whoami:slow holds the session's mutation queue for a moment.
	engine.AddMutation(reg, "whoami:slow", func(ctx *engine.MutationCtx, _ struct{}) (bool, error) {
		_, err := ctx.DB().Exec(ctx, "SELECT pg_sleep(0.4)")
		return true, err
	}, nil)
}

// authBundle is an engine with Ripple's auth service, both served from one mux.
type authBundle struct {
	*testBundle
	svc *engine.AuthService
}

// setupAuth starts the auth service and an engine using it on a fresh schema. logs, when not
// nil, receives both the engine's and the auth service's logs at debug level.
func setupAuth(t *testing.T, logs io.Writer) *authBundle {
	t.Helper()
	return setupAuthWith(t, logs, &engine.AuthConfig{})
}

// setupAuthWith is setupAuth with the auth service's configuration (its Logger is set here).
func setupAuthWith(t *testing.T, logs io.Writer, authCfg *engine.AuthConfig, configure ...func(*engine.Config)) *authBundle {
	t.Helper()
	ctx := context.Background()
	db := testdb.NewSchema(t)
	var logger *slog.Logger
	if logs != nil {
		logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	authCfg.Logger = logger
	svc, err := engine.NewAuthService(db.Pool, authCfg)
	require.NoError(t, err)
	require.NoError(t, svc.Start(ctx))

	b := &testBundle{db: db, senderID: insertSender(t, db)}
	reg := engine.NewRegistry()
	registerTestFunctions(reg, b.senderID)
	registerAuthTestFunctions(reg)
	cfg := &engine.Config{Schema: db.Schema, DisableJobs: true, Auth: svc.Authenticator(), Logger: logger}
	for _, c := range configure {
		c(cfg)
	}
	b.serve(t, reg, cfg, func(e *engine.Engine) http.Handler {
		mux := http.NewServeMux()
		svc.Routes(mux)
		mux.Handle("/api/", e.Handler())
		return mux
	})
	return &authBundle{testBundle: b, svc: svc}
}

type authUser struct {
	ID    string `json:"_id"`
	Email string `json:"email"`
	Name  string `json:"name"`
}

type authResponse struct {
	AccessToken  string   `json:"accessToken"`
	RefreshToken string   `json:"refreshToken"`
	ExpiresAt    int64    `json:"expiresAt"`
	User         authUser `json:"user"`
}

// postJSON posts body to url+path and returns the status and the decoded JSON reply.
func postJSON(t *testing.T, url, path string, header http.Header, body any) (int, map[string]any) {
	t.Helper()
	buf, err := json.Marshal(body)
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, url+path, bytes.NewReader(buf))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.Unmarshal(raw, &out), "reply to %s: %s", path, raw)
	return resp.StatusCode, out
}

// authCall posts to one of the auth routes and decodes a successful reply.
func authCall(t *testing.T, url, path string, body any) authResponse {
	t.Helper()
	status, out := postJSON(t, url, path, nil, body)
	require.Equal(t, http.StatusOK, status, "%s: %v", path, out)
	raw, _ := json.Marshal(out)
	var resp authResponse
	require.NoError(t, json.Unmarshal(raw, &resp))
	require.NotEmpty(t, resp.AccessToken)
	return resp
}

func signUp(t *testing.T, url, email, password, name string) authResponse {
	t.Helper()
	return authCall(t, url, "/api/auth/signup", map[string]string{"email": email, "password": password, "name": name})
}

// callAs calls a function over HTTP with an Authorization header (empty: none).
func callAs(t *testing.T, url, endpoint, authorization, path string, args any) (int, map[string]any) {
	t.Helper()
	h := http.Header{}
	if authorization != "" {
		h.Set("Authorization", authorization)
	}
	return postJSON(t, url, endpoint, h, map[string]any{"path": path, "format": "convex_encoded_json", "args": []any{args}})
}

func (c *syncClient) identityVersion() int64 {
	if c.Version == nil {
		return 0
	}
	return int64(c.Version["identity"].(float64))
}

// nextOf reads messages until one of the given type arrives.
func (c *syncClient) nextOf(typ string) map[string]any {
	c.t.Helper()
	for {
		if m := c.Next(); m["type"] == typ {
			return m
		}
	}
}

// whoamiValue is the user id a whoami result names, or "" for anonymous.
func whoamiValue(t *testing.T, v any) string {
	t.Helper()
	m, ok := v.(map[string]any)
	require.True(t, ok, "whoami result %v", v)
	if m["userId"] == nil {
		return ""
	}
	return m["userId"].(string)
}

func TestAuthSignUpThenAuthenticateOverSync(t *testing.T) {
	t.Parallel()
	b := setupAuth(t, nil)
	conv := b.newConversation(t)
	bea := signUp(t, b.server.URL, "bea@example.com", "correct horse battery", "Bea")
	require.Equal(t, "Bea", bea.User.Name)

	c := dial(t, b.testBundle)
	c.Subscribe(1, "whoami:get", map[string]any{})
	c.Subscribe(2, "messages:list", map[string]any{"conversationId": conv})
	c.WaitFor(func() bool { return c.Values[1] != nil && c.Values[2] != nil })
	require.Equal(t, "", whoamiValue(t, c.Values[1]))
	require.Equal(t, int64(0), c.identityVersion())

	// Sign in on the open socket: the next transition answers identity version 1 and re-runs
	// the identity-dependent query as Bea.
	c.Authenticate("User", bea.AccessToken, 0, nil)
	tr := c.nextOf("Transition")
	require.Equal(t, float64(1), tr["endVersion"].(map[string]any)["identity"])
	require.Equal(t, float64(0), tr["startVersion"].(map[string]any)["identity"])
	require.Equal(t, bea.User.ID, whoamiValue(t, c.Values[1]))
	require.Equal(t, "Bea", c.Values[1].(map[string]any)["name"])
	res := c.Await(c.Mutate("whoami:mutate", map[string]any{}))
	require.Equal(t, bea.User.ID, res["result"].(map[string]any)["userId"])
	res = c.Await(c.Mutate("whoami:require", map[string]any{}))
	require.Equal(t, true, res["success"], "%v", res)

	// Other subscriptions keep working as the new identity.
	c.Await(c.Mutate("messages:send", map[string]any{"conversationId": conv, "body": "hi"}))
	c.WaitFor(func() bool { return len(c.Values[2].([]any)) == 1 })

	// A refreshed token for the same user replaces the identity: version 2, same user.
	next := authCall(t, b.server.URL, "/api/auth/refresh", map[string]string{"refreshToken": bea.RefreshToken})
	// Issued within the same second, it must still differ: the official client takes an equal
	// token for "no new token" and then stops scheduling refreshes.
	require.NotEqual(t, bea.AccessToken, next.AccessToken)
	c.Authenticate("User", next.AccessToken, 1, nil)
	c.WaitFor(func() bool { return c.identityVersion() == 2 })
	require.Equal(t, bea.User.ID, whoamiValue(t, c.Values[1]))

	// Another user on the same socket.
	cal := signUp(t, b.server.URL, "cal@example.com", "another long password", "Cal")
	c.Authenticate("User", cal.AccessToken, 2, nil)
	c.WaitFor(func() bool { return c.identityVersion() == 3 })
	require.Equal(t, cal.User.ID, whoamiValue(t, c.Values[1]))
	require.Equal(t, "Cal", c.Values[1].(map[string]any)["name"])

	// tokenType None signs out: everything re-runs anonymously.
	c.Authenticate("None", "", 3, nil)
	c.WaitFor(func() bool { return c.identityVersion() == 4 })
	require.Equal(t, "", whoamiValue(t, c.Values[1]))
	res = c.Await(c.Mutate("whoami:mutate", map[string]any{}))
	require.Nil(t, res["result"].(map[string]any)["userId"])
	res = c.Await(c.Mutate("whoami:require", map[string]any{}))
	require.Equal(t, false, res["success"])
	require.Equal(t, "UNAUTHENTICATED", res["errorData"].(map[string]any)["code"])
	require.Len(t, c.Values[2], 1, "non-identity subscriptions keep their value")

	// HTTP: a bearer token is the same identity.
	status, out := callAs(t, b.server.URL, "/api/query", "Bearer "+cal.AccessToken, "whoami:get", map[string]any{})
	require.Equal(t, http.StatusOK, status, "%v", out)
	require.Equal(t, cal.User.ID, whoamiValue(t, out["value"]))
	status, out = callAs(t, b.server.URL, "/api/query", "", "whoami:get", map[string]any{})
	require.Equal(t, http.StatusOK, status, "%v", out)
	require.Equal(t, "", whoamiValue(t, out["value"]))
}

// altService is a second auth service on the same database (so the same signing keys), with a
// different configuration, serving its own routes: it mints tokens the main service refuses.
func altService(t *testing.T, db *testdb.Bundle, cfg *engine.AuthConfig) string {
	t.Helper()
	svc, err := engine.NewAuthService(db.Pool, cfg)
	require.NoError(t, err)
	require.NoError(t, svc.Start(context.Background()))
	mux := http.NewServeMux()
	svc.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

type jwkSet struct {
	Keys []struct {
		Kid string `json:"kid"`
		X   string `json:"x"`
		Alg string `json:"alg"`
	} `json:"keys"`
}

func fetchJWKS(t *testing.T, url string) jwkSet {
	t.Helper()
	resp, err := http.Get(url + "/.well-known/jwks.json")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var set jwkSet
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&set))
	require.NotEmpty(t, set.Keys)
	return set
}

// forge signs claims with the given method and key, with a kid header.
func forge(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

// tamper rewrites a token's payload and keeps its header and signature.
func tamper(t *testing.T, token string, change func(map[string]any)) string {
	t.Helper()
	parts := strings.Split(token, ".")
	require.Len(t, parts, 3)
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var claims map[string]any
	require.NoError(t, json.Unmarshal(raw, &claims))
	change(claims)
	raw, err = json.Marshal(claims)
	require.NoError(t, err)
	parts[1] = base64.RawURLEncoding.EncodeToString(raw)
	return strings.Join(parts, ".")
}

func tokenClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	var claims map[string]any
	tamper(t, token, func(c map[string]any) { claims = c })
	return claims
}

func TestAuthRefusesForgedAndInvalidTokens(t *testing.T) {
	t.Parallel()
	b := setupAuth(t, nil)
	password := "correct horse battery"
	dee := signUp(t, b.server.URL, "dee@example.com", password, "Dee")
	valid := tokenClaims(t, dee.AccessToken)
	anns := strconv.FormatInt(b.senderID, 10) // another user, whom forgers would like to be

	jwks := fetchJWKS(t, b.server.URL)
	kid := jwks.Keys[0].Kid
	require.Equal(t, "EdDSA", jwks.Keys[0].Alg)
	pub, err := base64.RawURLEncoding.DecodeString(jwks.Keys[0].X)
	require.NoError(t, err)
	_, foreignKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)

	// Claims a forger would send: a valid shape for Ann.
	forged := func() jwt.MapClaims {
		now := time.Now()
		return jwt.MapClaims{"iss": valid["iss"], "aud": valid["aud"], "sub": anns, "sid": valid["sid"],
			"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}
	}
	signIn := func(url string) string {
		return authCall(t, url, "/api/auth/signin", map[string]string{"email": "dee@example.com", "password": password}).AccessToken
	}
	hour := -time.Hour
	cases := []struct {
		name, token string
	}{
		{"alg none", forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, forged())},
		{"HS256 keyed with the public key", forge(t, jwt.SigningMethodHS256, []byte(pub), kid, forged())},
		{"HS256 keyed with the JWK x", forge(t, jwt.SigningMethodHS256, []byte(jwks.Keys[0].X), kid, forged())},
		{"foreign EdDSA key, unknown kid", forge(t, jwt.SigningMethodEdDSA, foreignKey, "not-a-kid", forged())},
		{"foreign EdDSA key, real kid", forge(t, jwt.SigningMethodEdDSA, foreignKey, kid, forged())},
		{"no kid", forge(t, jwt.SigningMethodEdDSA, foreignKey, "", forged())},
		{"tampered subject", tamper(t, dee.AccessToken, func(c map[string]any) { c["sub"] = anns })},
		{"tampered expiry", tamper(t, dee.AccessToken, func(c map[string]any) { c["exp"] = time.Now().Add(24 * time.Hour).Unix() })},
		{"signature stripped", strings.Join(strings.Split(dee.AccessToken, ".")[:2], ".") + "."},
		{"wrong issuer", signIn(altService(t, b.db, &engine.AuthConfig{Issuer: "someone-else"}))},
		{"wrong audience", signIn(altService(t, b.db, &engine.AuthConfig{Audience: "another-app"}))},
		{"expired", signIn(altService(t, b.db, &engine.AuthConfig{Now: func() time.Time { return time.Now().Add(hour) }}))},
		{"not a JWT", "definitely-not-a-jwt"},
		{"empty", ""},
	}
	// The signing key really is shared: the alternative services' tokens differ only in what
	// is checked.
	require.Equal(t, "someone-else", tokenClaims(t, cases[9].token)["iss"])
	require.Equal(t, []any{"another-app"}, tokenClaims(t, cases[10].token)["aud"])
	require.Less(t, tokenClaims(t, cases[11].token)["exp"].(float64), float64(time.Now().Unix()))

	c := dial(t, b.testBundle)
	c.Subscribe(1, "whoami:get", map[string]any{})
	c.Authenticate("User", dee.AccessToken, 0, nil)
	c.WaitFor(func() bool { return c.identityVersion() == 1 && c.Values[1] != nil })
	require.Equal(t, dee.User.ID, whoamiValue(t, c.Values[1]))

	for _, tc := range cases {
		// Over the socket: AuthError naming the attempt, and nothing else changes.
		c.Authenticate("User", tc.token, 1, nil)
		m := c.nextOf("AuthError")
		require.Equal(t, float64(1), m["baseVersion"], tc.name)
		require.Equal(t, true, m["authUpdateAttempted"], tc.name)
		require.NotEmpty(t, m["error"], tc.name)
		if len(tc.token) > 20 {
			require.NotContains(t, m["error"], tc.token, tc.name)
		}
		res := c.Await(c.Mutate("whoami:mutate", map[string]any{}))
		require.Equal(t, dee.User.ID, res["result"].(map[string]any)["userId"], "%s: identity must be unchanged", tc.name)
		require.Equal(t, int64(1), c.identityVersion(), tc.name)
		require.Equal(t, dee.User.ID, whoamiValue(t, c.Values[1]), tc.name)

		// Over HTTP: 401, for queries and mutations alike.
		for _, endpoint := range []string{"/api/query", "/api/mutation"} {
			path := map[string]string{"/api/query": "whoami:get", "/api/mutation": "whoami:mutate"}[endpoint]
			status, out := callAs(t, b.server.URL, endpoint, "Bearer "+tc.token, path, map[string]any{})
			require.Equal(t, http.StatusUnauthorized, status, "%s %s: %v", tc.name, endpoint, out)
			require.Equal(t, "Unauthenticated", out["code"], tc.name)
		}
	}

	// The socket is still usable: a valid token still works after all that.
	fresh := authCall(t, b.server.URL, "/api/auth/signin", map[string]string{"email": "dee@example.com", "password": password})
	c.Authenticate("User", fresh.AccessToken, 1, nil)
	c.WaitFor(func() bool { return c.identityVersion() == 2 })
	require.Equal(t, dee.User.ID, whoamiValue(t, c.Values[1]))

	// A token type the server does not know is refused the same way, and so is an Authorization
	// scheme it does not know.
	c.Authenticate("Magic", "x", 2, nil)
	require.Equal(t, float64(2), c.nextOf("AuthError")["baseVersion"])
	status, out := callAs(t, b.server.URL, "/api/query", "Basic "+base64.StdEncoding.EncodeToString([]byte("dee:"+password)), "whoami:get", map[string]any{})
	require.Equal(t, http.StatusUnauthorized, status, "%v", out)
}

func TestAuthAdminKey(t *testing.T) {
	t.Parallel()
	b := setupAuth(t, nil)
	ctx := context.Background()
	key, err := b.svc.CreateAdminKey(ctx)
	require.NoError(t, err)
	eve := signUp(t, b.server.URL, "eve@example.com", "correct horse battery", "Eve")

	// HTTP: the admin key reaches an internal function; a user token and no token do not.
	status, out := callAs(t, b.server.URL, "/api/query", "Convex "+key, "secret:peek", map[string]any{})
	require.Equal(t, http.StatusOK, status, "%v", out)
	require.Equal(t, "internal", out["value"])
	for _, authz := range []string{"Bearer " + eve.AccessToken, ""} {
		status, out := callAs(t, b.server.URL, "/api/query", authz, "secret:peek", map[string]any{})
		require.Equal(t, 560, status, "%q: %v", authz, out)
		require.Contains(t, out["errorMessage"], "could not find", authz)
	}
	// An access token is not an admin key, nor is a made-up key.
	for _, bad := range []string{eve.AccessToken, "ripple_admin_" + strings.Repeat("A", 43), key + "x"} {
		status, out := callAs(t, b.server.URL, "/api/query", "Convex "+bad, "secret:peek", map[string]any{})
		require.Equal(t, http.StatusUnauthorized, status, "%v", out)
	}
	// Acting as a user over HTTP.
	h := http.Header{"Authorization": {"Convex " + key}, "X-Ripple-Acting-As": {eve.User.ID}}
	status, out = postJSON(t, b.server.URL, "/api/query", h, map[string]any{"path": "whoami:get", "args": []any{map[string]any{}}})
	require.Equal(t, http.StatusOK, status, "%v", out)
	require.Equal(t, eve.User.ID, whoamiValue(t, out["value"]))
	require.Equal(t, true, out["value"].(map[string]any)["admin"])

	// Over the socket: Admin impersonating a user.
	c := dial(t, b.testBundle)
	c.Subscribe(1, "whoami:get", map[string]any{})
	c.WaitFor(func() bool { return c.Values[1] != nil })
	c.Authenticate("Admin", key, 0, map[string]any{"subject": eve.User.ID})
	c.WaitFor(func() bool { return c.identityVersion() == 1 })
	require.Equal(t, eve.User.ID, whoamiValue(t, c.Values[1]))
	require.Equal(t, true, c.Values[1].(map[string]any)["admin"])
	// A refused admin key is an AuthError too.
	c.Authenticate("Admin", "ripple_admin_nope", 1, nil)
	require.Equal(t, float64(1), c.nextOf("AuthError")["baseVersion"])
	res := c.Await(c.Mutate("whoami:mutate", map[string]any{}))
	require.Equal(t, true, res["result"].(map[string]any)["admin"])
}

// TestAuthIdentityDowngradeClosesInternalSubscriptions: a subscription to an internal function
// made with an admin key must stop answering once the socket's identity is no longer admin.
func TestAuthIdentityDowngradeClosesInternalSubscriptions(t *testing.T) {
	t.Parallel()
	b := setupAuth(t, nil)
	key, err := b.svc.CreateAdminKey(context.Background())
	require.NoError(t, err)
	c := dial(t, b.testBundle)
	c.Authenticate("Admin", key, 0, nil)
	c.Subscribe(1, "secret:peek", map[string]any{})
	c.WaitFor(func() bool { return c.Values[1] != nil })
	require.Equal(t, "internal", c.Values[1])

	c.Authenticate("None", "", 1, nil)
	c.WaitFor(func() bool { return c.identityVersion() == 2 })
	c.Settle()
	failure, ok := c.Values[1].(map[string]any)
	require.True(t, ok, "after signing out, the internal query still answers %v", c.Values[1])
	require.Contains(t, fmt.Sprint(failure["error"]), "could not find")
}

// TestAuthMutationRunsAsTheIdentityItWasSentWith: messages on one socket take effect in order,
// so a mutation sent before an Authenticate runs as the identity before it.
func TestAuthMutationRunsAsTheIdentityItWasSentWith(t *testing.T) {
	t.Parallel()
	b := setupAuth(t, nil)
	fay := signUp(t, b.server.URL, "fay@example.com", "correct horse battery", "Fay")
	c := dial(t, b.testBundle)
	c.Authenticate("User", fay.AccessToken, 0, nil)
	c.Settle()

	slow := c.Mutate("whoami:slow", map[string]any{}) // holds the mutation queue
	asFay := c.Mutate("whoami:mutate", map[string]any{})
	c.Authenticate("None", "", 1, nil)
	asNobody := c.Mutate("whoami:mutate", map[string]any{})
	results := map[float64]map[string]any{}
	for len(results) < 3 {
		m := c.nextOf("MutationResponse")
		results[m["requestId"].(float64)] = m
	}
	require.Equal(t, true, results[float64(slow)]["success"])
	require.Equal(t, fay.User.ID, results[float64(asFay)]["result"].(map[string]any)["userId"],
		"a mutation sent before signing out ran as %v", results[float64(asFay)]["result"])
	require.Nil(t, results[float64(asNobody)]["result"].(map[string]any)["userId"])
}

// TestAuthSecretsNeverLogged runs every flow that handles a secret through an engine and an
// auth service logging at debug level into one buffer, then looks for the secrets in it.
func TestAuthSecretsNeverLogged(t *testing.T) {
	t.Parallel()
	var logs testlog.Buffer
	b := setupAuth(t, &logs)
	ctx := context.Background()
	password := "hunter2-but-much-longer"
	wrongPassword := "not-the-password-at-all"

	gus := signUp(t, b.server.URL, "gus@example.com", password, "Gus")
	signedIn := authCall(t, b.server.URL, "/api/auth/signin", map[string]string{"email": "gus@example.com", "password": password})
	status, _ := postJSON(t, b.server.URL, "/api/auth/signin", nil, map[string]string{"email": "gus@example.com", "password": wrongPassword})
	require.Equal(t, http.StatusUnauthorized, status)
	status, _ = postJSON(t, b.server.URL, "/api/auth/signup", nil, map[string]string{"email": "gus@example.com", "password": wrongPassword, "name": "Gus"})
	require.Equal(t, http.StatusConflict, status)
	refreshed := authCall(t, b.server.URL, "/api/auth/refresh", map[string]string{"refreshToken": signedIn.RefreshToken})
	// Reusing the spent token within the grace window gets the same pair back.
	again := authCall(t, b.server.URL, "/api/auth/refresh", map[string]string{"refreshToken": signedIn.RefreshToken})
	require.Equal(t, refreshed.RefreshToken, again.RefreshToken)
	status, _ = postJSON(t, b.server.URL, "/api/auth/refresh", nil, map[string]string{"refreshToken": "made-up-refresh-token"})
	require.Equal(t, http.StatusUnauthorized, status)
	key, err := b.svc.CreateAdminKey(ctx)
	require.NoError(t, err)
	expired := authCall(t, altService(t, b.db, &engine.AuthConfig{Now: func() time.Time { return time.Now().Add(-time.Hour) }}),
		"/api/auth/signin", map[string]string{"email": "gus@example.com", "password": password}).AccessToken
	tampered := tamper(t, gus.AccessToken, func(c map[string]any) { c["sub"] = "1" })

	c := dial(t, b.testBundle)
	c.Subscribe(1, "whoami:get", map[string]any{})
	c.Authenticate("User", gus.AccessToken, 0, nil)
	c.WaitFor(func() bool { return c.identityVersion() == 1 })
	c.Authenticate("User", expired, 1, nil)
	c.nextOf("AuthError")
	c.Authenticate("User", tampered, 1, nil)
	c.nextOf("AuthError")
	c.Authenticate("User", refreshed.AccessToken, 1, nil)
	c.WaitFor(func() bool { return c.identityVersion() == 2 })
	c.Authenticate("Admin", key, 2, map[string]any{"subject": gus.User.ID})
	c.WaitFor(func() bool { return c.identityVersion() == 3 })
	c.Authenticate("Admin", key+"x", 3, nil)
	c.nextOf("AuthError")
	c.Settle()
	for _, authz := range []string{"Bearer " + gus.AccessToken, "Bearer " + expired, "Bearer " + tampered, "Convex " + key, "Convex " + key + "x"} {
		callAs(t, b.server.URL, "/api/query", authz, "whoami:get", map[string]any{})
		callAs(t, b.server.URL, "/api/mutation", authz, "whoami:require", map[string]any{})
	}
	status, _ = postJSON(t, b.server.URL, "/api/auth/signout", nil, map[string]string{"refreshToken": refreshed.RefreshToken})
	require.Equal(t, http.StatusOK, status)
	// After sign-out the session's refresh token is refused.
	status, _ = postJSON(t, b.server.URL, "/api/auth/refresh", nil, map[string]string{"refreshToken": refreshed.RefreshToken})
	require.Equal(t, http.StatusUnauthorized, status)

	out := logs.String()
	require.Contains(t, out, "signed up", "the auth service's logs reach the buffer")
	secrets := map[string]string{
		"password":                  password,
		"wrong password":            wrongPassword,
		"admin key":                 key,
		"admin key's random part":   strings.TrimPrefix(key, "ripple_admin_"),
		"sign-up refresh token":     gus.RefreshToken,
		"sign-in refresh token":     signedIn.RefreshToken,
		"refreshed refresh token":   refreshed.RefreshToken,
		"made-up refresh token":     "made-up-refresh-token",
		"expired token's signature": strings.Split(expired, ".")[2],
	}
	for name, tok := range map[string]string{"sign-up": gus.AccessToken, "sign-in": signedIn.AccessToken, "refreshed": refreshed.AccessToken, "expired": expired, "tampered": tampered} {
		secrets[name+" access token"] = tok
		secrets[name+" access token's signature"] = strings.Split(tok, ".")[2]
		secrets[name+" access token's payload"] = strings.Split(tok, ".")[1]
	}
	for name, secret := range secrets {
		require.NotContains(t, out, secret, "the %s appears in the logs", name)
	}
}

// A socket whose token expires without being replaced is told (AuthError, no update attempted)
// and closed, so nothing keeps running as a stale identity.
func TestAuthExpiredTokenEndsTheSocketsIdentity(t *testing.T) {
	t.Parallel()
	b := setupAuthWith(t, nil, &engine.AuthConfig{AccessTokenTTL: time.Second})
	gus := signUp(t, b.server.URL, "gus@example.com", "correct horse battery", "Gus")
	c := dial(t, b.testBundle)
	c.Subscribe(1, "whoami:get", map[string]any{})
	c.Authenticate("User", gus.AccessToken, 0, nil)
	c.WaitFor(func() bool { return c.identityVersion() == 1 && c.Values[1] != nil })
	require.Equal(t, gus.User.ID, whoamiValue(t, c.Values[1]))

	var authErr map[string]any
	for authErr == nil {
		if m := c.Next(); m["type"] == "AuthError" {
			authErr = m
		}
	}
	require.Equal(t, false, authErr["authUpdateAttempted"])
	require.Equal(t, float64(0), authErr["baseVersion"])
	require.NotContains(t, fmt.Sprint(authErr), gus.AccessToken)
	// Until the server closes the socket, nothing more is sent: the queries are not re-run as
	// anonymous (that would flash a signed-out screen) nor as the expired identity.
	for m := range c.Frames {
		require.NotEqual(t, "Transition", m["type"], "a transition after the identity expired: %v", m)
	}
	require.Equal(t, gus.User.ID, whoamiValue(t, c.Values[1]))
}

// Mutation outcomes are kept per identity: another identity reusing a sessionId and requestId
// runs its own mutation and never gets the first one's result.
func TestAuthMutationLogIsPerIdentity(t *testing.T) {
	t.Parallel()
	b := setupAuth(t, nil)
	ctx := context.Background()
	url := syncURL(b.testBundle)
	runAs := func(token string) map[string]any {
		conn, _, err := websocket.Dial(ctx, url, nil)
		require.NoError(t, err)
		defer conn.Close(websocket.StatusNormalClosure, "")
		require.NoError(t, synctest.Write(ctx, conn,
			map[string]any{"type": "Connect", "sessionId": "shared-session", "connectionCount": 0, "lastCloseReason": nil, "clientTs": 0},
			map[string]any{"type": "Authenticate", "tokenType": "User", "value": token, "baseVersion": 0},
			map[string]any{"type": "Mutation", "requestId": 1, "udfPath": "whoami:mutate", "args": []any{map[string]any{}}},
		))
		for {
			_, data, err := conn.Read(ctx)
			require.NoError(t, err)
			var m map[string]any
			require.NoError(t, json.Unmarshal(data, &m))
			if m["type"] == "MutationResponse" {
				require.Equal(t, true, m["success"], "%s", data)
				return m["result"].(map[string]any)
			}
		}
	}
	hal := signUp(t, b.server.URL, "hal@example.com", "correct horse battery", "Hal")
	ida := signUp(t, b.server.URL, "ida@example.com", "correct horse battery", "Ida")
	require.Equal(t, hal.User.ID, runAs(hal.AccessToken)["userId"])
	require.Equal(t, ida.User.ID, runAs(ida.AccessToken)["userId"], "the second identity got the first one's result")
}

// unreachableAuth is an application's own Authenticator whose store is down.
type unreachableAuth struct{}

func (unreachableAuth) VerifyAccessToken(context.Context, string) (string, error) {
	return "", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
}

func (unreachableAuth) VerifyAdminKey(context.Context, string) error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
}

// When credentials cannot be checked (the verifier's database is down), the client is not told
// they were refused (the official client would drop its token and sign the user out): the socket
// is closed for the client to reconnect and try again, and HTTP answers 503 UNAVAILABLE.
func TestAuthVerifierOutageIsNotARefusal(t *testing.T) {
	t.Parallel()
	b := setupWith(t, testdb.NewSchema(t), func(cfg *engine.Config) { cfg.Auth = unreachableAuth{} })
	c := dial(t, b)
	c.Authenticate("User", "a-token-nobody-could-check", 0, nil)
	for m := range c.Frames { // until the server closes the socket
		require.NotEqual(t, "AuthError", m["type"], "an outage was reported as refused credentials: %v", m)
	}

	body := strings.NewReader(`{"path":"messages:total","format":"convex_encoded_json","args":[{}]}`)
	req, err := http.NewRequest(http.MethodPost, b.server.URL+"/api/query", body)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer a-token-nobody-could-check")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "%v", out)
	require.Equal(t, "UNAVAILABLE", out["errorData"].(map[string]any)["code"])
}
