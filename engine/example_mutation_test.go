package engine_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/ripplehq/ripple/engine"
)

type noteAddArgs struct {
	Body string `json:"body"`
}

// Validate bounds what a client may send; the engine runs it before the function.
func (a *noteAddArgs) Validate() error {
	if strings.TrimSpace(a.Body) == "" || len(a.Body) > 1000 {
		return engine.InvalidArgument("a note is 1 to 1000 bytes")
	}
	return nil
}

// ExampleAddMutation registers a mutation. It runs in a SERIALIZABLE transaction, retried on
// serialization failures, so it has no effect outside the database; every subscription whose
// read set its writes touch re-runs after it commits.
func ExampleAddMutation() {
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
	}, nil)

	app := startExample(reg)
	defer app.stop()

	var id string
	err := app.engine.Call(context.Background(), "notes:add", noteAddArgs{Body: "buy milk"}, ada, &id)
	fmt.Println("note", id, err)
	err = app.engine.Call(context.Background(), "notes:add", noteAddArgs{Body: " "}, ada, &id)
	fmt.Println(err)
	// Output:
	// note 1 <nil>
	// INVALID_ARGUMENT: a note is 1 to 1000 bytes
}
