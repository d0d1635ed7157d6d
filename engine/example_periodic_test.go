package engine_test

import (
	"fmt"
	"time"

	"github.com/ripplehq/ripple/engine"
)

type sweepArgs struct{}

// ExampleAddPeriodic runs a mutation on a schedule (a River periodic job: every process serving
// the registry registers it, River's leader enqueues each run once). RunOnStart makes the first
// run happen at start-up instead of an interval later.
func ExampleAddPeriodic() {
	swept := make(chan int64, 1)

	reg := engine.NewRegistry()
	engine.AddMutation(reg, "notes:sweep", func(ctx *engine.MutationCtx, _ sweepArgs) (int64, error) {
		tag, err := ctx.DB().Exec(ctx, "DELETE FROM notes WHERE body = ''")
		if err != nil {
			return 0, err
		}
		// Only the example waits on this; a mutation may be retried, hence the select.
		select {
		case swept <- tag.RowsAffected():
		default:
		}
		return tag.RowsAffected(), nil
	}, &engine.FunctionOpts{Internal: true})
	engine.AddPeriodic(reg, engine.PeriodicFunction{Path: "notes:sweep", Args: sweepArgs{}, Interval: time.Hour, RunOnStart: true})
	// A cron schedule works too: engine.PeriodicFunction{Path: "notes:sweep", Cron: "0 3 * * *"}.

	for _, p := range reg.Periodic() {
		fmt.Println(p.Path, p.Schedule)
	}

	app := startExample(reg)
	defer app.stop()
	fmt.Println("deleted", <-swept)
	// Output:
	// notes:sweep @every 1h0m0s
	// deleted 0
}
