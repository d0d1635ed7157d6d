package benchchat

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// knee: Pairs chatting at rising total rates; stops at the first rate whose p99 is over MaxP99
// or that loses a message, and reports the highest passing rate. The conversations keep their
// messages from step to step, and the clients split their first pages as they grow, as open
// browser tabs would.
func (e *env) knee(ctx context.Context) ([]Result, float64, error) {
	o := e.cfg.Knee
	accts, err := e.api.signUpPairs(ctx, 2*o.Pairs, "knee")
	if err != nil {
		return nil, 0, err
	}
	cl, err := e.connect(ctx, accts, 16, true)
	if err != nil {
		return nil, 0, err
	}
	var results []Result
	best := 0.0
	for _, rate := range o.Rates {
		count := max(1, int(rate*o.Step.Seconds()))
		r := e.openLoop(ctx, fmt.Sprintf("%d pairs, %g msg/s", o.Pairs, rate), pairsOf(cl), rate, count)
		pass := r.Delivered == r.Expected && r.Committed == r.Messages && r.Messages == count && r.Latency.P99 <= ms(o.MaxP99)
		r.Pass = &pass
		results = append(results, r)
		if !pass || ctx.Err() != nil {
			break
		}
		best = rate
	}
	last := &results[len(results)-1]
	last.Notes = append(last.Notes, fmt.Sprintf("knee: highest passing rate %g msg/s (bar: p99 <= %s and every message delivered)", best, o.MaxP99))
	return results, best, ctx.Err()
}

// idleAccountsFor returns n accounts drawn round robin from pool.
func roundRobin(pool []*account, from, n int) []*account {
	out := make([]*account, n)
	for i := range out {
		out[i] = pool[(from+i)%len(pool)]
	}
	return out
}

// idle: K additional connected, authenticated clients, each with the app's subscriptions on one
// of Accounts shared accounts (one conversation per two accounts, nobody writing to them), while
// one pair chats. Reports RSS per added client against K = 0 and CPU over a quiet window.
func (e *env) idle(ctx context.Context) ([]Result, error) {
	o := e.cfg.Idle
	accts, err := e.api.signUpPairs(ctx, 2+o.Accounts, "idle")
	if err != nil {
		return nil, err
	}
	cl, err := e.connect(ctx, accts[:2], 2, true)
	if err != nil {
		return nil, err
	}
	pool := accts[2:]
	var results []Result
	connected := 0
	var rss0 int64
	for _, k := range o.Counts {
		if k > connected {
			e.progress("idle: connecting %d idle clients", k-connected)
			if _, err := e.connect(ctx, roundRobin(pool, connected, k-connected), o.DialConcurrency, false); err != nil {
				return results, fmt.Errorf("connecting idle clients: %w", err)
			}
			connected = k
		}
		e.waitBackground(ctx)
		e.progress("idle: quiet window of %s with %d idle clients", o.Quiet, connected)
		s0 := e.meter.sample(ctx)
		// The lowest RSS of the quiet window: the Go runtime hands freed memory (sign-up hashing,
		// set-up garbage) back gradually, so a single reading depends on when it is taken.
		rss := e.meter.rss()
		for end := time.Now().Add(o.Quiet); time.Now().Before(end) && ctx.Err() == nil; {
			time.Sleep(min(100*time.Millisecond, time.Until(end)))
			if v := e.meter.rss(); v > 0 && v < rss {
				rss = v
			}
		}
		if ctx.Err() != nil {
			return results, ctx.Err()
		}
		s1 := e.meter.sample(ctx)
		r := e.openLoop(ctx, fmt.Sprintf("%d idle clients + 1 pair at %g msg/s", connected, o.Rate), pairsOf(cl), o.Rate, o.Messages)
		d := delta(s0, s1)
		if d.serverOK {
			r.IdleServerCPUPercent = fptr(100 * d.server.Seconds() / d.wall.Seconds())
		}
		if d.postgresOK {
			r.IdlePostgresCPUPercent = fptr(100 * d.postgres.Seconds() / d.wall.Seconds())
		}
		r.RSSPerClientBytes = nil
		if r.ServerRSSBytes > 0 && r.ServerRSSBytes < rss {
			rss = r.ServerRSSBytes // the lowest reading of the step
		}
		if connected == 0 {
			rss0 = rss
		} else if rss0 > 0 && rss > 0 {
			r.RSSPerClientBytes = fptr(float64(rss-rss0) / float64(connected))
		}
		r.Extra = map[string]any{"idleClients": connected, "sharedAccounts": o.Accounts, "minRssMiB": float64(rss) / (1 << 20)}
		results = append(results, r)
		if ctx.Err() != nil {
			break
		}
	}
	return results, ctx.Err()
}

// indexScans is the number of index scans Postgres has published for the schema's messages
// table: the server does not export how often it ran messages:list, and every run of it (and of
// conversations:list's last-message lookup) scans an index of messages.
func (e *env) indexScans(ctx context.Context) (int64, bool) {
	if e.srv.AppName == "" || e.meter.conn == nil {
		return 0, false
	}
	var n int64
	err := e.meter.conn.QueryRow(ctx, "SELECT coalesce(sum(idx_scan), 0)::bigint FROM pg_stat_user_indexes WHERE schemaname = $1 AND relname = 'messages'", e.srv.AppName).Scan(&n)
	return n, err == nil
}

// devices: one user on N sockets (every socket with the app's subscriptions); the other user
// writes, one message at a time; reports when the last device had it.
func (e *env) devices(ctx context.Context) ([]Result, error) {
	o := e.cfg.Devices
	accts, err := e.api.signUpPairs(ctx, 2, "dev")
	if err != nil {
		return nil, err
	}
	user, other := accts[0], accts[1]
	oc, err := e.connect(ctx, []*account{other}, 1, true)
	if err != nil {
		return nil, err
	}
	var results []Result
	connected := 0
	for _, n := range o.Counts {
		if n > connected {
			e.progress("devices: connecting %d sockets of one user", n-connected)
			devs, err := e.connect(ctx, roundRobin([]*account{user}, 0, n-connected), o.DialConcurrency, true)
			if err != nil {
				return results, fmt.Errorf("connecting devices: %w", err)
			}
			// One device is in front of the user: only it marks what arrives read.
			for i, c := range devs {
				if connected > 0 || i > 0 {
					c.mu.Lock()
					c.markRead = false
					c.mu.Unlock()
				}
			}
			connected = n
		}
		e.waitBackground(ctx)
		if o.StatsSettle > 0 {
			time.Sleep(o.StatsSettle) // let the set-up's scans be published first
		}
		scans0, scansOK := e.indexScans(ctx)
		t := newMultiTracker(randomHex(3), o.Writes, user)
		t.expect(o.Writes * connected)
		p := e.beginPhase(ctx, fmt.Sprintf("1 user on %d sockets, %d writes from the other user", connected, o.Writes), t)
		for w := 0; w < o.Writes && ctx.Err() == nil; w++ {
			if _, err := t.send(ctx, oc[0], w, nil); err != nil {
				break
			}
			deadline := time.Now().Add(e.cfg.DrainTimeout)
			for t.delivered.Load() < int64((w+1)*connected) && time.Now().Before(deadline) && ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
		}
		r := p.end(ctx)
		t.mu.Lock()
		last := make([]float64, len(t.multiLast))
		for i, d := range t.multiLast {
			last[i] = ms(d)
		}
		t.mu.Unlock()
		r.Extra = map[string]any{"devices": connected, "lastDeviceMsPerWrite": last}
		if o.StatsSettle > 0 && scansOK {
			time.Sleep(o.StatsSettle)
			if scans1, ok := e.indexScans(ctx); ok {
				r.Extra["messagesIndexScans"] = scans1 - scans0
				r.Notes = append(r.Notes, "the server exposes no count of query runs; messagesIndexScans (pg_stat_user_indexes on messages, both users' messages:list and conversations:list re-runs) stands in for it")
			}
		} else {
			r.Notes = append(r.Notes, "the server exposes no count of query runs (engine.Stats is in-process only)")
		}
		results = append(results, r)
	}
	return results, ctx.Err()
}

// throughput: Pairs send closed loop (each side one message in flight: send, wait for the
// MutationResponse, send again) for Duration, with Clients sockets connected in all (the rest
// idle on IdleAccounts shared accounts). Reports committed sends/s and delivery latency.
func (e *env) throughput(ctx context.Context) ([]Result, error) {
	o := e.cfg.Throughput
	accts, err := e.api.signUpPairs(ctx, 2*o.Pairs+o.IdleAccounts, "tp")
	if err != nil {
		return nil, err
	}
	senders, err := e.connect(ctx, accts[:2*o.Pairs], 16, true)
	if err != nil {
		return nil, err
	}
	if n := o.Clients - len(senders); n > 0 {
		e.progress("throughput: connecting %d idle clients", n)
		if _, err := e.connect(ctx, roundRobin(accts[2*o.Pairs:], 0, n), o.DialConcurrency, false); err != nil {
			return nil, fmt.Errorf("connecting idle clients: %w", err)
		}
	}
	t := newTracker(randomHex(3), o.MaxMessages)
	p := e.beginPhase(ctx, fmt.Sprintf("%d clients, %d closed-loop senders for %s", e.connectedClients(), len(senders), o.Duration), t)
	deadline := p.start.Add(o.Duration)
	var next atomic.Int64
	var wg sync.WaitGroup
	for i, c := range senders {
		partner := senders[i^1]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && time.Now().Before(deadline) {
				k := int(next.Add(1) - 1)
				if k >= o.MaxMessages {
					return
				}
				sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				ch, err := t.send(sctx, c, k, partner)
				if err == nil {
					select {
					case <-ch:
					case <-sctx.Done():
					}
				}
				cancel()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	window := time.Since(p.start)
	// Expected only now: during the run delivered may catch up with a growing count.
	t.expect(t.sentCount())
	r := p.end(ctx)
	r.SendsPerSec = float64(r.Committed) / window.Seconds()
	r.Extra = map[string]any{"senders": len(senders), "idleAccounts": o.IdleAccounts, "sendWindowSec": window.Seconds()}
	return []Result{r}, ctx.Err()
}
