package benchchat

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// Percentiles are delivery latencies in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50Ms"`
	P90 float64 `json:"p90Ms"`
	P99 float64 `json:"p99Ms"`
	Max float64 `json:"maxMs"`
}

// percentiles uses nearest rank (rounding up), so p99 of 100 samples is the 99th smallest.
func percentiles(samples []time.Duration) Percentiles {
	if len(samples) == 0 {
		return Percentiles{}
	}
	s := append([]time.Duration(nil), samples...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(p float64) float64 {
		idx := int(float64(len(s))*p/100+0.999999) - 1
		idx = max(0, min(idx, len(s)-1))
		return ms(s[idx])
	}
	return Percentiles{P50: at(50), P90: at(90), P99: at(99), Max: ms(s[len(s)-1])}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Result is one measured phase of a scenario.
type Result struct {
	Scenario string `json:"scenario"`
	Name     string `json:"name"`
	// Clients is how many sockets were connected and authenticated during the phase.
	Clients int `json:"clients"`
	// RatePerSec is the target send rate (0: closed loop).
	RatePerSec float64 `json:"ratePerSec,omitempty"`
	// Messages is how many messages:send mutations were sent, Committed how many succeeded,
	// Delivered how many (message, receiving socket) deliveries were observed.
	Messages  int `json:"messages"`
	Committed int `json:"committed"`
	Delivered int `json:"delivered"`
	// Expected is how many deliveries the phase waited for.
	Expected int         `json:"expected"`
	Latency  Percentiles `json:"latency"`
	// AckLatency runs from the Mutation frame to the sender's MutationResponse, which the
	// server sends just before the transition that shows the sender its own write.
	AckLatency  Percentiles `json:"ackLatency"`
	DurationSec float64     `json:"durationSec"`
	// SendsPerSec is committed sends per second of the phase's send window.
	SendsPerSec float64 `json:"sendsPerSec,omitempty"`
	// CPU per delivered message, in ms, of the server process and of its Postgres backends;
	// nil when not measurable (no server pid, or Postgres not on this machine).
	ServerCPUMsPerMsg   *float64 `json:"serverCpuMsPerMsg"`
	PostgresCPUMsPerMsg *float64 `json:"postgresCpuMsPerMsg"`
	// The embedding sweep's share of those, per delivered message (see embedding.go for the
	// method): its statements' executor + planner ms, the provider's compute, their sum, and
	// server + Postgres less the sum (delivery). Nil when unknown; the sum and delivery are nil
	// unless both parts are known.
	EmbeddingPostgresMsPerMsg *float64 `json:"embeddingPostgresMsPerMsg"`
	EmbeddingProviderMsPerMsg *float64 `json:"embeddingProviderMsPerMsg"`
	EmbeddingCPUMsPerMsg      *float64 `json:"embeddingCpuMsPerMsg"`
	DeliveryCPUMsPerMsg       *float64 `json:"deliveryCpuMsPerMsg"`
	// EmbeddedTexts is how many texts the sweep embedded in the phase; nil when unknown.
	EmbeddedTexts *int64 `json:"embeddedTexts"`
	// StatementsPerMsg is Postgres statements per delivered message (top level, the bench's own
	// excluded), from Statements.Source; nil when no source could count them.
	StatementsPerMsg *float64    `json:"statementsPerMsg"`
	Statements       *Statements `json:"statements,omitempty"`
	// Phases is where the server's time went, by phase of the write path (the engine's
	// ripple_phase_duration_seconds); nil when the server does not export it.
	Phases []PhaseTime `json:"phases,omitempty"`
	// ServerRSSBytes is the server's VmRSS at the end of the phase; RSSPerClientBytes the growth
	// per added connected client against the scenario's baseline (idle scenario), else RSS / clients.
	ServerRSSBytes    int64    `json:"serverRssBytes,omitempty"`
	RSSPerClientBytes *float64 `json:"rssPerClientBytes"`
	// Idle CPU over a quiet window, as % of one core (idle scenario).
	IdleServerCPUPercent   *float64 `json:"idleServerCpuPercent,omitempty"`
	IdlePostgresCPUPercent *float64 `json:"idlePostgresCpuPercent,omitempty"`
	// Pass says whether a knee step met the bar (p99 within the limit, everything delivered).
	Pass *bool `json:"pass,omitempty"`
	// Extra holds scenario-specific figures (devices: last-device latency per write, index scans).
	Extra map[string]any `json:"extra,omitempty"`
	// Soak is the soak scenario's samples and verdicts (printed as its table, not here).
	Soak  *SoakReport `json:"soak,omitempty"`
	Notes []string    `json:"notes,omitempty"`
	// ProtocolErrors counts broken transition chains and failed queries seen by the clients.
	ProtocolErrors int64 `json:"protocolErrors"`
}

// Report is everything a run measured.
type Report struct {
	Started  time.Time `json:"started"`
	Host     string    `json:"host"`
	CPUs     int       `json:"cpus"`
	Server   string    `json:"server"`
	PageSize int       `json:"pageSize"`
	Results  []Result  `json:"results"`
	// KneeMsgPerSec is the highest passing knee rate (0: none passed or knee not run).
	KneeMsgPerSec float64 `json:"kneeMsgPerSec,omitempty"`
	// EmbeddingProvider is the provider's compute as measured at the start; EmbeddingMethod says
	// how the embedding's share is split off.
	EmbeddingProvider *ProviderCost `json:"embeddingProvider,omitempty"`
	EmbeddingMethod   string        `json:"embeddingMethod,omitempty"`
	Notes             []string      `json:"notes,omitempty"`
}

func fptr(v float64) *float64 { return &v }

func fmtOpt(p *float64, format string) string {
	if p == nil {
		return "n/a"
	}
	return fmt.Sprintf(format, *p)
}

// printResult writes one result as a short block; statements lists the most frequent ones.
func printResult(w io.Writer, r *Result, statements bool) {
	if w == nil {
		return
	}
	fmt.Fprintf(w, "%s / %s\n", r.Scenario, r.Name)
	rate := "closed loop"
	if r.RatePerSec > 0 {
		rate = fmt.Sprintf("%.0f msg/s", r.RatePerSec)
	}
	fmt.Fprintf(w, "  clients %d, %s, sent %d, committed %d, delivered %d/%d in %.1fs",
		r.Clients, rate, r.Messages, r.Committed, r.Delivered, r.Expected, r.DurationSec)
	if r.SendsPerSec > 0 {
		fmt.Fprintf(w, ", %.0f sends/s", r.SendsPerSec)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n", r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max)
	fmt.Fprintf(w, "  ack ms (sender's MutationResponse): p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n", r.AckLatency.P50, r.AckLatency.P90, r.AckLatency.P99, r.AckLatency.Max)
	fmt.Fprintf(w, "  cpu ms/msg: server %s, postgres %s;  %s;  statements/msg %s;  server rss %.1f MiB, per client %s\n",
		fmtOpt(r.ServerCPUMsPerMsg, "%.3f"), fmtOpt(r.PostgresCPUMsPerMsg, "%.3f"), embeddingCPUText(r), fmtOpt(r.StatementsPerMsg, "%.2f"),
		float64(r.ServerRSSBytes)/(1<<20), fmtOpt(kib(r.RSSPerClientBytes), "%.1f KiB"))
	printStatements(w, r.Statements, statements)
	printPhases(w, r.Phases)
	if r.IdleServerCPUPercent != nil || r.IdlePostgresCPUPercent != nil {
		fmt.Fprintf(w, "  idle cpu: server %s, postgres %s\n", fmtOpt(r.IdleServerCPUPercent, "%.2f%%"), fmtOpt(r.IdlePostgresCPUPercent, "%.2f%%"))
	}
	if r.Pass != nil {
		fmt.Fprintf(w, "  pass: %v\n", *r.Pass)
	}
	if len(r.Extra) > 0 {
		keys := make([]string, 0, len(r.Extra))
		for k := range r.Extra {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s=%v", k, r.Extra[k])
		}
		fmt.Fprintf(w, "  %s\n", strings.Join(parts, "  "))
	}
	if r.ProtocolErrors > 0 {
		fmt.Fprintf(w, "  PROTOCOL ERRORS: %d\n", r.ProtocolErrors)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

// printPhases says where the server's time went, mean wall ms per run of each phase and runs per
// delivered message.
func printPhases(w io.Writer, phases []PhaseTime) {
	if len(phases) == 0 {
		return
	}
	parts := make([]string, len(phases))
	for i, p := range phases {
		parts[i] = fmt.Sprintf("%s %.3f (%.2f/msg)", p.Phase, p.MeanMs, p.PerMsg)
	}
	fmt.Fprintf(w, "  server phases, mean ms: %s\n", strings.Join(parts, ", "))
}

// printStatements says where the statement count came from, and with top the statements run
// most often.
func printStatements(w io.Writer, st *Statements, top bool) {
	if st == nil {
		return
	}
	switch st.Source {
	case sourcePGSS:
		fmt.Fprintf(w, "  statements: %.2f/msg (%d top-level; pg_stat_statements, track = %s", st.PerMsg, st.Total, st.Track)
		if st.NestedPerMsg != nil {
			fmt.Fprintf(w, ", and %.2f/msg run inside functions and triggers", *st.NestedPerMsg)
		} else {
			fmt.Fprint(w, ": statements inside functions and triggers not counted")
		}
		fmt.Fprintf(w, "; the bench's own %d subtracted", st.BenchOwn)
		if st.EnginePerMsg != nil {
			fmt.Fprintf(w, "; engine's own count %.2f/msg", *st.EnginePerMsg)
		}
		fmt.Fprintln(w, ")")
	case sourceEngine:
		fmt.Fprintf(w, "  statements: %.2f/msg (%d; the engine's own count, %s; pg_stat_statements not loaded)\n", st.PerMsg, st.Total, engineStatementsMetric)
	default:
		fmt.Fprintln(w, "  statements: unavailable (load pg_stat_statements)")
	}
	for _, n := range st.Notes {
		fmt.Fprintf(w, "  statements note: %s\n", n)
	}
	if top && len(st.Top) > 0 {
		fmt.Fprintln(w, "  top statements (calls/msg, calls):")
		for _, c := range st.Top {
			nested := ""
			if !c.TopLevel {
				nested = " [nested]"
			}
			fmt.Fprintf(w, "    %6.2f %7d  %s%s\n", c.PerMsg, c.Calls, c.Query, nested)
		}
		if st.Rest != nil {
			fmt.Fprintf(w, "    %6.2f %7d  (%d other statements)\n", st.Rest.PerMsg, st.Rest.Calls, st.Rest.Statements)
		}
	}
}

func kib(p *float64) *float64 {
	if p == nil {
		return nil
	}
	return fptr(*p / 1024)
}

func writeJSON(path string, rep *Report) error {
	buf, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(buf, '\n'), 0o644)
}
