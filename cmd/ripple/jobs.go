package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
)

// jobStateAliases are the --state values besides River's own states.
var jobStateAliases = map[string][]rivertype.JobState{
	// failed: the jobs whose last attempt errored, waiting to retry or given up.
	"failed": {rivertype.JobStateRetryable, rivertype.JobStateDiscarded},
	// open: everything but completed jobs (the default).
	"open": {
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateScheduled, rivertype.JobStateRunning,
		rivertype.JobStateRetryable, rivertype.JobStateDiscarded, rivertype.JobStateCancelled,
	},
	"all": rivertype.JobStates(),
}

func jobsFlags(e *env) (*flag.FlagSet, func(ctx context.Context, args []string) error) {
	fs := flag.NewFlagSet("jobs", flag.ContinueOnError)
	schemaName := fs.String("schema", "public", "`name` of the Postgres schema holding the application's tables")
	state := fs.String("state", "open", "list jobs in this `state`: failed (retryable or discarded), open (all but completed), all, or one of River's states (available, scheduled, running, retryable, discarded, cancelled, completed, pending)")
	kind := fs.String("kind", "", "list only jobs of this `kind` (ripple.function, ripple.housekeeping)")
	limit := fs.Int("limit", 50, "list at most this many jobs, newest first")
	retry := fs.Int64("retry", 0, "make job `ID` available to run again now (a failed or cancelled one too)")
	cancel := fs.Int64("cancel", 0, "cancel job `ID` (a running one is told to stop)")
	return fs, func(ctx context.Context, args []string) error {
		if err := noArgs("jobs", args); err != nil {
			return err
		}
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if set["retry"] && set["cancel"] {
			return usagef("jobs: --retry and --cancel go one at a time")
		}
		acting := set["retry"] || set["cancel"]
		if acting && (set["state"] || set["kind"] || set["limit"]) {
			return usagef("jobs: --state, --kind and --limit list jobs; they do not go with --retry or --cancel")
		}
		states, ok := jobStateAliases[*state]
		if !ok {
			states = []rivertype.JobState{rivertype.JobState(*state)}
			if !jobStateKnown(states[0]) {
				return usagef("jobs: unknown --state %q (see \"ripple help jobs\")", *state)
			}
		}
		if *limit < 1 || *limit > 10_000 {
			return usagef("jobs: --limit must be between 1 and 10000")
		}

		pool, err := openCommandPool(ctx, e, *schemaName)
		if err != nil {
			return err
		}
		defer pool.Close()
		// Insert-only: no queues or workers, so it never works a job or takes leadership.
		client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: *schemaName})
		if err != nil {
			return err
		}
		switch {
		case set["retry"]:
			job, err := client.JobRetry(ctx, *retry)
			if err != nil {
				return jobError(*retry, err)
			}
			if job.State == rivertype.JobStateRunning {
				fmt.Fprintf(e.stdout, "job %d (%s) is running; a running job is not retried\n", job.ID, jobWhat(job))
				return nil
			}
			fmt.Fprintf(e.stdout, "job %d (%s) is %s: a worker runs it next (%d of at most %d attempts made)\n",
				job.ID, jobWhat(job), job.State, job.Attempt, job.MaxAttempts)
			return nil
		case set["cancel"]:
			before, err := client.JobGet(ctx, *cancel)
			if err != nil {
				return jobError(*cancel, err)
			}
			job, err := client.JobCancel(ctx, *cancel)
			if err != nil {
				return jobError(*cancel, err)
			}
			switch {
			case job.State == rivertype.JobStateCancelled && before.State != rivertype.JobStateCancelled:
				fmt.Fprintf(e.stdout, "job %d (%s) cancelled\n", job.ID, jobWhat(job))
			case job.State == rivertype.JobStateRunning:
				fmt.Fprintf(e.stdout, "job %d (%s) is running: asked to stop; it ends cancelled if its function gives up\n", job.ID, jobWhat(job))
			default:
				fmt.Fprintf(e.stdout, "job %d (%s) was already %s; nothing to cancel\n", job.ID, jobWhat(job), before.State)
			}
			return nil
		}
		params := river.NewJobListParams().States(states...).First(*limit).OrderBy(river.JobListOrderByID, river.SortOrderDesc)
		if *kind != "" {
			params = params.Kinds(*kind)
		}
		res, err := client.JobList(ctx, params)
		if err != nil {
			return fmt.Errorf("listing jobs: %w", err)
		}
		return printJobs(e.stdout, res.Jobs)
	}
}

func jobStateKnown(s rivertype.JobState) bool {
	for _, known := range rivertype.JobStates() {
		if s == known {
			return true
		}
	}
	return false
}

func jobError(id int64, err error) error {
	if errors.Is(err, river.ErrNotFound) || errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("there is no job %d (see `ripple jobs --state all`)", id)
	}
	return fmt.Errorf("job %d: %w", id, err)
}

// jobWhat is the job's kind and, for a scheduled or periodic function, its path.
func jobWhat(job *rivertype.JobRow) string {
	var args struct {
		Path string `json:"path"`
	}
	if json.Unmarshal(job.EncodedArgs, &args) == nil && args.Path != "" {
		return job.Kind + " " + args.Path
	}
	return job.Kind
}

// printJobs writes one line per job: id, kind (and function), state, attempts, when it is or
// was scheduled, and its last error on one line.
func printJobs(w io.Writer, jobs []*rivertype.JobRow) error {
	if len(jobs) == 0 {
		_, err := fmt.Fprintln(w, "no jobs")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tJOB\tSTATE\tATTEMPTS\tSCHEDULED (UTC)\tLAST ERROR")
	for _, job := range jobs {
		lastErr := ""
		if n := len(job.Errors); n > 0 {
			lastErr = oneLine(job.Errors[n-1].Error)
			if r := []rune(lastErr); len(r) > 100 {
				lastErr = string(r[:99]) + "…"
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d/%d\t%s\t%s\n", job.ID, jobWhat(job), job.State, job.Attempt, job.MaxAttempts,
			job.ScheduledAt.UTC().Format(time.DateTime), lastErr)
	}
	return tw.Flush()
}
