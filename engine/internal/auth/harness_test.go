package auth

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/internal/testdb"
	"github.com/ripplehq/ripple/internal/testlog"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer collects output written concurrently.
type syncBuffer = testlog.Buffer

type harness struct {
	t     testing.TB
	ctx   context.Context
	db    *testdb.Bundle
	cfg   *Config
	svc   *Service
	clock *fakeClock
	srv   *httptest.Server
	logs  *syncBuffer
}

func newHarness(t testing.TB, mutate func(*Config)) *harness {
	t.Helper()
	db := testdb.NewSchema(t)
	return newHarnessOn(t, db, mutate)
}

func newHarnessOn(t testing.TB, db *testdb.Bundle, mutate func(*Config)) *harness {
	t.Helper()
	clock := &fakeClock{t: time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)}
	logs := &syncBuffer{}
	cfg := &Config{
		Now:    clock.Now,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mutate != nil {
		mutate(cfg)
	}
	svc, err := New(db.Pool, cfg)
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, svc.Start(ctx))
	mux := http.NewServeMux()
	svc.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &harness{t: t, ctx: ctx, db: db, cfg: cfg, svc: svc, clock: clock, srv: srv, logs: logs}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.body, &m), "body: %s", r.body)
	return m
}

// postRaw sends body as is.
func (h *harness) postRaw(path, body string) response {
	h.t.Helper()
	resp, err := http.Post(h.srv.URL+path, "application/json", strings.NewReader(body))
	require.NoError(h.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (h *harness) post(path string, body any) response {
	h.t.Helper()
	b, err := json.Marshal(body)
	require.NoError(h.t, err)
	return h.postRaw(path, string(b))
}

// authOK posts and decodes a successful auth response.
func (h *harness) authOK(path string, body any) authResponse {
	h.t.Helper()
	r := h.post(path, body)
	require.Equal(h.t, http.StatusOK, r.status, "body: %s", r.body)
	var out authResponse
	require.NoError(h.t, json.Unmarshal(r.body, &out))
	return out
}

func (h *harness) signUp(email, password, name string) authResponse {
	h.t.Helper()
	return h.authOK("/api/auth/signup", map[string]string{"email": email, "password": password, "name": name})
}

// testAddress is a Config.ClientAddress reading the address a test sends (signInFrom).
func testAddress(r *http.Request) string {
	if a := r.Header.Get("X-Test-Address"); a != "" {
		return a
	}
	return RemoteAddrHost(r)
}

// signInFrom signs in as from addr (with Config.ClientAddress = testAddress).
func (h *harness) signInFrom(addr, email, password string) response {
	h.t.Helper()
	b, err := json.Marshal(map[string]string{"email": email, "password": password})
	require.NoError(h.t, err)
	req, err := http.NewRequest(http.MethodPost, h.srv.URL+"/api/auth/signin", strings.NewReader(string(b)))
	require.NoError(h.t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Test-Address", addr)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

func (h *harness) signIn(email, password string) response {
	h.t.Helper()
	return h.post("/api/auth/signin", map[string]string{"email": email, "password": password})
}

func (h *harness) refresh(token string) response {
	h.t.Helper()
	return h.post("/api/auth/refresh", map[string]string{"refreshToken": token})
}

func (h *harness) jwks() []jwk {
	h.t.Helper()
	resp, err := http.Get(h.srv.URL + "/.well-known/jwks.json")
	require.NoError(h.t, err)
	defer resp.Body.Close()
	require.Equal(h.t, http.StatusOK, resp.StatusCode)
	var out struct {
		Keys []jwk `json:"keys"`
	}
	require.NoError(h.t, json.NewDecoder(resp.Body).Decode(&out))
	return out.Keys
}

func requireAPIError(t testing.TB, r response, status int, code string) map[string]any {
	t.Helper()
	require.Equal(t, status, r.status, "body: %s", r.body)
	m := r.json(t)
	require.Equal(t, code, m["code"], "body: %s", r.body)
	require.NotEmpty(t, m["message"])
	return m
}
