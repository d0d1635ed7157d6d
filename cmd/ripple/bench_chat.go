package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ripplehq/ripple/internal/benchchat"
)

// benchChatUsage is the first lines of `ripple bench chat -h`.
const benchChatUsage = `Usage: ripple bench chat [flags]

Load the chat the way its users do: real accounts on real sync sockets, the web app's
subscriptions, messages:send mutations, against a fresh ripple serve per scenario (or --url).
Latency is Mutation frame sent -> the other user's socket has the Transition showing it.

Flags:`

// isBenchChat says whether args (without the program name) are `bench chat ...`. The bench
// command parses its own flags first, so this is dispatched before it.
func isBenchChat(args []string) bool {
	return len(args) >= 2 && args[0] == "bench" && args[1] == "chat"
}

func benchChat(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("bench chat", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	scenario := fs.String("scenario", "latency", "`name`s, comma-separated: latency, knee, idle, devices, throughput, search, group, or all; or soak")
	target := fs.String("url", "", "base `URL` of a running server on this machine (default: start ripple serve per scenario)")
	serverPID := fs.Int("server-pid", 0, "`pid` of the --url server, for CPU and RSS figures")
	metricsURL := fs.String("metrics-url", "", "`URL` of the --url server's /metrics without credentials (serve --metrics-addr), for the engine's statement count when pg_stat_statements is not loaded")
	statements := fs.Bool("statements", false, "print each phase's most frequent Postgres statements (pg_stat_statements; --json always has them)")
	jsonPath := fs.String("json", "", "write every result to `file` as JSON")
	pageSize := fs.Int("page-size", 20, "usePaginatedQuery's numItems")
	drain := fs.Duration("drain", 15*time.Second, "longest wait for outstanding deliveries after a phase's last send")
	quietOut := fs.Bool("quiet", false, "no progress lines on stderr")
	readMarks := fs.Bool("read-marks", true, "sockets showing a thread mark a new message from another user read (conversations:markRead), as the web app does; false leaves that cost out")
	// latency
	rate := fs.Float64("rate", 20, "latency, idle: msg/s of the measured pair")
	messages := fs.Int("messages", 500, "latency: messages per phase")
	history := fs.Int("history", 1000, "latency: messages of history before the second phase (-1 skips it)")
	// knee
	pairs := fs.Int("pairs", 50, "knee: pairs chatting; throughput: pairs sending closed loop (default 100 there)")
	rates := fs.String("rates", "50,100,200,400,800,1200", "knee: total msg/s `steps`")
	step := fs.Duration("step", 10*time.Second, "knee: how long each rate is held")
	maxP99 := fs.Duration("max-p99", 50*time.Millisecond, "knee: p99 bar of a passing step")
	// idle
	idle := fs.String("idle", "0,10000,50000", "idle: cumulative `counts` of extra idle clients")
	idleAccounts := fs.Int("idle-accounts", 100, "idle, throughput: accounts the idle clients share")
	idleMessages := fs.Int("idle-messages", 200, "idle: messages of the measured pair per step")
	quiet := fs.Duration("quiet-window", 15*time.Second, "idle: window over which idle CPU is measured")
	// devices
	devices := fs.String("devices", "1000,10000", "devices: `counts` of sockets of the one user")
	writes := fs.Int("writes", 3, "devices: writes per count")
	// throughput
	clients := fs.Int("clients", 10000, "throughput: clients connected in total")
	duration := fs.Duration("duration", 20*time.Second, "throughput: send window; soak: how long it runs (default 30m there)")
	// search
	searches := fs.Int("searches", 50, "search: live searches open in one conversation")
	searchTexts := fs.Int("search-texts", 5, "search: distinct query texts over them")
	searchMessages := fs.Int("search-messages", 40, "search: matching messages, one at a time")
	// Postgres's own replication
	replicas := fs.Int("replicas", 0, "streaming `replicas` for re-runs: the bench starts a private primary and N standbys (pg_basebackup) and gives them to the server (DATABASE_REPLICA_URLS)")
	changeFeed := fs.String("change-feed", "notify", "`feed` of the server: notify or logical (RIPPLE_CHANGE_FEED); given, the bench starts a private primary (wal_level = logical) as --replicas does, so both feeds run on the same kind of server")
	pauseReplay := fs.Bool("pause-replay", false, "pause replay on the first replica (pg_wal_replay_pause) while each scenario runs")
	// group
	groups := fs.Int("groups", 10, "group: how many groups")
	members := fs.Int("members", 30, "group: members per group (2 to 200), each one socket")
	groupRate := fs.Float64("group-rate", 20, "group: msg/s over all groups")
	groupMessages := fs.Int("group-messages", 300, "group: messages sent")
	// soak
	sampleEvery := fs.Duration("sample-every", time.Minute, "soak: sampling interval")
	warmUp := fs.Duration("warm-up", 0, "soak: left out of the trend fits (default duration/6)")
	soakClients := fs.Int("soak-clients", 40, "soak: clients in the population (even)")
	soakRate := fs.Float64("soak-rate", 4, "soak: msg/s over the population")
	tokenTTL := fs.Duration("token-ttl", time.Minute, "soak: the server's access-token lifetime (a --url server must be started with it)")
	retention := fs.Duration("retention", 2*time.Minute, "soak: the child server's mutation-log, finished-job and spent-token retention")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(e.stdout, benchChatUsage)
			fs.SetOutput(e.stdout)
			fs.PrintDefaults()
			return nil
		}
		return usagef("bench chat: %v (see \"ripple bench chat -h\")", err)
	}
	if fs.NArg() > 0 {
		return usagef("bench chat: unexpected argument %q (see \"ripple bench chat -h\")", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	cfg := &benchchat.Config{Out: e.stdout, JSONPath: *jsonPath, PageSize: *pageSize, DrainTimeout: *drain, Statements: *statements, NoReadMarks: !*readMarks}
	if !*quietOut {
		cfg.Progress = e.stderr
	}
	for _, s := range strings.Split(*scenario, ",") {
		s = strings.TrimSpace(s)
		if s == "all" {
			cfg.Scenarios = append(cfg.Scenarios, benchchat.Scenarios...)
		} else if s != "" {
			cfg.Scenarios = append(cfg.Scenarios, s)
		}
	}
	var err error
	cfg.Latency = benchchat.LatencyOpts{Rate: *rate, Messages: *messages, History: *history}
	if *history == 0 {
		cfg.Latency.History = -1
	}
	cfg.Knee = benchchat.KneeOpts{Pairs: *pairs, Step: *step, MaxP99: *maxP99}
	if cfg.Knee.Rates, err = parseFloats(*rates); err != nil {
		return usagef("bench chat: --rates: %v", err)
	}
	cfg.Idle = benchchat.IdleOpts{Accounts: *idleAccounts, Rate: *rate, Messages: *idleMessages, Quiet: *quiet}
	if cfg.Idle.Counts, err = parseCounts(*idle); err != nil {
		return usagef("bench chat: --idle: %v", err)
	}
	if len(cfg.Idle.Counts) == 0 || cfg.Idle.Counts[0] != 0 {
		// K = 0 is the baseline every other step is compared with.
		cfg.Idle.Counts = append([]int{0}, cfg.Idle.Counts...)
	}
	cfg.Devices = benchchat.DevicesOpts{Writes: *writes}
	if cfg.Devices.Counts, err = parseInts(*devices); err != nil {
		return usagef("bench chat: --devices: %v", err)
	}
	cfg.Throughput = benchchat.ThroughputOpts{Clients: *clients, IdleAccounts: *idleAccounts, Duration: *duration}
	if set["pairs"] {
		cfg.Throughput.Pairs = *pairs
	}
	cfg.Search = benchchat.SearchOpts{Searches: *searches, Texts: *searchTexts, Messages: *searchMessages}
	cfg.Group = benchchat.GroupOpts{Groups: *groups, Members: *members, Rate: *groupRate, Messages: *groupMessages}
	cfg.Soak = benchchat.SoakOpts{SampleEvery: *sampleEvery, WarmUp: *warmUp, Clients: *soakClients, Rate: *soakRate,
		TokenTTL: *tokenTTL, Retention: *retention}
	if set["duration"] {
		cfg.Soak.Duration = *duration
	}

	if u := strings.TrimSpace(e.getenv(envDatabaseURL)); u != "" {
		cfg.DatabaseURL = u
	}
	if *changeFeed != "notify" && *changeFeed != "logical" {
		return usagef("bench chat: --change-feed must be notify or logical")
	}
	if *replicas < 0 || *replicas > 4 {
		return usagef("bench chat: --replicas must be between 0 and 4")
	}
	if *pauseReplay && *replicas == 0 {
		return usagef("bench chat: --pause-replay needs --replicas")
	}
	private := *replicas > 0 || set["change-feed"]
	if private && *target != "" {
		return usagef("bench chat: --replicas and --change-feed start servers of their own; not with --url")
	}
	if private {
		cluster, err := startBenchCluster(ctx, e, *replicas)
		if cluster != nil {
			defer cluster.stop()
		}
		if err != nil {
			return err
		}
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("finding the ripple binary: %w", err)
		}
		cfg.DatabaseURL = cluster.primary.URL()
		cfg.WALSenders = true
		env := []string{envChangeFeed + "=" + *changeFeed}
		if len(cluster.standbys) > 0 {
			env = append(env, envDatabaseReplicaURLs+"="+strings.Join(cluster.standbyURLs(), ","))
		}
		cfg.Launch = cluster.launcher(benchchat.ChildServer(exe, cfg.DatabaseURL, nil, env...), *pauseReplay)
		fmt.Fprintf(e.stdout, "private primary (wal_level = logical) with %d streaming replicas; change feed %s\n", len(cluster.standbys), *changeFeed)
	}
	if *target != "" {
		if err := loopbackURL(*target); err != nil {
			return usagef("bench chat: --url: %v", err)
		}
		cfg.Launch = benchchat.ExistingServer(*target, *serverPID, *metricsURL)
	} else if set["server-pid"] || set["metrics-url"] {
		return usagef("bench chat: --server-pid and --metrics-url need --url")
	}
	// Bounded as a whole too: every phase is bounded, this catches what is not.
	ctx, cancel := context.WithTimeout(ctx, 3*time.Hour+cfg.Soak.Duration)
	defer cancel()
	_, err = benchchat.Run(ctx, cfg)
	if err != nil && (strings.Contains(err.Error(), "sizes must") || strings.Contains(err.Error(), "group sizes") || strings.Contains(err.Error(), "unknown scenario") || strings.HasPrefix(err.Error(), "soak ")) {
		return usagef("bench chat: %v", err)
	}
	return err
}

// loopbackURL accepts only http URLs on this machine: the bench's sockets come from loopback
// source addresses.
func loopbackURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("%q is not an http:// URL", s)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address", host)
	}
	return nil
}

// parseCounts parses "0,10000" into non-negative integers.
func parseCounts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(strings.ReplaceAll(f, "_", ""))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q is not a count", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func parseFloats(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := strconv.ParseFloat(strings.ReplaceAll(f, "_", ""), 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, v)
	}
	return out, nil
}
