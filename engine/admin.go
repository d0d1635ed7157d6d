package engine

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"

	"riverqueue.com/riverui"
)

// Operator endpoints: GET /metrics and River's web UI at /admin/jobs/, both for admin keys only.
//
// A key is sent as `Authorization: Convex <key>` or `Bearer <key>` (scrapers, curl). A browser
// cannot add a header to a page load, so /admin/login takes the key once in a form and sets it
// as the ripple_admin cookie: HttpOnly (no script reads it), SameSite=Strict (no other site's
// page can make the browser send it, so River's retry and cancel buttons cannot be forged) and
// scoped to /admin/. The key is checked again on every request, so a revoked key stops working
// at once.

const (
	// adminCookie holds the admin key a browser signed in to /admin/ with.
	adminCookie = "ripple_admin"
	// jobsPrefix is where River's UI is mounted.
	jobsPrefix = "/admin/jobs"
	// maxLoginBytes bounds the login form's body.
	maxLoginBytes = 4 << 10
)

// adminKey is the key a request presents in its Authorization header or the admin cookie, and
// whether it presents one at all.
func adminKey(r *http.Request) (string, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, key, _ := strings.Cut(h, " ")
		if scheme == "Convex" || scheme == "Bearer" {
			return strings.TrimSpace(key), true
		}
		return "", true // presented, in a scheme no admin key comes in
	}
	if c, err := r.Cookie(adminCookie); err == nil && c.Value != "" {
		return c.Value, true
	}
	return "", false
}

// verifyAdmin checks an admin key; a server without an Authenticator refuses every key.
func (e *Engine) verifyAdmin(ctx context.Context, key string) error {
	if e.config.Auth == nil || key == "" {
		return fmt.Errorf("%w: this server does not accept admin keys", ErrAuth)
	}
	return e.config.Auth.VerifyAdminKey(ctx, key)
}

// requireAdmin serves next only to admin keys: 401 without credentials (a browser gets the
// login form), 403 with credentials that are not an admin key.
func (e *Engine) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, presented := adminKey(r)
		if !presented {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ripple admin"`)
			e.refuseAdmin(w, r, http.StatusUnauthorized, "an admin key is required")
			return
		}
		if err := e.verifyAdmin(r.Context(), key); err != nil {
			if !errors.Is(err, ErrAuth) {
				e.logger.Warn("verifying an admin key", "error", err)
			}
			e.refuseAdmin(w, r, http.StatusForbidden, "this is not an admin key")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// refuseAdmin answers a refused request: the login form for a browser's page load, a line of
// text for anything else.
func (e *Engine) refuseAdmin(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if r.Method == http.MethodGet && strings.Contains(r.Header.Get("Accept"), "text/html") {
		next := r.URL.Path
		if !strings.HasPrefix(next, "/admin/") {
			next = jobsPrefix + "/"
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(code)
		_ = loginPage.Execute(w, map[string]string{"Message": msg, "Next": next})
		return
	}
	http.Error(w, msg, code)
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Ripple admin</title></head>
<body style="font-family: sans-serif; max-width: 28rem; margin: 4rem auto">
<h1>Ripple admin</h1>
<p>{{.Message}}. Paste an admin key (<code>ripple admin-key</code> makes one).</p>
<form method="post" action="/admin/login">
<input type="hidden" name="next" value="{{.Next}}">
<input type="password" name="key" autocomplete="off" required style="width: 100%">
<button type="submit">Sign in</button>
</form></body></html>
`))

// login checks the key posted by the login form and sets the admin cookie.
func (e *Engine) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBytes)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "unreadable form", http.StatusBadRequest)
		return
	}
	key := strings.TrimSpace(r.PostForm.Get("key"))
	if err := e.verifyAdmin(r.Context(), key); err != nil {
		e.refuseAdmin(w, r, http.StatusForbidden, "that key was refused")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: adminCookie, Value: key, Path: "/admin/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: overTLS(r)})
	next := r.PostForm.Get("next")
	if !strings.HasPrefix(next, "/admin/") || strings.HasPrefix(next, "//") {
		next = jobsPrefix + "/" // only paths of this server: no open redirect
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout clears the admin cookie.
func logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: adminCookie, Value: "", Path: "/admin/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: overTLS(r)})
	w.WriteHeader(http.StatusNoContent)
}

// overTLS reports whether the browser reached us over HTTPS, directly or through a proxy that
// says so. A forged header only makes the cookie stricter.
func overTLS(r *http.Request) bool {
	return r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https"
}

// newJobsUI is River's web UI over the engine's River client, mounted at jobsPrefix. Its
// background services (job counts refreshed every 10 s) start with the first request an admin
// makes, so a dashboard nobody opens costs nothing.
func (e *Engine) newJobsUI() (*riverui.Handler, error) {
	return riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(e.river, nil),
		Logger:    e.logger,
		Prefix:    jobsPrefix,
		// Arguments may hold user data; they are shown on request.
		JobListHideArgsByDefault: true,
	})
}

// adminRoutes adds the operator endpoints to mux.
func (e *Engine) adminRoutes(mux *http.ServeMux) {
	mux.Handle("GET /metrics", e.requireAdmin(e.MetricsHandler()))
	mux.HandleFunc("POST /admin/login", e.login)
	mux.HandleFunc("GET /admin/login", func(w http.ResponseWriter, r *http.Request) {
		e.refuseAdmin(w, r, http.StatusUnauthorized, "sign in")
	})
	mux.HandleFunc("POST /admin/logout", logout)
	jobs := e.requireAdmin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := e.startJobsUI(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		e.jobsUI.ServeHTTP(w, r)
	}))
	mux.Handle(jobsPrefix, jobs)
	mux.Handle(jobsPrefix+"/", jobs)
}

// startJobsUI starts River's UI's background services once, for as long as the engine runs.
func (e *Engine) startJobsUI() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.started {
		return errors.New("the engine is not running")
	}
	if !e.jobsUIStarted {
		if err := e.jobsUI.Start(e.runCtx); err != nil {
			return fmt.Errorf("starting River's UI: %w", err)
		}
		e.jobsUIStarted = true
	}
	return nil
}
