package engine_test

import (
	"context"
	"fmt"

	"github.com/ripplehq/ripple/engine"
)

type noteCountArgs struct{}

// ExampleAddQuery registers a query. A query reads through ctx.DB() (normally sqlc's generated
// code) in a read-only snapshot; what it reads decides when a subscription re-runs. It checks
// the caller's identity first.
func ExampleAddQuery() {
	reg := engine.NewRegistry()
	engine.AddQuery(reg, "notes:count", func(ctx *engine.QueryCtx, _ noteCountArgs) (int, error) {
		userID, err := engine.RequireAuth(ctx)
		if err != nil {
			return 0, err
		}
		var n int
		err = ctx.DB().QueryRow(ctx, "SELECT count(*) FROM notes WHERE author_id = $1", userID).Scan(&n)
		return n, err
	}, nil)

	app := startExample(reg)
	defer app.stop()

	var n int
	err := app.engine.Call(context.Background(), "notes:count", noteCountArgs{}, ada, &n)
	fmt.Println("Ada's notes:", n, err)

	// An anonymous caller is refused with a typed error.
	err = app.engine.Call(context.Background(), "notes:count", noteCountArgs{}, engine.Identity{}, &n)
	fmt.Println(err)
	// Output:
	// Ada's notes: 0 <nil>
	// UNAUTHENTICATED: sign in to do this
}
