// Package reactor keeps subscriptions live: after commits it re-runs the queries whose read sets
// a change touches and sends each client one Transition per batch.
//
// One goroutine runs batches. A batch takes a REPEATABLE READ snapshot S, then sends itself a
// marker through the change feed (a NOTIFY, or a logical decoding message) and reads the change
// stream up to that marker: changes arrive in commit order, so every change visible in S has
// arrived by then. Changes visible in S invalidate
// subscriptions through the read-set index; changes that S does not see wait for the next batch.
// All invalidated (and newly added) subscriptions run in S, identical (function, args, identity,
// journal) runs once, unchanged results are not sent, and each client gets one Transition whose
// results all come from S. A mutation's reply waits in its client's reply queue for the first
// transition whose snapshot was taken after its commit, and is sent right before it.
//
// The reactor knows queries only as opaque Query values; the engine's Runner runs them.
package reactor

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ripplehq/ripple/engine/internal/caller"
	"github.com/ripplehq/ripple/engine/internal/changefeed"
	"github.com/ripplehq/ripple/engine/internal/readset"
	"github.com/ripplehq/ripple/engine/internal/replicas"
	"github.com/ripplehq/ripple/engine/internal/wire"
)

// Feed is the change stream a reactor reads: changefeed.Listener (NOTIFY) or
// changefeed.Logical (logical replication). Both deliver the same Changes for the same writes,
// in commit order, and a marker sent with Mark after a snapshot was taken arrives after every
// change that snapshot sees (drainToMarker).
type Feed interface {
	Events() <-chan changefeed.Event
	// Mark sends a marker without waiting; it arrives as EventMarker, or is lost with the
	// connection and followed by EventReset.
	Mark(marker string)
	// Reconnect replaces the connection (delivering EventReset).
	Reconnect()
}

// Config is what the reactor needs from the engine.
type Config struct {
	Pool *pgxpool.Pool
	// Listener is the change feed.
	Listener Feed
	Runner   Runner
	// Schema names the change channel the batch marker goes to.
	Schema string
	Logger *slog.Logger
	// QueryTimeout is the statement_timeout a batch's snapshot starts with.
	QueryTimeout time.Duration
	// QueryWorkers is how many connections one batch may run its queries on.
	QueryWorkers int
	// PingInterval is how long a client may get nothing before it is pinged.
	PingInterval time.Duration
	// TransitionChunkBytes is the size above which a transition is sent in chunks.
	TransitionChunkBytes int
	// Replicas, when set, are tried for each batch's snapshot and queries first (replicaSnapshot).
	Replicas *replicas.Set
	// SlowQueryAfter is how long a batch waits for its slowest queries before it delivers
	// everyone else's results and holds back only those queries' clients (fork.go). Zero:
	// batches wait for every query.
	SlowQueryAfter time.Duration
	// ObserveLag, when set, is told for each batch that sent transitions how long ago the
	// oldest change it applied arrived (the invalidation-lag metric).
	ObserveLag func(time.Duration)
	// ObservePhase, when set, is told how long each phase of the write path took: a batch's
	// snapshot, queries and delivery, and a mutation reply's wait for its covering transition.
	ObservePhase func(Phase, time.Duration)
}

// Phase names a step of the write path that ObservePhase times.
type Phase string

// The phases the reactor times.
const (
	// PhaseSnapshot: a batch takes a connection (or a replica's) and its snapshot.
	PhaseSnapshot Phase = "batch.snapshot"
	// PhaseQueries: the batch's queries run and its drain to the marker ends.
	PhaseQueries Phase = "batch.queries"
	// PhaseDeliver: results are compared and the transitions queued on the sockets.
	PhaseDeliver Phase = "batch.deliver"
	// PhaseReplyWait: a mutation's reply, from its commit to being queued with the first
	// transition whose snapshot includes it (read your writes).
	PhaseReplyWait Phase = "mutation.reply_wait"
)

// observe tells ObservePhase, when set, that phase took from since to now; now is returned for
// the next phase.
func (r *Reactor) observe(phase Phase, since time.Time) time.Time {
	now := time.Now()
	if r.cfg.ObservePhase != nil {
		r.cfg.ObservePhase(phase, now.Sub(since))
	}
	return now
}

// Query is a subscription's function with its decoded arguments. Path and ArgsKey (the arguments
// as the client sent them) name it; Fn and Args are the Runner's and opaque here.
type Query struct {
	Path    string
	ArgsKey string
	Fn      any
	Args    any
	// Shared queries run their result once for every subscriber with the same arguments and
	// journal, whoever they are; each subscriber's access check runs apart (Runner.RunAccess)
	// and is kept until something it read changes.
	Shared bool
}

// Snapshot is a read-only snapshot transaction that queries of a batch run in, one after another.
type Snapshot struct {
	Tx pgx.Tx
	// StatementTimeout is the statement_timeout set on Tx (zero: the server's default), so the
	// Runner sets it again only when a query needs a different one.
	StatementTimeout time.Duration
	// Shared is set when other queries send statements on the same connection at once (Tx is
	// a pipe's): a query that needs a savepoint, changes settings or needs another
	// statement_timeout returns ErrNeedsOwnConnection instead of running.
	Shared bool
	// pool is the server the snapshot is on (the primary's or a replica's): its exported
	// snapshot can be imported only there.
	pool *pgxpool.Pool
}

func (s *Snapshot) importPool(primary *pgxpool.Pool) *pgxpool.Pool {
	if s.pool != nil {
		return s.pool
	}
	return primary
}

// Aborted reports whether a statement failed and left the snapshot's transaction aborted.
func (s *Snapshot) Aborted() bool {
	if t, ok := s.Tx.(*pipeTx); ok {
		return t.aborted()
	}
	return s.Tx.Conn().PgConn().TxStatus() == 'E'
}

// Collateral reports that the query's statements failed only because another query sharing
// the connection aborted the transaction.
func (s *Snapshot) Collateral() bool {
	t, ok := s.Tx.(*pipeTx)
	return ok && t.Collateral()
}

// ErrSnapshotAborted is what a Runner returns for a query whose SQL error aborted the shared
// snapshot: the batch is run again, with that query under a savepoint of its own (isolate).
var ErrSnapshotAborted = errors.New("the query aborted the shared snapshot")

// Result is one query run: its result as the wire carries it and what it read.
type Result struct {
	wire.Result
	Reads *readset.ReadSet
}

// Runner runs a query in a batch's snapshot. With isolate it runs under a savepoint of its own.
// It must not cancel or close snap's connection, and records reads into the Result.
//
// For a shared query, RunAccess runs the access check of one identity (a Result without error
// admits it) and RunQuery the result, with an empty identity.
type Runner interface {
	RunQuery(ctx context.Context, snap *Snapshot, q *Query, identity caller.Identity, journal string, isolate bool) Result
	RunAccess(ctx context.Context, snap *Snapshot, q *Query, identity caller.Identity, isolate bool) Result
}

// Client is one socket as the reactor sees it.
type Client interface {
	// Behind reports whether the client is not reading fast enough to take more transitions.
	Behind() bool
	// TakePending returns and clears the query-set and identity work the client recorded, with
	// its newest identity.
	TakePending() (Pending, caller.Identity)
	// Send queues frames back to back without blocking.
	Send(frames ...[]byte)
	// PingIfIdle pings the client if nothing was sent to it for the ping interval.
	PingIfIdle(now time.Time)
}

// Subscription is one query of one client. The session fills in the exported fields; the rest
// are owned by the reactor goroutine.
type Subscription struct {
	QueryID int64
	Query   *Query
	Journal string

	client   *clientState
	reads    *readset.ReadSet
	hash     [32]byte
	hasValue bool
	// A shared query's access verdict for this subscriber and what deciding it read; nil
	// access means it must be (re)checked.
	access      *wire.Result
	accessReads *readset.ReadSet
}

// indexEntry is what the read-set index holds: a subscription's result, or (access) its access
// check, invalidated separately.
type indexEntry struct {
	sub    *Subscription
	access bool
}

// Pending is what the reactor must apply to a client in its next batch.
type Pending struct {
	Adds            []*Subscription
	Removes         []int64
	QuerySet        int64 // newest query-set version to answer; -1 when unchanged
	IdentityChanged bool
	IdentityVersion int64 // newest identity version to answer; -1 when unchanged
}

// EmptyPending is a Pending with nothing to do.
func EmptyPending() Pending { return Pending{QuerySet: -1, IdentityVersion: -1} }

// Any reports whether p asks for a transition.
func (p *Pending) Any() bool {
	return len(p.Adds) > 0 || len(p.Removes) > 0 || p.QuerySet >= 0 || p.IdentityChanged
}

// clientState is the reactor's side of a client.
type clientState struct {
	client Client
	gone   atomic.Bool // removed: no more transitions
	// Owned by the reactor goroutine.
	subs map[int64]*Subscription
	// unrun are added subscriptions not yet admitted to a batch, in the order added.
	unrun         []*Subscription
	queryIdentity caller.Identity // the identity the subscriptions last ran as
	// held is the fork holding the client back while its slow queries finish (fork.go).
	held *fork
	sent struct {
		querySet, identity int64
		ts                 uint64
	}
}

// waiter is one caller of Sync or AwaitCovering.
type waiter struct {
	client *clientState // nil: no transition is needed
	// reply, when set, is queued to the client just before the transition at the ts the waiter
	// is answered with: the official client resolves a mutation on the first transition at or
	// past the response's ts that arrives after the response.
	reply *wire.MutationResponse
	// xid is the mutation's transaction, when known: a batch whose snapshot already sees it
	// may answer the waiter even if the waiter came after the snapshot (deliver).
	xid uint64
	ch  chan uint64
}

// Reactor re-runs subscriptions after commits and pushes new results.
type Reactor struct {
	cfg      Config
	wake     chan struct{}
	done     chan struct{} // closed when Run returns
	markerID string
	markers  atomic.Uint64
	// floorTS is the newest ts a reconnecting client has seen (possibly from another process).
	floorTS atomic.Uint64

	mu      sync.Mutex
	clients map[Client]*clientState
	// pending holds the clients with query-set or identity work for the next batch, so a batch
	// costs nothing per connected client that has none.
	pending  map[*clientState]struct{}
	closed   []*clientState // removed clients whose subscriptions are still indexed
	resetAll bool
	waiters  []waiter

	// Owned by the run goroutine.
	index *readset.Index[indexEntry]
	// backlog holds the clients with added subscriptions still to admit (admit).
	backlog map[*clientState]struct{}
	dirty   map[*Subscription]struct{}
	// slow holds invalidated subscriptions of clients whose send queue is backed up: they are
	// re-run once the client catches up, not before (their results would only pile up).
	slow    map[*Subscription]struct{}
	changes []changefeed.Change // received, not yet applied (not visible in the last snapshot)
	// carry holds what a failed batch took from a client (removals, versions) for the next.
	carry map[*clientState]*clientWork
	// poisoned counts batches a query group broke; at 2 it is failed without running, so one
	// bad query cannot stall every socket.
	poisoned map[string]int
	// isolate holds query groups that aborted a shared snapshot: they run under a savepoint
	// until they succeed.
	isolate map[string]struct{}
	// alone holds the functions that need the snapshot connection to themselves
	// (ErrNeedsOwnConnection): they never share a pipe.
	alone map[string]struct{}
	// retry holds subscriptions whose last run failed transiently (a timeout, say); they run
	// again after retryDelay even if nothing they read changes.
	retry      map[*Subscription]time.Time
	retryTimer *time.Timer
	lastTS     uint64
	// drainedSnap is the newest snapshot (as text) whose changes have all been drained.
	drainedSnap string
	// forks are the held-back batch parts out (fork.go); slowGroups the query groups that
	// outlasted a batch's patience and run on connections of their own.
	forks      []*fork
	slowGroups map[string]struct{}
	// landed (under mu) are the forks whose groups finished; forking counts their goroutines.
	landed  []*fork
	forking sync.WaitGroup

	stats stats
	load  loadMeter
}

// Load is the share of the recent past (about the last 200 ms) the reactor spent running
// batches: near 0 when idle, 1 when batches run back to back. Background work uses it to give
// way to deliveries (engine's ActionCtx.WaitForIdle).
func (r *Reactor) Load() float64 { return r.load.read(time.Now()) }

type stats struct {
	// reruns counts subscriptions re-run after their first result; changedReruns those whose
	// result changed (precision = changedReruns / reruns); executions counts query runs after
	// deduplication.
	batches, executions, reruns, changedReruns, skippedChanges atomic.Int64
	// heldBack counts batches that delivered without waiting for their slow queries.
	heldBack atomic.Int64
	// primaryBatches and replicaBatches count the batches whose snapshot was on each.
	primaryBatches, replicaBatches atomic.Int64
	// transitions counts transitions sent; subscriptions is how many are live.
	transitions, subscriptions atomic.Int64
}

// Stats are the reactor's counters.
type Stats struct {
	Batches, Executions, Reruns, ChangedReruns, SkippedChanges int64
	Transitions, Subscriptions                                 int64
	PrimaryBatches, ReplicaBatches                             int64
	HeldBack                                                   int64
}

// New returns a reactor; Run runs it.
func New(cfg Config) *Reactor {
	return &Reactor{
		cfg:      cfg,
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		markerID: wire.NewRequestID(),
		clients:  map[Client]*clientState{},
		pending:  map[*clientState]struct{}{},
		index:    readset.NewIndex[indexEntry](),
		backlog:  map[*clientState]struct{}{},
		dirty:    map[*Subscription]struct{}{},
		slow:     map[*Subscription]struct{}{},
		carry:    map[*clientState]*clientWork{},
		poisoned: map[string]int{},
		isolate:  map[string]struct{}{},
		alone:    map[string]struct{}{},
		retry:    map[*Subscription]time.Time{},

		slowGroups: map[string]struct{}{},
	}
}

// SetReplicas makes batches try the replicas first; call it before Run.
func (r *Reactor) SetReplicas(s *replicas.Set) { r.cfg.Replicas = s }

// Stats returns the reactor's counters.
func (r *Reactor) Stats() Stats {
	return Stats{
		Batches:        r.stats.batches.Load(),
		Executions:     r.stats.executions.Load(),
		Reruns:         r.stats.reruns.Load(),
		ChangedReruns:  r.stats.changedReruns.Load(),
		SkippedChanges: r.stats.skippedChanges.Load(),
		Transitions:    r.stats.transitions.Load(),
		Subscriptions:  r.stats.subscriptions.Load(),
		PrimaryBatches: r.stats.primaryBatches.Load(),
		ReplicaBatches: r.stats.replicaBatches.Load(),
		HeldBack:       r.stats.heldBack.Load(),
	}
}

// retryDelay is how long a subscription whose run failed transiently waits before running again.
const retryDelay = 2 * time.Second

// resumeRetries moves subscriptions whose retry time has come back to dirty.
func (r *Reactor) resumeRetries() {
	now := time.Now()
	for sub, at := range r.retry {
		if !now.Before(at) {
			delete(r.retry, sub)
			r.dirty[sub] = struct{}{}
		}
	}
}

// Add starts serving a client.
func (r *Reactor) Add(c Client) {
	st := &clientState{client: c, subs: map[int64]*Subscription{}}
	r.mu.Lock()
	r.clients[c] = st
	r.mu.Unlock()
}

// Remove stops serving a client; its subscriptions are dropped by the next batch.
func (r *Reactor) Remove(c Client) {
	r.mu.Lock()
	st := r.clients[c]
	if st != nil {
		st.gone.Store(true)
		delete(r.clients, c)
		delete(r.pending, st)
		r.closed = append(r.closed, st)
	}
	r.mu.Unlock()
	r.Poke()
}

// MarkPending queues a client's new query-set or identity work (recorded for TakePending) for
// the next batch.
func (r *Reactor) MarkPending(c Client) {
	r.mu.Lock()
	if st := r.clients[c]; st != nil {
		r.pending[st] = struct{}{}
	}
	r.mu.Unlock()
	r.Poke()
}

// Poke asks for a batch (a client caught up, say).
func (r *Reactor) Poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Ping pings the clients that got nothing for the ping interval: one goroutine and one ticker
// for every socket, instead of a timer and a waiting writer per socket. It returns with ctx.
func (r *Reactor) Ping(ctx context.Context) {
	every := min(time.Second, r.cfg.PingInterval/2)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			r.mu.Lock()
			for c := range r.clients {
				c.PingIfIdle(now)
			}
			r.mu.Unlock()
		}
	}
}

// dropClosed unindexes the subscriptions of clients that have gone.
func (r *Reactor) dropClosed() {
	r.mu.Lock()
	closed := r.closed
	r.closed = nil
	r.mu.Unlock()
	for _, st := range closed {
		for _, sub := range st.subs {
			r.forget(sub)
		}
		st.subs, st.unrun = nil, nil
		delete(r.carry, st)
		delete(r.backlog, st)
	}
}

// forget drops a subscription from every structure of the run goroutine.
func (r *Reactor) forget(sub *Subscription) {
	r.stats.subscriptions.Add(-1)
	r.unindex(sub)
	delete(r.dirty, sub)
	delete(r.slow, sub)
	delete(r.retry, sub)
}

// resumeCaughtUp moves the skipped subscriptions of clients that caught up back to dirty.
func (r *Reactor) resumeCaughtUp() {
	for sub := range r.slow {
		if sub.client.held == nil && !sub.client.client.Behind() {
			delete(r.slow, sub)
			r.dirty[sub] = struct{}{}
		}
	}
}

// Sync waits for a batch whose snapshot was taken after this call, and returns its ts.
func (r *Reactor) Sync(ctx context.Context) (uint64, error) {
	return r.wait(ctx, waiter{})
}

// AwaitCovering queues reply in c's reply queue until the first batch whose snapshot was taken
// after this call, or that sees the mutation's transaction xid (when not 0) and has drained
// every change it sees: the reply is sent with that batch's ts, right before the transition
// (empty if nothing changed) that shows the client everything committed before the call. It
// returns once the reply is queued, or with ctx's error.
func (r *Reactor) AwaitCovering(ctx context.Context, c Client, reply *wire.MutationResponse, xid uint64) error {
	r.mu.Lock()
	st := r.clients[c]
	r.mu.Unlock()
	if st == nil {
		return errors.New("the client has gone")
	}
	started := time.Now()
	_, err := r.wait(ctx, waiter{client: st, reply: reply, xid: xid})
	if err == nil {
		r.observe(PhaseReplyWait, started)
	}
	return err
}

func (r *Reactor) wait(ctx context.Context, w waiter) (uint64, error) {
	w.ch = make(chan uint64, 1)
	r.mu.Lock()
	r.waiters = append(r.waiters, w)
	r.mu.Unlock()
	r.Poke()
	select {
	case ts := <-w.ch:
		return ts, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-r.done:
		return 0, errors.New("engine stopped")
	}
}

// Observe raises the clock's floor to a ts a client has already seen.
func (r *Reactor) Observe(ts uint64) {
	for {
		cur := r.floorTS.Load()
		if ts <= cur || r.floorTS.CompareAndSwap(cur, ts) {
			return
		}
	}
}

// clockNext returns a ts above every earlier one and near wall-clock nanoseconds, so ts values
// are comparable across processes (docs/protocol.md).
func (r *Reactor) clockNext() uint64 {
	now := uint64(time.Now().UnixNano())
	if floor := r.floorTS.Load(); now <= floor {
		now = floor + 1
	}
	if now <= r.lastTS {
		now = r.lastTS + 1
	}
	r.lastTS = now
	return now
}

// Run runs batches until ctx ends.
func (r *Reactor) Run(ctx context.Context) {
	defer close(r.done)
	defer r.forking.Wait() // the forks end with ctx
	events := r.cfg.Listener.Events()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			r.receive(ev)
		case <-r.wake:
		}
		// Coalesce: take everything already queued before starting a batch.
	drain:
		for {
			select {
			case ev := <-events:
				r.receive(ev)
			default:
				break drain
			}
		}
		r.dropClosed()
		r.resumeCaughtUp()
		r.resumeRetries()
		for {
			// Forks land between batches too: under steady load the loop may not pause.
			r.landForks()
			if !r.needsBatch() {
				break
			}
			started := time.Now()
			err := r.batch(ctx)
			r.load.add(started, time.Now())
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				r.cfg.Logger.Warn("reactor batch failed; retrying", "error", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}
	}
}

// receive handles an event between batches. A change that matches no live subscription is
// dropped at once: every subscription's read set is from a snapshot older than the change, and
// subscriptions added later run in snapshots that include it.
func (r *Reactor) receive(ev changefeed.Event) {
	switch ev.Kind {
	case changefeed.EventReset:
		r.mu.Lock()
		r.resetAll = true
		r.mu.Unlock()
	case changefeed.EventChange:
		if r.affects(ev.Change) {
			r.changes = append(r.changes, ev.Change)
		} else {
			r.noteApplied(ev.Change)
			r.stats.skippedChanges.Add(1)
		}
	}
}

func (r *Reactor) affects(c changefeed.Change) bool {
	affected := false
	r.index.Matching(c, func(indexEntry) bool {
		affected = true
		return false
	})
	return affected
}

// invalidate marks the subscriptions a change affects as dirty.
func (r *Reactor) invalidate(c changefeed.Change) {
	r.index.Matching(c, func(e indexEntry) bool {
		if e.access {
			e.sub.access = nil
		}
		r.dirty[e.sub] = struct{}{}
		return true
	})
}

func (r *Reactor) needsBatch() bool {
	if len(r.changes) > 0 || len(r.dirty) > 0 || len(r.carry) > 0 || len(r.backlog) > 0 {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resetAll || len(r.waiters) > 0 || len(r.pending) > 0
}

func (r *Reactor) unindex(sub *Subscription) {
	r.index.Remove(indexEntry{sub: sub}, sub.reads)
	sub.reads = nil
	r.forgetAccess(sub)
}

// forgetAccess drops a shared query subscriber's access verdict: it is checked again.
func (r *Reactor) forgetAccess(sub *Subscription) {
	if sub.accessReads != nil {
		r.index.Remove(indexEntry{sub: sub, access: true}, sub.accessReads)
	}
	sub.access, sub.accessReads = nil, nil
}

func (r *Reactor) reindex(sub *Subscription, reads *readset.ReadSet) {
	r.index.Remove(indexEntry{sub: sub}, sub.reads)
	sub.reads = reads
	r.index.Add(indexEntry{sub: sub}, reads)
}

// keepAccess records a shared query subscriber's access verdict and what it read.
func (r *Reactor) keepAccess(sub *Subscription, res Result) {
	r.forgetAccess(sub)
	verdict := res.Result
	sub.access, sub.accessReads = &verdict, res.Reads
	r.index.Add(indexEntry{sub: sub, access: true}, res.Reads)
}
