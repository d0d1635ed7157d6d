package engine_test

// The operator endpoints against a real server and database: /metrics and River's UI behind
// the admin key.

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/internal/testdb"
)

// opsEnv is an engine with Ripple's auth service and its job workers, served whole (every
// route of Handler) with the accounts routes beside it.
type opsEnv struct {
	*testBundle
	svc      *engine.AuthService
	adminKey string
}

func setupOps(t *testing.T, register func(*engine.Registry), configure func(*engine.Config)) *opsEnv {
	t.Helper()
	ctx := context.Background()
	db := testdb.NewSchema(t)
	svc, err := engine.NewAuthService(db.Pool, &engine.AuthConfig{})
	require.NoError(t, err)
	require.NoError(t, svc.Start(ctx))
	key, err := svc.CreateAdminKey(ctx)
	require.NoError(t, err)

	b := &testBundle{db: db, senderID: insertSender(t, db)}
	reg := engine.NewRegistry()
	registerTestFunctions(reg, b.senderID)
	if register != nil {
		register(reg)
	}
	cfg := &engine.Config{Schema: db.Schema, Auth: svc.Authenticator()}
	if configure != nil {
		configure(cfg)
	}
	b.serve(t, reg, cfg, func(e *engine.Engine) http.Handler {
		mux := http.NewServeMux()
		svc.Routes(mux)
		mux.Handle("/", e.Handler())
		return mux
	})
	return &opsEnv{testBundle: b, svc: svc, adminKey: key}
}

// get sends a GET with an Authorization header (empty: none) and returns the status and body.
func (env *opsEnv) get(t *testing.T, path, authorization string) (int, string) {
	t.Helper()
	h := http.Header{}
	if authorization != "" {
		h.Set("Authorization", authorization)
	}
	res, body := do(t, http.MethodGet, env.server.URL+path, h, nil)
	return res.StatusCode, body
}

// scrape reads /metrics with the admin key: every sample's value keyed by its series as the
// text format writes it (name{labels}).
func (env *opsEnv) scrape(t *testing.T) map[string]float64 {
	t.Helper()
	code, body := env.get(t, "/metrics", "Convex "+env.adminKey)
	require.Equal(t, http.StatusOK, code, body)
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, line)
		out[line[:i]] = v
	}
	return out
}

// waitMetric scrapes until cond holds for the series' value (0 when absent).
func (env *opsEnv) waitMetric(t *testing.T, series string, cond func(float64) bool) float64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		v := env.scrape(t)[series]
		if cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s stayed at %v", series, v)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMetricsNeedTheAdminKey(t *testing.T) {
	t.Parallel()
	env := setupOps(t, nil, func(cfg *engine.Config) { cfg.DisableJobs = true })
	code, _ := env.get(t, "/metrics", "")
	require.Equal(t, http.StatusUnauthorized, code)
	for _, bad := range []string{"Bearer nope", "Convex " + env.adminKey + "x", "Basic " + env.adminKey} {
		code, _ := env.get(t, "/metrics", bad)
		require.Equal(t, http.StatusForbidden, code, bad)
	}
	for _, good := range []string{"Convex " + env.adminKey, "Bearer " + env.adminKey} {
		code, body := env.get(t, "/metrics", good)
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, body, "# TYPE ripple_sockets gauge")
	}
	// The handler for a private listener asks for nothing.
	rec := httptest.NewRecorder()
	env.engine.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), "ripple_invalidation_lag_seconds_bucket")
}

// TestMetricsMoveWithTraffic: sockets, subscriptions, transitions, bytes, re-runs, lag,
// function durations and job outcomes follow what clients and jobs do.
func TestMetricsMoveWithTraffic(t *testing.T) {
	t.Parallel()
	env := setupOps(t, func(reg *engine.Registry) {
		engine.AddMutation(reg, "ops:schedule", func(ctx *engine.MutationCtx, _ struct{}) (int64, error) {
			return ctx.RunAfter(0, "test:noop", struct{}{})
		}, nil)
		// ops:conflict always fails serialization, so it is retried until it gives up.
		engine.AddMutation(reg, "ops:conflict", func(ctx *engine.MutationCtx, _ struct{}) (bool, error) {
			_, err := ctx.DB().Exec(ctx, `DO $$ BEGIN RAISE EXCEPTION 'forced' USING ERRCODE = 'serialization_failure'; END $$`)
			return false, err
		}, nil)
	}, func(cfg *engine.Config) { cfg.MutationMaxRetries = 3 })
	before := env.scrape(t)
	require.Equal(t, 0.0, before["ripple_sockets"])
	require.Equal(t, 0.0, before["ripple_subscriptions"])

	conv := env.newConversation(t)
	c := dial(t, env.testBundle)
	c.Subscribe(1, "messages:list", map[string]any{"conversationId": conv})
	c.WaitFor(func() bool { _, ok := c.Values[1]; return ok })
	env.waitMetric(t, "ripple_sockets", func(v float64) bool { return v == 1 })
	env.waitMetric(t, "ripple_subscriptions", func(v float64) bool { return v == 1 })

	for i := range 3 {
		c.Mutate("messages:send", map[string]any{"conversationId": conv, "body": "hello " + strconv.Itoa(i)})
	}
	c.WaitFor(func() bool { list, _ := c.Values[1].([]any); return len(list) == 3 })

	after := env.scrape(t)
	require.Greater(t, after["ripple_transitions_total"], before["ripple_transitions_total"])
	require.Greater(t, after["ripple_sent_bytes_total"], before["ripple_sent_bytes_total"])
	require.GreaterOrEqual(t, after["ripple_reruns_total"], 1.0)
	require.GreaterOrEqual(t, after["ripple_reruns_changed_total"], 1.0)
	require.LessOrEqual(t, after["ripple_reruns_changed_total"], after["ripple_reruns_total"])
	require.GreaterOrEqual(t, after["ripple_invalidation_lag_seconds_count"], 1.0)
	require.Equal(t, 3.0, after[`ripple_function_duration_seconds_count{kind="mutation",path="messages:send"}`])
	require.GreaterOrEqual(t, after[`ripple_function_duration_seconds_count{kind="query",path="messages:list"}`], 2.0)
	require.Contains(t, after, "ripple_listener_gaps_total")
	// Every phase of the write path has its series from the start; each socket send went
	// through the mutation's three, and the batches that delivered them through theirs.
	phaseCount := func(m map[string]float64, phase string) float64 {
		v, ok := m[`ripple_phase_duration_seconds_count{phase="`+phase+`"}`]
		require.True(t, ok, phase)
		return v
	}
	for _, p := range []string{"mutation.function", "mutation.commit", "mutation.reply_wait"} {
		require.GreaterOrEqual(t, phaseCount(after, p)-phaseCount(before, p), 3.0, p)
	}
	for _, p := range []string{"batch.snapshot", "batch.queries", "batch.deliver"} {
		require.GreaterOrEqual(t, phaseCount(after, p)-phaseCount(before, p), 1.0, p)
	}

	// A mutation that keeps failing serialization: three attempts retried, one give-up.
	requireErrorCode(t, env.engine.Call(context.Background(), "ops:conflict", struct{}{}, engine.Identity{}, nil), engine.CodeConflict)
	after = env.scrape(t)
	require.Equal(t, before["ripple_mutation_retries_total"]+3, after["ripple_mutation_retries_total"])
	require.Equal(t, before["ripple_mutation_giveups_total"]+1, after["ripple_mutation_giveups_total"])

	// A path a client made up gets no series of its own.
	c.Subscribe(2, "made:up", map[string]any{})
	c.WaitFor(func() bool { _, ok := c.Values[2]; return ok })
	for series := range env.scrape(t) {
		require.NotContains(t, series, "made:up")
	}

	// A scheduled function's run is counted by outcome; a job scheduled in the future shows in
	// the queue depth.
	require.NoError(t, env.engine.Call(context.Background(), "ops:schedule", struct{}{}, engine.Identity{}, nil))
	env.waitMetric(t, `ripple_jobs_finished_total{function="test:noop",kind="ripple.function",outcome="completed"}`,
		func(v float64) bool { return v == 1 })
	_, err := env.db.Pool.Exec(context.Background(),
		`INSERT INTO river_job (kind, args, queue, state, scheduled_at, max_attempts, priority)
		 VALUES ('ripple.function', '{"path":"test:noop","args":{}}', 'default', 'scheduled', now() + interval '1 hour', 25, 1)`)
	require.NoError(t, err)
	require.Equal(t, 1.0, env.scrape(t)[`ripple_jobs{kind="ripple.function",state="scheduled"}`])

	// Every metric the Grafana dashboard charts exists.
	dashboard, err := os.ReadFile("../docs/grafana-dashboard.json")
	require.NoError(t, err)
	series := env.scrape(t)
	for _, name := range regexp.MustCompile(`ripple_[a-z_]+`).FindAllString(string(dashboard), -1) {
		found := false
		for s := range series {
			if s == name || strings.HasPrefix(s, name+"{") || strings.HasPrefix(s, name+"_count") { // a histogram by its name
				found = true
				break
			}
		}
		require.True(t, found, "the dashboard charts %s, which /metrics does not serve", name)
	}

	// Closing the socket drops its subscriptions.
	c.Conn.CloseNow()
	env.waitMetric(t, "ripple_sockets", func(v float64) bool { return v == 0 })
	env.waitMetric(t, "ripple_subscriptions", func(v float64) bool { return v == 0 })
}

// TestJobsDashboardNeedsTheAdminKey: River's UI answers only an admin key, in a header or in the
// cookie the login form sets.
func TestJobsDashboardNeedsTheAdminKey(t *testing.T) {
	t.Parallel()
	env := setupOps(t, nil, func(cfg *engine.Config) { cfg.DisableJobs = true })
	for _, path := range []string{"/admin/jobs", "/admin/jobs/", "/admin/jobs/api/jobs?state=available"} {
		code, _ := env.get(t, path, "")
		require.Equal(t, http.StatusUnauthorized, code, path)
		code, _ = env.get(t, path, "Bearer not-a-key")
		require.Equal(t, http.StatusForbidden, code, path)
	}
	code, body := env.get(t, "/admin/jobs/", "Convex "+env.adminKey)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "<title>River</title>")
	// It lists this engine's jobs (River's tables in the engine's schema).
	_, err := env.db.Pool.Exec(context.Background(),
		`INSERT INTO river_job (kind, args, queue, state, scheduled_at, max_attempts, priority)
		 VALUES ('ripple.function', '{"path":"test:noop","args":{}}', 'default', 'scheduled', now() + interval '1 hour', 25, 1)`)
	require.NoError(t, err)
	code, body = env.get(t, "/admin/jobs/api/jobs?state=scheduled", "Bearer "+env.adminKey)
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"kind":"ripple.function"`)

	// A browser: the page load gets the login form, a wrong key is refused, the right one sets
	// an HttpOnly, SameSite=Strict cookie that opens the UI.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, env.server.URL+"/admin/jobs/", nil)
	req.Header.Set("Accept", "text/html")
	res, err := noRedirect.Do(req)
	require.NoError(t, err)
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)
	require.Contains(t, string(page), `action="/admin/login"`)

	res, err = noRedirect.PostForm(env.server.URL+"/admin/login", url.Values{"key": {"wrong"}})
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusForbidden, res.StatusCode)
	require.Empty(t, res.Cookies())

	res, err = noRedirect.PostForm(env.server.URL+"/admin/login", url.Values{"key": {env.adminKey}, "next": {"https://evil.example/"}})
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	require.Equal(t, "/admin/jobs/", res.Header.Get("Location"), "no redirect off the server")
	require.Len(t, res.Cookies(), 1)
	cookie := res.Cookies()[0]
	require.True(t, cookie.HttpOnly)
	require.Equal(t, http.SameSiteStrictMode, cookie.SameSite)
	require.Equal(t, "/admin/", cookie.Path)

	req, _ = http.NewRequest(http.MethodGet, env.server.URL+"/admin/jobs/api/jobs?state=available", nil)
	req.AddCookie(cookie)
	res, err = noRedirect.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)

	// Signing out clears it.
	res, err = noRedirect.Post(env.server.URL+"/admin/logout", "", nil)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusNoContent, res.StatusCode)
	require.Len(t, res.Cookies(), 1)
	require.Equal(t, "", res.Cookies()[0].Value)
	require.Negative(t, res.Cookies()[0].MaxAge)

	// A cookie holding something else is refused.
	req, _ = http.NewRequest(http.MethodGet, env.server.URL+"/admin/jobs/api/jobs?state=available", nil)
	req.AddCookie(&http.Cookie{Name: cookie.Name, Value: "forged"})
	res, err = noRedirect.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusForbidden, res.StatusCode)
}
