package engine_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/engine"
)

const testOrigin = "https://app.school.test"

func registerHTTPTestActions(reg *engine.Registry) {
	// GET /whoami answers anyone, with the caller it ran as.
	engine.AddHTTPAction(reg, "GET /whoami", func(ctx *engine.HTTPActionCtx, w http.ResponseWriter, r *http.Request) error {
		id := ctx.Identity()
		return engine.WriteJSON(w, http.StatusOK, map[string]any{"userId": id.UserID, "admin": id.Admin})
	}, nil)
	// POST /double/{n} needs a signed-in caller and runs a mutation as them.
	engine.AddHTTPAction(reg, "POST /double/{n}", func(ctx *engine.HTTPActionCtx, w http.ResponseWriter, r *http.Request) error {
		if _, err := engine.RequireAuth(ctx); err != nil {
			return err
		}
		var n int
		if err := json.Unmarshal([]byte(r.PathValue("n")), &n); err != nil {
			return engine.InvalidArgument("n is not a number")
		}
		var out int
		if err := ctx.RunMutation("test:double", map[string]any{"n": n}, &out); err != nil {
			return err
		}
		return engine.WriteJSON(w, http.StatusOK, out)
	}, nil)
	// POST /echo reads its body, which may hold at most 16 bytes.
	engine.AddHTTPAction(reg, "POST /echo", func(ctx *engine.HTTPActionCtx, w http.ResponseWriter, r *http.Request) error {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return err
		}
		_, err = w.Write(body)
		return err
	}, &engine.HTTPActionOpts{MaxBodyBytes: 16})
	engine.AddHTTPAction(reg, "GET /missing", func(ctx *engine.HTTPActionCtx, w http.ResponseWriter, r *http.Request) error {
		return engine.NotFound("nothing here")
	}, nil)
	engine.AddHTTPAction(reg, "GET /panic", func(ctx *engine.HTTPActionCtx, w http.ResponseWriter, r *http.Request) error {
		panic("boom")
	}, nil)
}

// do sends a request and returns the response with its body read.
func do(t *testing.T, method, url string, header http.Header, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, string(raw)
}

func bearer(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

// TestHTTPActionsWithAndWithoutAToken: an application's routes under /http/ run as the caller
// the Authorization header names, refuse bad tokens before running, bound bodies, map errors to
// statuses and answer CORS for the configured origins only.
func TestHTTPActionsWithAndWithoutAToken(t *testing.T) {
	t.Parallel()
	env := setupOps(t, registerHTTPTestActions, func(cfg *engine.Config) {
		cfg.DisableJobs = true
		cfg.HTTPActions.AllowedOrigins = []string{testOrigin}
	})
	base := env.server.URL + "/http"
	ann := signUp(t, env.server.URL, "ann@http.test", "correct horse battery", "Ann")

	res, body := do(t, "GET", base+"/whoami", nil, nil)
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	require.JSONEq(t, `{"userId": "", "admin": false}`, body)
	res, body = do(t, "GET", base+"/whoami", bearer(ann.AccessToken), nil)
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	require.Contains(t, body, `"userId":"`)
	require.NotContains(t, body, `"userId":""`)
	res, body = do(t, "GET", base+"/whoami", http.Header{"Authorization": {"Convex " + env.adminKey}}, nil)
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	require.Contains(t, body, `"admin":true`)
	// A refused token never reaches the handler.
	res, _ = do(t, "GET", base+"/whoami", bearer("not-a-token"), nil)
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)

	// RequireAuth: 401 without a token, the mutation's result with one.
	res, body = do(t, "POST", base+"/double/5", nil, nil)
	require.Equal(t, http.StatusUnauthorized, res.StatusCode, body)
	require.Contains(t, body, `"code":"UNAUTHENTICATED"`)
	res, body = do(t, "POST", base+"/double/5", bearer(ann.AccessToken), nil)
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	require.Equal(t, "10\n", body)
	res, _ = do(t, "POST", base+"/double/x", bearer(ann.AccessToken), nil)
	require.Equal(t, http.StatusBadRequest, res.StatusCode)

	// Routing: wrong method, unknown path.
	res, _ = do(t, "GET", base+"/double/5", nil, nil)
	require.Equal(t, http.StatusMethodNotAllowed, res.StatusCode)
	res, _ = do(t, "GET", base+"/nowhere", nil, nil)
	require.Equal(t, http.StatusNotFound, res.StatusCode)

	// Bodies: within the limit echoed; over it refused, declared or not.
	res, body = do(t, "POST", base+"/echo", nil, strings.NewReader("sixteen bytes..."))
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "sixteen bytes...", body)
	res, _ = do(t, "POST", base+"/echo", nil, strings.NewReader("seventeen bytes.."))
	require.Equal(t, http.StatusRequestEntityTooLarge, res.StatusCode)
	res, body = do(t, "POST", base+"/echo", nil, io.MultiReader(strings.NewReader("seventeen "), strings.NewReader("bytes..")))
	require.Equal(t, http.StatusRequestEntityTooLarge, res.StatusCode, body)

	// Errors: a user error's code, an internal one's request id, a panic's too.
	res, body = do(t, "GET", base+"/missing", nil, nil)
	require.Equal(t, http.StatusNotFound, res.StatusCode)
	require.Contains(t, body, `"message":"nothing here"`)
	res, body = do(t, "GET", base+"/panic", nil, nil)
	require.Equal(t, http.StatusInternalServerError, res.StatusCode)
	require.NotContains(t, body, "boom")

	// CORS: a preflight from the allowed origin is answered, others are refused; responses
	// name the allowed origin only.
	res, _ = do(t, "OPTIONS", base+"/double/1", http.Header{"Origin": {testOrigin}, "Access-Control-Request-Method": {"POST"},
		"Access-Control-Request-Headers": {"authorization"}}, nil)
	require.Equal(t, http.StatusNoContent, res.StatusCode)
	require.Equal(t, testOrigin, res.Header.Get("Access-Control-Allow-Origin"))
	require.Contains(t, res.Header.Get("Access-Control-Allow-Headers"), "Authorization")
	require.Contains(t, res.Header.Get("Access-Control-Allow-Methods"), "POST")
	res, _ = do(t, "OPTIONS", base+"/double/1", http.Header{"Origin": {"https://evil.test"}, "Access-Control-Request-Method": {"POST"}}, nil)
	require.Equal(t, http.StatusForbidden, res.StatusCode)
	require.Empty(t, res.Header.Get("Access-Control-Allow-Origin"))
	res, _ = do(t, "GET", base+"/whoami", http.Header{"Origin": {testOrigin}}, nil)
	require.Equal(t, testOrigin, res.Header.Get("Access-Control-Allow-Origin"))
	res, _ = do(t, "GET", base+"/whoami", http.Header{"Origin": {"https://evil.test"}}, nil)
	require.Empty(t, res.Header.Get("Access-Control-Allow-Origin"))

	// Each request is timed under its pattern.
	require.GreaterOrEqual(t, env.scrape(t)[`ripple_function_duration_seconds_count{kind="http",path="GET /whoami"}`], 4.0)
}

func TestHTTPActionPatternsAreChecked(t *testing.T) {
	t.Parallel()
	reg := engine.NewRegistry()
	ok := func(*engine.HTTPActionCtx, http.ResponseWriter, *http.Request) error { return nil }
	require.NoError(t, engine.AddHTTPActionSafely(reg, "GET /files/{id}", ok, nil))
	for _, bad := range []string{"/files", "GET files", "FETCH /x", "GET example.com/x", "GET /files/{id}", "GET /a/{x", "GET /x y"} {
		require.Error(t, engine.AddHTTPActionSafely(reg, bad, ok, nil), bad)
	}
	require.Error(t, engine.AddHTTPActionSafely(reg, "GET /nil", nil, nil))
	require.Equal(t, []string{"GET /files/{id}"}, reg.HTTPActions())
	for _, prefix := range []string{"/", "/api/", "/admin/x/"} {
		_, err := engine.New(nil, reg, &engine.Config{HTTPActions: engine.HTTPActionsConfig{Prefix: prefix}})
		require.ErrorContains(t, err, "Prefix", prefix)
	}
}
