package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
)

// ScheduledFunction is a scheduled function that has not finished: waiting for its time, ready,
// running, or waiting to be retried.
type ScheduledFunction struct {
	ID   int64           `json:"id"`
	Path string          `json:"path"`
	Args json.RawMessage `json:"args"`
	// UserID is the identity it runs as; empty runs it with none.
	UserID string    `json:"userId,omitempty"`
	At     time.Time `json:"at"`
	// State is River's: scheduled, available, running or retryable.
	State   string `json:"state"`
	Attempt int    `json:"attempt"`
}

// Scheduler schedules, lists and cancels functions from outside a running engine (`ripple run
// --at`, `ripple scheduled`). It writes the same River jobs as MutationCtx.RunAt, so whichever
// engine serves the registry on that database runs them.
type Scheduler struct {
	registry *Registry
	river    *river.Client[pgx.Tx]
}

// pendingStates are the states of a scheduled function that has not finished.
var pendingStates = []rivertype.JobState{
	rivertype.JobStateScheduled, rivertype.JobStateAvailable, rivertype.JobStateRunning, rivertype.JobStateRetryable,
}

// NewScheduler returns a scheduler over the pool (its search_path on the application's schema),
// for the functions of reg.
func NewScheduler(pool *pgxpool.Pool, reg *Registry, schema string) (*Scheduler, error) {
	// No queues: this client only inserts, lists and cancels; the engine's workers run the jobs.
	c, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: schema})
	if err != nil {
		return nil, err
	}
	return &Scheduler{registry: reg, river: c}, nil
}

// Schedule makes path run at `at` with args (JSON) as userID (empty: no identity). The
// arguments are checked as a call would check them, so a mistake is reported now rather than
// when the job runs.
func (s *Scheduler) Schedule(ctx context.Context, at time.Time, path string, args json.RawMessage, userID string) (int64, error) {
	fn := s.registry.lookup(path)
	if fn == nil {
		return 0, NotFound("function %q is not registered", path)
	}
	if fn.kind == KindQuery {
		return 0, InvalidArgument("%s is a query; only mutations and actions can be scheduled", path)
	}
	if _, err := fn.decode(args, 0); err != nil {
		return 0, err
	}
	if len(args) == 0 {
		args = json.RawMessage("{}")
	}
	opts := &river.InsertOpts{}
	if at.After(time.Now()) {
		opts.ScheduledAt = at
	}
	res, err := s.river.Insert(ctx, functionJobArgs{Path: path, Args: args, UserID: userID}, opts)
	if err != nil {
		return 0, err
	}
	return res.Job.ID, nil
}

// Pending lists the scheduled functions that have not finished, soonest first (at most limit).
// Runs of periodic functions are not listed: nobody scheduled them (`ripple jobs` shows them).
func (s *Scheduler) Pending(ctx context.Context, limit int) ([]ScheduledFunction, error) {
	params := river.NewJobListParams().Kinds(functionJobArgs{}.Kind()).States(pendingStates...).
		Where("(args->>'periodic') IS NULL").
		OrderBy(river.JobListOrderByScheduledAt, river.SortOrderAsc).First(limit)
	res, err := s.river.JobList(ctx, params)
	if err != nil {
		return nil, err
	}
	out := make([]ScheduledFunction, 0, len(res.Jobs))
	for _, job := range res.Jobs {
		var args functionJobArgs
		if err := json.Unmarshal(job.EncodedArgs, &args); err != nil {
			return nil, fmt.Errorf("scheduled function %d: %w", job.ID, err)
		}
		out = append(out, ScheduledFunction{
			ID: job.ID, Path: args.Path, Args: args.Args, UserID: args.UserID,
			At: job.ScheduledAt, State: string(job.State), Attempt: job.Attempt,
		})
	}
	return out, nil
}

// Cancel cancels a scheduled function that has not finished. One that is running is stopped
// if its engine notices in time; one that finished, or any other job, is NOT_FOUND.
func (s *Scheduler) Cancel(ctx context.Context, id int64) error {
	job, err := s.river.JobGet(ctx, id)
	if errors.Is(err, rivertype.ErrNotFound) || (err == nil && job.Kind != functionJobArgs{}.Kind()) {
		return NotFound("no scheduled function with id %d", id)
	}
	if err != nil {
		return err
	}
	pending := false
	for _, st := range pendingStates {
		pending = pending || job.State == st
	}
	if !pending {
		return NotFound("scheduled function %d already finished (%s)", id, job.State)
	}
	_, err = s.river.JobCancel(ctx, id)
	return err
}
