package engine_test

import (
	"context"
	"fmt"

	"github.com/ripplehq/ripple/engine"
)

// ExampleActionCtx_Exclusive runs work that must not run twice at once (a nightly export, a
// sweep taking back a dead holder's claims) under a lock shared by every process on the
// database. Postgres releases it with its connection, so a crash never leaves it held.
func ExampleActionCtx_Exclusive() {
	reg := engine.NewRegistry()
	engine.AddAction(reg, "notes:export", func(ctx *engine.ActionCtx, _ sweepArgs) ([]string, error) {
		var log []string
		ran, err := ctx.Exclusive("notes-export", func() error {
			log = append(log, "exporting")
			// A second holder, here or in another process, is turned away while this runs.
			again, err := ctx.Exclusive("notes-export", func() error { return nil })
			log = append(log, fmt.Sprintf("second run allowed: %v", again))
			return err
		})
		log = append(log, fmt.Sprintf("first run allowed: %v", ran))
		return log, err
	}, &engine.FunctionOpts{Internal: true})

	app := startExample(reg)
	defer app.stop()

	var log []string
	err := app.engine.Call(context.Background(), "notes:export", sweepArgs{}, engine.Identity{Admin: true}, &log)
	for _, line := range log {
		fmt.Println(line)
	}
	fmt.Println(err)
	// Output:
	// exporting
	// second run allowed: false
	// first run allowed: true
	// <nil>
}
