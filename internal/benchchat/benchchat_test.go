package benchchat_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/engine/embedding"
	"github.com/ripplehq/ripple/functions"
	"github.com/ripplehq/ripple/internal/benchchat"
	"github.com/ripplehq/ripple/internal/testdb"
	"github.com/ripplehq/ripple/internal/testlog"
)

// inProcessServer wires the chat server the way `ripple serve` does (accounts, the chat's
// functions, River jobs with the local embedding provider, the same routes) on a fresh test
// schema per scenario, in this process: building the binary inside `go test` would be slow and
// fragile on a busy machine. Its Postgres backends carry the schema as application_name.
func inProcessServer(t *testing.T) benchchat.Launcher {
	return func(ctx context.Context) (*benchchat.Server, error) {
		db := testdb.NewSchema(t)
		logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
		accounts, err := engine.NewAuthService(db.Pool, &engine.AuthConfig{Logger: logger})
		if err != nil {
			return nil, err
		}
		if err := accounts.Start(ctx); err != nil {
			return nil, err
		}
		embedder, err := embedding.New(embedding.ConfigFromEnv(func(string) string { return "" }))
		if err != nil {
			return nil, err
		}
		reg := engine.NewRegistry()
		counts := &functions.QueryVectorCounts{}
		functions.Register(reg, &functions.Deps{Embedder: embedder, QueryVectorCounts: counts})
		eng, err := engine.New(db.Pool, reg, &engine.Config{Schema: db.Schema, Logger: logger, Auth: accounts.Authenticator(),
			Housekeeping: []func(context.Context) error{accounts.Prune}})
		if err != nil {
			return nil, err
		}
		if err := eng.MetricsRegistry().Register(counts.Collector()); err != nil {
			return nil, err
		}
		if err := eng.Start(ctx); err != nil {
			return nil, err
		}
		mux := http.NewServeMux()
		accounts.Routes(mux)
		api := eng.Handler()
		mux.Handle("/api/", api)
		mux.Handle("GET /healthz", api)
		mux.Handle("GET /readyz", api)
		// As serve --metrics-addr serves them: without credentials, for the statement counter.
		mux.Handle("GET /metrics", eng.MetricsHandler())
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			_ = eng.Stop(ctx)
			return nil, err
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		served := make(chan struct{})
		go func() { defer close(served); _ = srv.Serve(ln) }()
		return &benchchat.Server{
			URL: "http://" + ln.Addr().String(), PID: os.Getpid(), AppName: db.Schema, MetricsURL: "http://" + ln.Addr().String() + "/metrics",
			Stop: func(ctx context.Context) error {
				err := srv.Close()
				<-served
				if serr := eng.Stop(ctx); serr != nil {
					err = errors.Join(err, serr)
				}
				return err
			},
		}, nil
	}
}

// TestScenarios runs a tiny version of every scenario end to end against a real server and
// checks what must hold whatever the machine's speed: every message is committed and delivered
// where it should be, counts add up, percentiles are ordered, the transition chains are intact,
// and the JSON report says the same as the returned one.
func TestScenarios(t *testing.T) {
	// A bound on the whole run, not a figure: seven scenarios on a shared, loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	jsonPath := filepath.Join(t.TempDir(), "bench.json")
	cfg := &benchchat.Config{
		DatabaseURL: testdb.URL(),
		Launch:      inProcessServer(t),
		PageSize:    5,
		// Generous: on a loaded machine under -race a delivery may take seconds; nothing here
		// asserts a duration.
		DrainTimeout: 60 * time.Second,
		Latency:      benchchat.LatencyOpts{Rate: 50, Messages: 12, History: 23},
		// A bar nothing misses, so every step runs and passes.
		Knee:       benchchat.KneeOpts{Pairs: 2, Rates: []float64{20, 40}, Step: 300 * time.Millisecond, MaxP99: time.Hour},
		Idle:       benchchat.IdleOpts{Counts: []int{0, 6}, Accounts: 4, Rate: 50, Messages: 6, Quiet: 100 * time.Millisecond},
		Devices:    benchchat.DevicesOpts{Counts: []int{3, 7}, Writes: 2, StatsSettle: 200 * time.Millisecond},
		Throughput: benchchat.ThroughputOpts{Clients: 10, Pairs: 2, IdleAccounts: 2, Duration: 500 * time.Millisecond, MaxMessages: 40},
		Search:     benchchat.SearchOpts{Searches: 6, Texts: 2, Messages: 4},
		Group:      benchchat.GroupOpts{Groups: 2, Members: 3, Rate: 50, Messages: 8},
		JSONPath:   jsonPath,
	}
	var out strings.Builder
	var progress testlog.Buffer
	cfg.Out, cfg.Progress = &out, &progress
	rep, err := benchchat.Run(ctx, cfg)
	require.NoError(t, err, out.String())
	t.Log(out.String())
	require.NotNil(t, rep.EmbeddingProvider)
	require.NotNil(t, rep.EmbeddingProvider.MsPerText, "the local provider is measured")
	require.Contains(t, out.String(), "\nembedding apart: postgres = executor+planner ms")
	// Seeding the history reports its progress, as plain lines off a terminal.
	require.Contains(t, progress.String(), "bench chat: seeding history: 23 messages done in ")

	by := map[string][]benchchat.Result{}
	for _, r := range rep.Results {
		by[r.Scenario] = append(by[r.Scenario], r)
		require.Positive(t, r.Expected, r.Name)
		require.Equal(t, r.Expected, r.Delivered, "%s: every delivery observed", r.Name)
		require.Equal(t, r.Messages, r.Committed, "%s: every send committed", r.Name)
		require.Zero(t, r.ProtocolErrors, r.Name)
		l := r.Latency
		require.True(t, 0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max, "%s: percentiles ordered: %+v", r.Name, l)
		require.NotNil(t, r.ServerCPUMsPerMsg, "%s: server CPU measured", r.Name)
		require.NotNil(t, r.PostgresCPUMsPerMsg, "%s: Postgres CPU measured", r.Name)
		require.Positive(t, r.ServerRSSBytes, r.Name)
		// Statements: from pg_stat_statements where it is loaded (make db loads it), else from
		// the engine's counter, else none at all; never a guess.
		st := r.Statements
		require.NotNil(t, st, r.Name)
		switch st.Source {
		case "pg_stat_statements":
			require.NotNil(t, r.StatementsPerMsg, r.Name)
			require.Positive(t, *r.StatementsPerMsg, "%s: a message costs statements", r.Name)
			require.NotEmpty(t, st.Top, r.Name)
			require.Contains(t, []string{"top", "all"}, st.Track)
			// The window lasts until the embedding queue is empty, so every message sent was
			// embedded in it (other sessions' sweeps in the database may add to the count).
			require.NotNil(t, st.Embedding, r.Name)
			require.NotNil(t, r.EmbeddedTexts, r.Name)
			// Unless pg_stat_statements evicted entries in the window (the other packages' test
			// schemas fill it on a busy CI machine): then the bench says its count may be low.
			evicted := slices.ContainsFunc(st.Notes, func(n string) bool { return strings.Contains(n, "evicted") })
			if !evicted {
				require.GreaterOrEqual(t, *r.EmbeddedTexts, int64(r.Committed), r.Name)
			}
			require.Contains(t, st.Embedding.Statements, "EmbeddingInsert", r.Name)
			require.NotNil(t, r.EmbeddingCPUMsPerMsg, "%s: the local provider is measured", r.Name)
			require.NotNil(t, r.DeliveryCPUMsPerMsg, r.Name)
		case "engine":
			require.NotNil(t, r.StatementsPerMsg, r.Name)
		default:
			require.Equal(t, "unavailable", st.Source, r.Name)
			require.Nil(t, r.StatementsPerMsg, r.Name)
		}
	}

	lat := by["latency"]
	require.Len(t, lat, 2)
	for _, r := range lat {
		require.Equal(t, 12, r.Messages)
		require.Equal(t, 12, r.Expected)
		require.Equal(t, 2, r.Clients)
		// The server's phases are read from its /metrics, and the receiver marked what it saw
		// read as the web app does: more mutations ran than messages were sent (one per message
		// unless two arrived in one transition), none failed (ProtocolErrors above).
		phases := map[string]benchchat.PhaseTime{}
		for _, p := range r.Phases {
			phases[p.Phase] = p
		}
		require.Contains(t, phases, "batch.queries", r.Name)
		require.Greater(t, phases["mutation.function"].PerMsg, 1.0, "%s: sends and read marks: %+v", r.Name, r.Phases)
	}
	// 23 messages at 5 a page: the receiver scrolled through 5 pages.
	require.EqualValues(t, 5, lat[1].Extra["receiverPagesLoaded"])

	knee := by["knee"]
	require.Len(t, knee, 2)
	for i, r := range knee {
		require.NotNil(t, r.Pass)
		require.True(t, *r.Pass)
		require.Equal(t, 4, r.Clients)
		require.Equal(t, []int{6, 12}[i], r.Messages) // rate × step
	}
	require.Equal(t, 40.0, rep.KneeMsgPerSec)

	idle := by["idle"]
	require.Len(t, idle, 2)
	require.Equal(t, 2, idle[0].Clients)
	require.Equal(t, 8, idle[1].Clients)
	require.Nil(t, idle[0].RSSPerClientBytes, "no per-client figure without added clients")
	require.NotNil(t, idle[1].RSSPerClientBytes)
	require.NotNil(t, idle[1].IdleServerCPUPercent)

	dev := by["devices"]
	require.Len(t, dev, 2)
	for i, n := range []int{3, 7} {
		require.Equal(t, 2, dev[i].Messages)
		require.Equal(t, 2*n, dev[i].Expected, "each write reaches each device once")
		require.Equal(t, n+1, dev[i].Clients)
		require.Len(t, dev[i].Extra["lastDeviceMsPerWrite"], 2)
	}

	tp := by["throughput"]
	require.Len(t, tp, 1)
	require.Equal(t, 10, tp[0].Clients)
	require.Positive(t, tp[0].SendsPerSec)
	require.LessOrEqual(t, tp[0].Messages, 40)

	se := by["search"]
	require.Len(t, se, 1)
	require.Equal(t, 4, se[0].Messages)
	require.Equal(t, 4*3, se[0].Expected, "each message reaches the 3 searches of its text")
	require.EqualValues(t, 2, se[0].Extra["providerCallsPreparing"], "one provider call per text")
	require.EqualValues(t, 0, se[0].Extra["providerCallsDuringMessages"])
	gr := by["group"]
	require.Len(t, gr, 1)
	require.Equal(t, 6, gr[0].Clients)
	require.Equal(t, 8, gr[0].Messages)
	require.Equal(t, 16, gr[0].Expected, "each message reaches the other two members of its group")
	require.Contains(t, gr[0].Extra, "slowestMemberLatency")
	require.Positive(t, gr[0].Extra["queryRunsPerSend"], "the server's query runs are read from its metrics")

	raw, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	var fromFile benchchat.Report
	require.NoError(t, json.Unmarshal(raw, &fromFile))
	require.Len(t, fromFile.Results, len(rep.Results))
	require.Equal(t, rep.KneeMsgPerSec, fromFile.KneeMsgPerSec)
}
