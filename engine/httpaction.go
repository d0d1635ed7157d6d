package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ripplehq/ripple/engine/internal/caller"
	"github.com/ripplehq/ripple/engine/internal/httpapi"
)

// HTTP actions are an application's own HTTP routes (a webhook, a file download, an export),
// registered in Go beside its functions and served on the engine's port under
// Config.HTTPActions.Prefix ("/http/" by default):
//
//	engine.AddHTTPAction(reg, "GET /me/export", func(ctx *engine.HTTPActionCtx, w http.ResponseWriter, r *http.Request) error {
//		if _, err := engine.RequireAuth(ctx); err != nil {
//			return err // 401
//		}
//		var convs []Conversation
//		if err := ctx.RunQuery("conversations:list", struct{}{}, &convs); err != nil {
//			return err
//		}
//		return engine.WriteJSON(w, http.StatusOK, convs)
//	}, nil)
//
// The caller is whoever the request's Authorization header names (a user's access token as
// Bearer, an admin key as Convex); a request without one runs anonymously, and a refused one is
// answered 401 before the handler runs. Like an action, the handler runs outside any
// transaction and reaches the database through RunQuery and RunMutation as its caller.

// HTTPActionCtx is passed to HTTP actions: an ActionCtx for the request's caller (its queries,
// mutations and schedule run as that caller), bounded by the action's timeout.
type HTTPActionCtx struct {
	ActionCtx
}

// HTTPActionFunc handles one request. An error returned before anything was written becomes
// the response: the status its code maps to (UNAUTHENTICATED 401, FORBIDDEN 403, NOT_FOUND 404,
// INVALID_ARGUMENT 400, RATE_LIMITED 429, CONFLICT 409, UNAVAILABLE 503; anything else is an
// internal error, 500, logged with a request id the body names) and a JSON body
// {"code", "message"}.
type HTTPActionFunc func(ctx *HTTPActionCtx, w http.ResponseWriter, r *http.Request) error

// HTTPActionOpts are optional settings of one HTTP action.
type HTTPActionOpts struct {
	// MaxBodyBytes bounds the request body; reading past it fails and a declared length over it
	// is answered 413 at once. Zero means Config.HTTPActions.MaxBodyBytes.
	MaxBodyBytes int64
	// Timeout bounds one request's context. Zero means Config.ActionTimeout.
	Timeout time.Duration
}

// HTTPActionsConfig configures how HTTP actions are served.
type HTTPActionsConfig struct {
	// Prefix is the path they are served under. Default "/http/".
	Prefix string
	// MaxBodyBytes bounds a request body unless the action says otherwise. Default 1 MiB.
	MaxBodyBytes int64
	// AllowedOrigins are the web origins ("https://app.school.example", exactly as browsers
	// send them, or "*" for any) whose pages may call the actions from a browser. Empty: none
	// but the server's own (no CORS headers are sent).
	AllowedOrigins []string
	// AllowedMethods and AllowedHeaders answer CORS preflight requests. Defaults: GET, HEAD,
	// POST, PUT, PATCH, DELETE; Authorization and Content-Type.
	AllowedMethods []string
	AllowedHeaders []string
	// PreflightMaxAge is how long a browser may cache a preflight answer. Default 10 min.
	PreflightMaxAge time.Duration
}

func (c *HTTPActionsConfig) withDefaults() {
	if c.Prefix == "" {
		c.Prefix = "/http/"
	}
	if !strings.HasPrefix(c.Prefix, "/") {
		c.Prefix = "/" + c.Prefix
	}
	if !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if len(c.AllowedMethods) == 0 {
		c.AllowedMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}
	}
	if len(c.AllowedHeaders) == 0 {
		c.AllowedHeaders = []string{"Authorization", "Content-Type"}
	}
	if c.PreflightMaxAge <= 0 {
		c.PreflightMaxAge = 10 * time.Minute
	}
}

// prefixIsOwn reports whether the prefix leaves the engine's own routes alone.
func (c *HTTPActionsConfig) prefixIsOwn() bool {
	p := c.Prefix
	return p != "/" && !strings.HasPrefix(p, "/api/") && !strings.HasPrefix(p, "/admin/") && !strings.HasPrefix(p, "/.well-known/")
}

type httpAction struct {
	pattern string // "METHOD /path", relative to the prefix
	fn      HTTPActionFunc
	opts    HTTPActionOpts
}

// httpActionPattern is "METHOD /path", the path as http.ServeMux reads it (wildcards {name}
// and a trailing {name...}), without a host.
var httpActionPattern = regexp.MustCompile(`^(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) (/[^\s]*)$`)

// AddHTTPAction registers an HTTP action and panics on a bad or conflicting pattern; see
// AddHTTPActionSafely.
func AddHTTPAction(r *Registry, pattern string, fn HTTPActionFunc, opts *HTTPActionOpts) {
	if err := AddHTTPActionSafely(r, pattern, fn, opts); err != nil {
		panic(err)
	}
}

// AddHTTPActionSafely registers an HTTP action: pattern is "METHOD /path" relative to the
// prefix, with http.ServeMux's wildcards ("GET /files/{id}", read with r.PathValue("id")).
func AddHTTPActionSafely(r *Registry, pattern string, fn HTTPActionFunc, opts *HTTPActionOpts) error {
	if !httpActionPattern.MatchString(pattern) {
		return fmt.Errorf("HTTP action %q: want \"METHOD /path\" (GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS)", pattern)
	}
	if fn == nil {
		return fmt.Errorf("HTTP action %q has no handler", pattern)
	}
	a := &httpAction{pattern: pattern, fn: fn}
	if opts != nil {
		a.opts = *opts
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// http.ServeMux panics on a malformed or conflicting pattern: try them all on a scratch
	// mux now, so the mistake is reported here and not when the engine starts serving.
	if err := checkPatterns(append(slices.Clone(r.httpActions), a)); err != nil {
		return err
	}
	r.httpActions = append(r.httpActions, a)
	return nil
}

func checkPatterns(actions []*httpAction) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("HTTP action %q: %v", actions[len(actions)-1].pattern, p)
		}
	}()
	mux := http.NewServeMux()
	for _, a := range actions {
		mux.HandleFunc(a.pattern, http.NotFound)
	}
	return nil
}

// HTTPActions lists the registered HTTP actions' patterns (relative to the prefix), sorted.
func (r *Registry) HTTPActions() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, len(r.httpActions))
	for i, a := range r.httpActions {
		out[i] = a.pattern
	}
	slices.Sort(out)
	return out
}

// HTTPActionPrefix is the path HTTP actions are served under ("/http/" by default), for a
// server that routes only some paths to Handler.
func (e *Engine) HTTPActionPrefix() string { return e.config.HTTPActions.Prefix }

// httpActionRoutes adds the registered HTTP actions to mux.
func (e *Engine) httpActionRoutes(mux *http.ServeMux) {
	e.registry.mu.RLock()
	actions := slices.Clone(e.registry.httpActions)
	e.registry.mu.RUnlock()
	cfg := e.config.HTTPActions
	routes := make([]httpapi.ActionRoute, len(actions))
	for i, a := range actions {
		routes[i] = httpapi.ActionRoute{Pattern: a.pattern, MaxBodyBytes: a.opts.MaxBodyBytes,
			Serve: func(w http.ResponseWriter, r *http.Request, identity caller.Identity, limitKey string) {
				e.serveHTTPAction(a, w, r, identity, limitKey)
			}}
	}
	httpapi.ActionRoutes(mux, backend{e}, httpapi.ActionsConfig{Prefix: cfg.Prefix, MaxBodyBytes: cfg.MaxBodyBytes,
		CORS: httpapi.CORS{AllowedOrigins: cfg.AllowedOrigins, AllowedMethods: cfg.AllowedMethods,
			AllowedHeaders: cfg.AllowedHeaders, MaxAge: cfg.PreflightMaxAge}}, routes)
}

// serveHTTPAction runs one request of an HTTP action. Each request takes one token from its
// caller's mutation rate limit (an action may do anything a mutation does, many times over).
func (e *Engine) serveHTTPAction(a *httpAction, w http.ResponseWriter, r *http.Request, identity Identity, limitKey string) {
	defer e.prom.observeHTTP(a.pattern, time.Now())
	timeout := a.opts.Timeout
	if timeout <= 0 {
		timeout = e.config.ActionTimeout
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	base := e.newBaseCtx(ctx, "http "+a.pattern, identity)
	rw := &trackingWriter{ResponseWriter: w}
	err := e.limitMutation(identity, limitKey)
	if err == nil {
		hctx := &HTTPActionCtx{ActionCtx{baseCtx: base}}
		_, err = invoke(func() (any, error) { return nil, a.fn(hctx, rw, r.WithContext(hctx)) })
	}
	if err == nil {
		return
	}
	if rw.wrote {
		base.logger.Warn("HTTP action failed after writing its response", "error", err)
		return
	}
	code, body := e.httpActionError(base.requestID, a.pattern, err)
	_ = WriteJSON(w, code, body)
}

// httpActionError is the status and body of an HTTP action's error.
func (e *Engine) httpActionError(requestID, pattern string, err error) (int, map[string]any) {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return http.StatusRequestEntityTooLarge, map[string]any{"code": "PAYLOAD_TOO_LARGE",
			"message": fmt.Sprintf("the request body is over %d bytes", tooLarge.Limit)}
	}
	res := e.failed("http "+pattern, requestID, err)
	ue, ok := AsError(res.Err)
	if !ok {
		return http.StatusInternalServerError, map[string]any{"code": CodeInternal, "message": res.ErrorMessage}
	}
	status := map[ErrorCode]int{
		CodeUnauthenticated: http.StatusUnauthorized, CodeForbidden: http.StatusForbidden,
		CodeNotFound: http.StatusNotFound, CodeInvalidArgument: http.StatusBadRequest,
		CodeConflict: http.StatusConflict, CodeRateLimited: http.StatusTooManyRequests,
		CodeUnavailable: http.StatusServiceUnavailable,
	}[ue.Code]
	if status == 0 {
		status = http.StatusInternalServerError
	}
	body := map[string]any{"code": ue.Code, "message": ue.Message}
	if ue.Data != nil {
		body["data"] = ue.Data
	}
	return status, body
}

// WriteJSON writes v as a JSON response with the status code.
func WriteJSON(w http.ResponseWriter, code int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	return json.NewEncoder(w).Encode(v)
}

// trackingWriter notes whether a handler started its response, after which an error can only
// be logged.
type trackingWriter struct {
	http.ResponseWriter
	wrote bool
}

func (t *trackingWriter) WriteHeader(code int) {
	t.wrote = true
	t.ResponseWriter.WriteHeader(code)
}

func (t *trackingWriter) Write(b []byte) (int, error) {
	t.wrote = true
	return t.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flushing a streamed response).
func (t *trackingWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }
