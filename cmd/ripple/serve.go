package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/engine/embedding"
	"github.com/ripplehq/ripple/functions"
	"github.com/ripplehq/ripple/web"
)

const (
	// startTimeout bounds starting the engine (capture catalog, change listener, job workers).
	startTimeout = 30 * time.Second
	// shutdownTimeout bounds each shutdown step: draining HTTP requests, then stopping the engine.
	shutdownTimeout = 10 * time.Second
)

func serveFlags(e *env) (*flag.FlagSet, func(ctx context.Context, args []string) error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	addrDefault := defaultAddr
	if v := strings.TrimSpace(e.getenv(envAddr)); v != "" {
		addrDefault = v
	}
	addr := fs.String("addr", addrDefault, "`host:port` to listen on ($"+envAddr+" sets the default)")
	schemaName := fs.String("schema", "public", "`name` of the Postgres schema holding the application's tables")
	noMigrate := fs.Bool("no-migrate", false, "do not apply outstanding migrations at start-up")
	pprofAddr := fs.String("pprof-addr", "", "also serve Go's profiler (net/http/pprof) on this `host:port`; keep it on loopback")
	metricsAddr := fs.String("metrics-addr", "", "also serve GET /metrics without the admin key on this `host:port`; keep it on a private network")
	return fs, func(ctx context.Context, args []string) error {
		if err := noArgs("serve", args); err != nil {
			return err
		}
		if *schemaName == "" {
			return usagef("serve: --schema must not be empty")
		}
		return runServe(ctx, e, serveOpts{addr: *addr, schema: *schemaName, migrate: !*noMigrate, pprofAddr: *pprofAddr, metricsAddr: *metricsAddr})
	}
}

type serveOpts struct {
	addr      string
	schema    string
	migrate   bool
	pprofAddr string
	// metricsAddr, when set, serves the metrics without credentials on a listener of its own.
	metricsAddr string
}

func runServe(ctx context.Context, e *env, opts serveOpts) error {
	logger, dbURL, err := loggerAndDatabaseURL(e)
	if err != nil {
		return err
	}

	// Listen first: a port in use is reported before anything touches the database.
	ln, err := net.Listen("tcp", opts.addr)
	if err != nil {
		return listenError(opts.addr, err)
	}
	if strings.TrimSpace(e.getenv(engine.KeyEncryptionKeyEnv)) == "" && !isLoopback(ln.Addr()) && e.getenv(envDevKeys) != "1" {
		// The development key is public: whoever reads the database or a backup could mint
		// tokens for any user. Fine on a laptop, not on a network.
		ln.Close()
		return fmt.Errorf("%s is required when serving on %s, a non-loopback address "+
			"(generate one with `openssl rand -base64 32`; %s=1 accepts the public development key)",
			engine.KeyEncryptionKeyEnv, ln.Addr(), envDevKeys)
	}
	defer ln.Close()
	var metricsLn net.Listener
	if opts.metricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", opts.metricsAddr); err != nil {
			return listenError(opts.metricsAddr, err)
		}
		defer metricsLn.Close()
	}

	pool, err := openPool(ctx, dbURL, opts.schema)
	if err != nil {
		return err
	}
	defer pool.Close()

	if opts.migrate {
		if _, err := migrate(ctx, pool, opts.schema, logger); err != nil {
			return err
		}
	}

	clientAddress, err := clientAddressFromEnv(e)
	if err != nil {
		return err
	}
	authService, err := newAuthService(ctx, e, pool, logger, clientAddress)
	if err != nil {
		return err
	}
	embedder, err := embedding.New(embedding.ConfigFromEnv(e.getenv))
	if err != nil {
		return fmt.Errorf("embedding provider: %w", err)
	}
	logger.Info("embedding provider", "model", embedder.Model())

	reg := engine.NewRegistry()
	// Where search query vectors came from (a provider call or a cache), on /metrics.
	queryVectors := &functions.QueryVectorCounts{}
	if err := registerFunctions(reg, &functions.Deps{Embedder: embedder, QueryVectorCounts: queryVectors}); err != nil {
		return err
	}
	engCfg := &engine.Config{Schema: opts.schema, Logger: logger, Auth: authService.Authenticator(),
		AllowedOrigins: splitList(e.getenv(envAllowedOrigins)), ClientAddress: clientAddress,
		ReplicaURLs: splitList(e.getenv(envDatabaseReplicaURLs)), ChangeFeed: e.getenv(envChangeFeed),
		// Spent refresh tokens, ended sessions, retired keys and old rate-limit windows
		// (docs/engine.md, Retention).
		Housekeeping: []func(context.Context) error{authService.Prune}}
	for name, dst := range map[string]*time.Duration{envMutationLogRetention: &engCfg.MutationLogRetention,
		envHousekeepingInterval: &engCfg.HousekeepingInterval, envCompletedJobRetention: &engCfg.CompletedJobRetention} {
		if *dst, err = durationEnv(e, name); err != nil {
			return err
		}
	}
	eng, err := engine.New(pool, reg, engCfg)
	if err != nil {
		return fmt.Errorf("creating the engine: %w", err)
	}
	if err := eng.MetricsRegistry().Register(queryVectors.Collector()); err != nil {
		return fmt.Errorf("registering the search metrics: %w", err)
	}
	if err := functions.RegisterMetrics(eng.MetricsRegistry(), pool); err != nil {
		return fmt.Errorf("registering the chat's metrics: %w", err)
	}
	startCtx, cancel := context.WithTimeout(ctx, startTimeout)
	err = eng.Start(startCtx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return errors.New("interrupted while starting the engine")
		}
		hint := ""
		if !opts.migrate {
			hint = " (with --no-migrate, run \"ripple migrate\" first)"
		}
		return fmt.Errorf("starting the engine: %w%s", err, hint)
	}

	srv := &http.Server{
		Handler:           rootHandler(eng, authService),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		// No read or write timeout: the sync WebSocket lives as long as the client stays.
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	if opts.pprofAddr != "" {
		// The profiler on its own listener, never on the public one: profiles show internals.
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		dbg := &http.Server{Addr: opts.pprofAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := dbg.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Warn("pprof listener stopped", "err", err)
			}
		}()
		defer dbg.Close()
	}
	if metricsLn != nil {
		defer serveMetrics(metricsLn, eng, logger)()
	}
	logger.Info("serving on http://"+ln.Addr().String(), "schema", opts.schema)

	var failure error
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-serveErr:
		failure = fmt.Errorf("serving HTTP: %w", err)
	}

	// Stop accepting and let in-flight requests finish; sync sockets are hijacked connections,
	// which Shutdown leaves to the engine's Stop.
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		logger.Warn("HTTP requests still running at the shutdown deadline; closing them", "err", err)
		_ = srv.Close()
		if failure == nil {
			failure = fmt.Errorf("shutting down HTTP: %w", err)
		}
	}
	stopCtx, cancel2 := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel2()
	if err := eng.Stop(stopCtx); err != nil && failure == nil {
		failure = fmt.Errorf("stopping the engine: %w", err)
	}
	pool.Close()
	if failure == nil {
		logger.Info("stopped")
	}
	return failure
}

// rootHandler is every route the process serves.
func rootHandler(eng *engine.Engine, authService *engine.AuthService) http.Handler {
	mux := http.NewServeMux()

	// Accounts: /api/auth/signup|signin|refresh|signout and /.well-known/jwks.json.
	authService.Routes(mux)

	// The engine: sync WebSocket, HTTP function API, health endpoints.
	api := eng.Handler()
	mux.Handle("/api/", api)
	mux.Handle("GET /healthz", api)
	mux.Handle("GET /readyz", api)
	// Operators: metrics and River's UI (both for admin keys only).
	mux.Handle("GET /metrics", api)
	mux.Handle("/admin/", api)
	// The chat's HTTP actions (GET /http/me/export).
	mux.Handle(eng.HTTPActionPrefix(), api)

	// The chat web app (web/dist, embedded at build time), with client-side routes falling back
	// to index.html.
	mux.Handle("/", web.Handler())
	return securityHeaders(mux)
}

// contentSecurityPolicy lets the app load only its own files and talk only to this server; no
// other site may frame it (its tokens live in localStorage, so a framing page could trick a
// user into acting).
const contentSecurityPolicy = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; " +
	"style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"

// isLoopback reports whether a listener's address is reachable from this machine only.
func isLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// splitList splits a comma-separated setting, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		next.ServeHTTP(w, r)
	})
}

// registerFunctions adds the application's functions; a registration mistake panics in the
// registry, and is reported here as one line instead.
func registerFunctions(reg *engine.Registry, deps *functions.Deps) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("registering functions: %v", r)
		}
	}()
	functions.Register(reg, deps)
	return nil
}

// clientAddressFromEnv is how callers' addresses are read for rate limits: the TCP peer, or,
// with RIPPLE_TRUSTED_PROXIES, the address those proxies forward (nil: the default).
func clientAddressFromEnv(e *env) (func(*http.Request) string, error) {
	v := strings.TrimSpace(e.getenv(envTrustedProxies))
	if v == "" {
		return nil, nil
	}
	f, err := engine.ClientAddressBehind(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", envTrustedProxies, err)
	}
	return f, nil
}

// newAuthService starts the accounts service with the key-encryption key from the environment
// (without one, signing keys are stored for development only, and the service says so).
func newAuthService(ctx context.Context, e *env, pool *pgxpool.Pool, logger *slog.Logger, clientAddress func(*http.Request) string) (*engine.AuthService, error) {
	cfg := &engine.AuthConfig{Logger: logger, ClientAddress: clientAddress}
	for name, dst := range map[string]*time.Duration{envAccessTokenTTL: &cfg.AccessTokenTTL, envSpentTokenRetention: &cfg.SpentTokenRetention} {
		d, err := durationEnv(e, name)
		if err != nil {
			return nil, err
		}
		*dst = d
	}
	if v := strings.TrimSpace(e.getenv(engine.KeyEncryptionKeyEnv)); v != "" {
		key, err := engine.ParseKeyEncryptionKey(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", engine.KeyEncryptionKeyEnv, err)
		}
		cfg.KeyEncryptionKey = key
	}
	svc, err := engine.NewAuthService(pool, cfg)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	startCtx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := svc.Start(startCtx); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return svc, nil
}

// listenError says why addr could not be listened on, naming it once.
func listenError(addr string, err error) error {
	cause := err
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Err != nil {
		cause = opErr.Err
	}
	var sysErr *os.SyscallError
	if errors.As(cause, &sysErr) {
		cause = sysErr.Err
	}
	if errors.Is(cause, syscall.EADDRINUSE) {
		return fmt.Errorf("cannot listen on %s: address already in use (is another ripple running?)", addr)
	}
	return fmt.Errorf("cannot listen on %s: %v", addr, cause)
}

// serveMetrics serves the engine's metrics without credentials on ln, for a scraper on a
// private network (the main port serves them only to admin keys). It returns a function that
// stops serving.
func serveMetrics(ln net.Listener, eng *engine.Engine, logger *slog.Logger) func() {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", eng.MetricsHandler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Warn("metrics listener stopped", "err", err)
		}
	}()
	logger.Info("serving metrics on http://" + ln.Addr().String() + "/metrics")
	return func() { _ = srv.Close() }
}

// durationEnv reads a positive duration from the environment variable name; 0 when it is unset.
func durationEnv(e *env, name string) (time.Duration, error) {
	v := strings.TrimSpace(e.getenv(name))
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s: %q is not a positive duration (like 90s or 24h)", name, v)
	}
	return d, nil
}
