package engine_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/internal/testdb"
)

// Scheduled functions (River jobs of kind "ripple.function") against a real database. Every
// test waits on channels its functions signal, bounded by jobWait; where River's bookkeeping
// (the job's row) is checked after a function ran, it is polled briefly, since River records a
// job's outcome asynchronously. River moves jobs scheduled in the future to "available" from a
// maintenance loop every few seconds, so jobWait leaves room for that.

const jobWait = 30 * time.Second

// observation is what a scheduled test function reports when it runs.
type observation struct {
	path     string
	userID   string
	sawWrite bool // the scheduling mutation's write was visible
	at       time.Time
}

type enqueueArgs struct {
	Target string `json:"target"`
	Marker string `json:"marker"`
	// DelayMs schedules the target that long after now; At (Unix microseconds) wins when set.
	DelayMs int64 `json:"delayMs"`
	At      int64 `json:"at"`
	// Fail makes the scheduling mutation fail after it scheduled the target.
	Fail bool `json:"fail"`
}

type markerArgs struct {
	Marker string `json:"marker"`
}

type cancelArgs struct {
	JobID int64 `json:"jobId"`
	Fail  bool  `json:"fail"`
}

const (
	sqlMarkerInsert = `-- name: TestMarkerInsert :exec
INSERT INTO users (name, email) VALUES ($1, $1 || '@jobs.test')`
	sqlMarkerCount = `-- name: TestMarkerCount :one
SELECT count(*) FROM users WHERE name = $1`
)

// jobsEnv is an engine with its job workers running, on a schema of its own.
type jobsEnv struct {
	db     *testdb.Bundle
	engine *engine.Engine
	seen   chan observation
}

// startJobs registers the scheduling helpers and the observing functions, then whatever
// register adds, and starts an engine with jobs enabled.
func startJobs(t *testing.T, register func(reg *engine.Registry, seen chan<- observation), configure func(*engine.Config)) *jobsEnv {
	t.Helper()
	db := testdb.NewSchema(t)
	seen := make(chan observation, 64) // never blocks a job: Stop waits for running jobs
	report := func(o observation) {
		select {
		case seen <- o:
		default:
			t.Errorf("observation dropped: %+v", o)
		}
	}
	reg := engine.NewRegistry()
	engine.AddMutation(reg, "jobs:enqueue", func(ctx *engine.MutationCtx, a enqueueArgs) (int64, error) {
		if a.Marker != "" {
			if _, err := ctx.DB().Exec(ctx, sqlMarkerInsert, a.Marker); err != nil {
				return 0, err
			}
		}
		var id int64
		var err error
		if a.At != 0 {
			id, err = ctx.RunAt(time.UnixMicro(a.At), a.Target, markerArgs{Marker: a.Marker})
		} else {
			id, err = ctx.RunAfter(time.Duration(a.DelayMs)*time.Millisecond, a.Target, markerArgs{Marker: a.Marker})
		}
		if err != nil {
			return 0, err
		}
		if a.Fail {
			return 0, engine.InvalidArgument("failing after scheduling %s", a.Target)
		}
		return id, nil
	}, nil)
	engine.AddAction(reg, "jobs:enqueueFromAction", func(ctx *engine.ActionCtx, a enqueueArgs) (int64, error) {
		if a.At != 0 {
			return ctx.RunAt(time.UnixMicro(a.At), a.Target, markerArgs{Marker: a.Marker})
		}
		return ctx.RunAfter(time.Duration(a.DelayMs)*time.Millisecond, a.Target, markerArgs{Marker: a.Marker})
	}, nil)
	engine.AddMutation(reg, "jobs:cancel", func(ctx *engine.MutationCtx, a cancelArgs) (bool, error) {
		if err := ctx.CancelScheduled(a.JobID); err != nil {
			return false, err
		}
		if a.Fail {
			return false, engine.InvalidArgument("failing after cancelling")
		}
		return true, nil
	}, nil)
	engine.AddAction(reg, "jobs:cancelFromAction", func(ctx *engine.ActionCtx, a cancelArgs) (bool, error) {
		return true, ctx.CancelScheduled(a.JobID)
	}, nil)
	engine.AddQuery(reg, "jobs:markerCount", func(ctx *engine.QueryCtx, a markerArgs) (int64, error) {
		var n int64
		err := ctx.DB().QueryRow(ctx, sqlMarkerCount, a.Marker).Scan(&n)
		return n, err
	}, &engine.FunctionOpts{Internal: true})
	engine.AddMutation(reg, "jobs:observeMutation", func(ctx *engine.MutationCtx, a markerArgs) (any, error) {
		var n int64
		if err := ctx.DB().QueryRow(ctx, sqlMarkerCount, a.Marker).Scan(&n); err != nil {
			return nil, err
		}
		report(observation{path: "jobs:observeMutation", userID: ctx.Identity().UserID, sawWrite: n == 1, at: time.Now()})
		return nil, nil
	}, &engine.FunctionOpts{Internal: true})
	engine.AddAction(reg, "jobs:observeAction", func(ctx *engine.ActionCtx, a markerArgs) (any, error) {
		at := time.Now()
		var n int64
		if err := ctx.RunQuery("jobs:markerCount", a, &n); err != nil {
			return nil, err
		}
		report(observation{path: "jobs:observeAction", userID: ctx.Identity().UserID, sawWrite: n == 1, at: at})
		return nil, nil
	}, &engine.FunctionOpts{Internal: true})
	if register != nil {
		register(reg, seen)
	}

	cfg := &engine.Config{Schema: db.Schema, JobWorkers: 4}
	if configure != nil {
		configure(cfg)
	}
	e, err := engine.New(db.Pool, reg, cfg)
	require.NoError(t, err)
	require.NoError(t, e.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, e.Stop(ctx))
	})
	return &jobsEnv{db: db, engine: e, seen: seen}
}

func (j *jobsEnv) call(t *testing.T, who engine.Identity, path string, args any, out any) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return j.engine.Call(ctx, path, args, who, out)
}

func (j *jobsEnv) enqueue(t *testing.T, who engine.Identity, a enqueueArgs) int64 {
	t.Helper()
	var id int64
	require.NoError(t, j.call(t, who, "jobs:enqueue", a, &id))
	require.NotZero(t, id)
	return id
}

// next waits for the next observation.
func (j *jobsEnv) next(t *testing.T, what string) observation {
	t.Helper()
	select {
	case o := <-j.seen:
		return o
	case <-time.After(jobWait):
		t.Fatalf("timed out after %s waiting for %s", jobWait, what)
		return observation{}
	}
}

// jobRow is a job's row in river_job.
type jobRow struct {
	State   string
	Attempt int
	Errors  int
	Snoozes int
}

func (j *jobsEnv) job(t *testing.T, id int64) jobRow {
	t.Helper()
	var r jobRow
	require.NoError(t, j.db.Pool.QueryRow(context.Background(), `
SELECT state::text, attempt, coalesce(array_length(errors, 1), 0), coalesce((metadata->>'snoozes')::int, 0)
FROM river_job WHERE id = $1`, id).Scan(&r.State, &r.Attempt, &r.Errors, &r.Snoozes))
	return r
}

// waitState polls the job's row until it reaches state (River finalises jobs in batches, just
// after the function returned).
func (j *jobsEnv) waitState(t *testing.T, id int64, state string) jobRow {
	t.Helper()
	var last jobRow
	require.Eventually(t, func() bool {
		last = j.job(t, id)
		return last.State == state
	}, jobWait, 10*time.Millisecond, "job %d never reached %s", id, state)
	return last
}

// counter counts runs of a function and reports each run's number.
type counter struct {
	runs atomic.Int64
	ch   chan int64
}

func newCounter() *counter { return &counter{ch: make(chan int64, 64)} }

func (c *counter) hit() int64 {
	n := c.runs.Add(1)
	select {
	case c.ch <- n:
	default:
	}
	return n
}

func (c *counter) wait(t *testing.T, n int64, what string) {
	t.Helper()
	deadline := time.After(jobWait)
	for {
		select {
		case got := <-c.ch:
			if got >= n {
				return
			}
		case <-deadline:
			t.Fatalf("timed out after %s waiting for run %d of %s (saw %d)", jobWait, n, what, c.runs.Load())
		}
	}
}

func TestJobsRunAfterFromMutationRunsAfterCommitAsTheCaller(t *testing.T) {
	t.Parallel()
	j := startJobs(t, nil, nil)
	ann := engine.Identity{UserID: "4242"}

	for _, target := range []string{"jobs:observeMutation", "jobs:observeAction"} {
		j.enqueue(t, ann, enqueueArgs{Target: target, Marker: "marker-" + target})
		o := j.next(t, target)
		require.Equal(t, target, o.path)
		require.Equal(t, ann.UserID, o.userID, "a scheduled function runs as the identity that scheduled it")
		require.True(t, o.sawWrite, "the scheduled function ran before the scheduling mutation's write was visible")
	}

	// A mutation that fails after RunAfter schedules nothing: its InsertTx rolled back with it.
	err := j.call(t, ann, "jobs:enqueue", enqueueArgs{Target: "jobs:observeMutation", Marker: "doomed", Fail: true}, nil)
	requireErrorCode(t, err, engine.CodeInvalidArgument)
	var jobs, markers int
	require.NoError(t, j.db.Pool.QueryRow(context.Background(),
		"SELECT count(*) FROM river_job WHERE args->'args'->>'marker' = 'doomed'").Scan(&jobs))
	require.NoError(t, j.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM users WHERE name = 'doomed'").Scan(&markers))
	require.Zero(t, jobs, "a rolled-back mutation left a job behind")
	require.Zero(t, markers)

	// Everything scheduled so far has run; a later job runs too, and the doomed one never did.
	j.enqueue(t, ann, enqueueArgs{Target: "jobs:observeAction", Marker: "sentinel"})
	o := j.next(t, "the sentinel job")
	require.True(t, o.sawWrite)
	select {
	case extra := <-j.seen:
		t.Fatalf("unexpected run: %+v", extra)
	default:
	}
	var total int
	require.NoError(t, j.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM river_job WHERE kind = 'ripple.function'").Scan(&total))
	require.Equal(t, 3, total)
}

// TestJobsRunAfterZeroIsAvailableAtOnce: a function scheduled with no delay (messages:send's
// handleSentMessage) must be inserted ready to run: River inserts any job with a ScheduledAt as
// "scheduled", which only its leader's scheduler (every 5 s) makes available.
func TestJobsRunAfterZeroIsAvailableAtOnce(t *testing.T) {
	t.Parallel()
	j := startJobs(t, nil, func(cfg *engine.Config) { cfg.DisableJobs = true })
	id := j.enqueue(t, engine.Identity{UserID: "7"}, enqueueArgs{Target: "jobs:observeAction"})
	require.Equal(t, "available", j.job(t, id).State)
}

func TestJobsRunAtRunsNotBeforeItsTime(t *testing.T) {
	t.Parallel()
	j := startJobs(t, nil, nil)
	ann := engine.Identity{UserID: "7"}

	// From a mutation (transactional) and from an action (direct insert).
	for _, path := range []string{"jobs:enqueue", "jobs:enqueueFromAction"} {
		// Postgres keeps microseconds; truncating keeps the stored time from rounding up past at.
		at := time.Now().Add(300 * time.Millisecond).Truncate(time.Microsecond)
		var id int64
		require.NoError(t, j.call(t, ann, path, enqueueArgs{Target: "jobs:observeAction", At: at.UnixMicro()}, &id))
		require.Equal(t, "scheduled", j.job(t, id).State)
		o := j.next(t, "the job scheduled at "+at.Format(time.RFC3339Nano)+" by "+path)
		require.Equal(t, ann.UserID, o.userID)
		require.False(t, o.at.Before(at), "ran at %s, scheduled for %s", o.at.Format(time.StampMicro), at.Format(time.StampMicro))
		j.waitState(t, id, "completed")
	}
}

func TestJobsCancelScheduled(t *testing.T) {
	t.Parallel()
	j := startJobs(t, nil, nil)
	ann := engine.Identity{UserID: "7"}

	fromMutation := j.enqueue(t, ann, enqueueArgs{Target: "jobs:observeAction", DelayMs: time.Hour.Milliseconds()})
	require.Equal(t, "scheduled", j.job(t, fromMutation).State)

	// Cancelling is transactional: a mutation that fails after cancelling leaves the job be.
	err := j.call(t, ann, "jobs:cancel", cancelArgs{JobID: fromMutation, Fail: true}, nil)
	requireErrorCode(t, err, engine.CodeInvalidArgument)
	require.Equal(t, "scheduled", j.job(t, fromMutation).State)

	require.NoError(t, j.call(t, ann, "jobs:cancel", cancelArgs{JobID: fromMutation}, nil))
	require.Equal(t, "cancelled", j.job(t, fromMutation).State)

	var fromAction int64
	require.NoError(t, j.call(t, ann, "jobs:enqueueFromAction", enqueueArgs{Target: "jobs:observeAction", DelayMs: time.Hour.Milliseconds()}, &fromAction))
	require.Equal(t, "scheduled", j.job(t, fromAction).State)
	require.NoError(t, j.call(t, ann, "jobs:cancelFromAction", cancelArgs{JobID: fromAction}, nil))
	require.Equal(t, "cancelled", j.job(t, fromAction).State)

	// A cancelled job is final: River never picks it up. Neither of them ran.
	for _, id := range []int64{fromMutation, fromAction} {
		r := j.job(t, id)
		require.Zero(t, r.Attempt, "job %d was attempted", id)
	}
	select {
	case o := <-j.seen:
		t.Fatalf("a cancelled job ran: %+v", o)
	default:
	}
}

func TestJobsSnoozePermanentAndRetry(t *testing.T) {
	t.Parallel()
	snoozy, permanent, userErr, conflict, flaky := newCounter(), newCounter(), newCounter(), newCounter(), newCounter()
	j := startJobs(t, func(reg *engine.Registry, _ chan<- observation) {
		engine.AddAction(reg, "jobs:snoozy", func(ctx *engine.ActionCtx, _ markerArgs) (any, error) {
			if snoozy.hit() <= 2 {
				return nil, engine.Snooze(100 * time.Millisecond)
			}
			return nil, nil
		}, nil)
		engine.AddAction(reg, "jobs:permanent", func(ctx *engine.ActionCtx, _ markerArgs) (any, error) {
			permanent.hit()
			return nil, engine.Permanent(errors.New("this will never work"))
		}, nil)
		engine.AddMutation(reg, "jobs:userError", func(ctx *engine.MutationCtx, _ markerArgs) (any, error) {
			userErr.hit()
			return nil, engine.NotFound("no such thing")
		}, nil)
		engine.AddAction(reg, "jobs:conflict", func(ctx *engine.ActionCtx, _ markerArgs) (any, error) {
			conflict.hit()
			return nil, engine.NewError(engine.CodeConflict, "too much contention; try again")
		}, nil)
		engine.AddAction(reg, "jobs:flaky", func(ctx *engine.ActionCtx, _ markerArgs) (any, error) {
			if flaky.hit() == 1 {
				return nil, errors.New("upstream hiccup")
			}
			return nil, nil
		}, nil)
	}, nil)
	ann := engine.Identity{UserID: "7"}

	snoozyID := j.enqueue(t, ann, enqueueArgs{Target: "jobs:snoozy"})
	permanentID := j.enqueue(t, ann, enqueueArgs{Target: "jobs:permanent"})
	userErrID := j.enqueue(t, ann, enqueueArgs{Target: "jobs:userError"})
	conflictID := j.enqueue(t, ann, enqueueArgs{Target: "jobs:conflict"})
	flakyID := j.enqueue(t, ann, enqueueArgs{Target: "jobs:flaky"})

	t.Run("snooze", func(t *testing.T) {
		snoozy.wait(t, 3, "jobs:snoozy")
		r := j.waitState(t, snoozyID, "completed")
		require.Equal(t, int64(3), snoozy.runs.Load())
		require.Equal(t, 2, r.Snoozes)
		require.Equal(t, 1, r.Attempt, "snoozing must not use up attempts")
		require.Zero(t, r.Errors)
	})
	t.Run("permanent", func(t *testing.T) {
		permanent.wait(t, 1, "jobs:permanent")
		r := j.waitState(t, permanentID, "cancelled")
		require.Equal(t, 1, r.Attempt)
		require.Equal(t, 1, r.Errors)
	})
	t.Run("user-facing error", func(t *testing.T) {
		userErr.wait(t, 1, "jobs:userError")
		r := j.waitState(t, userErrID, "cancelled")
		require.Equal(t, 1, r.Attempt)
	})
	t.Run("conflict is retried", func(t *testing.T) {
		// River's backoff is attempt^4 seconds: the second run comes about a second after the
		// first (plus the time its scheduler takes to make the job available again).
		conflict.wait(t, 2, "jobs:conflict")
		var r jobRow
		require.Eventually(t, func() bool {
			r = j.job(t, conflictID)
			return r.State == "retryable" && r.Errors == 2
		}, jobWait, 10*time.Millisecond)
		require.Equal(t, 2, r.Attempt)
		// The third attempt would be 16 s away; stop here.
		require.NoError(t, j.call(t, ann, "jobs:cancel", cancelArgs{JobID: conflictID}, nil))
		require.Equal(t, "cancelled", j.job(t, conflictID).State)
	})
	t.Run("plain error is retried", func(t *testing.T) {
		flaky.wait(t, 2, "jobs:flaky")
		r := j.waitState(t, flakyID, "completed")
		require.Equal(t, int64(2), flaky.runs.Load())
		require.Equal(t, 2, r.Attempt, "the retry is a second attempt")
		require.Equal(t, 1, r.Errors)
	})

	// Nothing ran more often than it should have (a cancelled job is final).
	require.Equal(t, int64(1), permanent.runs.Load())
	require.Equal(t, int64(1), userErr.runs.Load())
}

func TestJobsPeriodicFunctionRunsOnInterval(t *testing.T) {
	t.Parallel()
	ticks := newCounter()
	var userIDs atomic.Value
	startJobs(t, func(reg *engine.Registry, _ chan<- observation) {
		engine.AddAction(reg, "jobs:tick", func(ctx *engine.ActionCtx, a markerArgs) (any, error) {
			if a.Marker != "periodic" {
				return nil, engine.InvalidArgument("unexpected args %+v", a)
			}
			userIDs.Store(ctx.Identity().UserID)
			ticks.hit()
			return nil, nil
		}, &engine.FunctionOpts{Internal: true})
	}, func(cfg *engine.Config) {
		cfg.PeriodicFunctions = []engine.PeriodicFunction{{
			Path: "jobs:tick", Args: markerArgs{Marker: "periodic"}, Interval: 200 * time.Millisecond, RunOnStart: true,
		}}
	})
	ticks.wait(t, 2, "jobs:tick")
	require.Equal(t, "", userIDs.Load(), "a periodic function runs anonymously")
}

func requireErrorCode(t *testing.T, err error, code engine.ErrorCode) {
	t.Helper()
	require.Error(t, err)
	e, ok := engine.AsError(err)
	require.True(t, ok, "want a %s error, got %v", code, err)
	require.Equal(t, code, e.Code, e.Message)
}

// Housekeeping runs as a River periodic job: it prunes old mutation outcomes and runs the
// configured clean-ups.
func TestHousekeepingPrunesAndRunsCleanups(t *testing.T) {
	t.Parallel()
	ran := make(chan struct{}, 16)
	j := startJobs(t, nil, func(cfg *engine.Config) {
		cfg.HousekeepingInterval = 100 * time.Millisecond
		cfg.MutationLogRetention = time.Hour
		cfg.Housekeeping = []func(context.Context) error{func(context.Context) error {
			select {
			case ran <- struct{}{}:
			default:
			}
			return nil
		}}
	})
	ctx := context.Background()
	_, err := j.db.Pool.Exec(ctx, `INSERT INTO ripple_mutation_log (session_id, request_id, success, created_at)
		VALUES ('old', 1, true, now() - interval '2 hours'), ('new', 1, true, now())`)
	require.NoError(t, err)
	select {
	case <-ran:
	case <-time.After(30 * time.Second):
		t.Fatal("housekeeping did not run")
	}
	require.Eventually(t, func() bool {
		var sessions []string
		rows, err := j.db.Pool.Query(ctx, "SELECT session_id FROM ripple_mutation_log ORDER BY 1")
		require.NoError(t, err)
		sessions, err = pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return len(sessions) == 1 && sessions[0] == "new"
	}, 30*time.Second, 20*time.Millisecond)
}

// Stopping while a job hangs (a provider that does not answer) cancels it once the soft part of
// the deadline is spent, and River records it before the engine returns: nothing is left
// "running" for the rescuer, and Stop reports no error.
func TestStopCancelsHangingJobsAndRecordsThem(t *testing.T) {
	t.Parallel()
	db := testdb.NewSchema(t)
	started := make(chan struct{}, 1)
	reg := engine.NewRegistry()
	engine.AddAction(reg, "jobs:hang", func(ctx *engine.ActionCtx, _ struct{}) (any, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}, &engine.FunctionOpts{Internal: true})
	engine.AddMutation(reg, "jobs:startHang", func(ctx *engine.MutationCtx, _ struct{}) (int64, error) {
		return ctx.RunAfter(0, "jobs:hang", struct{}{})
	}, nil)
	e, err := engine.New(db.Pool, reg, &engine.Config{Schema: db.Schema, JobWorkers: 2})
	require.NoError(t, err)
	require.NoError(t, e.Start(context.Background()))
	var id int64
	require.NoError(t, e.Call(context.Background(), "jobs:startHang", struct{}{}, engine.Identity{}, &id))
	select {
	case <-started:
	case <-time.After(jobWait):
		t.Fatal("the job did not start")
	}
	// Generous: the soft part (2/3) passes for nothing, the rest leaves River time to record
	// the cancelled job even on a busy machine.
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Second)
	defer cancel()
	require.NoError(t, e.Stop(ctx))
	var state string
	require.NoError(t, db.Pool.QueryRow(context.Background(), "SELECT state::text FROM river_job WHERE id = $1", id).Scan(&state))
	require.NotEqual(t, "running", state)
}

// River's job cleaner deletes finished jobs older than the configured retention and keeps
// newer ones and unfinished ones.
func TestRetentionFinishedJobsCleanedByRiver(t *testing.T) {
	t.Parallel()
	j := startJobs(t, nil, func(cfg *engine.Config) {
		cfg.CompletedJobRetention = time.Hour
		cfg.CancelledJobRetention = time.Hour
		cfg.DiscardedJobRetention = 2 * time.Hour
	})
	ctx := context.Background()
	// Finalized times relative to the database clock, which River's cleaner compares against.
	_, err := j.db.Pool.Exec(ctx, `INSERT INTO river_job (state, kind, args, queue, max_attempts, attempt, attempted_at, finalized_at, metadata)
		VALUES ('completed', 'retention.old', '{}', 'retention', 1, 1, now() - interval '3 hours', now() - interval '90 minutes', '{"m":"completed-old"}'),
		       ('completed', 'retention.new', '{}', 'retention', 1, 1, now() - interval '20 minutes', now() - interval '10 minutes', '{"m":"completed-new"}'),
		       ('cancelled', 'retention.old', '{}', 'retention', 1, 1, now() - interval '3 hours', now() - interval '90 minutes', '{"m":"cancelled-old"}'),
		       ('discarded', 'retention.old', '{}', 'retention', 1, 1, now() - interval '3 hours', now() - interval '150 minutes', '{"m":"discarded-old"}'),
		       ('discarded', 'retention.kept', '{}', 'retention', 1, 1, now() - interval '3 hours', now() - interval '90 minutes', '{"m":"discarded-new"}')`)
	require.NoError(t, err)
	_, err = j.db.Pool.Exec(ctx, `INSERT INTO river_job (state, kind, args, queue, max_attempts, attempt, scheduled_at, metadata)
		VALUES ('scheduled', 'retention.waiting', '{}', 'retention', 1, 0, now() + interval '1 day', '{"m":"scheduled"}')`)
	require.NoError(t, err)
	left := func() []string {
		rows, err := j.db.Pool.Query(ctx, "SELECT metadata->>'m' FROM river_job WHERE queue = 'retention' ORDER BY 1")
		require.NoError(t, err)
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return got
	}
	require.Eventually(t, func() bool { return len(left()) == 3 }, 60*time.Second, 50*time.Millisecond,
		"River's job cleaner did not run")
	require.Equal(t, []string{"completed-new", "discarded-new", "scheduled"}, left())
}
