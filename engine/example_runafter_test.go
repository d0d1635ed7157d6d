package engine_test

import (
	"context"
	"fmt"
	"time"

	"github.com/ripplehq/ripple/engine"
)

type remindArgs struct {
	NoteID string `json:"noteId"`
}

// ExampleMutationCtx_RunAfter schedules a function from a mutation, transactionally: the job
// exists only if the mutation commits, and runs (as River job) as the same caller.
func ExampleMutationCtx_RunAfter() {
	reminded := make(chan string, 1)

	reg := engine.NewRegistry()
	engine.AddMutation(reg, "notes:addWithReminder", func(ctx *engine.MutationCtx, args noteAddArgs) (string, error) {
		userID, err := engine.RequireAuth(ctx)
		if err != nil {
			return "", err
		}
		var id string
		if err := ctx.DB().QueryRow(ctx, "INSERT INTO notes (author_id, body) VALUES ($1, $2) RETURNING id::text",
			userID, args.Body).Scan(&id); err != nil {
			return "", err
		}
		// A real reminder would wait a day; this one runs as soon as a worker takes it.
		_, err = ctx.RunAfter(0, "notes:remind", remindArgs{NoteID: id})
		return id, err
	}, nil)
	engine.AddAction(reg, "notes:remind", func(ctx *engine.ActionCtx, args remindArgs) (any, error) {
		reminded <- ctx.Identity().UserID + " about note " + args.NoteID
		return nil, nil
	}, &engine.FunctionOpts{Internal: true})

	app := startExample(reg)
	defer app.stop()

	var id string
	if err := app.engine.Call(context.Background(), "notes:addWithReminder", noteAddArgs{Body: "call Bob"}, ada, &id); err != nil {
		fmt.Println(err)
		return
	}
	select {
	case r := <-reminded:
		fmt.Println("reminded user", r)
	case <-time.After(time.Minute):
		fmt.Println("no reminder")
	}
	// Output:
	// reminded user 1 about note 1
}
