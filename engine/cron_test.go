package engine_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/engine"
)

// TestJobsCronScheduleFires: a periodic function on a cron schedule with seconds runs every
// second on real River, and the registry lists it with its schedule.
func TestJobsCronScheduleFires(t *testing.T) {
	t.Parallel()
	ticks := newCounter()
	var reg *engine.Registry
	startJobs(t, func(r *engine.Registry, _ chan<- observation) {
		reg = r
		engine.AddMutation(r, "jobs:cronTick", func(ctx *engine.MutationCtx, a markerArgs) (any, error) {
			if a.Marker != "cron" {
				return nil, engine.InvalidArgument("unexpected args %+v", a)
			}
			ticks.hit()
			return nil, nil
		}, &engine.FunctionOpts{Internal: true})
		engine.AddPeriodic(r, engine.PeriodicFunction{Path: "jobs:cronTick", Args: markerArgs{Marker: "cron"}, Cron: "* * * * * *"})
		engine.AddPeriodic(r, engine.PeriodicFunction{Path: "jobs:cleanUp", Interval: time.Hour})
	}, nil)
	ticks.wait(t, 2, "jobs:cronTick")
	require.Equal(t, []engine.PeriodicInfo{
		{Path: "jobs:cleanUp", Schedule: "@every 1h0m0s"},
		{Path: "jobs:cronTick", Schedule: "* * * * * *"},
	}, reg.Periodic())
}

func TestPeriodicScheduleIsValidated(t *testing.T) {
	t.Parallel()
	reg := engine.NewRegistry()
	for _, p := range []engine.PeriodicFunction{
		{Path: "a:b"},
		{Path: "a:b", Interval: -time.Second},
		{Path: "a:b", Interval: time.Minute, Cron: "@hourly"},
		{Path: "a:b", Cron: "every day"},
		{Path: "a:b", Cron: "61 * * * *"},
	} {
		require.Error(t, engine.AddPeriodicSafely(reg, p), "%+v", p)
	}
	for _, cron := range []string{"0 3 * * *", "*/10 * * * * *", "@daily", "@every 90s", "CRON_TZ=Europe/Paris 0 8 * * 1-5"} {
		require.NoError(t, engine.AddPeriodicSafely(reg, engine.PeriodicFunction{Path: "a:b", Cron: cron}), cron)
	}
	require.Len(t, reg.Periodic(), 5)
	_, err := engine.New(nil, reg, &engine.Config{PeriodicFunctions: []engine.PeriodicFunction{{Path: "a:b", Cron: "nope"}}})
	require.ErrorContains(t, err, "cron schedule")
}
