package httpapi

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ripplehq/ripple/engine/internal/caller"
)

// HTTP actions are routes an application registers (engine.AddHTTPAction), served under a
// prefix of their own. This file is their plumbing: routing, CORS, the caller's identity and the
// body limit. Running the handler and turning its error into a response is the engine's.

// ActionRoute is one registered HTTP action.
type ActionRoute struct {
	// Pattern is "METHOD /path" as http.ServeMux reads it, relative to the prefix.
	Pattern string
	// MaxBodyBytes bounds the request body (the ActionsConfig default when zero).
	MaxBodyBytes int64
	// Serve runs the action for a caller whose credentials were verified (anonymous when the
	// request carried none); limitKey names an anonymous caller for the rate limit.
	Serve func(w http.ResponseWriter, r *http.Request, identity caller.Identity, limitKey string)
}

// ActionsConfig configures how HTTP actions are served.
type ActionsConfig struct {
	// Prefix is the path they are served under, with a slash at each end ("/http/").
	Prefix string
	// MaxBodyBytes bounds a request body unless the route says otherwise.
	MaxBodyBytes int64
	CORS         CORS
}

// CORS says which other web origins' pages may call the actions. With no AllowedOrigins no
// CORS header is sent, and browsers keep other sites' pages from reading the responses.
type CORS struct {
	// AllowedOrigins are exact origins ("https://app.school.example"), or "*" for any.
	AllowedOrigins []string
	// AllowedMethods and AllowedHeaders answer preflight requests.
	AllowedMethods []string
	AllowedHeaders []string
	// MaxAge is how long a browser may cache a preflight answer.
	MaxAge time.Duration
}

// ActionRoutes adds the HTTP actions under cfg.Prefix to mux. Without routes it adds nothing.
func ActionRoutes(mux *http.ServeMux, b Backend, cfg ActionsConfig, routes []ActionRoute) {
	if len(routes) == 0 {
		return
	}
	a := &api{b: b}
	inner := http.NewServeMux()
	base := strings.TrimSuffix(cfg.Prefix, "/")
	for _, route := range routes {
		method, path, _ := strings.Cut(route.Pattern, " ")
		limit := route.MaxBodyBytes
		if limit <= 0 {
			limit = cfg.MaxBodyBytes
		}
		serve := route.Serve
		inner.HandleFunc(method+" "+base+path, func(w http.ResponseWriter, r *http.Request) {
			identity, err := a.identity(r)
			if err != nil {
				writeJSON(w, http.StatusUnauthorized, map[string]any{"code": "Unauthenticated", "message": err.Error()})
				return
			}
			if r.ContentLength > limit {
				writeJSON(w, http.StatusRequestEntityTooLarge, map[string]any{"code": "PayloadTooLarge",
					"message": "the request body is over " + strconv.FormatInt(limit, 10) + " bytes"})
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, limit)
			serve(w, r, identity, a.b.ClientAddress(r))
		})
	}
	mux.Handle(cfg.Prefix, cfg.CORS.handler(inner))
}

// handler answers preflight requests and adds the CORS headers an allowed origin needs.
func (c CORS) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || len(c.AllowedOrigins) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		allowed := slices.Contains(c.AllowedOrigins, "*") || slices.Contains(c.AllowedOrigins, origin)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			// A preflight carries no credentials: it is answered here, never by an action.
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			if !allowed || !slices.Contains(c.AllowedMethods, r.Header.Get("Access-Control-Request-Method")) {
				w.WriteHeader(http.StatusForbidden)
				return
			}
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Methods", strings.Join(c.AllowedMethods, ", "))
			h.Set("Access-Control-Allow-Headers", strings.Join(c.AllowedHeaders, ", "))
			h.Set("Access-Control-Max-Age", strconv.Itoa(int(c.MaxAge.Seconds())))
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if allowed {
			h.Set("Access-Control-Allow-Origin", origin)
		}
		next.ServeHTTP(w, r)
	})
}
