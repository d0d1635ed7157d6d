package benchchat

import (
	"context"
	"io"
	"slices"
	"sort"
	"strings"
)

// Where a message's time goes on the server: the engine's histogram of the write path's phases
// (ripple_phase_duration_seconds), read from /metrics with the statement counter at a phase's
// start and end. The means are server-side wall time, not CPU.

// phaseMetric is the engine's histogram of the write path's phases.
const phaseMetric = "ripple_phase_duration_seconds"

// phaseOrder is the order a message takes through the phases; others follow, sorted.
var phaseOrder = []string{"mutation.function", "mutation.commit", "mutation.reply_wait", "batch.snapshot", "batch.queries", "batch.deliver"}

// PhaseTime is one phase of the write path in a bench phase: its mean wall time on the server,
// and how many times it ran per delivered message.
type PhaseTime struct {
	Phase  string  `json:"phase"`
	MeanMs float64 `json:"meanMs"`
	PerMsg float64 `json:"perMsg"`
}

// phaseTotals are the histogram's sums (seconds) and counts by phase at one moment.
type phaseTotals map[string]phaseTotal

type phaseTotal struct{ sum, count float64 }

// readPhases reads the histogram's _sum and _count series from an exposition.
func readPhases(text string) (phaseTotals, error) {
	sums, err := promByLabels(strings.NewReader(text), phaseMetric+"_sum")
	if err != nil {
		return nil, err
	}
	counts, err := promByLabels(strings.NewReader(text), phaseMetric+"_count")
	if err != nil {
		return nil, err
	}
	out := phaseTotals{}
	for labels, sum := range sums {
		name, ok := strings.CutPrefix(labels, `phase="`)
		if !ok || !strings.HasSuffix(name, `"`) || strings.Contains(labels, ",") {
			continue
		}
		out[strings.TrimSuffix(name, `"`)] = phaseTotal{sum: sum, count: counts[labels]}
	}
	return out, nil
}

// phasesBetween is each phase's mean and runs per delivered message between two readings; nil
// when either is missing or nothing was delivered.
func phasesBetween(a, b phaseTotals, delivered int) []PhaseTime {
	if a == nil || b == nil || delivered <= 0 {
		return nil
	}
	var out []PhaseTime
	for name, end := range b {
		n := end.count - a[name].count
		if n <= 0 {
			continue
		}
		out = append(out, PhaseTime{Phase: name, MeanMs: round3((end.sum - a[name].sum) * 1000 / n), PerMsg: round3(n / float64(delivered))})
	}
	// In the message's order; phases the bench does not know follow, by name.
	rank := func(name string) int {
		if i := slices.Index(phaseOrder, name); i >= 0 {
			return i
		}
		return len(phaseOrder)
	}
	sort.Slice(out, func(i, j int) bool {
		if ri, rj := rank(out[i].Phase), rank(out[j].Phase); ri != rj {
			return ri < rj
		}
		return out[i].Phase < out[j].Phase
	})
	return out
}

// engineCounters are the server's counters a phase reads at its start and end (summed over
// their labels): the statement count, and the query runs and re-runs the group scenario reports.
var engineCounters = []string{engineStatementsMetric, queryRunsMetric, rerunsMetric}

// scrapeEngine reads the engine's counters and its phase histogram in one scrape.
func (m *meter) scrapeEngine(ctx context.Context, s *stmtSnapshot) {
	_ = m.scrape(ctx, func(body io.Reader) error {
		raw, err := io.ReadAll(body)
		if err != nil {
			return err
		}
		text := string(raw)
		for _, name := range engineCounters {
			if v, ok, err := promCounter(strings.NewReader(text), name); ok && err == nil {
				if s.counters == nil {
					s.counters = map[string]float64{}
				}
				s.counters[name] = v
			}
		}
		s.engine, s.engineOK = s.counters[engineStatementsMetric]
		if p, err := readPhases(text); err == nil && len(p) > 0 {
			s.phases = p
		}
		return nil
	})
}
