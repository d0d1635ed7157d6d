package benchchat

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPhasesBetween(t *testing.T) {
	t.Parallel()
	read := func(text string) phaseTotals {
		p, err := readPhases(text)
		require.NoError(t, err)
		return p
	}
	a := read(`# TYPE ripple_phase_duration_seconds histogram
ripple_phase_duration_seconds_bucket{phase="batch.queries",le="0.0001"} 0
ripple_phase_duration_seconds_sum{phase="batch.queries"} 1.5
ripple_phase_duration_seconds_count{phase="batch.queries"} 1000
ripple_phase_duration_seconds_sum{phase="mutation.commit"} 0.5
ripple_phase_duration_seconds_count{phase="mutation.commit"} 500
ripple_phase_duration_seconds_sum{phase="batch.deliver"} 0
ripple_phase_duration_seconds_count{phase="batch.deliver"} 0
`)
	b := read(`ripple_phase_duration_seconds_sum{phase="batch.queries"} 1.9
ripple_phase_duration_seconds_count{phase="batch.queries"} 1200
ripple_phase_duration_seconds_sum{phase="mutation.commit"} 0.6
ripple_phase_duration_seconds_count{phase="mutation.commit"} 600
ripple_phase_duration_seconds_sum{phase="batch.deliver"} 0
ripple_phase_duration_seconds_count{phase="batch.deliver"} 0
ripple_phase_duration_seconds_sum{phase="later.added"} 0.01
ripple_phase_duration_seconds_count{phase="later.added"} 10
ripple_phase_duration_seconds_created{phase="batch.queries"} 1.7e9
`)
	got := phasesBetween(a, b, 100)
	// In the message's order, a phase that did not run left out, unknown phases last; the mean
	// is of this window's runs only (400 ms over 200 runs), not of the counter's whole life.
	require.Equal(t, []PhaseTime{
		{Phase: "mutation.commit", MeanMs: 1, PerMsg: 1},
		{Phase: "batch.queries", MeanMs: 2, PerMsg: 2},
		{Phase: "later.added", MeanMs: 1, PerMsg: 0.1},
	}, got)
	require.Nil(t, phasesBetween(nil, b, 100), "no reading at the start")
	require.Nil(t, phasesBetween(a, b, 0), "nothing delivered")

	var out bytes.Buffer
	printPhases(&out, got)
	require.Equal(t, "  server phases, mean ms: mutation.commit 1.000 (1.00/msg), batch.queries 2.000 (2.00/msg), later.added 1.000 (0.10/msg)\n", out.String())
}
