package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func get(t *testing.T, h http.Handler, method, target string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

func TestHandlerServesBuild(t *testing.T) {
	h := handler(fstest.MapFS{
		"index.html":       {Data: []byte("<!doctype html><title>chat</title>")},
		"assets/app-1a.js": {Data: []byte("console.log(1)")},
		"favicon.svg":      {Data: []byte("<svg/>")},
	})
	cases := []struct {
		target, body, cache string
		code                int
	}{
		{"/", "<title>chat</title>", "no-cache", 200},
		{"/index.html", "<title>chat</title>", "no-cache", 200},
		{"/c/123", "<title>chat</title>", "no-cache", 200},
		{"/assets/app-1a.js", "console.log(1)", "public, max-age=31536000, immutable", 200},
		{"/favicon.svg", "<svg/>", "no-cache", 200},
		{"/assets/missing.js", "", "", 404},
	}
	for _, c := range cases {
		rec := get(t, h, http.MethodGet, c.target)
		if rec.Code != c.code {
			t.Errorf("%s: status %d, want %d", c.target, rec.Code, c.code)
			continue
		}
		if c.code != 200 {
			continue
		}
		if !strings.Contains(rec.Body.String(), c.body) {
			t.Errorf("%s: body %q, want %q", c.target, rec.Body.String(), c.body)
		}
		if got := rec.Header().Get("Cache-Control"); got != c.cache {
			t.Errorf("%s: Cache-Control %q, want %q", c.target, got, c.cache)
		}
	}
	if rec := get(t, h, http.MethodPost, "/"); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /: status %d, want 405", rec.Code)
	}
}

func TestHandlerWithoutBuild(t *testing.T) {
	h := handler(fstest.MapFS{".keep": {}})
	rec := get(t, h, http.MethodGet, "/")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "make build") {
		t.Fatalf("status %d body %q; want a page saying to run make build", rec.Code, rec.Body.String())
	}
}

func TestEmbeddedHandler(t *testing.T) {
	// Whether or not web/dist is built, "/" answers 200.
	if rec := get(t, Handler(), http.MethodGet, "/"); rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
}
