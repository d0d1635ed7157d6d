package benchchat

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// The soak's rule (trend.go) on made-up series: a leak fails it, noise and a sawtooth (a
// periodic clean-up) around a flat level pass, a falling series passes, and the floor lets a
// series near zero move by a few units.
func TestFitTrend(t *testing.T) {
	rule := trendRule{Name: "x", Tolerance: 0.5, Floor: 50}
	times := func(n int) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = float64(60 + 10*i) // after a 60 s warm-up, every 10 s
		}
		return out
	}
	tt := times(13)
	series := func(f func(i int, t float64) float64) []float64 {
		out := make([]float64, len(tt))
		for i, x := range tt {
			out[i] = f(i, x)
		}
		return out
	}

	// A leak of one unit per second since the start: from 60 to 180 over the window.
	leak := fitTrend(rule, tt, series(func(_ int, t float64) float64 { return t }))
	require.False(t, leak.Pass, "%s", leak)
	require.InDelta(t, 120, leak.Growth, 1e-9)
	require.InDelta(t, 60, leak.SlopePerMin, 1e-9)

	// Flat at 1000 with ±10 % noise.
	rng := rand.New(rand.NewPCG(1, 2))
	noisy := fitTrend(rule, tt, series(func(int, float64) float64 { return 1000 * (0.9 + 0.2*rng.Float64()) }))
	require.True(t, noisy.Pass, "%s", noisy)

	// A sawtooth: rows pile up for 30 s, then a clean-up removes them.
	saw := fitTrend(rule, tt, series(func(_ int, t float64) float64 { return 100 + 4*math.Mod(t, 30) }))
	require.True(t, saw.Pass, "%s", saw)

	falling := fitTrend(rule, tt, series(func(_ int, t float64) float64 { return 1000 - 5*t }))
	require.True(t, falling.Pass, "%s", falling)
	require.Negative(t, falling.Growth)

	// Near zero: 0, 1, 2, ... 12 grows by 12, within the floor's 25.
	small := fitTrend(rule, tt, series(func(i int, _ float64) float64 { return float64(i) }))
	require.True(t, small.Pass, "%s", small)
	require.InDelta(t, 25, small.Allowed, 1e-9)

	// Too few points to tell: passes, with no slope.
	two := fitTrend(rule, tt[:2], []float64{1, 1e9})
	require.True(t, two.Pass)
	require.Zero(t, two.Growth)
}

// soakVerdicts leaves the warm-up and unmeasurable samples (-1) out of the fits.
func TestSoakVerdictsSkipWarmUpAndUnknown(t *testing.T) {
	var samples []SoakSample
	for i := range 10 {
		v := map[string]float64{"goroutines": 100, "open fds": -1}
		if i < 4 {
			v["goroutines"] = float64(10 * i) // warming up
		}
		samples = append(samples, SoakSample{AtSec: float64(10 * (i + 1)), Values: v})
	}
	by := map[string]TrendVerdict{}
	for _, v := range soakVerdicts(samples, 45) {
		by[v.Name] = v
	}
	require.Equal(t, 6, by["goroutines"].Samples)
	require.True(t, by["goroutines"].Pass)
	require.Zero(t, by["open fds"].Samples)
	require.True(t, by["open fds"].Pass)
}
