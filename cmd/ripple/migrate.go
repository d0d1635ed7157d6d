package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ripplehq/ripple/engine/ripplemigrate"
	"github.com/ripplehq/ripple/schema"
)

// migrateTimeout bounds one migration run.
const migrateTimeout = 5 * time.Minute

func migrateFlags(e *env) (*flag.FlagSet, func(ctx context.Context, args []string) error) {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	schemaName := fs.String("schema", "public", "`name` of the Postgres schema holding the application's tables")
	return fs, func(ctx context.Context, args []string) error {
		if err := noArgs("migrate", args); err != nil {
			return err
		}
		if *schemaName == "" {
			return usagef("migrate: --schema must not be empty")
		}
		return runMigrate(ctx, e, *schemaName)
	}
}

func runMigrate(ctx context.Context, e *env, schemaName string) error {
	logger, dbURL, err := loggerAndDatabaseURL(e)
	if err != nil {
		return err
	}
	pool, err := openPool(ctx, dbURL, schemaName)
	if err != nil {
		return err
	}
	defer pool.Close()
	// The summary goes to stdout; the migrator's own per-migration lines only at debug level.
	res, err := migrate(ctx, pool, schemaName, debugOnly(logger))
	if err != nil {
		return err
	}
	return printMigrateResult(e.stdout, schemaName, res)
}

// migrate applies outstanding migrations within migrateTimeout.
func migrate(ctx context.Context, pool *pgxpool.Pool, schemaName string, logger *slog.Logger) (*ripplemigrate.Result, error) {
	mctx, cancel := context.WithTimeout(ctx, migrateTimeout)
	defer cancel()
	res, err := schema.Migrate(mctx, pool, &schema.MigrateOpts{Schema: schemaName, Logger: logger})
	if err != nil {
		if ctx.Err() != nil {
			return nil, errors.New("interrupted while migrating the database")
		}
		return nil, fmt.Errorf("migrating schema %s: %w", schemaName, err)
	}
	return res, nil
}

func printMigrateResult(w io.Writer, schemaName string, res *ripplemigrate.Result) error {
	if len(res.Applied) == 0 && res.RiverApplied == 0 {
		_, err := fmt.Fprintf(w, "schema %s: already up to date\n", schemaName)
		return err
	}
	for _, m := range res.Applied {
		fmt.Fprintf(w, "schema %s: applied migration %s\n", schemaName, m.ID())
	}
	if res.RiverApplied > 0 {
		fmt.Fprintf(w, "schema %s: applied %d River migration(s)\n", schemaName, res.RiverApplied)
	}
	return nil
}

// debugOnly returns logger when it is at debug level and a discarding logger otherwise: the
// migrator logs each migration at info, and `ripple migrate` already prints them to stdout.
func debugOnly(logger *slog.Logger) *slog.Logger {
	if logger.Enabled(context.Background(), slog.LevelDebug) {
		return logger
	}
	return slog.New(slog.DiscardHandler)
}
