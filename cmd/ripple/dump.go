package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ripplehq/ripple/internal/dump"
)

func exportFlags(e *env) (*flag.FlagSet, func(ctx context.Context, args []string) error) {
	return dumpFlags(e, "export", func(ctx context.Context, pool *pgxpool.Pool, dir string, opts dump.Options) error {
		res, err := dump.Export(ctx, pool, dir, opts)
		if err != nil {
			return interrupted(ctx, "export", "the files it had written were removed", err)
		}
		fmt.Fprintf(e.stdout, "schema %s: exported %d rows of %d tables at schema version %d to %s\n",
			opts.Schema, res.Manifest.RowCount(), len(res.Manifest.Tables), res.Manifest.SchemaVersion, dir)
		if res.PendingJobs > 0 {
			fmt.Fprintf(e.stdout, "note: %d job(s) waiting in River (scheduled functions, retries) are not part of an export; see `ripple jobs`\n", res.PendingJobs)
		}
		return nil
	})
}

func importFlags(e *env) (*flag.FlagSet, func(ctx context.Context, args []string) error) {
	var convex *bool
	var embeddingModel string
	fs, runCmd := dumpFlags(e, "import", func(ctx context.Context, pool *pgxpool.Pool, dir string, opts dump.Options) error {
		if *convex {
			opts.EmbeddingModel = embeddingModel
			return importConvex(ctx, e, pool, dir, opts)
		}
		m, err := dump.Import(ctx, pool, dir, opts)
		if err != nil {
			return interrupted(ctx, "import", "nothing was changed", err)
		}
		fmt.Fprintf(e.stdout, "schema %s: %s %d rows of %d tables from %s\n", opts.Schema, imported(opts), m.RowCount(), len(m.Tables), dir)
		return nil
	})
	convex = fs.Bool("convex", false, "the argument is a Convex snapshot (`npx convex export` ZIP, or it unpacked): import the chat's data and password accounts from it")
	fs.StringVar(&embeddingModel, "embedding-model", "", "with --convex: the Ripple `model` id the snapshot's vectors were made with (cohere/embed-v4.0@1536): keep them; unset, every message is embedded again")
	return fs, runCmd
}

// imported says what an import did: with --dry-run, nothing.
func imported(opts dump.Options) string {
	if opts.DryRun {
		return "dry run, nothing changed: would import"
	}
	return "imported"
}

// importConvex is `ripple import --convex <snapshot.zip | dir>`.
func importConvex(ctx context.Context, e *env, pool *pgxpool.Pool, path string, opts dump.Options) error {
	res, err := dump.ImportConvex(ctx, pool, path, opts)
	if err != nil {
		return interrupted(ctx, "import --convex", "nothing was changed", err)
	}
	fmt.Fprintf(e.stdout, "schema %s: %s from Convex %d users (%d with passwords), %d conversations (%d groups), %d participants, %d messages from %s\n",
		opts.Schema, imported(opts), res.Users, res.Credentials, res.Conversations, res.Groups, res.Participants, res.Messages, path)
	fmt.Fprintf(e.stdout, "note: %d messages are queued for the embedding sweep (`ripple serve` embeds them); %d Convex embeddings were kept, %d not imported\n",
		res.QueuedForEmbedding, res.EmbeddingsImported, res.EmbeddingsNotImported)
	skipped := make([]string, 0, len(res.Skipped))
	for table, n := range res.Skipped {
		skipped = append(skipped, fmt.Sprintf("%s (%d)", table, n))
	}
	slices.Sort(skipped)
	if len(skipped) > 0 {
		fmt.Fprintf(e.stdout, "note: not imported: %s; users sign in once with their password\n", strings.Join(skipped, ", "))
	}
	for _, n := range res.Notes {
		fmt.Fprintf(e.stdout, "note: %s\n", n)
	}
	return nil
}

// dumpFlags is export's and import's command line: `<dir>` and flags (before or after it).
func dumpFlags(e *env, name string, run func(ctx context.Context, pool *pgxpool.Pool, dir string, opts dump.Options) error) (*flag.FlagSet, func(ctx context.Context, args []string) error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	schemaName := fs.String("schema", "public", "`name` of the Postgres schema holding the application's tables")
	quiet := fs.Bool("quiet", false, "no progress on stderr")
	var replace, dryRun *bool
	if name == "import" {
		replace = fs.Bool("replace", false, "delete the target's application data first (without it, a target holding data is refused)")
		dryRun = fs.Bool("dry-run", false, "check and load everything, then roll back: print what would be imported and change nothing")
	}
	return fs, func(ctx context.Context, args []string) error {
		dir, err := dirArg(fs, name, args)
		if err != nil {
			return err
		}
		pool, err := openCommandPool(ctx, e, *schemaName)
		if err != nil {
			return err
		}
		defer pool.Close()
		opts := dump.Options{Schema: *schemaName, Replace: replace != nil && *replace, DryRun: dryRun != nil && *dryRun}
		if !*quiet {
			opts.Progress = e.stderr
		}
		return run(ctx, pool, dir, opts)
	}
}

// dirArg takes the one directory argument; flags may come after it too.
func dirArg(fs *flag.FlagSet, cmd string, args []string) (string, error) {
	if len(args) == 0 {
		return "", usagef("%s: a directory is required (see \"ripple help %s\")", cmd, cmd)
	}
	dir := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return "", usagef("%s: %v (see \"ripple help %s\")", cmd, err, cmd)
	}
	if fs.NArg() > 0 {
		return "", usagef("%s: unexpected argument %q (see \"ripple help %s\")", cmd, fs.Arg(0), cmd)
	}
	return dir, nil
}

// openCommandPool is the prologue of a command that only needs the database.
func openCommandPool(ctx context.Context, e *env, schemaName string) (*pgxpool.Pool, error) {
	if schemaName == "" {
		return nil, usagef("--schema must not be empty")
	}
	dbURL, err := databaseURL(e)
	if err != nil {
		return nil, err
	}
	return openPool(ctx, dbURL, schemaName)
}

// interrupted says so, and what became of the work, when the command was stopped by a
// signal; otherwise it names the command in err.
func interrupted(ctx context.Context, cmd, outcome string, err error) error {
	if ctx.Err() != nil {
		return errors.New(cmd + " interrupted; " + outcome)
	}
	return fmt.Errorf("%s: %w", cmd, err)
}
