// Package web serves the chat web app (React + Vite, built into web/dist by `make build`) from
// the binary.
package web

import (
	"embed"
	"io"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// dist holds the built app; only the placeholder dist/.keep is committed.
//
//go:embed all:dist
var dist embed.FS

// Handler serves the built web app: static files, with index.html for any other GET path (the
// app routes on the client). Hashed assets under /assets/ are cached for a year; index.html is
// revalidated every time. Without a build it serves a short page saying to run `make build`.
func Handler() http.Handler {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // "dist" is a valid path; cannot happen
	}
	return handler(sub)
}

func handler(files fs.FS) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if _, err := fs.Stat(files, "index.html"); err != nil {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-cache")
			_, _ = io.WriteString(w, "Ripple is running, but the web app is not built into this binary.\n\n"+
				"Run `make build` (or `make run`) to build web/ and embed it.\n\n"+
				"  GET  /api/{version}/sync   sync WebSocket\n"+
				"  POST /api/query, /api/mutation, /api/action, /api/function\n"+
				"  GET  /healthz, /readyz\n")
			return
		}
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if name != "" && name != "index.html" {
			if info, err := fs.Stat(files, name); err == nil && !info.IsDir() {
				if strings.HasPrefix(name, "assets/") {
					w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
				} else {
					w.Header().Set("Cache-Control", "no-cache")
				}
				http.ServeFileFS(w, r, files, name)
				return
			}
			// A missing asset is an error, not a page of the app.
			if strings.HasPrefix(name, "assets/") {
				http.NotFound(w, r)
				return
			}
		}
		serveIndex(w, r, files)
	})
}

func serveIndex(w http.ResponseWriter, r *http.Request, files fs.FS) {
	f, err := files.Open("index.html")
	if err != nil {
		http.Error(w, "index.html unreadable", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		http.Error(w, "index.html unreadable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	rs, ok := f.(io.ReadSeeker)
	if !ok {
		_, _ = io.Copy(w, f)
		return
	}
	http.ServeContent(w, r, "index.html", info.ModTime(), rs)
}
