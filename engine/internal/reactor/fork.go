package reactor

import (
	"context"
	"slices"
	"time"

	"github.com/ripplehq/ripple/engine/internal/changefeed"
)

// A batch does not wait for a slow query. When some groups are still running after the batch's
// patience (Config.SlowQueryAfter), the batch holds back only the clients subscribed to them:
// everyone else gets their transition and mutation replies now, and the held-back clients get
// theirs, all from the same snapshot, when the stragglers finish (a fork of the batch). Until
// then a held-back client is left out of later batches: its new work (query-set changes,
// invalidated queries, mutation replies) waits in the fork and goes back to the reactor when it
// lands, so each client still gets one transition at a time, in order, every result in it from
// one snapshot.
//
// The results of the fork's clients that finished in time are applied when it lands, not
// before, so a fork that fails (its snapshot broke) leaves them as they were. What those
// results read is indexed only then: every change the later batches applied or skipped that
// the fork's snapshot does not see is kept (noteApplied) and matched against it when it lands,
// so none is missed.
//
// A group that straggled once is remembered (slowGroups) and from then on runs on a connection
// of its own, so it holds up no other query's round trips; it is forgotten once it finishes in
// time. Each fork holds connections, so at most maxForks are out at once; past that, batches
// wait for everything as before.

// maxForks bounds the forks out at once.
const maxForks = 4

// maxSlowGroups bounds the slow groups remembered.
const maxSlowGroups = 1024

// maxMissed bounds the changes a fork keeps; past it, every subscription it applies runs again.
const maxMissed = 10000

// fork is a batch's held-back part.
type fork struct {
	b       *batchState // the fork's own: its snapshot and ts, the held clients' work and waiters
	clients map[*clientState]struct{}
	// flights and closers are the batch's, taken over; later runs after the flights.
	flights []*flight
	closers []func()
	later   []*groupRun
	cancel  context.CancelFunc
	// deferred are results that finished in time for held clients, applied when the fork lands.
	deferred []deferredApply
	// What held clients were given while held, returned to the reactor when the fork lands.
	dirty   map[*Subscription]struct{}
	pending map[*clientState]struct{}
	backlog map[*clientState]struct{}
	carry   map[*clientState]*clientWork
	waiters []waiter
	// missed are the changes applied since the fork's snapshot that it does not see.
	missed    []changefeed.Change
	missedAll bool
	reset     bool // the change stream reconnected while the fork was out
}

type deferredApply struct {
	sub *Subscription
	out *outcome
}

// splitStragglers ends the batch's waves as far as patience allows: the groups that had to
// wait for the snapshot's connection run now if it is free, and what is still running (or
// still waiting for the connection) is returned; b.runs keeps the finished groups. It also
// learns which groups are slow.
func (r *Reactor) splitStragglers(ctx context.Context, b *batchState, patience time.Duration) []*groupRun {
	if len(b.later) > 0 && !b.flights[0].busy(b.snap) {
		wave := b.later
		b.later = nil
		b.runs = append(b.runs, wave...)
		b.flights = append(b.flights, r.runGroups(ctx, b.snap, wave, patience))
	}
	straggling := map[*groupRun]struct{}{}
	for _, f := range b.flights {
		for _, g := range f.stragglers() {
			straggling[g] = struct{}{}
		}
	}
	late := b.later
	finished := b.runs[:0]
	for _, g := range b.runs {
		if _, ok := straggling[g]; ok {
			late = append(late, g)
			if !g.ended.Load() { // still running itself, not only waiting for its connection
				if len(r.slowGroups) >= maxSlowGroups {
					clear(r.slowGroups) // forgetting costs a held-back batch, not a missed update
				}
				r.slowGroups[g.key] = struct{}{}
			}
			continue
		}
		if g.slow && g.took < r.cfg.SlowQueryAfter/2 {
			delete(r.slowGroups, g.key)
		}
		finished = append(finished, g)
	}
	b.runs = finished
	return late
}

// holdBack makes the batch's late groups a fork: their clients' work, waiters and backlog move
// to it, and the batch's snapshot and connections stay open for it until its groups finish.
func (r *Reactor) holdBack(ctx context.Context, b *batchState, late []*groupRun, cancel context.CancelFunc) {
	f := &fork{
		b: &batchState{snap: b.snap, snapshot: b.snapshot, snapText: b.snapText, ts: b.ts,
			work: map[*clientState]*clientWork{}, runs: late, holding: true, oldest: b.oldest},
		clients: map[*clientState]struct{}{},
		flights: b.flights, closers: b.closers, later: b.later, cancel: cancel,
		dirty: map[*Subscription]struct{}{}, pending: map[*clientState]struct{}{},
		backlog: map[*clientState]struct{}{}, carry: map[*clientState]*clientWork{},
	}
	b.fork, b.flights, b.closers, b.later = f, nil, nil, nil
	for _, g := range late {
		for _, sub := range g.subs {
			if st := sub.client; !st.gone.Load() && st.held == nil {
				st.held = f
				f.clients[st] = struct{}{}
			}
		}
	}
	for st := range f.clients {
		w := b.workFor(st)
		delete(b.work, st)
		f.b.work[st] = w
		if _, ok := r.backlog[st]; ok {
			delete(r.backlog, st)
			f.backlog[st] = struct{}{}
		}
	}
	kept := b.waiters[:0]
	for _, wt := range b.waiters {
		if wt.client != nil && wt.client.held == f {
			f.b.waiters = append(f.b.waiters, wt)
			continue
		}
		kept = append(kept, wt)
	}
	b.waiters = kept
	r.forks = append(r.forks, f)
	r.stats.heldBack.Add(1)

	r.forking.Add(1)
	go func() {
		defer r.forking.Done()
		for _, fl := range f.flights {
			fl.wait()
		}
		if len(f.later) > 0 {
			r.runGroups(ctx, f.b.snap, f.later, 0)
		}
		for i := len(f.closers) - 1; i >= 0; i-- {
			f.closers[i]()
		}
		f.cancel()
		r.mu.Lock()
		r.landed = append(r.landed, f)
		r.mu.Unlock()
		r.Poke()
	}()
}

// noteApplied keeps a change a batch applied (or skipped: it matched nothing) for each fork
// whose snapshot does not see it.
func (r *Reactor) noteApplied(c changefeed.Change) {
	for _, f := range r.forks {
		if f.b.snapshot.Sees(c.Xid) || f.missedAll {
			continue
		}
		if len(f.missed) >= maxMissed {
			f.missed, f.missedAll = nil, true
			continue
		}
		f.missed = append(f.missed, c)
	}
}

// landForks applies and delivers the forks whose groups have finished.
func (r *Reactor) landForks() {
	r.mu.Lock()
	landed := r.landed
	r.landed = nil
	r.mu.Unlock()
	for _, f := range landed {
		r.land(f)
	}
}

func (r *Reactor) land(f *fork) {
	r.forks = slices.DeleteFunc(r.forks, func(o *fork) bool { return o == f })
	for st := range f.clients {
		st.held = nil
	}
	fb := f.b
	for _, g := range fb.runs {
		if g.took < r.cfg.SlowQueryAfter/2 {
			delete(r.slowGroups, g.key)
		}
	}
	if err := r.settleGroups(fb.runs); err != nil {
		// The held clients' results run again (settleGroups marked the late ones), and their
		// waiters and versions go to the next batch.
		r.cfg.Logger.Warn("a held-back batch part failed; running it again", "error", err)
		for _, d := range f.deferred {
			r.dirty[d.sub] = struct{}{}
		}
		r.handBack(fb)
	} else {
		r.apply(fb)
		applied := map[*Subscription]struct{}{}
		for _, g := range fb.runs {
			for _, sub := range g.subs {
				applied[sub] = struct{}{}
			}
		}
		for _, d := range f.deferred {
			r.applyTo(fb, d.sub, d.out)
			applied[d.sub] = struct{}{}
		}
		r.catchUp(f, applied)
		r.deliver(fb)
	}
	for sub := range f.dirty {
		r.dirty[sub] = struct{}{}
	}
	for st, w := range f.carry {
		if newer := r.carry[st]; newer != nil { // the fork failed and handed back work too
			newer.merge(w)
			continue
		}
		r.carry[st] = w
	}
	for st := range f.backlog {
		if len(st.unrun) > 0 && !st.gone.Load() {
			r.backlog[st] = struct{}{}
		}
	}
	if f.reset {
		for st := range f.clients {
			for _, sub := range st.subs {
				r.forgetAccess(sub)
				r.dirty[sub] = struct{}{}
			}
		}
	}
	r.mu.Lock()
	for st := range f.pending {
		if !st.gone.Load() {
			r.pending[st] = struct{}{}
		}
	}
	r.waiters = append(f.waiters, r.waiters...)
	r.mu.Unlock()
}

// catchUp marks dirty the subscriptions the fork applied whose new reads a change applied
// since its snapshot touches.
func (r *Reactor) catchUp(f *fork, applied map[*Subscription]struct{}) {
	if f.missedAll {
		for sub := range applied {
			r.forgetAccess(sub)
			r.dirty[sub] = struct{}{}
		}
		return
	}
	for _, c := range f.missed {
		r.index.Matching(c, func(e indexEntry) bool {
			if _, ok := applied[e.sub]; ok {
				if e.access {
					e.sub.access = nil
				}
				r.dirty[e.sub] = struct{}{}
			}
			return true
		})
	}
}
