package reactor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ripplehq/ripple/engine/internal/caller"
	"github.com/ripplehq/ripple/engine/internal/changefeed"
	"github.com/ripplehq/ripple/engine/internal/readset"
	"github.com/ripplehq/ripple/engine/internal/replicas"
	"github.com/ripplehq/ripple/engine/internal/wire"
)

// A batch runs as named phases over one batchState:
//
//	takeWaiters → takeSnapshot → (drainToMarker, on its own goroutine) → collectWork → admit →
//	groupDirty → runGroups → finishDrain → [groupDirty → runGroups] → settleGroups → apply →
//	deliver
//
// The marker's round trip overlaps the first wave of queries: they run for the changes that
// had arrived when the batch began, in the batch's snapshot; the changes the drain brings
// that the snapshot sees invalidate what did not run yet, which runs in a second wave in the
// same snapshot before anything is applied. (A query of the first wave already saw them.)
//
// Nothing is applied to a subscription or sent to a client before every group has run: a batch
// that fails half-way leaves everything as it was, and what it took (waiters, client work)
// goes to the next batch.

// clientWork is what one batch does for one client.
type clientWork struct {
	client   *clientState
	pending  Pending
	identity caller.Identity
	mods     []wire.Modification
	replies  []*wire.MutationResponse // the client's reply queue for this batch, in order
	needed   bool                     // send a transition even with no modifications
	parked   bool                     // the client is behind: its invalidated queries wait
}

// merge folds the work a failed batch took from the same client into w.
func (w *clientWork) merge(prev *clientWork) {
	w.mods = append(prev.mods, w.mods...)
	w.pending.QuerySet = max(w.pending.QuerySet, prev.pending.QuerySet)
	w.pending.IdentityVersion = max(w.pending.IdentityVersion, prev.pending.IdentityVersion)
	w.needed = true
}

// batchState is one batch.
type batchState struct {
	waiters  []waiter
	snap     *Snapshot
	snapshot changefeed.Snapshot
	snapText string // pg_current_snapshot() as text
	ts       uint64
	resetAll bool
	// withPending are the clients whose own work this batch took; work is every client this
	// batch does something for.
	withPending map[*clientState]struct{}
	work        map[*clientState]*clientWork
	runs        []*groupRun
	// flights are the batch's waves; closers end its snapshot and give its connections back
	// (letGo), in reverse order.
	flights []*flight
	closers []func()
	// fork is set when the batch held back the clients of its slow queries (holdBack); later
	// are second-wave groups that run after the first wave's stragglers (their connection was
	// busy), and holding marks the fork's own batchState, delivered when they finish.
	fork      *fork
	later     []*groupRun
	holding   bool
	succeeded bool      // every result applied and every waiter answered
	oldest    time.Time // arrival of the oldest change the batch applied
}

func (r *Reactor) batch(parent context.Context) error {
	r.stats.batches.Add(1)
	mark := time.Now()
	ctx, cancel := context.WithTimeout(parent, 30*time.Second)
	b := &batchState{work: map[*clientState]*clientWork{}}
	// What the batch holds (its snapshot, connections, the waves still running) is let go when
	// it returns, unless a hold-back took it over (holdBack).
	defer func() {
		if b.fork != nil {
			return
		}
		cancel()
		b.letGo()
	}()
	r.takeWaiters(b)
	defer r.handBack(b)

	if lease := r.replicaSnapshot(ctx, b); lease != nil {
		b.closers = append(b.closers, func() { lease.Release(nil) })
	} else {
		conn, err := r.cfg.Pool.Acquire(ctx)
		if err != nil {
			return err
		}
		b.closers = append(b.closers, conn.Release)
		if err := r.takeSnapshot(ctx, b, conn.Conn(), nil); err != nil {
			return err
		}
		b.snap.pool = r.cfg.Pool
		r.stats.primaryBatches.Add(1)
	}
	mark = r.observe(PhaseSnapshot, mark)
	// The snapshot is read-only: ending it waits until everyone has their transition.
	snapTx := b.snap.Tx
	b.closers = append(b.closers, func() { _ = snapTx.Rollback(context.WithoutCancel(ctx)) })
	var drained chan drainResult
	if b.snapText != r.drainedSnap {
		drained = make(chan drainResult, 1)
		go func() { drained <- r.drainToMarker(ctx) }()
	}
	r.collectWork(b)
	r.admit()
	r.groupDirty(b)
	patience := r.patience()
	b.flights = append(b.flights, r.runGroups(ctx, b.snap, b.runs, patience))
	if drained != nil {
		if err := r.finishDrain(ctx, b, <-drained, patience); err != nil {
			r.runAgain(b.runs)
			return err
		}
	}
	late := r.splitStragglers(ctx, b, patience)
	if err := r.settleGroups(b.runs); err != nil {
		r.runAgain(late)
		return err
	}
	if len(late) > 0 {
		r.holdBack(ctx, b, late, cancel)
	}
	mark = r.observe(PhaseQueries, mark)
	r.apply(b)
	r.deliver(b)
	r.observe(PhaseDeliver, mark)
	return nil
}

// patience is how long a batch waits for its slowest queries before it delivers everyone
// else's results without them (holdBack): SlowQueryAfter, or forever when enough batches are
// held back already (each holds connections).
func (r *Reactor) patience() time.Duration {
	if r.cfg.SlowQueryAfter <= 0 || len(r.forks) >= maxForks {
		return 0
	}
	return r.cfg.SlowQueryAfter
}

// letGo waits for the batch's waves (their context cancelled first), then ends its snapshot
// and gives its connections back.
func (b *batchState) letGo() {
	for _, f := range b.flights {
		f.wait()
	}
	for i := len(b.closers) - 1; i >= 0; i-- {
		b.closers[i]()
	}
	b.closers = nil
}

// takeWaiters takes the waiters before the snapshot, so each one's commit (made before it
// asked) is in the snapshot whose ts it is answered with.
func (r *Reactor) takeWaiters(b *batchState) {
	r.mu.Lock()
	b.waiters = r.waiters
	r.waiters = nil
	r.mu.Unlock()
}

// handBack gives what a failed batch took to the next one: its waiters, and the versions and
// removals it owed each client.
func (r *Reactor) handBack(b *batchState) {
	if b.succeeded {
		return
	}
	r.mu.Lock()
	r.waiters = append(b.waiters, r.waiters...)
	r.mu.Unlock()
	for st, w := range b.work {
		if w.needed || len(w.mods) > 0 {
			carried := &clientWork{pending: w.pending}
			for _, m := range w.mods {
				if m.Removal {
					carried.mods = append(carried.mods, m)
				}
			}
			r.carry[st] = carried
		}
	}
}

// takeSnapshot begins the batch's transaction, reads its snapshot and sets the default
// statement_timeout, all in one round trip, and picks the batch's ts. With exact (on a replica),
// the snapshot is read with replicas.SnapshotColumns and built by it.
func (r *Reactor) takeSnapshot(ctx context.Context, b *batchState, conn *pgx.Conn, exact func(current, exported string, recovering bool) (changefeed.Snapshot, string, error)) error {
	var snapText, exported string
	var recovering bool
	columns, dest := "pg_current_snapshot()::text", []any{&snapText, nil, nil}
	if exact != nil {
		columns, dest = replicas.SnapshotColumns, []any{&snapText, &exported, &recovering, nil, nil}
	}
	timeout := r.cfg.QueryTimeout
	batch := &pgx.Batch{}
	batch.BeginTx(pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	batch.Queue("SELECT "+columns+", set_config('statement_timeout', $1, true), set_config('plan_cache_mode', 'force_generic_plan', true)",
		strconv.FormatInt(timeout.Milliseconds(), 10)).QueryRow(func(row pgx.Row) error { return row.Scan(dest...) })
	br := conn.SendBatch(ctx, batch)
	tx := br.Tx()
	if err := br.Close(); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	snap, ok := changefeed.ParseSnapshot(snapText)
	if exact != nil {
		var err error
		if snap, snapText, err = exact(snapText, exported, recovering); err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			return err
		}
	} else if !ok {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return fmt.Errorf("unreadable snapshot %q", snapText)
	}
	b.snap = &Snapshot{Tx: tx, StatementTimeout: timeout}
	b.snapshot, b.snapText = snap, snapText
	b.ts = r.clockNext()
	return nil
}

// replicaSnapshot takes the batch's snapshot on a replica when one in rotation has replayed
// the primary's WAL position read after the batch took its waiters (replicas.Set.Acquire), and
// returns its lease; nil leaves the batch to the primary.
//
// Why the batch stays sound: the snapshot is exact (replicas.ExactSnapshot), and the marker
// goes out on the primary after it is taken, so every commit it sees, having committed on the
// primary before the marker was sent, has its notifications drained before anything is
// applied; what it does not see waits for the next batch, as on the primary. The waiters
// committed before that WAL position was read, so the snapshot sees them; a waiter it would
// not see (which would be a bug) is handed to the next batch rather than answered early.
func (r *Reactor) replicaSnapshot(ctx context.Context, b *batchState) *replicas.Lease {
	if r.cfg.Replicas == nil {
		return nil
	}
	lease, err := r.cfg.Replicas.Acquire(ctx)
	if err != nil {
		return nil
	}
	if err := r.takeSnapshot(ctx, b, lease.Conn.Conn(), replicas.ExactSnapshot); err != nil {
		lease.Release(err)
		return nil
	}
	b.snap.pool = lease.Pool
	kept := b.waiters[:0]
	var late []waiter
	for _, wt := range b.waiters {
		if wt.xid != 0 && !b.snapshot.Sees(wt.xid) {
			late = append(late, wt)
			continue
		}
		kept = append(kept, wt)
	}
	b.waiters = kept
	if len(late) > 0 {
		r.cfg.Logger.Error("a replica snapshot missed a waiter's commit; answering it in a later batch", "waiters", len(late))
		r.mu.Lock()
		r.waiters = append(late, r.waiters...)
		r.mu.Unlock()
	}
	r.stats.replicaBatches.Add(1)
	return lease
}

// drainToMarker reads the change stream up to the batch's own marker: every change the snapshot
// sees has arrived by then.
//
// A batch whose snapshot is the very one a previous batch drained to (same xmin, xmax and
// in-progress list: no transaction with an xid finished or began since) skips it: nothing it can
// see is still on the way. That is the only case where skipping is provably safe. A newer
// snapshot could be proven covered only by accounting for every xid it newly sees, and that
// fails on transactions that write no captured table (River's, the sweep's), on aborted ones,
// and on the newest transaction itself, whose notifications may still be arriving one by one.
//
// It runs on a goroutine of its own while the batch's first queries run, so it touches only the
// listener and (under mu) resetAll; the changes it read come back in
// its result.
func (r *Reactor) drainToMarker(ctx context.Context) (d drainResult) {
	marker := r.markerID + ":" + strconv.FormatUint(r.markers.Add(1), 10)
	r.cfg.Listener.Mark(marker)
	events := r.cfg.Listener.Events()
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case ev := <-events:
			switch ev.Kind {
			case changefeed.EventMarker:
				if ev.Marker == marker {
					return d
				}
			case changefeed.EventChange:
				d.changes = append(d.changes, ev.Change)
			case changefeed.EventReset:
				// The marker may have been lost with the connection: start over.
				r.mu.Lock()
				r.resetAll = true
				r.mu.Unlock()
				d.err = errors.New("change listener reconnected during a batch")
				return d
			}
		case <-timeout.C:
			// The LISTEN connection may be half-open: replace it (which re-runs everything).
			r.cfg.Listener.Reconnect()
			d.err = errors.New("change listener did not deliver the batch marker; reconnecting it")
			return d
		case <-ctx.Done():
			d.err = ctx.Err()
			return d
		}
	}
}

// drainResult is what drainToMarker read, and whether it reached the marker.
type drainResult struct {
	changes []changefeed.Change
	err     error
}

// finishDrain takes the changes the drain brought. Those the snapshot sees invalidate the
// subscriptions that did not run in this batch yet (the ones that ran saw them already) and
// any access verdict they touch; the dirty ones run now, in the same snapshot.
func (r *Reactor) finishDrain(ctx context.Context, b *batchState, d drainResult, patience time.Duration) error {
	r.changes = append(r.changes, d.changes...)
	if d.err != nil {
		return d.err
	}
	r.drainedSnap = b.snapText
	ran := map[*Subscription]struct{}{}
	for _, g := range b.runs {
		for _, sub := range g.subs {
			ran[sub] = struct{}{}
		}
	}
	kept := r.changes[:0]
	for _, c := range r.changes {
		if !b.snapshot.Sees(c.Xid) {
			kept = append(kept, c)
			continue
		}
		r.noteApplied(c)
		if !c.Arrived.IsZero() && (b.oldest.IsZero() || c.Arrived.Before(b.oldest)) {
			b.oldest = c.Arrived
		}
		r.index.Matching(c, func(e indexEntry) bool {
			if _, done := ran[e.sub]; done && !e.access {
				return true
			}
			if e.access {
				e.sub.access = nil
			}
			r.dirty[e.sub] = struct{}{}
			return true
		})
	}
	r.changes = kept
	if len(r.dirty) > 0 {
		first := len(b.runs)
		r.groupDirty(b)
		wave := b.runs[first:]
		if b.flights[0].busy(b.snap) {
			// The first wave still runs on the snapshot's connection: these run after it, in
			// the same snapshot, and their clients wait for them (holdBack).
			b.later = append(b.later, wave...)
			b.runs = b.runs[:first]
		} else {
			b.flights = append(b.flights, r.runGroups(ctx, b.snap, wave, patience))
		}
	}
	return nil
}

// workFor is the batch's work for a client with nothing pending of its own, or nil when there
// is no client (an HTTP caller's waiter) or it has gone. Clients reached only through
// invalidated subscriptions get their work here, on first use.
func (b *batchState) workFor(st *clientState) *clientWork {
	if w := b.work[st]; w != nil || st == nil || st.gone.Load() {
		return w
	}
	w := &clientWork{client: st, pending: EmptyPending(), identity: st.queryIdentity, parked: st.client.Behind()}
	b.work[st] = w
	return w
}

// collectWork applies the changes the snapshot sees, and takes the pending work of the clients
// that have some, as of now, with the waiters' replies and what a failed batch carried.
func (r *Reactor) collectWork(b *batchState) {
	kept := r.changes[:0]
	for _, c := range r.changes {
		if b.snapshot.Sees(c.Xid) {
			if !c.Arrived.IsZero() && (b.oldest.IsZero() || c.Arrived.Before(b.oldest)) {
				b.oldest = c.Arrived
			}
			r.noteApplied(c)
			r.invalidate(c)
		} else {
			kept = append(kept, c)
		}
	}
	r.changes = kept

	r.mu.Lock()
	b.resetAll = r.resetAll
	r.resetAll = false
	b.withPending = r.pending
	r.pending = map[*clientState]struct{}{}
	if b.resetAll {
		for _, st := range r.clients {
			b.withPending[st] = struct{}{}
		}
	}
	r.mu.Unlock()
	if b.resetAll {
		for _, f := range r.forks {
			f.reset = true
		}
	}

	for st := range b.withPending {
		if st.gone.Load() {
			continue
		}
		if st.held != nil { // its work waits for the fork that holds it back
			st.held.pending[st] = struct{}{}
			continue
		}
		p, identity := st.client.TakePending()
		b.work[st] = &clientWork{client: st, pending: p, identity: identity, needed: p.Any()}
	}
	ready := b.waiters[:0]
	for _, wt := range b.waiters {
		if wt.client != nil && wt.client.held != nil {
			wt.client.held.waiters = append(wt.client.held.waiters, wt)
			continue
		}
		ready = append(ready, wt)
	}
	b.waiters = ready
	for _, wt := range b.waiters {
		if w := b.workFor(wt.client); w != nil {
			w.needed = true
			if wt.reply != nil {
				w.replies = append(w.replies, wt.reply)
			}
		}
	}
	for st, prev := range r.carry {
		if st.held != nil {
			st.held.carry[st] = prev
			continue
		}
		if w := b.workFor(st); w != nil {
			w.merge(prev)
		}
	}
	r.carry = map[*clientState]*clientWork{}

	for _, w := range b.work {
		// Decided once per client, so one transition never mixes fresh and parked results.
		w.parked = w.client.client.Behind() && !w.needed
		if _, took := b.withPending[w.client]; took {
			r.applyQuerySet(b, w)
		}
	}
	for sub := range r.slow {
		if sub.client.held != nil {
			continue
		}
		if w := b.workFor(sub.client); w != nil && !w.parked {
			delete(r.slow, sub)
			r.dirty[sub] = struct{}{}
		}
	}
}

// applyQuerySet applies a client's added and removed queries and identity change.
func (r *Reactor) applyQuerySet(b *batchState, w *clientWork) {
	st := w.client
	for _, qid := range w.pending.Removes {
		if sub := st.subs[qid]; sub != nil {
			r.forget(sub)
			delete(st.subs, qid)
			w.mods = append(w.mods, wire.QueryRemoved(qid))
		}
	}
	for _, sub := range w.pending.Adds {
		if old := st.subs[sub.QueryID]; old != nil {
			r.forget(old)
		}
		sub.client = st
		st.subs[sub.QueryID] = sub
		r.stats.subscriptions.Add(1)
		st.unrun = append(st.unrun, sub)
	}
	if len(st.unrun) > 0 {
		r.backlog[st] = struct{}{}
	}
	if w.pending.IdentityChanged || b.resetAll {
		for _, sub := range st.subs {
			r.forgetAccess(sub)
			r.dirty[sub] = struct{}{}
		}
	}
	st.queryIdentity = w.identity
}

// Added subscriptions are admitted to batches a share at a time: at most admitPerClient of one
// client's and admitPerBatch in all per batch. A client that adds its whole limit of queries at
// once then fills several batches in turn, and the updates of everyone else ride along in each
// of them instead of waiting behind the flood. The client is answered the new query-set version
// at once; the queries not yet run show as loading until their batch.
const (
	admitPerClient = 64
	admitPerBatch  = 256
)

// admit moves added subscriptions from the clients' backlogs to dirty, within the shares.
func (r *Reactor) admit() {
	budget := admitPerBatch
	for st := range r.backlog { // map order: no client is always first
		if budget == 0 {
			return
		}
		n := min(admitPerClient, budget, len(st.unrun))
		for _, sub := range st.unrun[:n] {
			if st.subs[sub.QueryID] == sub { // not removed or replaced meanwhile
				r.dirty[sub] = struct{}{}
			}
		}
		clear(st.unrun[:n])
		st.unrun = st.unrun[n:]
		budget -= n
		if len(st.unrun) == 0 {
			st.unrun = nil
			delete(r.backlog, st)
		}
	}
}

// groupDirty groups the dirty subscriptions of clients that keep up by (function, args,
// identity, journal); the others wait (their send queue is full: computing transitions for them
// would only be thrown away).
func (r *Reactor) groupDirty(b *batchState) {
	type runKey struct{ path, args, identity, journal string }
	groups := map[runKey][]*Subscription{}
	var order []runKey
	for sub := range r.dirty {
		delete(r.dirty, sub)
		if f := sub.client.held; f != nil {
			f.dirty[sub] = struct{}{}
			continue
		}
		w := b.workFor(sub.client)
		switch {
		case w == nil: // the client is gone
			r.unindex(sub)
			continue
		case w.parked:
			r.slow[sub] = struct{}{}
			continue
		}
		k := runKey{sub.Query.Path, sub.Query.ArgsKey, sub.client.queryIdentity.Key(), sub.Journal}
		if sub.Query.Shared {
			k.identity = "" // one result for everyone; access is checked per subscriber
		}
		if groups[k] == nil {
			order = append(order, k)
		}
		groups[k] = append(groups[k], sub)
	}
	for _, k := range order {
		b.runs = append(b.runs, r.planGroup(groups[k], k.path+"\x00"+k.args+"\x00"+k.identity+"\x00"+k.journal))
	}
}

// apply records each group's reads and result on its subscriptions, and queues a modification
// for every subscription whose result changed (encoded once per group).
func (r *Reactor) apply(b *batchState) {
	for _, run := range b.runs {
		if run.shared && run.run {
			r.applyShared(b, run)
			continue
		}
		r.stats.executions.Add(1)
		out := &outcome{res: &run.res}
		for _, sub := range run.subs {
			r.applyTo(b, sub, out)
		}
	}
	if len(r.retry) > 0 {
		if r.retryTimer != nil {
			r.retryTimer.Stop()
		}
		r.retryTimer = time.AfterFunc(retryDelay, r.Poke)
	}
}

// applyShared applies a shared query's group: each subscriber's access verdict (kept unless it
// failed transiently), then the one result to the admitted and its verdict to the others.
func (r *Reactor) applyShared(b *batchState, run *groupRun) {
	verdicts := map[*Subscription]*Result{}
	for i := range run.access {
		a := &run.access[i]
		r.stats.executions.Add(1)
		for _, sub := range a.subs {
			if sub.client.gone.Load() {
				continue // dropClosed forgets it: indexing its verdict again would leak
			}
			verdicts[sub] = &a.res
			if a.res.Err != nil && a.res.Transient {
				r.forgetAccess(sub) // not a verdict: checked again on the retry
			} else {
				r.keepAccess(sub, a.res)
			}
		}
	}
	if run.admitted {
		r.stats.executions.Add(1)
	}
	admitted := &outcome{res: &run.res}
	denied := map[string]*outcome{}
	for _, sub := range run.subs {
		verdict := verdicts[sub]
		if verdict == nil {
			kept := run.kept[sub]
			switch {
			case sub.access != nil:
				verdict = &Result{Result: *sub.access}
			case b.holding && kept != nil:
				// A held-back part landing: a later batch cleared the verdict it ran with
				// (the subscriber is dirty), but this result is the snapshot's, and so was
				// that verdict.
				verdict = &Result{Result: *kept}
			default:
				// A change the drain brought after this run was planned touched its access:
				// a later run of this batch checks it again (finishDrain).
				continue
			}
		}
		if verdict.Err == nil {
			r.applyTo(b, sub, admitted)
			continue
		}
		// The refusal is the subscriber's result; it reads nothing beyond its access check
		// (indexed apart) and keeps its journal for when access returns.
		key := string(verdict.QueryBody())
		out := denied[key]
		if out == nil {
			res := &Result{Result: verdict.Result, Reads: readset.New()}
			res.Journal = sub.Journal
			out = &outcome{res: res}
			denied[key] = out
		}
		r.applyTo(b, sub, out)
	}
}

// outcome is one result applied to subscriptions, hashed and encoded once.
type outcome struct {
	res    *Result
	hashed bool
	hash   [32]byte
	body   []byte
}

func (o *outcome) sum() [32]byte {
	if !o.hashed {
		o.hash, o.hashed = resultHash(o.res), true
	}
	return o.hash
}

func (o *outcome) encoded() []byte {
	if o.body == nil {
		o.body = o.res.QueryBody()
	}
	return o.body
}

// applyTo records an outcome on one subscription and queues its modification when it changed.
func (r *Reactor) applyTo(b *batchState, sub *Subscription, out *outcome) {
	if sub.client.gone.Load() {
		return // dropClosed forgets it
	}
	if f := sub.client.held; f != nil && f == b.fork {
		f.deferred = append(f.deferred, deferredApply{sub, out})
		return
	}
	res := out.res
	r.reindex(sub, res.Reads)
	sub.Journal = res.Journal
	if res.Err != nil && res.Transient {
		r.retry[sub] = time.Now().Add(retryDelay)
	}
	if sub.hasValue {
		r.stats.reruns.Add(1)
	}
	hash := out.sum()
	if sub.hasValue && sub.hash == hash {
		return
	}
	if sub.hasValue {
		r.stats.changedReruns.Add(1)
	}
	sub.hash, sub.hasValue = hash, true
	w := b.work[sub.client]
	w.mods = append(w.mods, wire.ForQuery(sub.QueryID, out.encoded()))
}

// deliver sends each client its reply queue and then its transition, in one push so nothing
// lands between them, and answers the waiters.
func (r *Reactor) deliver(b *batchState) {
	if !b.holding {
		r.takeCoveredWaiters(b)
	}
	sent := int64(0)
	for _, w := range b.work {
		if len(w.mods) == 0 && !w.needed {
			continue
		}
		frames := r.replyFrames(w, b.ts)
		w.client.client.Send(append(frames, r.transition(w, b.ts)...)...)
		sent++
	}
	r.stats.transitions.Add(sent)
	if sent > 0 && !b.oldest.IsZero() && r.cfg.ObserveLag != nil {
		r.cfg.ObserveLag(time.Since(b.oldest))
	}
	b.succeeded = true
	for _, wt := range b.waiters {
		wt.ch <- b.ts
	}
}

// takeCoveredWaiters adds to the batch the waiters that came after its snapshot but whose
// mutation it already sees (by xid): the batch drained every change its snapshot sees and ran
// what they invalidated, so its transition shows that commit. Without this, a mutation whose
// change notification started a batch before its reply was queued cost a second, empty batch.
// A client whose invalidated queries this batch parked (it is behind) waits for the next batch,
// which runs them.
func (r *Reactor) takeCoveredWaiters(b *batchState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	kept := r.waiters[:0]
	for _, wt := range r.waiters {
		covered := wt.xid != 0 && wt.client != nil && wt.client.held == nil && b.snapshot.Sees(wt.xid)
		if covered {
			if w := b.work[wt.client]; w != nil && w.parked {
				covered = false
			}
		}
		if !covered || wt.client.gone.Load() {
			kept = append(kept, wt)
			continue
		}
		w := b.workFor(wt.client)
		w.needed = true
		w.replies = append(w.replies, wt.reply)
		b.waiters = append(b.waiters, wt)
	}
	clear(r.waiters[len(kept):])
	r.waiters = kept
}

// replyFrames encodes the client's queued mutation replies at ts.
func (r *Reactor) replyFrames(w *clientWork, ts uint64) [][]byte {
	frames := make([][]byte, 0, len(w.replies)+1)
	for _, reply := range w.replies {
		reply.TS = wire.EncodeTS(ts)
		buf, err := json.Marshal(reply)
		if err != nil {
			r.cfg.Logger.Error("encoding a mutation response", "error", err)
			continue
		}
		frames = append(frames, buf)
	}
	return frames
}

// transition encodes the client's transition at ts (in chunks when large) and advances the
// versions the client was last sent.
func (r *Reactor) transition(w *clientWork, ts uint64) [][]byte {
	st, p := w.client, w.pending
	start := wire.StateVersion{QuerySet: st.sent.querySet, Identity: st.sent.identity, TS: wire.EncodeTS(st.sent.ts)}
	if p.QuerySet >= 0 {
		st.sent.querySet = p.QuerySet
	}
	if p.IdentityVersion >= 0 {
		st.sent.identity = p.IdentityVersion
	}
	if ts > st.sent.ts {
		st.sent.ts = ts
	}
	end := wire.StateVersion{QuerySet: st.sent.querySet, Identity: st.sent.identity, TS: wire.EncodeTS(st.sent.ts)}
	buf, err := wire.EncodeTransition(start, end, w.mods)
	if err != nil {
		// StateVersion always encodes; this cannot happen.
		r.cfg.Logger.Error("encoding a transition", "error", err)
		return nil
	}
	return wire.Chunks(buf, r.cfg.TransitionChunkBytes)
}
