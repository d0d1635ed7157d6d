package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/ripplehq/ripple/internal/bench"
)

// benchSearch is `ripple bench search`: seed a private schema with embeddings and time both
// search paths (exact and HNSW) on conversations of the given sizes.
func benchSearch(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("bench search", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	total := fs.Int("total", 200_000, "embeddings in the table, the measured conversations' included")
	sizes := fs.String("sizes", "1000,10000,50000", "comma-separated `sizes` of the measured conversations (embeddings)")
	queries := fs.Int("queries", 200, "timed searches per size and path")
	tune := fs.String("ef-search", "", "comma-separated hnsw.ef_search `values`: time the HNSW path with each beside production's settings (for tuning)")
	maxScan := fs.Int("max-scan-tuples", 0, "hnsw.max_scan_tuples of the --ef-search rows (default: production's)")
	memMul := fs.Int("scan-mem-multiplier", 0, "hnsw.scan_mem_multiplier of the --ef-search rows (default: production's)")
	plannerDefault := fs.Bool("planner-default", false, "also time production's hnsw.* settings with enable_sort and jit as the server has them")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(e.stdout, "Usage: ripple bench search [flags]\n\nSeed a private schema with embeddings and time exact and HNSW search per conversation size.\n\nFlags:")
			fs.SetOutput(e.stdout)
			fs.PrintDefaults()
			return nil
		}
		return usagef("bench search: %v (see \"ripple bench search -h\")", err)
	}
	if fs.NArg() > 0 {
		return usagef("bench search: unexpected argument %q (see \"ripple bench search -h\")", fs.Arg(0))
	}
	sizeList, err := parseInts(*sizes)
	if err != nil {
		return usagef("bench search: --sizes: %v", err)
	}
	efList, err := parseInts(*tune)
	if err != nil {
		return usagef("bench search: --ef-search: %v", err)
	}
	if *queries < 1 || *maxScan < 0 || *memMul < 0 {
		return usagef("bench search: --queries must be positive, --max-scan-tuples and --scan-mem-multiplier not negative")
	}
	sum := 0
	for _, s := range sizeList {
		sum += s
	}
	if len(sizeList) == 0 || *total < sum {
		return usagef("bench search: --sizes needs at least one size, and --total (%d) at least their sum (%d)", *total, sum)
	}
	opts := bench.SearchOpts{Sizes: sizeList, Total: *total, Queries: *queries, Out: e.stdout}
	for _, ef := range efList {
		t := bench.ProductionHNSW
		t.EfSearch = ef
		if *maxScan > 0 {
			t.MaxScanTuples = *maxScan
		}
		if *memMul > 0 {
			t.ScanMemMultiplier = *memMul
		}
		opts.Tune = append(opts.Tune, t)
	}
	if *plannerDefault {
		t := bench.ProductionHNSW
		t.DisableSort, t.DisableJIT = false, false
		opts.Tune = append(opts.Tune, t)
	}
	if opts.DatabaseURL, err = databaseURL(e); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Hour)
	defer cancel()
	_, err = bench.RunSearch(ctx, opts)
	return err
}

// parseInts parses "1,2,3" into positive integers; "" is none.
func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(strings.ReplaceAll(f, "_", ""))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}
