package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/ripplehq/ripple/internal/bench"
)

func adminKeyFlags(e *env) (*flag.FlagSet, func(ctx context.Context, args []string) error) {
	fs := flag.NewFlagSet("admin-key", flag.ContinueOnError)
	schemaName := fs.String("schema", "public", "`name` of the Postgres schema holding the application's tables")
	return fs, func(ctx context.Context, args []string) error {
		if err := noArgs("admin-key", args); err != nil {
			return err
		}
		logger, dbURL, err := loggerAndDatabaseURL(e)
		if err != nil {
			return err
		}
		pool, err := openPool(ctx, dbURL, *schemaName)
		if err != nil {
			return err
		}
		defer pool.Close()
		if _, err := migrate(ctx, pool, *schemaName, debugOnly(logger)); err != nil {
			return err
		}
		svc, err := newAuthService(ctx, e, pool, debugOnly(logger), nil)
		if err != nil {
			return err
		}
		key, err := svc.CreateAdminKey(ctx)
		if err != nil {
			return fmt.Errorf("creating an admin key: %w", err)
		}
		// Printed once, never logged: send it as "Authorization: Convex <key>".
		_, err = fmt.Fprintln(e.stdout, key)
		return err
	}
}

func benchFlags(e *env) (*flag.FlagSet, func(ctx context.Context, args []string) error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	samples := fs.Int("samples", 3000, "timed writes per configuration")
	idle := fs.Int("idle", 10_000, "idle, unrelated subscriptions held in the second configuration")
	return fs, func(ctx context.Context, args []string) error {
		if len(args) > 0 && args[0] == "search" {
			return benchSearch(ctx, e, args[1:])
		}
		if err := noArgs("bench", args); err != nil {
			return err
		}
		if *samples < 1 || *idle < 0 {
			return usagef("bench: --samples must be positive and --idle not negative")
		}
		dbURL, err := databaseURL(e)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
		defer cancel()
		_, err = bench.RunLatency(ctx, bench.Opts{DatabaseURL: dbURL, Samples: *samples, IdleSubscriptions: *idle, Out: e.stdout})
		return err
	}
}
