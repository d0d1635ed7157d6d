package reactor

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ripplehq/ripple/engine/internal/caller"
	"github.com/ripplehq/ripple/engine/internal/readset"
	"github.com/ripplehq/ripple/engine/internal/wire"
)

// groupRun is one query group of a batch: identical subscriptions, run once.
type groupRun struct {
	subs    []*Subscription
	key     string
	run     bool // false: res is decided without running
	isolate bool // run under a savepoint of its own (it aborted a shared snapshot before)
	alone   bool // run with the connection to itself, not through a pipe
	res     Result
	broken  bool // it failed because its connection was lost
	// slow: the group outlasted the batch's patience before (Reactor.slowGroups); it runs on a
	// connection of its own so it can hold up nothing else. took is how long its connection's
	// share of the batch took.
	slow bool
	took time.Duration
	// ended is set once the group's run is over and its outcome (res, broken, took) is final:
	// a batch that stops waiting reads only the groups that ended.
	ended atomic.Bool
	// kept are the access verdicts the shared group's subscribers had when it was planned: a
	// held-back batch part lands after later batches may have cleared them (applyShared).
	kept map[*Subscription]*wire.Result

	// A shared query's group: the access checks to run, one per identity among the
	// subscribers without a kept verdict, and whether anyone may see the result (admitted:
	// res is run).
	shared   bool
	access   []accessRun
	admitted bool
}

// accessRun is one identity's access check for the subscribers of a shared query group.
type accessRun struct {
	identity caller.Identity
	subs     []*Subscription
	res      Result
}

// planGroup decides, on the reactor goroutine, how a group runs.
func (r *Reactor) planGroup(subs []*Subscription, key string) *groupRun {
	g := &groupRun{subs: subs, key: key}
	if r.poisoned[key] >= 2 {
		r.cfg.Logger.Error("query broke its batch twice; failing it without running", "function", subs[0].Query.Path)
		delete(r.poisoned, key)
		g.res = Result{Reads: readset.Everything(), Result: wire.Internal(errors.New("query broke the shared snapshot"), "")}
		return g
	}
	_, g.isolate = r.isolate[key]
	_, g.alone = r.alone[subs[0].Query.Path]
	_, g.slow = r.slowGroups[key]
	g.run = true
	if subs[0].Query.Shared {
		g.shared = true
		byIdentity := map[string]int{}
		for _, sub := range subs {
			if sub.access != nil {
				g.admitted = g.admitted || sub.access.Err == nil
				if g.kept == nil {
					g.kept = map[*Subscription]*wire.Result{}
				}
				g.kept[sub] = sub.access
				continue
			}
			id := sub.client.queryIdentity
			i, ok := byIdentity[id.Key()]
			if !ok {
				i = len(g.access)
				byIdentity[id.Key()] = i
				g.access = append(g.access, accessRun{identity: id})
			}
			g.access[i].subs = append(g.access[i].subs, sub)
		}
	}
	return g
}

// parallelMinGroups is the fewest groups a batch spreads over several connections: below it,
// importing the snapshot costs more than it saves.
const parallelMinGroups = 8

// maxSlowConnections is how many connections of their own one wave gives slow groups; the rest
// share the others.
const maxSlowConnections = 4

// share is the groups of a wave that run on one connection, one after another or through a
// pipe; done closes when they all have (and the connection, if imported, is given back).
type share struct {
	snap   *Snapshot
	groups []*groupRun
	done   chan struct{}
}

// flight is a wave of groups in progress.
type flight struct {
	shares []*share
	waited bool
}

// wait waits for every share.
func (f *flight) wait() {
	if f == nil || f.waited {
		return
	}
	for _, s := range f.shares {
		<-s.done
	}
	f.waited = true
}

// busy reports whether a share (on snap, when not nil) is still running, without waiting.
func (f *flight) busy(snap *Snapshot) bool {
	if f == nil || f.waited {
		return false
	}
	for _, s := range f.shares {
		if snap != nil && s.snap != snap {
			continue
		}
		select {
		case <-s.done:
		default:
			return true
		}
	}
	return false
}

// stragglers are the groups of the shares still running that have not ended well: one that
// ended without error in a share still running is done (its rows were read).
func (f *flight) stragglers() []*groupRun {
	var out []*groupRun
	if f == nil || f.waited {
		return nil
	}
	for _, s := range f.shares {
		select {
		case <-s.done:
		default:
			for _, g := range s.groups {
				if !g.ended.Load() || g.res.Err != nil {
					out = append(out, g)
				}
			}
		}
	}
	return out
}

// runGroups starts a wave: the groups run in the batch's snapshot. With enough groups, they
// also run on up to Config.QueryWorkers-1 more connections that import the same snapshot
// (pg_export_snapshot), so queries use every core; a group that was slow before gets a
// connection of its own, so it holds up nothing else. Each run's outcome is left in its
// groupRun; settleGroups reads them.
//
// runGroups waits until every group has run or patience has passed (never, when patience is
// 0), and returns the flight: the groups still running are the batch's stragglers.
func (r *Reactor) runGroups(ctx context.Context, main *Snapshot, runs []*groupRun, patience time.Duration) *flight {
	var slow, rest []*groupRun
	for _, g := range runs {
		switch {
		case !g.run:
		case g.slow:
			slow = append(slow, g)
		default:
			rest = append(rest, g)
		}
	}
	extra := 0
	if len(rest) >= parallelMinGroups {
		extra = max(min(r.cfg.QueryWorkers, len(rest)/2)-1, 0)
	}
	// Slow groups take a connection each, so they share no rounds with the others and leave
	// the snapshot's connection free for a second wave.
	ownSlow := min(len(slow), maxSlowConnections)
	var imported []*Snapshot
	if extra+ownSlow > 0 {
		imported = r.importSnapshot(ctx, main, extra+ownSlow)
	}
	f := &flight{}
	add := func(snap *Snapshot, groups []*groupRun) {
		if len(groups) > 0 {
			f.shares = append(f.shares, &share{snap: snap, groups: groups, done: make(chan struct{})})
		} else if snap != main {
			_ = snap.Tx.Rollback(context.WithoutCancel(ctx))
		}
	}
	for ownSlow > 0 && len(slow) > 0 && len(imported) > 0 {
		add(imported[0], slow[:1])
		imported, slow, ownSlow = imported[1:], slow[1:], ownSlow-1
	}
	rest = append(slow, rest...)
	snaps := append([]*Snapshot{main}, imported...)
	// The other groups are dealt out to the connections in turn.
	dealt := make([][]*groupRun, len(snaps))
	for i, g := range rest {
		dealt[i%len(snaps)] = append(dealt[i%len(snaps)], g)
	}
	for i, snap := range snaps {
		add(snap, dealt[i])
	}
	for _, s := range f.shares {
		go func() {
			defer close(s.done)
			r.runOn(ctx, s.snap, s.groups)
			if s.snap != main {
				_ = s.snap.Tx.Rollback(context.WithoutCancel(ctx))
			}
		}()
	}
	var timeout <-chan time.Time
	if patience > 0 {
		t := time.NewTimer(patience)
		defer t.Stop()
		timeout = t.C
	}
	for _, s := range f.shares {
		select {
		case <-s.done:
		case <-timeout:
			return f
		}
	}
	f.waited = true
	return f
}

// runOn runs groups on one snapshot connection: those that need it to themselves first, one
// after another, then all the others at once through a pipe (pipe.go).
func (r *Reactor) runOn(ctx context.Context, snap *Snapshot, groups []*groupRun) {
	started := time.Now()
	end := func(g *groupRun) {
		g.took = time.Since(started)
		g.ended.Store(true)
	}
	var piped []*groupRun
	for _, g := range groups {
		if g.isolate || g.alone {
			r.runGroup(ctx, snap, g)
			g.broken = g.res.Err != nil && snap.Tx.Conn().IsClosed()
			end(g)
			continue
		}
		piped = append(piped, g)
	}
	if len(piped) == 1 {
		r.runGroup(ctx, snap, piped[0])
		piped[0].broken = piped[0].res.Err != nil && snap.Tx.Conn().IsClosed()
		end(piped[0])
		return
	}
	p := newPipe(snap.Tx, len(piped))
	var wg sync.WaitGroup
	for _, g := range piped {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.finish(ctx)
			r.runGroup(ctx, &Snapshot{Tx: p.handle(), StatementTimeout: snap.StatementTimeout, Shared: true}, g)
			if g.res.Err == nil {
				end(g) // final: a group without error is not broken
			}
		}()
	}
	wg.Wait()
	// Read only now: the connection is not touched while a group may still be sending.
	closed := snap.Tx.Conn().IsClosed()
	for _, g := range piped {
		if g.res.Err != nil {
			g.broken = closed
			end(g)
		}
	}
}

// runGroup runs one group in snap.
func (r *Reactor) runGroup(ctx context.Context, snap *Snapshot, g *groupRun) {
	if g.shared {
		r.runShared(ctx, snap, g)
		return
	}
	first := g.subs[0]
	g.res = r.cfg.Runner.RunQuery(ctx, snap, first.Query, first.client.queryIdentity, first.Journal, g.isolate)
}

// isLost reports an error that stands for the whole group: the snapshot was aborted, or the
// group must run differently (settleGroups tells which). A lost connection shows after the
// group's runs (broken).
func isLost(err error) bool {
	return err != nil && (errors.Is(err, ErrSnapshotAborted) || errors.Is(err, ErrNeedsOwnConnection) ||
		errors.Is(err, ErrCollateral))
}

// runShared runs a shared query's group: the access checks it needs, then, when anyone may see
// it, the result once. An access check that broke the snapshot stands for the group (settleGroups
// reads g.res).
func (r *Reactor) runShared(ctx context.Context, snap *Snapshot, g *groupRun) {
	q := g.subs[0].Query
	for i := range g.access {
		a := &g.access[i]
		a.res = r.cfg.Runner.RunAccess(ctx, snap, q, a.identity, g.isolate)
		if isLost(a.res.Err) {
			g.res = a.res
			return
		}
		g.admitted = g.admitted || a.res.Err == nil
	}
	if g.admitted {
		g.res = r.cfg.Runner.RunQuery(ctx, snap, q, caller.Identity{}, g.subs[0].Journal, g.isolate)
	}
}

// importSnapshot opens up to n more transactions on the snapshot of main. Workers that cannot
// be had (the pool is busy, say) are simply not used.
func (r *Reactor) importSnapshot(ctx context.Context, main *Snapshot, n int) []*Snapshot {
	pool := main.importPool(r.cfg.Pool)
	// Never wait for a connection, and leave a few to mutations: a batch uses what is free.
	stat := pool.Stat()
	n = min(n, int(stat.IdleConns())+int(stat.MaxConns()-stat.TotalConns())-importReserve)
	if n <= 0 {
		return nil
	}
	var id string
	if err := main.Tx.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&id); err != nil || !snapshotID.MatchString(id) {
		return nil
	}
	begin := fmt.Sprintf("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '%s'; SET LOCAL statement_timeout = %d",
		id, main.StatementTimeout.Milliseconds())
	var out []*Snapshot
	for range n {
		tx, err := pool.BeginTx(ctx, pgx.TxOptions{BeginQuery: begin})
		if err != nil {
			break
		}
		out = append(out, &Snapshot{Tx: tx, StatementTimeout: main.StatementTimeout})
	}
	return out
}

// importReserve is how many of a pool's connections importSnapshot leaves free.
const importReserve = 2

var snapshotID = regexp.MustCompile(`^[0-9A-Fa-f-]+$`)

// settleGroups reads the outcomes of runGroups on the reactor goroutine. When a run aborted its
// shared snapshot (its SQL error) or lost its connection, nothing of the batch is applied:
// every group is marked to run again, the aborting one isolated, the connection-breaking one
// counted (twice and it fails without running).
func (r *Reactor) settleGroups(runs []*groupRun) error {
	var lost error
	for _, g := range runs {
		if !g.run {
			continue
		}
		switch {
		case errors.Is(g.res.Err, ErrNeedsOwnConnection):
			r.alone[g.subs[0].Query.Path] = struct{}{}
		case errors.Is(g.res.Err, ErrCollateral): // runs again as it was
		case errors.Is(g.res.Err, ErrSnapshotAborted):
			r.isolate[g.key] = struct{}{}
		case g.broken:
			r.poisoned[g.key]++
		default:
			delete(r.poisoned, g.key)
			if g.isolate && g.res.Err == nil {
				delete(r.isolate, g.key)
			}
			continue
		}
		if lost == nil {
			lost = fmt.Errorf("batch snapshot lost: %w", g.res.Err)
		}
	}
	if lost != nil {
		r.runAgain(runs)
	}
	return lost
}

// runAgain marks every subscriber of the groups dirty: a batch that lost their results runs
// them again.
func (r *Reactor) runAgain(groups []*groupRun) {
	for _, g := range groups {
		for _, sub := range g.subs {
			r.dirty[sub] = struct{}{}
		}
	}
}

// resultHash tells whether a result differs from the last one sent.
func resultHash(res *Result) [32]byte {
	h := sha256.New()
	switch {
	case res.Err != nil && res.Internal:
		// An internal error's message carries a fresh request id; it is the same failure.
		h.Write([]byte("internal error"))
	case res.Err != nil:
		buf, _ := json.Marshal(res.ErrorData)
		h.Write([]byte("error\x00" + res.ErrorMessage + "\x00"))
		h.Write(buf)
	default:
		h.Write([]byte("value\x00"))
		h.Write(res.Value)
	}
	h.Write([]byte("\x00journal\x00" + res.Journal))
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}
