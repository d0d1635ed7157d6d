package bench_test

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/internal/bench"
	"github.com/ripplehq/ripple/internal/testdb"
)

// TestSearchRunsSmall keeps the search benchmark's code path working in the normal suite: it
// asserts that every search ran and found something, never how fast.
func TestSearchRunsSmall(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	report, err := bench.RunSearch(ctx, bench.SearchOpts{
		DatabaseURL: testdb.URL(), Sizes: []int{200, 1000}, Total: 3000, Queries: 10,
		Tune: []bench.HNSWSettings{{EfSearch: 40, MaxScanTuples: 20_000}}, Out: io.Discard,
	})
	require.NoError(t, err)
	require.Len(t, report.Sizes, 2)
	require.Positive(t, report.Seeding)
	require.Positive(t, report.IndexBuild)
	for i, s := range report.Sizes {
		require.Equal(t, []int{200, 1000}[i], s.Size)
		require.NotNil(t, s.Production())
		require.Len(t, s.Paths, 3)
		for _, p := range s.Paths {
			require.Len(t, p.Samples, 10, "size %d %s", s.Size, p.Path)
			require.Zero(t, p.Short, "size %d %s %s: every search returns 10 hits", s.Size, p.Path, p.Settings)
			require.GreaterOrEqual(t, p.Recall, 0.0)
			require.LessOrEqual(t, p.Recall, 1.0)
		}
	}
}

func TestSearchRejectsBadOptions(t *testing.T) {
	t.Parallel()
	for _, opts := range []bench.SearchOpts{
		{Sizes: nil, Total: 10, Queries: 1},
		{Sizes: []int{100, 200}, Total: 250, Queries: 1},
		{Sizes: []int{0}, Total: 10, Queries: 1},
		{Sizes: []int{10}, Total: 10, Queries: 0},
	} {
		opts.DatabaseURL = testdb.URL()
		_, err := bench.RunSearch(context.Background(), opts)
		require.Error(t, err, "%+v", opts)
	}
}

// TestProductionHNSWMirrorsFunctions keeps the benchmark's copy of production's settings in step
// with messagesSearchVectors.
func TestProductionHNSWMirrorsFunctions(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("../../functions/search.go")
	require.NoError(t, err)
	stmts := bench.ProductionHNSW.Statements()
	require.Contains(t, string(src), `[]string{"`+strings.Join(stmts, `", "`)+`"}`,
		"bench.ProductionHNSW must set what functions/search.go sets, in the same order")
}
