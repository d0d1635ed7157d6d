package engine_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/ripplehq/ripple/engine"
)

type noteFetchArgs struct {
	URL string `json:"url"`
}

// ExampleAddAction registers an action: it runs outside any transaction, so it may call the
// network, and reaches the database only through RunQuery and RunMutation, as its caller.
func ExampleAddAction() {
	// The "network": a server this example starts.
	quotes := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "Simplicity is prerequisite for reliability.")
	}))
	defer quotes.Close()

	reg := engine.NewRegistry()
	engine.AddMutation(reg, "notes:add", func(ctx *engine.MutationCtx, args noteAddArgs) (string, error) {
		userID, err := engine.RequireAuth(ctx)
		if err != nil {
			return "", err
		}
		var id string
		err = ctx.DB().QueryRow(ctx, "INSERT INTO notes (author_id, body) VALUES ($1, $2) RETURNING id::text",
			userID, args.Body).Scan(&id)
		return id, err
	}, &engine.FunctionOpts{Internal: true})
	engine.AddAction(reg, "notes:fetch", func(ctx *engine.ActionCtx, args noteFetchArgs) (string, error) {
		if _, err := engine.RequireAuth(ctx); err != nil {
			return "", err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, args.URL, nil)
		if err != nil {
			return "", engine.InvalidArgument("bad url: %v", err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1000))
		if err != nil {
			return "", err
		}
		var id string
		err = ctx.RunMutation("notes:add", noteAddArgs{Body: string(body)}, &id)
		return id, err
	}, nil)

	app := startExample(reg)
	defer app.stop()

	var id string
	err := app.engine.Call(context.Background(), "notes:fetch", noteFetchArgs{URL: quotes.URL}, ada, &id)
	fmt.Println("stored note", id, err)
	var body string
	_ = app.db.Pool.QueryRow(context.Background(), "SELECT body FROM notes WHERE id = $1", id).Scan(&body)
	fmt.Println(body)
	// Output:
	// stored note 1 <nil>
	// Simplicity is prerequisite for reliability.
}
