package bench_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/internal/bench"
	"github.com/ripplehq/ripple/internal/testdb"
)

// BenchmarkUpdateLatency reports write->subscriber latency alone and with 10,000 idle
// subscriptions: go test -bench UpdateLatency ./internal/bench/
func BenchmarkUpdateLatency(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	results, err := bench.RunLatency(ctx, bench.Opts{DatabaseURL: testdb.URL(), Samples: max(b.N, 100), IdleSubscriptions: 10_000, Out: os.Stdout})
	require.NoError(b, err)
	for _, r := range results {
		b.ReportMetric(float64(r.Percentile(50).Microseconds()), "p50-us-"+shortName(r.Subscriptions))
		b.ReportMetric(float64(r.Percentile(99).Microseconds()), "p99-us-"+shortName(r.Subscriptions))
	}
}

func shortName(subs int) string {
	if subs == 1 {
		return "alone"
	}
	return "crowded"
}

// TestLatencyRunsSmall keeps the benchmark's code path working in the normal suite (it asserts
// that every sample arrived, never how fast).
func TestLatencyRunsSmall(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	results, err := bench.RunLatency(ctx, bench.Opts{DatabaseURL: testdb.URL(), Samples: 20, IdleSubscriptions: 1000})
	require.NoError(t, err)
	require.Len(t, results, 2)
	for _, r := range results {
		require.Len(t, r.Samples, 20)
	}
}
