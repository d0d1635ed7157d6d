package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/ripplehq/ripple/engine/embedding"
	"github.com/ripplehq/ripple/functions"
	"github.com/ripplehq/ripple/internal/progress"
)

func reembedFlags(e *env) (*flag.FlagSet, func(ctx context.Context, args []string) error) {
	fs := flag.NewFlagSet("reembed", flag.ContinueOnError)
	schemaName := fs.String("schema", "public", "`name` of the Postgres schema holding the application's tables")
	yes := fs.Bool("yes", false, "delete embeddings of other models and re-embed; without it, only report what would happen")
	batch := fs.Int("batch", 0, "messages per provider call (default: the provider's maximum batch)")
	return fs, func(ctx context.Context, args []string) error {
		if err := noArgs("reembed", args); err != nil {
			return err
		}
		if *schemaName == "" {
			return usagef("reembed: --schema must not be empty")
		}
		if *batch < 0 {
			return usagef("reembed: --batch must not be negative")
		}
		return runReembed(ctx, e, *schemaName, *yes, *batch)
	}
}

func runReembed(ctx context.Context, e *env, schemaName string, apply bool, batch int) error {
	dbURL, err := databaseURL(e)
	if err != nil {
		return err
	}
	// The provider is the one `ripple serve` would use with this environment.
	provider, err := embedding.New(embedding.ConfigFromEnv(e.getenv))
	if err != nil {
		return fmt.Errorf("embedding provider: %w", err)
	}
	pool, err := openPool(ctx, dbURL, schemaName)
	if err != nil {
		return err
	}
	defer pool.Close()

	// A bar on a terminal, plain lines otherwise (stderr), from the first batch on: the total is
	// known once Reembed has counted.
	var bar *progress.Bar
	var reported int64
	opts := functions.ReembedOpts{Apply: apply, BatchSize: batch, Progress: func(r functions.ReembedResult) {
		if bar == nil {
			bar = progress.New(e.stderr, "re-embedding", r.Missing, progress.Messages)
		}
		bar.Add(r.Embedded + r.Failed - reported)
		reported = r.Embedded + r.Failed
	}}
	res, err := functions.Reembed(ctx, pool, provider, opts)
	if err == nil {
		bar.Finish()
	}
	bar.Stop()
	if err != nil {
		if res.Before != nil {
			printReembedResult(e.stdout, schemaName, res)
		}
		if ctx.Err() != nil {
			return errors.New("reembed interrupted; run it again to finish")
		}
		return fmt.Errorf("reembed: %w", err)
	}
	printReembedResult(e.stdout, schemaName, res)
	return nil
}

func printReembedResult(w io.Writer, schemaName string, r functions.ReembedResult) {
	fmt.Fprintf(w, "schema %s: configured embedding model %s\n", schemaName, r.Model)
	printModelCounts(w, "embeddings by model", r.Model, r.Before)
	fmt.Fprintf(w, "messages without a %s embedding: %d\n", r.Model, r.Missing)
	if r.DryRun {
		if r.Stale == 0 && r.Missing == 0 {
			fmt.Fprintln(w, "nothing to do")
			return
		}
		batches := (r.Missing + int64(r.BatchSize) - 1) / int64(r.BatchSize)
		fmt.Fprintf(w, "dry run: would delete %d embedding(s) of other models, then embed %d message(s) in about %d batch(es) of %d\n",
			r.Stale, r.Missing, batches, r.BatchSize)
		fmt.Fprintln(w, "run again with --yes to do it (meanwhile, search misses the messages not yet re-embedded)")
		return
	}
	fmt.Fprintf(w, "deleted %d embedding(s) of other models\n", r.Deleted)
	fmt.Fprintf(w, "embedded %d message(s) in %d batch(es)", r.Embedded, r.Batches)
	if r.Failed > 0 {
		fmt.Fprintf(w, "; %d message(s) could not be embedded (see message_embedding_failures)", r.Failed)
	}
	fmt.Fprintln(w)
	if r.After == nil {
		return
	}
	printModelCounts(w, "embeddings by model now", r.Model, r.After)
	if n := r.OtherModels(r.After); n > 0 {
		fmt.Fprintf(w, "warning: %d embedding(s) of other models were stored meanwhile: is a server still running with the old provider? "+
			"Restart it with the new configuration and run reembed again\n", n)
	}
}

func printModelCounts(w io.Writer, title, current string, counts []functions.ModelCount) {
	if len(counts) == 0 {
		fmt.Fprintf(w, "%s: none\n", title)
		return
	}
	fmt.Fprintf(w, "%s:\n", title)
	for _, c := range counts {
		mark := ""
		if c.Model != current {
			mark = "  (other model)"
		}
		fmt.Fprintf(w, "  %-40s %d%s\n", c.Model, c.Count, mark)
	}
}
