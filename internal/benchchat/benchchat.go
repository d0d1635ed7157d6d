// Package benchchat is `ripple bench chat`: a load generator that measures the path the chat's
// users take. Every client is a real account (signed up over HTTP with email and password) on a
// real sync WebSocket, authenticated with its access token and subscribed exactly as the web app
// is (users:me, conversations:list, and messages:list paginated the way convex@1.48's
// usePaginatedQuery does it); every message is a messages:send Mutation on the sender's socket,
// so the scheduled embedding job runs as in production. Delivery latency runs from writing the
// Mutation frame to the other user's socket receiving the Transition whose first messages page
// holds the message. By default each scenario gets its own `ripple serve` child process on a
// fresh schema, dropped afterwards, and CPU and memory come from /proc.
package benchchat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ripplehq/ripple/engine/embedding"
)

// DefaultDatabaseURL is the database `make db` (scripts/postgres.sh) brings up.
const DefaultDatabaseURL = "postgres://ripple:ripple@127.0.0.1:5432/ripple?sslmode=disable"

// Scenarios are the scenario names in the order "all" runs them.
var Scenarios = []string{"latency", "knee", "idle", "devices", "throughput", "search", "group"}

// ScenarioSoak is the soak scenario, run only by name: it lasts SoakOpts.Duration (30 min by
// default).
const ScenarioSoak = "soak"

// Config configures a run. Zero fields take the defaults documented on them.
type Config struct {
	// DatabaseURL is where the server's schema lives, and where the bench reads pg_stat_activity
	// to find the server's Postgres backends. Default DefaultDatabaseURL.
	DatabaseURL string
	// Launch starts a fresh server for each scenario. Default: ChildServer(os.Executable(),
	// DatabaseURL, ...), i.e. `ripple serve` on a free loopback port and a fresh schema; for the
	// soak, with SoakEnv's retention and token lifetime and a profiler port to collect its
	// garbage before each sample.
	Launch Launcher
	// Scenarios to run, in order. Default: all of them.
	Scenarios []string
	// PageSize is usePaginatedQuery's numItems. Default 20.
	PageSize int
	// DrainTimeout bounds the wait for outstanding deliveries after the last send of a phase.
	// Default 15 s.
	DrainTimeout time.Duration
	// JobsTimeout bounds the wait, after a phase, for its background work (the embedding sweep
	// emptying the queue) to finish, so its CPU is counted; 0 means 30 s, negative means do not
	// wait.
	JobsTimeout time.Duration
	// ServerEnv is added to the environment of the servers the default launcher starts
	// (RIPPLE_CHANGE_FEED, DATABASE_REPLICA_URLS).
	ServerEnv []string
	// WALSenders counts every WAL sender of the database's server as the server's Postgres CPU
	// (streaming replicas and the logical feed cost the primary that): set when the server is
	// the bench's own.
	WALSenders bool
	// NoReadMarks: the sockets that show a thread do not mark its newest message from another
	// user read. By default they do, as the web app does for the thread on screen: each
	// delivered message then costs a conversations:markRead and the re-runs it causes.
	NoReadMarks bool
	// Embedding is the server's embedding provider configuration, whose compute the bench
	// measures to report the embedding apart. Default: embedding.ConfigFromEnv(os.Getenv), what
	// a child server reads (it inherits the bench's environment); a --url server's own may differ.
	Embedding *embedding.Config

	Latency    LatencyOpts
	Knee       KneeOpts
	Idle       IdleOpts
	Devices    DevicesOpts
	Throughput ThroughputOpts
	Search     SearchOpts
	Group      GroupOpts
	Soak       SoakOpts

	// Out receives the report. Default io.Discard.
	Out io.Writer
	// Progress receives a line per phase (stderr). Nil: silent.
	Progress io.Writer
	// JSONPath, if set, receives the whole report as JSON.
	JSONPath string
	// Statements prints each phase's most frequent statements (the JSON always has them).
	Statements bool

	soakLaunch Launcher // Launch, or the default child server with the soak's settings
}

// LatencyOpts configures the latency scenario: one pair chatting at Rate, then a fresh pair
// whose conversation holds History messages and whose receiver has scrolled to the top.
type LatencyOpts struct {
	// Rate is messages per second (both directions together). Default 20.
	Rate float64
	// Messages per phase. Default 500.
	Messages int
	// History is how many messages are seeded through messages:send before the second phase.
	// Default 1000; negative skips the second phase.
	History int
}

// KneeOpts configures the knee scenario.
type KneeOpts struct {
	// Pairs chatting at once. Default 50 (100 clients).
	Pairs int
	// Rates are the total msg/s steps, in order. Default 50, 100, 200, 400, 800, 1200.
	Rates []float64
	// Step is how long each rate is held. Default 10 s.
	Step time.Duration
	// MaxP99 is the bar a step must meet (with every message delivered). Default 50 ms.
	MaxP99 time.Duration
}

// IdleOpts configures the idle scenario.
type IdleOpts struct {
	// Counts of additional idle clients, cumulative steps. Default 0, 10000, 50000.
	Counts []int
	// Accounts the idle clients share (one conversation per two). Default 100.
	Accounts int
	// Rate and Messages of the measured pair at each step. Defaults 20 and 200.
	Rate     float64
	Messages int
	// Quiet is the window over which idle CPU is measured (no sends). Default 15 s, the
	// server's ping interval, so every socket's ping falls inside it once.
	Quiet time.Duration
	// DialConcurrency bounds connection set-up. Default 64.
	DialConcurrency int
}

// DevicesOpts configures the devices scenario.
type DevicesOpts struct {
	// Counts of sockets the one user holds, one step each. Default 1000, 10000.
	Counts []int
	// Writes per step from the other user, one at a time. Default 3.
	Writes int
	// StatsSettle is how long to wait for Postgres to publish its index-scan counters (backends
	// flush them when idle, within ~10 s). 0 means 11 s; negative skips the figure.
	StatsSettle time.Duration
	// DialConcurrency bounds connection set-up. Default 64.
	DialConcurrency int
}

// ThroughputOpts configures the throughput scenario.
type ThroughputOpts struct {
	// Clients connected in total. Default 10000.
	Clients int
	// Pairs sending closed loop (both sides send, one message in flight each). Default 100.
	Pairs int
	// IdleAccounts shared by the clients beyond the pairs. Default 100.
	IdleAccounts int
	// Duration of the send window. Default 20 s.
	Duration time.Duration
	// MaxMessages caps the sends. Default 200000.
	MaxMessages int
	// DialConcurrency bounds connection set-up. Default 64.
	DialConcurrency int
}

func (c *Config) withDefaults() (*Config, error) {
	out := *c
	if out.DatabaseURL == "" {
		out.DatabaseURL = DefaultDatabaseURL
	}
	out.Soak.withDefaults()
	out.soakLaunch = out.Launch
	if out.Launch == nil {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("finding the ripple binary: %w", err)
		}
		out.Launch = ChildServer(exe, out.DatabaseURL, &tailBuffer{}, out.ServerEnv...)
		out.soakLaunch = childServer(exe, out.DatabaseURL, &tailBuffer{}, append(SoakEnv(out.Soak), out.ServerEnv...), true)
	}
	if len(out.Scenarios) == 0 {
		out.Scenarios = Scenarios
	}
	for _, s := range out.Scenarios {
		if !isScenario(s) {
			return nil, fmt.Errorf("unknown scenario %q (want %s, %s or all)", s, strings.Join(Scenarios, ", "), ScenarioSoak)
		}
		if s == ScenarioSoak {
			if err := out.Soak.validate(); err != nil {
				return nil, err
			}
		}
	}
	def(&out.PageSize, 20)
	def(&out.DrainTimeout, 15*time.Second)
	def(&out.JobsTimeout, 30*time.Second)
	if out.Embedding == nil {
		ec := embedding.ConfigFromEnv(os.Getenv)
		out.Embedding = &ec
	}
	if out.Out == nil {
		out.Out = io.Discard
	}
	l := &out.Latency
	def(&l.Rate, 20)
	def(&l.Messages, 500)
	def(&l.History, 1000)
	k := &out.Knee
	def(&k.Pairs, 50)
	if len(k.Rates) == 0 {
		k.Rates = []float64{50, 100, 200, 400, 800, 1200}
	}
	def(&k.Step, 10*time.Second)
	def(&k.MaxP99, 50*time.Millisecond)
	i := &out.Idle
	if i.Counts == nil {
		i.Counts = []int{0, 10_000, 50_000}
	}
	def(&i.Accounts, 100)
	def(&i.Rate, 20)
	def(&i.Messages, 200)
	def(&i.Quiet, 15*time.Second)
	def(&i.DialConcurrency, 64)
	d := &out.Devices
	if len(d.Counts) == 0 {
		d.Counts = []int{1000, 10_000}
	}
	def(&d.Writes, 3)
	def(&d.StatsSettle, 11*time.Second)
	def(&d.DialConcurrency, 64)
	t := &out.Throughput
	def(&t.Clients, 10_000)
	def(&t.Pairs, 100)
	def(&t.IdleAccounts, 100)
	def(&t.Duration, 20*time.Second)
	def(&t.MaxMessages, 200_000)
	def(&t.DialConcurrency, 64)
	se := &out.Search
	def(&se.Searches, 50)
	def(&se.Texts, 5)
	def(&se.Messages, 40)
	if se.Searches < 1 || se.Texts < 1 || se.Texts > len(searchTexts) || se.Messages < 1 {
		return nil, fmt.Errorf("sizes must be positive (search: texts between 1 and %d)", len(searchTexts))
	}
	gr := &out.Group
	def(&gr.Groups, 10)
	def(&gr.Members, 30)
	def(&gr.Rate, 20)
	def(&gr.Messages, 300)
	switch {
	case gr.Groups < 1 || gr.Members < 2 || gr.Members > 200 || gr.Rate <= 0 || gr.Messages < 1:
		return nil, errors.New("group sizes: at least 1 group of 2 to 200 members, a positive rate and at least 1 message")
	case out.PageSize < 1 || out.PageSize > 200:
		return nil, errors.New("page size must be between 1 and 200")
	case l.Rate <= 0 || l.Messages < 1 || k.Pairs < 1 || i.Accounts < 2 || i.Rate <= 0 || i.Messages < 1 ||
		d.Writes < 1 || d.Writes > 64 || t.Pairs < 1 || t.Clients < 2*t.Pairs || t.IdleAccounts < 2:
		return nil, errors.New("sizes must be positive (devices writes at most 64; throughput clients at least 2×pairs; idle accounts at least 2)")
	}
	return &out, nil
}

func def[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

func isScenario(s string) bool {
	for _, n := range append(Scenarios[:len(Scenarios):len(Scenarios)], ScenarioSoak) {
		if n == s {
			return true
		}
	}
	return false
}

// Run runs the configured scenarios and returns the report (also printed to Out and, with
// JSONPath, written as JSON). Each scenario stops by itself: every loop is bounded in count and
// time.
func Run(ctx context.Context, cfg *Config) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	raiseFileLimit()
	host, _ := os.Hostname()
	rep := &Report{Started: time.Now().UTC(), Host: host, CPUs: runtime.NumCPU(), PageSize: cfg.PageSize}
	fmt.Fprintf(cfg.Out, "ripple bench chat: %d CPUs, page size %d; latency = Mutation frame sent -> other user's socket has the Transition whose first messages:list page holds it\n", rep.CPUs, cfg.PageSize)
	// Now, before any server runs, the process is quiet enough for getrusage to time the provider.
	rep.EmbeddingProvider = measureProvider(ctx, *cfg.Embedding)
	rep.EmbeddingMethod = embeddingMethod(rep.EmbeddingProvider)
	fmt.Fprintln(cfg.Out, rep.EmbeddingMethod)
	var runErr error
	for _, name := range cfg.Scenarios {
		var results []Result
		results, err := runScenario(ctx, cfg, rep, name)
		for i := range results {
			printResult(cfg.Out, &results[i], cfg.Statements)
		}
		rep.Results = append(rep.Results, results...)
		if err != nil {
			runErr = fmt.Errorf("scenario %s: %w", name, err)
			break
		}
	}
	if cfg.JSONPath != "" {
		if err := writeJSON(cfg.JSONPath, rep); err != nil && runErr == nil {
			runErr = fmt.Errorf("writing %s: %w", cfg.JSONPath, err)
		}
	}
	return rep, runErr
}

func runScenario(ctx context.Context, cfg *Config, rep *Report, name string) ([]Result, error) {
	launch := cfg.Launch
	if name == ScenarioSoak {
		launch = cfg.soakLaunch
	}
	srv, err := launch(ctx)
	if srv != nil {
		srv.WALSenders = cfg.WALSenders
	}
	if err != nil {
		return nil, err
	}
	env := &env{cfg: cfg, srv: srv, scenario: name, addrs: newLoopbackPool(), provider: rep.EmbeddingProvider}
	defer env.close()
	if rep.Server == "" {
		rep.Server = srv.URL
	}
	if env.meter, err = newMeter(ctx, srv, cfg.DatabaseURL); err != nil {
		return nil, err
	}
	env.api = &apiClient{base: srv.URL, addrs: env.addrs}
	env.dial = newDialer(srv.URL, env.addrs, 32)
	switch name {
	case "latency":
		return env.latency(ctx)
	case "knee":
		res, knee, err := env.knee(ctx)
		rep.KneeMsgPerSec = knee
		return res, err
	case "idle":
		return env.idle(ctx)
	case "devices":
		return env.devices(ctx)
	case "throughput":
		return env.throughput(ctx)
	case "search":
		return env.search(ctx)
	case "group":
		return env.group(ctx)
	case ScenarioSoak:
		return env.soak(ctx)
	}
	return nil, fmt.Errorf("unknown scenario %q", name)
}

// raiseFileLimit lifts RLIMIT_NOFILE as far as allowed: every socket is a descriptor here and
// one in the server, which inherits the limit.
func raiseFileLimit() {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) != nil {
		return
	}
	want := uint64(1 << 20)
	if raw, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(raw)), 10, 64); err == nil {
			want = n
		}
	}
	if lim.Max < want {
		up := syscall.Rlimit{Cur: want, Max: want}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &up) == nil {
			return
		}
	}
	lim.Cur = lim.Max
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}

// env is one scenario's server and the bench's handles on it.
type env struct {
	cfg      *Config
	srv      *Server
	scenario string
	addrs    *loopbackPool
	meter    *meter
	api      *apiClient
	dial     *dialer
	provider *ProviderCost // the embedding provider's measured compute

	mu      sync.Mutex
	clients []*client
	nextID  int
	tracker atomic.Pointer[tracker]
}

func (e *env) close() {
	e.mu.Lock()
	clients := e.clients
	e.clients = nil
	e.mu.Unlock()
	closeAll(clients)
	if e.dial != nil {
		e.dial.close()
	}
	if e.meter != nil {
		e.meter.close()
	}
	if e.srv.Stop != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		_ = e.srv.Stop(ctx)
	}
}

func closeAll(clients []*client) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for _, c := range clients {
		sem <- struct{}{}
		wg.Add(1)
		go func() { defer func() { <-sem; wg.Done() }(); c.close() }()
	}
	wg.Wait()
}

func (e *env) progress(format string, args ...any) {
	if e.cfg.Progress != nil {
		fmt.Fprintf(e.cfg.Progress, "bench chat: "+format+"\n", args...)
	}
}

// connect opens a socket per account (accts[i] for client i), concurrency at once.
func (e *env) connect(ctx context.Context, accts []*account, concurrency int, observe bool) ([]*client, error) {
	out := make([]*client, len(accts))
	e.mu.Lock()
	base := e.nextID
	e.nextID += len(accts)
	e.mu.Unlock()
	var hook func(*client, []wireMessage, time.Time)
	if observe {
		hook = e.observe
	}
	g, gctx := newGroup(ctx, max(1, concurrency))
	for i, a := range accts {
		g.Go(func() error {
			c, err := e.dial.connect(gctx, base+i, a, e.cfg.PageSize, hook, observe && !e.cfg.NoReadMarks)
			if err != nil {
				return err
			}
			out[i] = c
			return nil
		})
	}
	err := g.Wait()
	e.mu.Lock()
	for _, c := range out {
		if c != nil {
			e.clients = append(e.clients, c)
		}
	}
	e.mu.Unlock()
	return out, err
}

// headless opens a socket that only authenticates (for seeding history through messages:send
// without a screen attached).
func (e *env) headless(ctx context.Context, a *account) (*client, error) {
	c, err := e.dial.connectBare(ctx, a)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.clients = append(e.clients, c)
	e.mu.Unlock()
	return c, nil
}

func (e *env) observe(c *client, msgs []wireMessage, at time.Time) {
	if t := e.tracker.Load(); t != nil {
		t.observe(c, msgs, at)
	}
}

func (e *env) protocolErrors() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	var n int64
	for _, c := range e.clients {
		n += c.protocolErrors.Load()
	}
	return n
}

// waitBackground waits until the server's background work is done: the embedding sweep has taken
// every queued message (the chat's sends queue one each), so the CPU it costs lands in the
// phase that caused it. It returns how many messages were queued when it started and how long
// they took to drain (zero when nothing was queued, or it could not tell).
func (e *env) waitBackground(ctx context.Context) (backlog int64, drained time.Duration) {
	if e.srv.AppName == "" || e.cfg.JobsTimeout < 0 || e.meter.conn == nil {
		return 0, 0
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.JobsTimeout)
	defer cancel()
	q := "SELECT count(*) FROM " + pgx.Identifier{e.srv.AppName, "message_embedding_queue"}.Sanitize()
	start := time.Now()
	for first := true; ; first = false {
		var n int64
		if err := e.meter.conn.QueryRow(ctx, q).Scan(&n); err != nil {
			return 0, 0
		}
		if first {
			backlog = n
		}
		if n == 0 {
			return backlog, time.Since(start)
		}
		select {
		case <-ctx.Done():
			return 0, 0
		case <-time.After(50 * time.Millisecond):
		}
	}
}
