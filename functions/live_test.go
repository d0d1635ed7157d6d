package functions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/engine/embedding"
	"github.com/ripplehq/ripple/functions"
	"github.com/ripplehq/ripple/internal/synctest"
	"github.com/ripplehq/ripple/internal/testdb"
)

// liveBundle is the chat served the way ripple serve serves it: accounts, the sync socket and
// the HTTP actions on a real HTTP server, so tests hold real sync sockets.
type liveBundle struct {
	*testBundle
	url      string
	adminKey string
	counts   *functions.QueryVectorCounts
}

type liveOpts struct {
	embedder     embedding.Provider // the local provider when nil
	queryVectors functions.QueryVectorConfig
}

func setupLive(t *testing.T, opts liveOpts) *liveBundle {
	t.Helper()
	ctx := context.Background()
	db := testdb.NewSchema(t)
	svc, err := engine.NewAuthService(db.Pool, &engine.AuthConfig{})
	require.NoError(t, err)
	require.NoError(t, svc.Start(ctx))
	counts := &functions.QueryVectorCounts{}
	reg := engine.NewRegistry()
	functions.Register(reg, &functions.Deps{Embedder: embedderOr(t, opts.embedder), QueryVectors: opts.queryVectors, QueryVectorCounts: counts})
	// test:noop lets a client settle: its response comes after every earlier commit's transition.
	engine.AddMutation(reg, "test:noop", func(*engine.MutationCtx, struct{}) (*struct{}, error) { return nil, nil }, nil)
	e, err := engine.New(db.Pool, reg, &engine.Config{Schema: db.Schema, JobWorkers: 4, Auth: svc.Authenticator()})
	require.NoError(t, err)
	require.NoError(t, e.Start(ctx))
	mux := http.NewServeMux()
	svc.Routes(mux)
	mux.Handle("/api/", e.Handler())
	mux.Handle(e.HTTPActionPrefix(), e.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, e.Stop(stopCtx))
		srv.Close()
	})
	key, err := svc.CreateAdminKey(ctx)
	require.NoError(t, err)
	return &liveBundle{testBundle: &testBundle{db: db, engine: e}, url: srv.URL, adminKey: key, counts: counts}
}

// account is a user signed up through the auth API, with their access token.
type account struct {
	engine.Identity
	token string
}

// signUp makes an account (name@school.test).
func (b *liveBundle) signUp(t *testing.T, name string) account {
	t.Helper()
	var out struct {
		AccessToken string `json:"accessToken"`
		User        struct {
			ID string `json:"_id"`
		} `json:"user"`
	}
	code, body := b.post(t, "/api/auth/signup", "", map[string]string{"email": name + "@school.test", "password": "correct horse battery staple", "name": name})
	require.Equal(t, http.StatusOK, code, body)
	require.NoError(t, json.Unmarshal([]byte(body), &out))
	return account{Identity: engine.Identity{UserID: out.User.ID}, token: out.AccessToken}
}

func (b *liveBundle) post(t *testing.T, path, token string, body any) (int, string) {
	t.Helper()
	raw, err := json.Marshal(body)
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, b.url+path, bytes.NewReader(raw))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return do(t, req)
}

func (b *liveBundle) get(t *testing.T, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.url+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(raw)
}

// dial opens a sync socket signed in as the account.
func (b *liveBundle) dial(t *testing.T, who account) *synctest.Client {
	t.Helper()
	c := synctest.Dial(t, b.url)
	c.Authenticate("User", who.token, 0, nil)
	return c
}

// dialAs opens a socket acting as the user (the admin key impersonating them, so a test needs
// no password hashing per member; the functions see the user's identity).
func (b *liveBundle) dialAs(t *testing.T, who engine.Identity) *synctest.Client {
	t.Helper()
	c := synctest.Dial(t, b.url)
	c.Authenticate("Admin", b.adminKey, 0, map[string]any{"subject": who.UserID})
	return c
}

// pageBodies is the bodies of a messages:list value, or nil when it is an error.
func pageBodies(v any) []string {
	m, _ := v.(map[string]any)
	page, ok := m["page"].([]any)
	if !ok {
		return nil
	}
	bodies := make([]string, len(page))
	for i, m := range page {
		bodies[i] = m.(map[string]any)["body"].(string)
	}
	return bodies
}

func isError(v any) bool {
	return synctest.ErrorOf(v) != ""
}

func requireJSONEqual(t *testing.T, want, got any, msgAndArgs ...any) {
	t.Helper()
	w, _ := json.Marshal(want)
	g, _ := json.Marshal(got)
	require.JSONEq(t, string(w), string(g), msgAndArgs...)
}
