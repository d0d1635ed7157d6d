package engine

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ripplehq/ripple/engine/internal/changefeed"
)

// The reactor re-runs subscriptions after commits and pushes new results.
//
// One goroutine runs batches. A batch takes a REPEATABLE READ snapshot S, then sends itself a
// marker NOTIFY and reads the change stream up to that marker: notifications arrive in commit
// order, so every change visible in S has arrived by then. Changes visible in S invalidate
// subscriptions through the index; changes that S does not see wait for the next batch. All
// invalidated (and newly added) subscriptions run in S, identical (function, args, identity,
// journal) runs once, unchanged results are not sent, and each session gets one Transition
// whose results all come from S (promise 2). A mutation's response waits for a batch whose
// snapshot was taken after its commit (promise 3).

// subscription is one query of one session.
type subscription struct {
	session *session
	queryID int64
	fn      *function
	args    any
	argsKey string
	// Fields below are owned by the reactor goroutine.
	journal  string
	reads    *ReadSet
	hash     [32]byte
	hasValue bool
	failed   bool // the last run returned an error (not sent again until it changes)
}

type syncWaiter struct {
	session *session // nil: no transition is needed
	ch      chan uint64
	// beforeTransition runs on the reactor goroutine just before the session's transition at
	// ts is queued. The official client resolves a mutation on the first transition at or past
	// the response's ts that arrives after the response, so the response goes first.
	beforeTransition func(ts uint64)
}

type reactor struct {
	e        *Engine
	listener *changefeed.Listener
	wake     chan struct{}
	done     chan struct{} // closed when run returns
	markerID string
	markers  atomic.Uint64
	// floorTS is the newest ts a reconnecting client has seen (possibly from another process).
	floorTS atomic.Uint64

	mu       sync.Mutex
	sessions map[*session]struct{}
	// pending holds the sessions with query-set or identity work for the next batch, so a batch
	// costs nothing per connected session that has none.
	pending  map[*session]struct{}
	closed   []*session // removed sessions whose subscriptions are still indexed
	resetAll bool
	waiters  []syncWaiter

	// Owned by the run goroutine.
	byKey      map[readKey]map[*subscription]struct{}
	byTable    map[string]map[*subscription]struct{}
	ranges     rangeTables
	everything map[*subscription]struct{}
	dirty      map[*subscription]struct{}
	// slow holds invalidated subscriptions of sessions whose send queue is backed up: they are
	// re-run once the client catches up, not before (their results would only pile up).
	slow    map[*subscription]struct{}
	changes []changefeed.Change
	// carry holds what a failed batch took from a session (removals, versions) for the next.
	carry map[*session]*sessionWork
	// poisoned counts batches a query group broke; at 2 it is failed without running, so one
	// bad query cannot stall every socket.
	poisoned map[string]int
	// isolate holds query groups that aborted a shared snapshot: they run under a savepoint
	// until they succeed.
	isolate map[string]struct{}
	// retry holds subscriptions whose last run failed internally (a timeout, say); they run
	// again after retryDelay even if nothing they read changes.
	retry      map[*subscription]time.Time
	retryTimer *time.Timer
	markerConn *pgx.Conn // owned by the run goroutine // received, not yet applied (not visible in the last snapshot)
	lastTS     uint64

	stats reactorStats
}

type reactorStats struct {
	// reruns counts subscriptions re-run after their first result; changedReruns those whose
	// result changed (precision = changedReruns / reruns); executions counts query runs after
	// deduplication.
	batches, executions, reruns, changedReruns, skippedChanges atomic.Int64
}

func newReactor(e *Engine, listener *changefeed.Listener) *reactor {
	return &reactor{
		e:          e,
		listener:   listener,
		wake:       make(chan struct{}, 1),
		done:       make(chan struct{}),
		markerID:   newRequestID(),
		sessions:   map[*session]struct{}{},
		pending:    map[*session]struct{}{},
		byKey:      map[readKey]map[*subscription]struct{}{},
		byTable:    map[string]map[*subscription]struct{}{},
		ranges:     rangeTables{},
		everything: map[*subscription]struct{}{},
		dirty:      map[*subscription]struct{}{},
		slow:       map[*subscription]struct{}{},
		carry:      map[*session]*sessionWork{},
		poisoned:   map[string]int{},
		isolate:    map[string]struct{}{},
		retry:      map[*subscription]time.Time{},
	}
}

// retryDelay is how long a subscription whose run failed internally waits before running again.
const retryDelay = 2 * time.Second

// resumeRetries moves subscriptions whose retry time has come back to dirty.
func (r *reactor) resumeRetries() {
	now := time.Now()
	for sub, at := range r.retry {
		if !now.Before(at) {
			delete(r.retry, sub)
			r.dirty[sub] = struct{}{}
		}
	}
}

// markPending queues a session's new query-set or identity work for the next batch. Callers
// update session.pending first (under the session's lock, not held here).
func (r *reactor) markPending(s *session) {
	r.mu.Lock()
	r.pending[s] = struct{}{}
	r.mu.Unlock()
	r.poke()
}

func (r *reactor) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// pingLoop pings the sockets that wrote nothing for the ping interval: one goroutine and one
// ticker for every socket, instead of a timer and a waiting writer per socket.
func (r *reactor) pingLoop(ctx context.Context) {
	every := min(time.Second, r.e.config.PingInterval/2)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			r.mu.Lock()
			for s := range r.sessions {
				s.pingIfIdle(now)
			}
			r.mu.Unlock()
		}
	}
}

func (r *reactor) addSession(s *session) {
	r.mu.Lock()
	r.sessions[s] = struct{}{}
	r.mu.Unlock()
}

func (r *reactor) removeSession(s *session) {
	s.gone.Store(true)
	r.mu.Lock()
	delete(r.sessions, s)
	delete(r.pending, s)
	r.closed = append(r.closed, s)
	r.mu.Unlock()
	r.poke()
}

// dropClosed unindexes the subscriptions of sessions that have gone.
func (r *reactor) dropClosed() {
	r.mu.Lock()
	closed := r.closed
	r.closed = nil
	r.mu.Unlock()
	for _, s := range closed {
		for _, sub := range s.subs {
			r.unindex(sub)
			delete(r.dirty, sub)
			delete(r.slow, sub)
			delete(r.retry, sub)
		}
		s.subs = nil
		delete(r.carry, s)
	}
}

// resumeCaughtUp moves the skipped subscriptions of clients that caught up back to dirty.
func (r *reactor) resumeCaughtUp() {
	for sub := range r.slow {
		if !sub.session.behind() {
			delete(r.slow, sub)
			r.dirty[sub] = struct{}{}
		}
	}
}

// sync waits for a batch whose snapshot was taken after this call, and returns its ts. With a
// session, that session is sent a transition at ts (empty if nothing changed), so a mutation
// response carrying ts is answered only after the client can see the mutation's effects.
func (r *reactor) sync(ctx context.Context, s *session) (uint64, error) {
	return r.syncThen(ctx, s, nil)
}

// syncThen is sync with a callback that queues a message to the session right before the
// transition that covers the commit.
func (r *reactor) syncThen(ctx context.Context, s *session, beforeTransition func(ts uint64)) (uint64, error) {
	ch := make(chan uint64, 1)
	r.mu.Lock()
	r.waiters = append(r.waiters, syncWaiter{session: s, ch: ch, beforeTransition: beforeTransition})
	r.mu.Unlock()
	r.poke()
	select {
	case ts := <-ch:
		return ts, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-r.done:
		return 0, errors.New("engine stopped")
	}
}

// observe raises the clock's floor to a ts a client has already seen.
func (r *reactor) observe(ts uint64) {
	for {
		cur := r.floorTS.Load()
		if ts <= cur || r.floorTS.CompareAndSwap(cur, ts) {
			return
		}
	}
}

// clockNext returns a ts above every earlier one and near wall-clock nanoseconds, so ts values
// are comparable across processes (docs/protocol.md).
func (r *reactor) clockNext() uint64 {
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

func (r *reactor) run(ctx context.Context) {
	defer close(r.done)
	defer r.closeMarker()
	events := r.listener.Events()
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
		for r.needsBatch() {
			if err := r.batch(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				r.e.logger.Warn("reactor batch failed; retrying", "error", err)
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
func (r *reactor) receive(ev changefeed.Event) {
	switch ev.Kind {
	case changefeed.EventReset:
		r.mu.Lock()
		r.resetAll = true
		r.mu.Unlock()
	case changefeed.EventChange:
		if r.affects(ev.Change) {
			r.changes = append(r.changes, ev.Change)
		} else {
			r.stats.skippedChanges.Add(1)
		}
	}
}

func (r *reactor) affects(c changefeed.Change) bool {
	affected := false
	r.matching(c, func(*subscription) bool {
		affected = true
		return false
	})
	return affected
}

// invalidate marks the subscriptions a change affects as dirty.
func (r *reactor) invalidate(c changefeed.Change) {
	r.matching(c, func(s *subscription) bool {
		r.dirty[s] = struct{}{}
		return true
	})
}

// matching calls visit for every subscription whose read set a change may touch (some more
// than once), until visit returns false.
func (r *reactor) matching(c changefeed.Change, visit func(*subscription) bool) {
	for s := range r.everything {
		if !visit(s) {
			return
		}
	}
	for s := range r.byTable[c.Table] {
		if !visit(s) {
			return
		}
	}
	if c.All {
		for k, subs := range r.byKey {
			if k.table == c.Table {
				for s := range subs {
					if !visit(s) {
						return
					}
				}
			}
		}
	} else {
		for col, values := range c.Keys {
			for _, v := range values {
				for s := range r.byKey[readKey{c.Table, col, v}] {
					if !visit(s) {
						return
					}
				}
			}
		}
	}
	r.ranges.matching(c, visit)
}

func (r *reactor) needsBatch() bool {
	if len(r.changes) > 0 || len(r.dirty) > 0 || len(r.carry) > 0 {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resetAll || len(r.waiters) > 0 || len(r.pending) > 0
}

func (r *reactor) unindex(sub *subscription) {
	if sub.reads == nil {
		return
	}
	if sub.reads.all {
		delete(r.everything, sub)
	}
	for t := range sub.reads.tables {
		delete(r.byTable[t], sub)
		if len(r.byTable[t]) == 0 {
			delete(r.byTable, t)
		}
	}
	for k := range sub.reads.keys {
		delete(r.byKey[k], sub)
		if len(r.byKey[k]) == 0 {
			delete(r.byKey, k)
		}
	}
	for _, rr := range sub.reads.ranges {
		r.ranges.remove(sub, rr)
	}
	sub.reads = nil
}

func (r *reactor) index(sub *subscription, reads *ReadSet) {
	r.unindex(sub)
	sub.reads = reads
	if reads.all {
		r.everything[sub] = struct{}{}
	}
	for t := range reads.tables {
		if r.byTable[t] == nil {
			r.byTable[t] = map[*subscription]struct{}{}
		}
		r.byTable[t][sub] = struct{}{}
	}
	for k := range reads.keys {
		if r.byKey[k] == nil {
			r.byKey[k] = map[*subscription]struct{}{}
		}
		r.byKey[k][sub] = struct{}{}
	}
	for _, rr := range reads.ranges {
		r.ranges.add(sub, rr)
	}
}

// batchWork is what one batch takes from the sessions.
type sessionWork struct {
	session  *session
	pending  sessionPending
	identity Identity
	mods     []modification
	needed   bool // send a transition even with no modifications
	parked   bool // the client is behind: its invalidated queries wait
}

// merge folds the work a failed batch took from the same session into w.
func (w *sessionWork) merge(prev *sessionWork) {
	w.mods = append(prev.mods, w.mods...)
	w.pending.querySet = max(w.pending.querySet, prev.pending.querySet)
	w.pending.identityVersion = max(w.pending.identityVersion, prev.pending.identityVersion)
	w.needed = true
}

func (r *reactor) batch(ctx context.Context) error {
	r.stats.batches.Add(1)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	// Waiters are taken before the snapshot, so each one's commit (made before it asked) is in
	// the snapshot whose ts it is answered with. A failed batch hands them to the next.
	r.mu.Lock()
	waiters := r.waiters
	r.waiters = nil
	r.mu.Unlock()
	succeeded := false // set once every result is applied and every waiter answered
	defer func() {
		if !succeeded {
			r.mu.Lock()
			r.waiters = append(waiters, r.waiters...)
			r.mu.Unlock()
		}
	}()

	tx, err := r.e.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// One round trip: the snapshot, and the default statement_timeout for the queries.
	var snapText string
	queryTimeout := r.e.config.QueryTimeout
	if err := tx.QueryRow(ctx, "SELECT pg_current_snapshot()::text, set_config('statement_timeout', $1, true)",
		strconv.FormatInt(queryTimeout.Milliseconds(), 10)).Scan(&snapText, nil); err != nil {
		return err
	}
	snap, ok := changefeed.ParseSnapshot(snapText)
	if !ok {
		return fmt.Errorf("unreadable snapshot %q", snapText)
	}
	ts := r.clockNext()

	// Read the change stream up to our own marker: every change S sees has arrived by then.
	marker := r.markerID + ":" + strconv.FormatUint(r.markers.Add(1), 10)
	if err := r.sendMarker(ctx, changefeed.MarkerPrefix+marker); err != nil {
		return err
	}
	events := r.listener.Events()
	markerTimeout := time.NewTimer(5 * time.Second)
	defer markerTimeout.Stop()
wait:
	for {
		select {
		case ev := <-events:
			switch ev.Kind {
			case changefeed.EventMarker:
				if ev.Marker == marker {
					break wait
				}
			case changefeed.EventChange:
				r.changes = append(r.changes, ev.Change)
			case changefeed.EventReset:
				// The marker may have been lost with the connection: start over.
				r.mu.Lock()
				r.resetAll = true
				r.mu.Unlock()
				return errors.New("change listener reconnected during a batch")
			}
		case <-markerTimeout.C:
			// The LISTEN connection may be half-open: replace it (which re-runs everything).
			r.listener.Reconnect()
			return errors.New("change listener did not deliver the batch marker; reconnecting it")
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	kept := r.changes[:0]
	for _, c := range r.changes {
		if snap.Sees(c.Xid) {
			r.invalidate(c)
		} else {
			kept = append(kept, c)
		}
	}
	r.changes = kept

	// Take the pending work of the sessions that have some, as of now. Sessions reached only
	// through invalidated subscriptions get their work on first use (workFor).
	r.mu.Lock()
	resetAll := r.resetAll
	r.resetAll = false
	withPending := r.pending
	r.pending = map[*session]struct{}{}
	if resetAll {
		for s := range r.sessions {
			withPending[s] = struct{}{}
		}
	}
	r.mu.Unlock()
	work := map[*session]*sessionWork{}
	// workFor is the batch's work for a session with nothing pending of its own, or nil when
	// there is no session (an HTTP caller's waiter) or it has gone.
	workFor := func(s *session) *sessionWork {
		if w := work[s]; w != nil || s == nil || s.gone.Load() {
			return w
		}
		w := &sessionWork{session: s, pending: emptyPending(), identity: s.queryIdentity, parked: s.behind()}
		work[s] = w
		return w
	}
	for s := range withPending {
		if s.gone.Load() {
			continue
		}
		p, identity := s.takePending()
		work[s] = &sessionWork{session: s, pending: p, identity: identity, needed: p.any()}
	}
	for _, wt := range waiters {
		if w := workFor(wt.session); w != nil {
			w.needed = true
		}
	}
	for sess, prev := range r.carry {
		if w := workFor(sess); w != nil {
			w.merge(prev)
		}
	}
	r.carry = map[*session]*sessionWork{}
	defer func() {
		if !succeeded {
			// Whatever this batch took from the sessions goes to the next one.
			for sess, w := range work {
				if w.needed || len(w.mods) > 0 {
					carried := &sessionWork{pending: w.pending}
					for _, m := range w.mods {
						if m.removal {
							carried.mods = append(carried.mods, m)
						}
					}
					r.carry[sess] = carried
				}
			}
		}
	}()

	for _, w := range work {
		// Decided once per session, so one transition never mixes fresh and parked results.
		// (Sessions first reached below, through invalidated subscriptions, need nothing sent,
		// and workFor decides theirs.)
		w.parked = w.session.behind() && !w.needed
		if _, took := withPending[w.session]; !took {
			continue
		}
		s := w.session
		for _, qid := range w.pending.removes {
			if sub := s.subs[qid]; sub != nil {
				r.unindex(sub)
				delete(r.dirty, sub)
				delete(r.slow, sub)
				delete(s.subs, qid)
				w.mods = append(w.mods, queryRemoved(qid))
			}
		}
		for _, sub := range w.pending.adds {
			if old := s.subs[sub.queryID]; old != nil {
				r.unindex(old)
				delete(r.dirty, old)
				delete(r.slow, old)
			}
			s.subs[sub.queryID] = sub
			r.dirty[sub] = struct{}{}
		}
		if w.pending.identityChanged || resetAll {
			for _, sub := range s.subs {
				r.dirty[sub] = struct{}{}
			}
		}
		s.queryIdentity = w.identity
	}
	for sub := range r.slow {
		if w := workFor(sub.session); w != nil && !w.parked {
			delete(r.slow, sub)
			r.dirty[sub] = struct{}{}
		}
	}

	// Group the dirty subscriptions of sessions that keep up; the others wait (their send
	// queue is full: computing transitions for them would only be thrown away).
	type runKey struct{ path, args, identity, journal string }
	groups := map[runKey][]*subscription{}
	var order []runKey
	for sub := range r.dirty {
		w := workFor(sub.session)
		if w == nil { // the session is gone
			delete(r.dirty, sub)
			r.unindex(sub)
			continue
		}
		if w.parked {
			delete(r.dirty, sub)
			r.slow[sub] = struct{}{}
			continue
		}
		delete(r.dirty, sub)
		k := runKey{sub.fn.path, sub.argsKey, sub.session.queryIdentity.key(), sub.journal}
		if groups[k] == nil {
			order = append(order, k)
		}
		groups[k] = append(groups[k], sub)
	}

	// Run every group, then apply the results only if all ran: a batch that breaks half-way
	// leaves every subscription as it was, to run again in the next batch.
	runs := make([]groupRun, len(order))
	for i, k := range order {
		runs[i] = r.planGroup(groups[k], k.path+"\x00"+k.args+"\x00"+k.identity+"\x00"+k.journal)
	}
	r.runGroups(ctx, &snapshotTx{tx: tx, statementTimeout: queryTimeout}, runs)
	if err := r.settleGroups(runs); err != nil {
		return err
	}
	type result struct {
		subs []*subscription
		res  callResult
	}
	results := make([]result, len(runs))
	for i, run := range runs {
		results[i] = result{subs: run.subs, res: run.res}
	}
	for i := range results {
		res := &results[i].res
		r.stats.executions.Add(1)
		hash := resultHash(res)
		userErr, transient := false, false
		if e, ok := AsError(res.err); ok {
			userErr, transient = true, e.Code == CodeUnavailable
		}
		var body []byte // encoded once, for the subscriptions whose result changed
		for _, sub := range results[i].subs {
			r.index(sub, res.reads)
			sub.journal = res.journal
			if res.err != nil && (!userErr || transient) {
				r.retry[sub] = time.Now().Add(retryDelay)
			}
			if sub.hasValue {
				r.stats.reruns.Add(1)
			}
			if sub.hasValue && sub.hash == hash {
				continue
			}
			if sub.hasValue {
				r.stats.changedReruns.Add(1)
			}
			sub.hash, sub.hasValue = hash, true
			if body == nil {
				body = modificationBody(res)
			}
			work[sub.session].mods = append(work[sub.session].mods, forQuery(sub.queryID, body))
		}
	}
	if len(r.retry) > 0 {
		if r.retryTimer != nil {
			r.retryTimer.Stop()
		}
		r.retryTimer = time.AfterFunc(retryDelay, r.poke)
	}
	_ = tx.Commit(ctx)

	before := map[*session][]func(uint64){}
	for _, wt := range waiters {
		if wt.beforeTransition != nil && work[wt.session] != nil {
			before[wt.session] = append(before[wt.session], wt.beforeTransition)
		}
	}
	for _, w := range work {
		if len(w.mods) == 0 && !w.needed {
			continue
		}
		for _, fn := range before[w.session] {
			fn(ts)
		}
		w.session.sendTransition(ts, w.pending, w.mods)
	}
	succeeded = true
	for _, wt := range waiters {
		wt.ch <- ts
	}
	return nil
}

// sendMarker sends the batch's marker on a connection of its own, kept open between batches: a
// pooled connection would cost an acquire (and after a pause a ping) on every batch.
func (r *reactor) sendMarker(ctx context.Context, payload string) error {
	if r.markerConn == nil {
		conn, err := pgx.ConnectConfig(ctx, r.e.pool.Config().ConnConfig.Copy())
		if err != nil {
			return fmt.Errorf("connecting the marker connection: %w", err)
		}
		r.markerConn = conn
	}
	if _, err := r.markerConn.Exec(ctx, "SELECT pg_notify($1, $2)", changefeed.Channel(r.e.config.Schema), payload); err != nil {
		r.closeMarker()
		return err
	}
	return nil
}

func (r *reactor) closeMarker() {
	if r.markerConn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = r.markerConn.Close(ctx)
		r.markerConn = nil
	}
}

// groupRun is one query group of a batch: identical subscriptions, run once.
type groupRun struct {
	subs    []*subscription
	key     string
	run     bool // false: res is decided without running
	isolate bool // run under a savepoint of its own (it aborted a shared snapshot before)
	res     callResult
	broken  bool // it failed because its connection was lost
}

// planGroup decides, on the reactor goroutine, how a group runs.
func (r *reactor) planGroup(subs []*subscription, key string) groupRun {
	g := groupRun{subs: subs, key: key}
	first := subs[0]
	switch {
	case first.fn.internal && !first.session.queryIdentity.Admin:
		// The admin who subscribed signed out: internal data stops here.
		g.res = callResult{err: errUnknownFunction(first.fn.path, KindQuery), reads: newReadSet(), requestID: newRequestID()}
	case r.poisoned[key] >= 2:
		r.e.logger.Error("query broke its batch twice; failing it without running", "function", first.fn.path)
		delete(r.poisoned, key)
		g.res = callResult{err: errors.New("query broke the shared snapshot"), reads: &ReadSet{all: true}, requestID: newRequestID()}
	default:
		_, g.isolate = r.isolate[key]
		g.run = true
	}
	return g
}

// parallelMinGroups is the fewest groups a batch spreads over several connections: below it,
// importing the snapshot costs more than it saves.
const parallelMinGroups = 4

// runGroups runs the groups in the batch's snapshot. With enough groups, it also runs them on
// up to Config.QueryWorkers-1 more connections that import the same snapshot
// (pg_export_snapshot), so queries use every core and a slow one holds up only its own
// connection. Each run's outcome is left in its groupRun; settleGroups reads them.
func (r *reactor) runGroups(ctx context.Context, main *snapshotTx, runs []groupRun) {
	var todo []int
	for i := range runs {
		if runs[i].run {
			todo = append(todo, i)
		}
	}
	snaps := []*snapshotTx{main}
	if extra := min(r.e.config.QueryWorkers, len(todo)/2) - 1; extra > 0 && len(todo) >= parallelMinGroups {
		imported, release := r.importSnapshot(ctx, main, extra)
		defer release()
		snaps = append(snaps, imported...)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for _, snap := range snaps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := int(next.Add(1)) - 1
				if n >= len(todo) {
					return
				}
				g := &runs[todo[n]]
				first := g.subs[0]
				g.res = r.e.runQueryInTx(ctx, snap, first.fn, first.args, first.session.queryIdentity, first.journal, g.isolate)
				g.broken = g.res.err != nil && snap.tx.Conn().IsClosed()
			}
		}()
	}
	wg.Wait()
}

// importSnapshot opens up to n more transactions on the snapshot of main. Workers that cannot
// be had (the pool is busy, say) are simply not used.
func (r *reactor) importSnapshot(ctx context.Context, main *snapshotTx, n int) ([]*snapshotTx, func()) {
	var id string
	if err := main.tx.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&id); err != nil || !snapshotID.MatchString(id) {
		return nil, func() {}
	}
	begin := fmt.Sprintf("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '%s'; SET LOCAL statement_timeout = %d",
		id, main.statementTimeout.Milliseconds())
	var out []*snapshotTx
	for range n {
		tx, err := r.e.pool.BeginTx(ctx, pgx.TxOptions{BeginQuery: begin})
		if err != nil {
			break
		}
		out = append(out, &snapshotTx{tx: tx, statementTimeout: main.statementTimeout})
	}
	return out, func() {
		for _, s := range out {
			_ = s.tx.Rollback(context.WithoutCancel(ctx))
		}
	}
}

var snapshotID = regexp.MustCompile(`^[0-9A-Fa-f-]+$`)

// settleGroups reads the outcomes of runGroups on the reactor goroutine. When a run aborted its
// shared snapshot (its SQL error) or lost its connection, nothing of the batch is applied:
// every group is marked to run again, the aborting one isolated, the connection-breaking one
// counted (twice and it fails without running).
func (r *reactor) settleGroups(runs []groupRun) error {
	var lost error
	for i := range runs {
		g := &runs[i]
		if !g.run {
			continue
		}
		switch {
		case errors.Is(g.res.err, errSnapshotAborted):
			r.isolate[g.key] = struct{}{}
		case g.broken:
			r.poisoned[g.key]++
		default:
			delete(r.poisoned, g.key)
			if g.isolate && g.res.err == nil {
				delete(r.isolate, g.key)
			}
			continue
		}
		if lost == nil {
			lost = fmt.Errorf("batch snapshot lost: %w", g.res.err)
		}
	}
	if lost != nil {
		for _, g := range runs {
			for _, sub := range g.subs {
				r.dirty[sub] = struct{}{}
			}
		}
	}
	return lost
}

func resultHash(res *callResult) [32]byte {
	h := sha256.New()
	if e, ok := AsError(res.err); ok {
		buf, _ := json.Marshal(e.errorData())
		h.Write([]byte("error\x00" + e.Message + "\x00"))
		h.Write(buf)
	} else if res.err != nil {
		// An internal error's message carries a fresh request id; it is the same failure.
		h.Write([]byte("internal error"))
	} else {
		h.Write([]byte("value\x00"))
		h.Write(res.value)
	}
	h.Write([]byte("\x00journal\x00" + res.journal))
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}
