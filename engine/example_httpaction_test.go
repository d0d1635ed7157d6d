package engine_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/ripplehq/ripple/engine"
)

// ExampleAddHTTPAction serves an application route under /http/. The request's Authorization
// header decides the caller (anonymous without one); the handler reaches the database through
// RunQuery and RunMutation as that caller, and an error it returns becomes the response.
func ExampleAddHTTPAction() {
	reg := engine.NewRegistry()
	engine.AddQuery(reg, "notes:total", func(ctx *engine.QueryCtx, _ noteCountArgs) (int, error) {
		var n int
		err := ctx.DB().QueryRow(ctx, "SELECT count(*) FROM notes").Scan(&n)
		return n, err
	}, &engine.FunctionOpts{Internal: true})
	engine.AddHTTPAction(reg, "GET /stats", func(ctx *engine.HTTPActionCtx, w http.ResponseWriter, r *http.Request) error {
		var n int
		if err := ctx.RunQuery("notes:total", noteCountArgs{}, &n); err != nil {
			return err
		}
		return engine.WriteJSON(w, http.StatusOK, map[string]int{"notes": n})
	}, nil)
	engine.AddHTTPAction(reg, "GET /me", func(ctx *engine.HTTPActionCtx, w http.ResponseWriter, r *http.Request) error {
		userID, err := engine.RequireAuth(ctx)
		if err != nil {
			return err // 401
		}
		return engine.WriteJSON(w, http.StatusOK, map[string]string{"id": userID})
	}, nil)

	app := startExample(reg)
	defer app.stop()
	srv := httptest.NewServer(app.engine.Handler())
	defer srv.Close()

	for _, path := range []string{"/http/stats", "/http/me"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Print(path, " ", resp.StatusCode, " ", string(body))
	}
	// Output:
	// /http/stats 200 {"notes":0}
	// /http/me 401 {"code":"UNAUTHENTICATED","message":"sign in to do this"}
}
