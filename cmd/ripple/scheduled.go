package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/ripplehq/ripple/engine"
)

// scheduledLimit is how many pending functions `ripple scheduled` lists.
const scheduledLimit = 1000

func scheduledFlags(e *env) (*flag.FlagSet, func(ctx context.Context, args []string) error) {
	fs := flag.NewFlagSet("scheduled", flag.ContinueOnError)
	schemaName := fs.String("schema", "public", "`name` of the Postgres schema holding the application's tables")
	cancelID := fs.Int64("cancel", 0, "cancel the scheduled function with this `id` instead of listing")
	asJSON := fs.Bool("json", false, "list as a JSON array")
	return fs, func(ctx context.Context, args []string) error {
		if err := noArgs("scheduled", args); err != nil {
			return err
		}
		if *cancelID < 0 {
			return usagef("scheduled: --cancel takes a positive id")
		}
		sched, done, err := openScheduler(ctx, e, *schemaName)
		if err != nil {
			return err
		}
		defer done()
		if *cancelID > 0 {
			if err := sched.Cancel(ctx, *cancelID); err != nil {
				return fmt.Errorf("cancelling %d: %w", *cancelID, err)
			}
			_, err := fmt.Fprintf(e.stdout, "cancelled %d\n", *cancelID)
			return err
		}
		list, err := sched.Pending(ctx, scheduledLimit)
		if err != nil {
			return fmt.Errorf("listing scheduled functions: %w", err)
		}
		if *asJSON {
			return printJSON(e.stdout, list)
		}
		w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tAT\tSTATE\tFUNCTION\tAS\tARGUMENTS")
		for _, f := range list {
			as := f.UserID
			if as == "" {
				as = "-"
			}
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", f.ID, f.At.UTC().Format(time.RFC3339), f.State, f.Path, as, f.Args)
		}
		return w.Flush()
	}
}

// openScheduler connects to the database for scheduling; done closes the connection.
func openScheduler(ctx context.Context, e *env, schemaName string) (*engine.Scheduler, func(), error) {
	dbURL, err := databaseURL(e)
	if err != nil {
		return nil, nil, err
	}
	reg, err := appRegistry()
	if err != nil {
		return nil, nil, err
	}
	pool, err := openPool(ctx, dbURL, schemaName)
	if err != nil {
		return nil, nil, err
	}
	sched, err := engine.NewScheduler(pool, reg, schemaName)
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return sched, pool.Close, nil
}

// scheduleFunction is `ripple run --at/--after`: the function runs on whichever server serves
// the database, as the user with email `as` (or with no identity), and its id is printed.
func scheduleFunction(ctx context.Context, e *env, schemaName, path string, args json.RawMessage, as string, at time.Time) error {
	userID := ""
	if as != "" {
		var err error
		if userID, err = userIDByEmail(ctx, e, schemaName, as); err != nil {
			return err
		}
	}
	sched, done, err := openScheduler(ctx, e, schemaName)
	if err != nil {
		return err
	}
	defer done()
	id, err := sched.Schedule(ctx, at, path, args, userID)
	if err != nil {
		if ee, ok := engine.AsError(err); ok && ee.Code == engine.CodeInvalidArgument {
			return usageError{fmt.Errorf("%s: %w", path, err)}
		}
		return fmt.Errorf("scheduling %s: %w", path, err)
	}
	_, err = fmt.Fprintln(e.stdout, strconv.FormatInt(id, 10))
	return err
}
