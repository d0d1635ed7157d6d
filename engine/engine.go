package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"riverqueue.com/riverui"

	"github.com/ripplehq/ripple/engine/internal/caller"
	"github.com/ripplehq/ripple/engine/internal/httpapi"
	"github.com/ripplehq/ripple/engine/internal/ratelimit"
	"github.com/ripplehq/ripple/engine/internal/reactor"
	"github.com/ripplehq/ripple/engine/internal/readset"
	"github.com/ripplehq/ripple/engine/internal/replicas"
	"github.com/ripplehq/ripple/engine/internal/session"
)

// Authenticator verifies the credentials a client presents. Ripple's auth service implements
// it; an application may bring its own.
type Authenticator interface {
	// VerifyAccessToken returns the user ID of a valid access token.
	VerifyAccessToken(ctx context.Context, token string) (userID string, err error)
	// VerifyAdminKey accepts or refuses an admin key.
	VerifyAdminKey(ctx context.Context, key string) error
}

// ExpiringAuthenticator is an Authenticator that also says when an access token expires. With
// one, a socket whose token expires gets AuthError and is closed, as Convex does: the client
// fetches a fresh token and reconnects, and nothing runs under the stale identity.
type ExpiringAuthenticator interface {
	Authenticator
	VerifyAccessTokenExpiry(ctx context.Context, token string) (userID string, expiresAt time.Time, err error)
}

// ErrAuth is returned (wrapped) for a refused token or admin key.
var ErrAuth = caller.ErrAuth

// Engine runs an application's functions and keeps its subscriptions live.
type Engine struct {
	pool     *pgxpool.Pool
	registry *Registry
	config   *Config
	logger   *slog.Logger

	listener changeFeed
	reactor  *reactor.Reactor
	sessions *session.Server
	river    *river.Client[pgx.Tx]

	catalogPtr    atomic.Pointer[readset.Catalog]
	metrics       engineMetrics
	prom          *metricSet
	jobsUI        *riverui.Handler
	mutationLimit *ratelimit.Limiter
	// replicas are made by Start (their pools run goroutines) when ReplicaURLs names any.
	replicas atomic.Pointer[replicas.Set]

	mu        sync.Mutex
	started   bool
	stopped   bool
	stop      context.CancelFunc
	reactorWG sync.WaitGroup

	// Guarded by mu too: the run context (it ends with Stop), and whether River's UI runs its
	// background services (started when an admin first opens it).
	runCtx        context.Context
	jobsUIStarted bool
}

type engineMetrics struct {
	mutationRetries, mutationGiveUps atomic.Int64
	// One-shot queries (HTTP, actions) by where they ran.
	primaryQueries, replicaQueries atomic.Int64
}

// New returns an engine for the pool (whose search_path names config.Schema first) and the
// registry's functions. Call Start before serving.
func New(pool *pgxpool.Pool, registry *Registry, config *Config) (*Engine, error) {
	cfg := config.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if pool == nil || registry == nil {
		return nil, errors.New("engine: pool and registry are required")
	}
	e := &Engine{pool: pool, registry: registry, config: cfg, logger: cfg.Logger,
		mutationLimit: ratelimit.New(cfg.MutationsPerSecond, cfg.MutationBurst)}
	e.listener = e.newChangeFeed()
	e.reactor = reactor.New(reactor.Config{
		Pool: pool, Listener: e.listener, Runner: backend{e}, Schema: cfg.Schema, Logger: cfg.Logger,
		QueryTimeout: cfg.QueryTimeout, QueryWorkers: cfg.QueryWorkers, PingInterval: cfg.PingInterval,
		TransitionChunkBytes: cfg.TransitionChunkBytes, SlowQueryAfter: cfg.SlowQueryAfter,
		ObserveLag:   func(d time.Duration) { e.prom.lag.Observe(d.Seconds()) },
		ObservePhase: func(p reactor.Phase, d time.Duration) { e.prom.observePhase(p, d) },
	})
	e.sessions = session.NewServer(session.Config{
		Backend: backend{e}, Reactor: e.reactor, Logger: cfg.Logger,
		MaxMessageBytes: cfg.MaxMessageBytes, SendQueueLength: cfg.SendQueueLength, SendQueueBytes: cfg.SendQueueBytes,
		MaxQueriesPerSocket: cfg.MaxQueriesPerSocket, WriteTimeout: cfg.WriteTimeout, PingInterval: cfg.PingInterval,
		AllowedOrigins: cfg.AllowedOrigins,
	})
	rc, err := e.newRiverClient()
	if err != nil {
		return nil, err
	}
	e.river = rc
	e.prom = e.newMetrics()
	if e.jobsUI, err = e.newJobsUI(); err != nil {
		return nil, fmt.Errorf("engine: River's UI: %w", err)
	}
	return e, nil
}

func (e *Engine) catalog() *readset.Catalog { return e.catalogPtr.Load() }

func (e *Engine) loadCatalog(ctx context.Context) error {
	c, err := readset.LoadCatalog(ctx, e.pool)
	if err != nil {
		return err
	}
	e.catalogPtr.Store(c)
	return nil
}

// Start loads the capture catalog, connects the change listener, and starts the reactor and the
// job workers. The context bounds start-up only.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started {
		return nil
	}
	if e.stopped {
		return errors.New("engine: a stopped engine cannot start again; create a new one")
	}
	if err := e.applyChangeFeed(ctx); err != nil {
		return err
	}
	if err := e.applyCaptureSkip(ctx); err != nil {
		return err
	}
	if err := e.loadCatalog(ctx); err != nil {
		return err
	}
	if len(e.config.ReplicaURLs) > 0 {
		set, err := replicas.New(replicas.Config{URLs: e.config.ReplicaURLs, Primary: e.pool,
			MaxWait: e.config.ReplicaMaxWait, MaxConns: int32(e.config.QueryWorkers + 4), Logger: e.logger,
			Configure: func(pc *pgxpool.Config) { traceReplicaStatements(e.pool.Config(), pc) }})
		if err == nil {
			err = set.Start(ctx)
		}
		if err != nil {
			if set != nil {
				set.Stop()
			}
			return fmt.Errorf("starting the replicas: %w", err)
		}
		e.replicas.Store(set)
		e.reactor.SetReplicas(set)
	}
	if err := e.listener.Start(ctx); err != nil {
		e.stopReplicas()
		return fmt.Errorf("starting the change listener: %w", err)
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	e.stop = stop
	e.reactorWG.Add(2)
	go func() {
		defer e.reactorWG.Done()
		e.reactor.Run(runCtx)
	}()
	go func() {
		defer e.reactorWG.Done()
		e.reactor.Ping(runCtx)
	}()
	e.sessions.Start(runCtx)
	e.runCtx = runCtx
	if !e.config.DisableJobs {
		if err := e.river.Start(runCtx); err != nil {
			stop()
			e.reactorWG.Wait()
			e.listener.Stop()
			e.stopReplicas()
			return fmt.Errorf("starting job workers: %w", err)
		}
		e.countJobOutcomes(runCtx)
	}
	e.started = true
	return nil
}

// Stop closes every sync socket, stops the job workers (letting running jobs finish within
// ctx), the reactor and the listener. It is idempotent.
func (e *Engine) Stop(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.started {
		return nil
	}
	e.started = false
	e.stopped = true
	var err error
	if !e.config.DisableJobs {
		err = e.stopJobs(ctx)
	}
	e.stop()
	e.sessions.Stop()
	e.reactorWG.Wait()
	e.listener.Stop()
	e.stopReplicas()
	return err
}

func (e *Engine) stopReplicas() {
	if set := e.replicas.Load(); set != nil {
		set.Stop()
	}
}

// stopJobs lets running jobs finish for two thirds of the time ctx leaves, then cancels their
// contexts and waits for River to record them (as retryable): a job whose provider call hangs
// is then not left "running" in a pool closed under it, to wait for the rescuer.
func (e *Engine) stopJobs(ctx context.Context) error {
	soft := ctx
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		soft, cancel = context.WithDeadline(ctx, time.Now().Add(time.Until(deadline)*2/3))
		defer cancel()
	}
	if err := e.river.Stop(soft); err == nil {
		return nil
	}
	e.logger.Warn("jobs still running at the stop deadline; cancelling them")
	return e.river.StopAndCancel(ctx)
}

// Stats are counters for benchmarks, tests and /readyz.
type Stats struct {
	Sessions        int64
	Batches         int64
	Executions      int64
	Reruns          int64
	ChangedReruns   int64
	SkippedChanges  int64
	MutationRetries int64
	ListenerGaps    int64
	// Batches and one-shot queries by the server their snapshot was on.
	PrimaryBatches, ReplicaBatches int64
	PrimaryQueries, ReplicaQueries int64
	// HeldBack counts batches that delivered without waiting for their slow queries (only
	// those queries' clients waited; Config.SlowQueryAfter).
	HeldBack int64
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	rs := e.reactor.Stats()
	return Stats{
		Sessions:        e.sessions.Sessions(),
		Batches:         rs.Batches,
		Executions:      rs.Executions,
		Reruns:          rs.Reruns,
		ChangedReruns:   rs.ChangedReruns,
		SkippedChanges:  rs.SkippedChanges,
		MutationRetries: e.metrics.mutationRetries.Load(),
		ListenerGaps:    e.listener.Gaps(),
		PrimaryBatches:  rs.PrimaryBatches,
		ReplicaBatches:  rs.ReplicaBatches,
		PrimaryQueries:  e.metrics.primaryQueries.Load(),
		ReplicaQueries:  e.metrics.replicaQueries.Load(),
		HeldBack:        rs.HeldBack,
	}
}

// ListenerBackendPID is the change listener's Postgres backend PID (tests terminate it).
func (e *Engine) ListenerBackendPID() uint32 { return e.listener.BackendPID() }

// Sync waits until every commit made before the call has been applied to all subscriptions and
// returns the ts of that state. The subscribers of a query still running past
// Config.SlowQueryAfter get that state when it finishes, possibly after Sync returns.
func (e *Engine) Sync(ctx context.Context) (uint64, error) { return e.reactor.Sync(ctx) }

// Handler serves the sync WebSocket, the HTTP function API and the health endpoints. Mount
// other routes (auth) on a mux in front of it.
func (e *Engine) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /api/{version}/sync", e.sessions)
	httpapi.Routes(mux, backend{e}, e.config.MaxArgBytes)
	e.adminRoutes(mux)
	e.httpActionRoutes(mux)
	return mux
}

// authenticateUntil turns presented credentials into an identity, and says when a user token
// expires (zero when unknown or not applicable).
func (e *Engine) authenticateUntil(ctx context.Context, tokenType, value string, impersonating json.RawMessage) (Identity, time.Time, error) {
	if tokenType == "User" {
		if auth, ok := e.config.Auth.(ExpiringAuthenticator); ok {
			userID, expires, err := auth.VerifyAccessTokenExpiry(ctx, value)
			if err != nil {
				return Identity{}, time.Time{}, refused(err)
			}
			return Identity{UserID: userID}, expires, nil
		}
	}
	id, err := e.authenticateOnce(ctx, tokenType, value, impersonating)
	return id, time.Time{}, err
}

// refused is a verifier's error as the caller sees it: the credentials refused (ErrAuth), or,
// when verifying could not be done (the database unreachable, say), UNAVAILABLE: the client
// must then keep its credentials and try again, not be signed out for a server's trouble.
func refused(err error) error {
	if isUnavailable(err) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("verifying credentials: %w (%w)", errUnavailable(), err)
	}
	return fmt.Errorf("%w: %v", ErrAuth, err)
}

func (e *Engine) authenticateOnce(ctx context.Context, tokenType, value string, impersonating json.RawMessage) (Identity, error) {
	switch tokenType {
	case "None", "":
		return Identity{}, nil
	case "User":
		if e.config.Auth == nil {
			return Identity{}, fmt.Errorf("%w: this server does not accept user tokens", ErrAuth)
		}
		userID, err := e.config.Auth.VerifyAccessToken(ctx, value)
		if err != nil {
			return Identity{}, refused(err)
		}
		return Identity{UserID: userID}, nil
	case "Admin":
		if e.config.Auth == nil {
			return Identity{}, fmt.Errorf("%w: this server does not accept admin keys", ErrAuth)
		}
		if err := e.config.Auth.VerifyAdminKey(ctx, value); err != nil {
			return Identity{}, refused(err)
		}
		id := Identity{Admin: true}
		if len(impersonating) > 0 && string(impersonating) != "null" {
			var as struct {
				Subject string `json:"subject"`
			}
			if err := json.Unmarshal(impersonating, &as); err == nil {
				id.UserID = as.Subject
			}
		}
		return id, nil
	}
	return Identity{}, fmt.Errorf("%w: unknown token type %q", ErrAuth, tokenType)
}

// Call runs a function as the given identity, the way an admin key does (internal functions
// included), and decodes its result into out. `ripple run` and tests use it.
func (e *Engine) Call(ctx context.Context, path string, args any, identity Identity, out any) error {
	fn, err := e.resolve(path, "", false, identity)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(args)
	if err != nil {
		return err
	}
	res := e.call(ctx, fn, raw, identity)
	if res.Err != nil {
		return res.Err
	}
	return decodeInto(res.Value, out)
}
