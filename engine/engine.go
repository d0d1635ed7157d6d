package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/ripplehq/ripple/engine/internal/changefeed"
	"github.com/ripplehq/ripple/engine/internal/dbsqlc"
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
var ErrAuth = errors.New("authentication failed")

// Engine runs an application's functions and keeps its subscriptions live.
type Engine struct {
	pool     *pgxpool.Pool
	registry *Registry
	config   *Config
	logger   *slog.Logger

	listener *changefeed.Listener
	reactor  *reactor
	river    *river.Client[pgx.Tx]

	catalogPtr    atomic.Pointer[captureCatalog]
	metrics       engineMetrics
	mutationLimit *mutationLimiter

	mu         sync.Mutex
	started    bool
	stopped    bool
	runCtx     context.Context
	stop       context.CancelFunc
	reactorWG  sync.WaitGroup
	sessionsWG sync.WaitGroup
}

type engineMetrics struct {
	mutationRetries atomic.Int64
	sessions        atomic.Int64
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
		mutationLimit: newMutationLimiter(cfg.MutationsPerSecond, cfg.MutationBurst)}
	e.listener = changefeed.New(changefeed.Config{ConnConfig: pool.Config().ConnConfig, Schema: cfg.Schema, Logger: cfg.Logger})
	e.reactor = newReactor(e, e.listener)
	rc, err := e.newRiverClient()
	if err != nil {
		return nil, err
	}
	e.river = rc
	return e, nil
}

func (e *Engine) catalog() *captureCatalog { return e.catalogPtr.Load() }

func (e *Engine) loadCatalog(ctx context.Context) error {
	rows, err := dbsqlc.New().CaptureColumnsList(ctx, e.pool)
	if err != nil {
		return fmt.Errorf("reading the capture catalog (is the schema migrated?): %w", err)
	}
	c := &captureCatalog{watched: map[string]map[string]bool{}, pk: map[string][]string{},
		captured: map[string]map[string]bool{}, ordered: map[string]map[string]bool{}}
	set := func(cols []string) map[string]bool {
		m := make(map[string]bool, len(cols))
		for _, col := range cols {
			m[col] = true
		}
		return m
	}
	for _, r := range rows {
		c.watched[r.TableName] = set(r.Watched)
		c.captured[r.TableName] = set(r.RowColumns)
		c.ordered[r.TableName] = set(r.Ordered)
		c.pk[r.TableName] = r.PrimaryKey
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
	if err := e.loadCatalog(ctx); err != nil {
		return err
	}
	if err := e.listener.Start(ctx); err != nil {
		return fmt.Errorf("starting the change listener: %w", err)
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	e.runCtx, e.stop = runCtx, stop
	e.reactorWG.Add(1)
	go func() {
		defer e.reactorWG.Done()
		e.reactor.run(runCtx)
	}()
	e.reactorWG.Add(1)
	go func() {
		defer e.reactorWG.Done()
		e.reactor.pingLoop(runCtx)
	}()
	if !e.config.DisableJobs {
		if err := e.river.Start(runCtx); err != nil {
			stop()
			e.listener.Stop()
			return fmt.Errorf("starting job workers: %w", err)
		}
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
	e.sessionsWG.Wait()
	e.reactorWG.Wait()
	e.listener.Stop()
	return err
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
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	return Stats{
		Sessions:        e.metrics.sessions.Load(),
		Batches:         e.reactor.stats.batches.Load(),
		Executions:      e.reactor.stats.executions.Load(),
		Reruns:          e.reactor.stats.reruns.Load(),
		ChangedReruns:   e.reactor.stats.changedReruns.Load(),
		SkippedChanges:  e.reactor.stats.skippedChanges.Load(),
		MutationRetries: e.metrics.mutationRetries.Load(),
		ListenerGaps:    e.listener.Gaps(),
	}
}

// ListenerBackendPID is the change listener's Postgres backend PID (tests terminate it).
func (e *Engine) ListenerBackendPID() uint32 { return e.listener.BackendPID() }

// Sync waits until every commit made before the call has been applied to all subscriptions and
// returns the ts of that state.
func (e *Engine) Sync(ctx context.Context) (uint64, error) { return e.reactor.sync(ctx, nil) }

// Handler serves the sync WebSocket, the HTTP function API and the health endpoints. Mount
// other routes (auth) on a mux in front of it.
func (e *Engine) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/{version}/sync", e.serveSync)
	mux.HandleFunc("POST /api/query", e.serveCall(KindQuery, true))
	mux.HandleFunc("POST /api/mutation", e.serveCall(KindMutation, true))
	mux.HandleFunc("POST /api/action", e.serveCall(KindAction, true))
	mux.HandleFunc("POST /api/function", e.serveCall("", false))
	mux.HandleFunc("POST /api/query_ts", e.serveQueryTS)
	mux.HandleFunc("POST /api/query_at_ts", e.serveCall(KindQuery, true))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", e.serveReady)
	return mux
}

func (e *Engine) serveReady(w http.ResponseWriter, r *http.Request) {
	status := map[string]any{"database": "ok", "listener": "ok", "listenerGaps": e.listener.Gaps()}
	code := http.StatusOK
	if err := e.pool.Ping(r.Context()); err != nil {
		status["database"] = "unreachable"
		code = http.StatusServiceUnavailable
	}
	if !e.listener.Connected() {
		status["listener"] = "disconnected"
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, status)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// statusFunctionError is the HTTP status Convex's HTTP client expects for a function's error.
const statusFunctionError = 560

type httpCallRequest struct {
	Path   string          `json:"path"`
	Format string          `json:"format"`
	Args   json.RawMessage `json:"args"`
}

func (e *Engine) serveCall(kind FunctionKind, argsArray bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, int64(e.config.MaxArgBytes)+4096)
		var req httpCallRequest
		dec := json.NewDecoder(r.Body)
		if err := dec.Decode(&req); err != nil {
			e.writeCallError(w, http.StatusBadRequest, &callResult{err: InvalidArgument("request body is not valid JSON: %v", err)})
			return
		}
		identity, err := e.identityFromHeader(r)
		if err != nil {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"code": "Unauthenticated", "message": err.Error()})
			return
		}
		fn, err := e.resolve(req.Path, kind, true, identity)
		if err == nil && fn.kind == KindMutation {
			err = e.limitMutation(identity, remoteHost(r))
		}
		if err != nil {
			e.writeCallError(w, statusFunctionError, &callResult{err: err})
			return
		}
		res := e.call(r.Context(), fn, req.Args, identity)
		if res.err != nil {
			e.writeCallError(w, statusFunctionError, &res)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "success", "value": res.value, "logLines": nonNil(res.logLines)})
	}
}

func nonNil(lines []string) []string {
	if lines == nil {
		return []string{}
	}
	return lines
}

func (e *Engine) writeCallError(w http.ResponseWriter, code int, res *callResult) {
	if res.requestID == "" {
		res.requestID = newRequestID()
	}
	msg, data := res.wireError()
	writeJSON(w, code, map[string]any{"status": "error", "errorMessage": msg, "errorData": data, "logLines": nonNil(res.logLines)})
}

func (e *Engine) serveQueryTS(w http.ResponseWriter, r *http.Request) {
	ts, err := e.reactor.sync(r.Context(), nil)
	if err != nil {
		e.writeCallError(w, http.StatusServiceUnavailable, &callResult{err: err})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ts": encodeTS(ts)})
}

func (e *Engine) identityFromHeader(r *http.Request) (Identity, error) {
	header := r.Header.Get("Authorization")
	if header == "" {
		return Identity{}, nil
	}
	scheme, value, _ := strings.Cut(header, " ")
	switch scheme {
	case "Bearer":
		return e.authenticate(r.Context(), "User", value, nil)
	case "Convex":
		var acting json.RawMessage
		if as := r.Header.Get("X-Ripple-Acting-As"); as != "" {
			acting, _ = json.Marshal(map[string]string{"subject": as})
		}
		return e.authenticate(r.Context(), "Admin", value, acting)
	}
	return Identity{}, fmt.Errorf("%w: unsupported Authorization scheme", ErrAuth)
}

// authenticate turns presented credentials into an identity.
func (e *Engine) authenticate(ctx context.Context, tokenType, value string, impersonating json.RawMessage) (Identity, error) {
	id, _, err := e.authenticateUntil(ctx, tokenType, value, impersonating)
	return id, err
}

// authenticateUntil is authenticate that also returns when a user token expires (zero when
// unknown or not applicable).
func (e *Engine) authenticateUntil(ctx context.Context, tokenType, value string, impersonating json.RawMessage) (Identity, time.Time, error) {
	if tokenType == "User" {
		if auth, ok := e.config.Auth.(ExpiringAuthenticator); ok {
			userID, expires, err := auth.VerifyAccessTokenExpiry(ctx, value)
			if err != nil {
				return Identity{}, time.Time{}, fmt.Errorf("%w: %v", ErrAuth, err)
			}
			return Identity{UserID: userID}, expires, nil
		}
	}
	id, err := e.authenticateOnce(ctx, tokenType, value, impersonating)
	return id, time.Time{}, err
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
			return Identity{}, fmt.Errorf("%w: %v", ErrAuth, err)
		}
		return Identity{UserID: userID}, nil
	case "Admin":
		if e.config.Auth == nil {
			return Identity{}, fmt.Errorf("%w: this server does not accept admin keys", ErrAuth)
		}
		if err := e.config.Auth.VerifyAdminKey(ctx, value); err != nil {
			return Identity{}, fmt.Errorf("%w: %v", ErrAuth, err)
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
	if res.err != nil {
		return res.err
	}
	return decodeInto(res.value, out)
}
