package benchchat

import (
	"fmt"
	"math"
)

// The soak's verdict on each sampled series (docs/engine.md, "Soak"): over the samples taken
// after the warm-up, fit a least-squares line v = a + b·t; its growth over that window is
// b·(t_last − t_first). The series fails when the growth exceeds Tolerance × max(mean, Floor):
// a relative bound, so a busy machine's noise (a slower run is not a bigger one) does not fail
// it, with a floor so that a series near zero may move by a few units. A leak grows by its whole
// rate times the window, about the mean or more for any window at least as long as the warm-up;
// a flat series with noise has a fitted growth well inside its spread.

// trendRule is the bound of one series.
type trendRule struct {
	Name      string
	Tolerance float64 // growth allowed, as a fraction of max(mean, Floor)
	Floor     float64 // in the series' unit
}

// TrendVerdict is one series' fit.
type TrendVerdict struct {
	Name string `json:"name"`
	// Samples counts the points fitted (after the warm-up).
	Samples int     `json:"samples"`
	Mean    float64 `json:"mean"`
	// SlopePerMin is the fitted slope per minute; Growth that slope over the fitted window.
	SlopePerMin float64 `json:"slopePerMin"`
	Growth      float64 `json:"growth"`
	// Allowed is Tolerance × max(mean, Floor).
	Allowed float64 `json:"allowed"`
	Pass    bool    `json:"pass"`
}

func (v TrendVerdict) String() string {
	verdict := "flat"
	if !v.Pass {
		verdict = "GROWS"
	}
	return fmt.Sprintf("%-22s %s: fitted growth %.4g over the window (allowed %.4g; mean %.4g, %.4g/min, %d samples)",
		v.Name, verdict, v.Growth, v.Allowed, v.Mean, v.SlopePerMin, v.Samples)
}

// fitTrend fits v over t (seconds) and applies the rule. Fewer than three points pass: no trend
// can be told apart from noise.
func fitTrend(rule trendRule, t, v []float64) TrendVerdict {
	out := TrendVerdict{Name: rule.Name, Samples: len(v), Pass: true}
	n := float64(len(v))
	if len(v) == 0 {
		return out
	}
	var st, sv float64
	for i := range v {
		st += t[i]
		sv += v[i]
	}
	mt, mv := st/n, sv/n
	out.Mean = mv
	out.Allowed = rule.Tolerance * math.Max(mv, rule.Floor)
	if len(v) < 3 {
		return out
	}
	var sxy, sxx float64
	for i := range v {
		sxy += (t[i] - mt) * (v[i] - mv)
		sxx += (t[i] - mt) * (t[i] - mt)
	}
	if sxx == 0 {
		return out
	}
	slope := sxy / sxx
	out.SlopePerMin = slope * 60
	out.Growth = slope * (t[len(t)-1] - t[0])
	out.Pass = out.Growth <= out.Allowed
	return out
}
