// Package httpapi serves functions over plain HTTP, as Convex's HTTP client calls them
// (/api/query, /api/mutation, /api/action, /api/function, /api/query_ts), and the health
// endpoints /healthz and /readyz.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ripplehq/ripple/engine/internal/caller"
	"github.com/ripplehq/ripple/engine/internal/wire"
)

// Backend is what the HTTP API needs from the engine.
type Backend interface {
	// Call runs a function of kind ("" for any) as identity, as a client may (internal
	// functions only for admins); limitKey names an anonymous caller for the rate limit.
	Call(ctx context.Context, kind, path string, args json.RawMessage, identity caller.Identity, limitKey string) wire.Result
	// Authenticate verifies credentials (tokenType "User" or "Admin").
	Authenticate(ctx context.Context, tokenType, value string, impersonating json.RawMessage) (caller.Identity, time.Time, error)
	// Sync waits until every commit made before the call is visible to subscriptions and
	// returns the ts of that state.
	Sync(ctx context.Context) (uint64, error)
	// Ready reports the engine's health for /readyz.
	Ready(ctx context.Context) (status map[string]any, ok bool)
	// ClientAddress is the address an anonymous HTTP caller is rate limited under.
	ClientAddress(r *http.Request) string
}

// statusFunctionError is the HTTP status Convex's HTTP client expects for a function's error.
const statusFunctionError = 560

// Routes adds the API's routes to mux. maxArgBytes bounds a call's arguments.
func Routes(mux *http.ServeMux, b Backend, maxArgBytes int) {
	a := &api{b: b, maxArgBytes: maxArgBytes}
	mux.HandleFunc("POST /api/query", a.call("query"))
	mux.HandleFunc("POST /api/mutation", a.call("mutation"))
	mux.HandleFunc("POST /api/action", a.call("action"))
	mux.HandleFunc("POST /api/function", a.call(""))
	mux.HandleFunc("POST /api/query_ts", a.queryTS)
	mux.HandleFunc("POST /api/query_at_ts", a.call("query"))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", a.ready)
}

type api struct {
	b           Backend
	maxArgBytes int
}

type callRequest struct {
	Path   string          `json:"path"`
	Format string          `json:"format"`
	Args   json.RawMessage `json:"args"`
}

func (a *api) call(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, int64(a.maxArgBytes)+4096)
		var req callRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			res := wire.Failed(wire.CodeInvalidArgument, fmt.Sprintf("request body is not valid JSON: %v", err))
			writeCallError(w, http.StatusBadRequest, &res)
			return
		}
		identity, err := a.identity(r)
		if err != nil && !errors.Is(err, caller.ErrAuth) {
			// The credentials could not be checked (the database is unreachable): not a refusal.
			res := wire.Failed(wire.CodeUnavailable, "the server cannot check credentials right now; try again shortly")
			writeCallError(w, http.StatusServiceUnavailable, &res)
			return
		}
		if err != nil {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"code": "Unauthenticated", "message": err.Error()})
			return
		}
		res := a.b.Call(r.Context(), kind, req.Path, req.Args, identity, a.b.ClientAddress(r))
		if res.Err != nil {
			writeCallError(w, statusFunctionError, &res)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "success", "value": res.Value, "logLines": nonNil(res.LogLines)})
	}
}

func (a *api) queryTS(w http.ResponseWriter, r *http.Request) {
	ts, err := a.b.Sync(r.Context())
	if err != nil {
		res := wire.Internal(err, "")
		writeCallError(w, http.StatusServiceUnavailable, &res)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ts": wire.EncodeTS(ts)})
}

func (a *api) ready(w http.ResponseWriter, r *http.Request) {
	status, ok := a.b.Ready(r.Context())
	code := http.StatusOK
	if !ok {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, status)
}

// identity is the caller an Authorization header names: a user's access token as Bearer, an
// admin key as Convex (acting as the user X-Ripple-Acting-As names, if any).
func (a *api) identity(r *http.Request) (caller.Identity, error) {
	header := r.Header.Get("Authorization")
	if header == "" {
		return caller.Identity{}, nil
	}
	scheme, value, _ := strings.Cut(header, " ")
	var id caller.Identity
	var err error
	switch scheme {
	case "Bearer":
		id, _, err = a.b.Authenticate(r.Context(), "User", value, nil)
	case "Convex":
		var acting json.RawMessage
		if as := r.Header.Get("X-Ripple-Acting-As"); as != "" {
			acting, _ = json.Marshal(map[string]string{"subject": as})
		}
		id, _, err = a.b.Authenticate(r.Context(), "Admin", value, acting)
	default:
		err = fmt.Errorf("%w: unsupported Authorization scheme", caller.ErrAuth)
	}
	return id, err
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func nonNil(lines []string) []string {
	if lines == nil {
		return []string{}
	}
	return lines
}

func writeCallError(w http.ResponseWriter, code int, res *wire.Result) {
	writeJSON(w, code, map[string]any{"status": "error", "errorMessage": res.ErrorMessage, "errorData": res.ErrorData, "logLines": nonNil(res.LogLines)})
}
