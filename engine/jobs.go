package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/ripplehq/ripple/engine/internal/dbsqlc"
)

// Scheduled functions run as River jobs of one kind. A job's function runs as the identity that
// scheduled it.

type functionJobArgs struct {
	Path   string          `json:"path"`
	Args   json.RawMessage `json:"args"`
	UserID string          `json:"userId,omitempty"`
	// Periodic marks a run of a periodic function (AddPeriodic): infrastructure, not something
	// a caller scheduled, so Scheduler.Pending leaves it out.
	Periodic bool `json:"periodic,omitempty"`
}

func (functionJobArgs) Kind() string { return "ripple.function" }

type functionWorker struct {
	river.WorkerDefaults[functionJobArgs]
	e *Engine
}

// snoozeError asks River to run the job again later without counting an attempt.
type snoozeError struct{ after time.Duration }

func (s *snoozeError) Error() string { return fmt.Sprintf("snooze for %s", s.after) }

// Snooze, returned by a scheduled action, runs it again after d without using up a retry (for
// a provider's rate limit, say).
func Snooze(d time.Duration) error { return &snoozeError{after: d} }

type permanentError struct{ err error }

func (p *permanentError) Error() string { return p.err.Error() }
func (p *permanentError) Unwrap() error { return p.err }

// Permanent, returned by a scheduled function, stops River from retrying it.
func Permanent(err error) error { return &permanentError{err: err} }

func (w *functionWorker) Work(ctx context.Context, job *river.Job[functionJobArgs]) error {
	fn := w.e.registry.lookup(job.Args.Path)
	if fn == nil {
		return river.JobCancel(fmt.Errorf("scheduled function %q is not registered", job.Args.Path))
	}
	if fn.kind == KindQuery {
		return river.JobCancel(fmt.Errorf("%q is a query; only mutations and actions can be scheduled", job.Args.Path))
	}
	res := w.e.call(ctx, fn, job.Args.Args, Identity{UserID: job.Args.UserID})
	if res.Err == nil {
		return nil
	}
	var snooze *snoozeError
	if errors.As(res.Err, &snooze) {
		return river.JobSnooze(snooze.after)
	}
	var permanent *permanentError
	if errors.As(res.Err, &permanent) {
		return river.JobCancel(permanent)
	}
	if e, ok := AsError(res.Err); ok && e.Code != CodeConflict && e.Code != CodeRateLimited && e.Code != CodeInternal && e.Code != CodeUnavailable {
		// A user-facing error (bad arguments, not found...) will not go away by retrying.
		return river.JobCancel(res.Err)
	}
	return res.Err
}

// housekeepingArgs is the periodic job that prunes the mutation log and runs
// Config.Housekeeping; River's leader election makes one process do it.
type housekeepingArgs struct{}

func (housekeepingArgs) Kind() string { return "ripple.housekeeping" }

type housekeepingWorker struct {
	river.WorkerDefaults[housekeepingArgs]
	e *Engine
}

func (w *housekeepingWorker) Work(ctx context.Context, _ *river.Job[housekeepingArgs]) error {
	n, err := w.e.pruneMutationLog(ctx, time.Now())
	if err != nil {
		return fmt.Errorf("pruning the mutation log: %w", err)
	}
	if n > 0 {
		w.e.logger.Debug("pruned the mutation log", "rows", n)
	}
	var errs []error
	for _, clean := range w.e.config.Housekeeping {
		errs = append(errs, clean(ctx))
	}
	return errors.Join(errs...)
}

// pruneMutationLog deletes the outcomes logged before now minus MutationLogRetention, in
// statements of at most HousekeepingBatchSize rows (each its own short transaction), until one
// deletes fewer.
func (e *Engine) pruneMutationLog(ctx context.Context, now time.Time) (int64, error) {
	params := dbsqlc.MutationLogPruneParams{
		CreatedBefore: pgtype.Timestamptz{Time: now.Add(-e.config.MutationLogRetention), Valid: true},
		BatchSize:     int32(e.config.HousekeepingBatchSize),
	}
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := dbsqlc.New().MutationLogPrune(ctx, e.pool, params)
		total += n
		if err != nil || n < int64(params.BatchSize) {
			return total, err
		}
	}
}

func (e *Engine) newRiverClient() (*river.Client[pgx.Tx], error) {
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &functionWorker{e: e}); err != nil {
		return nil, err
	}
	if err := river.AddWorkerSafely(workers, &housekeepingWorker{e: e}); err != nil {
		return nil, err
	}
	periodic := []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(e.config.HousekeepingInterval),
		func() (river.JobArgs, *river.InsertOpts) { return housekeepingArgs{}, nil }, nil)}
	for _, p := range append(slices.Clone(e.config.PeriodicFunctions), e.registry.periodicFunctions()...) {
		raw, err := json.Marshal(p.Args)
		if err != nil {
			return nil, fmt.Errorf("periodic function %s: %w", p.Path, err)
		}
		args := functionJobArgs{Path: p.Path, Args: raw, Periodic: true}
		schedule, err := p.schedule()
		if err != nil {
			return nil, err
		}
		periodic = append(periodic, river.NewPeriodicJob(schedule,
			func() (river.JobArgs, *river.InsertOpts) { return args, nil },
			&river.PeriodicJobOpts{RunOnStart: p.RunOnStart}))
	}
	cfg := &river.Config{
		Schema:               e.config.Schema,
		Logger:               e.logger,
		Workers:              workers,
		PeriodicJobs:         periodic,
		JobTimeout:           e.config.JobTimeout,
		RescueStuckJobsAfter: e.config.RescueStuckJobsAfter,
		// Finished jobs' rows are deleted by River's job cleaner (docs/engine.md, Retention).
		CompletedJobRetentionPeriod: e.config.CompletedJobRetention,
		CancelledJobRetentionPeriod: e.config.CancelledJobRetention,
		DiscardedJobRetentionPeriod: e.config.DiscardedJobRetention,
	}
	if !e.config.DisableJobs {
		cfg.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: e.config.JobWorkers}}
		cfg.FetchCooldown = 20 * time.Millisecond
		cfg.FetchPollInterval = 500 * time.Millisecond
	}
	return river.NewClient(riverpgxv5.New(e.pool), cfg)
}

func (e *Engine) schedule(ctx context.Context, tx pgx.Tx, at time.Time, path string, args any, identity Identity) (int64, error) {
	fn := e.registry.lookup(path)
	if fn == nil || fn.kind == KindQuery {
		return 0, fmt.Errorf("cannot schedule %q: not a registered mutation or action", path)
	}
	raw, err := json.Marshal(args)
	if err != nil {
		return 0, fmt.Errorf("encoding arguments for %s: %w", path, err)
	}
	jobArgs := functionJobArgs{Path: path, Args: raw, UserID: identity.UserID}
	// River makes a job with any ScheduledAt wait for its scheduler (every few seconds), so
	// "now" is left unset to run at once.
	opts := &river.InsertOpts{}
	if at.After(time.Now()) {
		opts.ScheduledAt = at
	}
	if tx != nil {
		res, err := e.river.InsertTx(ctx, tx, jobArgs, opts)
		if err != nil {
			return 0, err
		}
		return res.Job.ID, nil
	}
	res, err := e.river.Insert(ctx, jobArgs, opts)
	if err != nil {
		return 0, err
	}
	return res.Job.ID, nil
}

func (e *Engine) cancelScheduled(ctx context.Context, tx pgx.Tx, jobID int64) error {
	var err error
	if tx != nil {
		_, err = e.river.JobCancelTx(ctx, tx, jobID)
	} else {
		_, err = e.river.JobCancel(ctx, jobID)
	}
	return err
}
