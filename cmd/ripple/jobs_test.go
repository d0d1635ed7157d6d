package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/internal/testdb"
)

// scheduledFunction has the shape of the engine's scheduled-function jobs.
type scheduledFunction struct {
	Path string          `json:"path"`
	Args json.RawMessage `json:"args"`
}

func (scheduledFunction) Kind() string { return "ripple.function" }

// failingArgs is a job whose worker always fails.
type failingArgs struct{}

func (failingArgs) Kind() string { return "test.failing" }

type failingWorker struct {
	river.WorkerDefaults[failingArgs]
}

func (failingWorker) Work(context.Context, *river.Job[failingArgs]) error {
	return errors.New("provider said no\nsecond line")
}

// startRiver starts a River client working jobs on the test schema, one at a time, until the
// test ends, and subscribes to events of kind.
func startRiver(ctx context.Context, t *testing.T, db *testdb.Bundle, workers *river.Workers, kind river.EventKind) (*river.Client[pgx.Tx], <-chan *river.Event) {
	t.Helper()
	client, err := river.NewClient(riverpgxv5.New(db.Pool), &river.Config{
		Schema: db.Schema, Logger: slog.New(slog.DiscardHandler), Workers: workers,
		Queues:        map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}},
		FetchCooldown: 20 * time.Millisecond, FetchPollInterval: 100 * time.Millisecond,
	})
	require.NoError(t, err)
	events, stopEvents := client.Subscribe(kind)
	t.Cleanup(stopEvents)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() { _ = client.Stop(context.Background()) })
	return client, events
}

func TestJobsCommand(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db := testdb.NewSchema(t)
	vars := map[string]string{"DATABASE_URL": db.URL}

	// A real River client works a job that fails for good (one attempt), then stops.
	workers := river.NewWorkers()
	river.AddWorker(workers, failingWorker{})
	worker, events := startRiver(ctx, t, db, workers, river.EventKindJobFailed)
	failed, err := worker.Insert(ctx, failingArgs{}, &river.InsertOpts{MaxAttempts: 1})
	require.NoError(t, err)
	select {
	case ev := <-events:
		require.Equal(t, failed.Job.ID, ev.Job.ID)
	case <-ctx.Done():
		t.Fatal("the failing job was not worked")
	}
	require.NoError(t, worker.Stop(ctx))
	// The engine's kind is inserted, and jobs read back, by a client without workers.
	inserter, err := river.NewClient(riverpgxv5.New(db.Pool), &river.Config{Schema: db.Schema})
	require.NoError(t, err)
	later, err := inserter.Insert(ctx, scheduledFunction{Path: "messages:remind", Args: json.RawMessage(`{}`)},
		&river.InsertOpts{ScheduledAt: time.Date(2099, 1, 2, 3, 4, 5, 0, time.UTC)})
	require.NoError(t, err)

	res := runBinary(t, vars, "jobs", "--schema", db.Schema, "--state", "failed")
	require.Equal(t, 0, res.code, res.stderr)
	t.Logf("ripple jobs --state failed:\n%s", res.stdout)
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	require.Len(t, lines, 2, "a header and the failed job")
	assert.Regexp(t, fmt.Sprintf(`^%d\s+test.failing\s+discarded\s+1/1\s+\S+ \S+\s+provider said no; second line$`, failed.Job.ID), lines[1])

	res = runBinary(t, vars, "jobs", "--schema", db.Schema)
	require.Equal(t, 0, res.code, res.stderr)
	lines = strings.Split(strings.TrimSpace(res.stdout), "\n")
	require.Len(t, lines, 3, "newest first:\n%s", res.stdout)
	assert.Regexp(t, fmt.Sprintf(`^%d\s+ripple.function messages:remind\s+scheduled\s+0/\d+\s+2099-01-02 03:04:05\s*$`, later.Job.ID), lines[1])

	res = runBinary(t, vars, "jobs", "--schema", db.Schema, "--kind", "nothing.here")
	require.Equal(t, 0, res.code, res.stderr)
	assert.Equal(t, "no jobs\n", res.stdout)

	// Retry makes the discarded job available again (River adds an attempt).
	res = runBinary(t, vars, "jobs", "--schema", db.Schema, "--retry", fmt.Sprint(failed.Job.ID))
	require.Equal(t, 0, res.code, res.stderr)
	assert.Contains(t, res.stdout, fmt.Sprintf("job %d (test.failing) is available", failed.Job.ID))
	job, err := inserter.JobGet(ctx, failed.Job.ID)
	require.NoError(t, err)
	assert.Equal(t, rivertype.JobStateAvailable, job.State)
	assert.Equal(t, 2, job.MaxAttempts)

	// Cancel takes the scheduled function off the schedule; a second cancel changes nothing.
	res = runBinary(t, vars, "jobs", "--schema", db.Schema, "--cancel", fmt.Sprint(later.Job.ID))
	require.Equal(t, 0, res.code, res.stderr)
	assert.Equal(t, fmt.Sprintf("job %d (ripple.function messages:remind) cancelled\n", later.Job.ID), res.stdout)
	job, err = inserter.JobGet(ctx, later.Job.ID)
	require.NoError(t, err)
	assert.Equal(t, rivertype.JobStateCancelled, job.State)
	res = runBinary(t, vars, "jobs", "--schema", db.Schema, "--cancel", fmt.Sprint(later.Job.ID))
	require.Equal(t, 0, res.code, res.stderr)
	assert.Contains(t, res.stdout, "was already cancelled; nothing to cancel")

	res = runBinary(t, vars, "jobs", "--schema", db.Schema, "--retry", "999999")
	require.Equal(t, 1, res.code)
	assert.Contains(t, requireOneErrorLine(t, res.stderr), "there is no job 999999")

	for _, args := range [][]string{
		{"jobs", "--state", "broken"},
		{"jobs", "--retry", "1", "--cancel", "2"},
		{"jobs", "--retry", "1", "--state", "failed"},
		{"jobs", "--limit", "0"},
	} {
		res = runBinary(t, vars, args...)
		assert.Equal(t, 2, res.code, "%v", args)
		requireOneErrorLine(t, res.stderr)
	}
}

// blockingArgs is a job whose worker runs until its context is cancelled.
type blockingArgs struct{}

func (blockingArgs) Kind() string { return "test.blocking" }

type blockingWorker struct {
	river.WorkerDefaults[blockingArgs]
	started chan int64
}

func (w blockingWorker) Work(ctx context.Context, job *river.Job[blockingArgs]) error {
	w.started <- job.ID
	<-ctx.Done()
	return ctx.Err()
}

// A running job is not retried, and cancelling it reaches the process working it: the job's
// context ends and River records it cancelled.
func TestJobsCancelRunning(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db := testdb.NewSchema(t)
	vars := map[string]string{"DATABASE_URL": db.URL}

	workers := river.NewWorkers()
	started := make(chan int64, 1)
	river.AddWorker(workers, blockingWorker{started: started})
	worker, events := startRiver(ctx, t, db, workers, river.EventKindJobCancelled)
	job, err := worker.Insert(ctx, blockingArgs{}, nil)
	require.NoError(t, err)
	select {
	case id := <-started:
		require.Equal(t, job.Job.ID, id)
	case <-ctx.Done():
		t.Fatal("the job did not start")
	}
	id := fmt.Sprint(job.Job.ID)

	res := runBinary(t, vars, "jobs", "--schema", db.Schema, "--state", "running")
	require.Equal(t, 0, res.code, res.stderr)
	assert.Regexp(t, `\n`+id+`\s+test.blocking\s+running\s+1/`, res.stdout)

	res = runBinary(t, vars, "jobs", "--schema", db.Schema, "--retry", id)
	require.Equal(t, 0, res.code, res.stderr)
	assert.Contains(t, res.stdout, "is running; a running job is not retried")

	res = runBinary(t, vars, "jobs", "--schema", db.Schema, "--cancel", id)
	require.Equal(t, 0, res.code, res.stderr)
	assert.Contains(t, res.stdout, "job "+id+" (test.blocking) is running: asked to stop")
	select {
	case ev := <-events:
		require.Equal(t, job.Job.ID, ev.Job.ID)
		require.Equal(t, rivertype.JobStateCancelled, ev.Job.State)
	case <-ctx.Done():
		t.Fatal("the running job was not cancelled")
	}
}
