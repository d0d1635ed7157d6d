package benchchat

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/ripplehq/ripple/internal/progress"
)

// pair is two clients of one direct conversation.
type pair struct{ a, b *client }

func pairsOf(cl []*client) []pair {
	out := make([]pair, 0, len(cl)/2)
	for i := 0; i+1 < len(cl); i += 2 {
		out = append(out, pair{cl[i], cl[i+1]})
	}
	return out
}

// disconnect closes clients and forgets them.
func (e *env) disconnect(cl ...*client) {
	drop := map[*client]bool{}
	for _, c := range cl {
		drop[c] = true
	}
	e.mu.Lock()
	kept := e.clients[:0]
	for _, c := range e.clients {
		if !drop[c] {
			kept = append(kept, c)
		}
	}
	e.clients = kept
	e.mu.Unlock()
	closeAll(cl)
}

func (e *env) connectedClients() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.clients)
}

// phase measures one tracker's messages: CPU from just before the first send to the end of the
// drain (and of the scheduled jobs the sends caused).
type phase struct {
	e     *env
	t     *tracker
	s0    sample
	st0   stmtSnapshot
	st1   stmtSnapshot // the end's, once end has run
	errs0 int64
	start time.Time
	r     Result
}

func (e *env) beginPhase(ctx context.Context, name string, t *tracker) *phase {
	// Work left over from set-up (embeddings of seeded history, say) is not this phase's.
	e.waitBackground(ctx)
	e.progress("%s: %s", e.scenario, name)
	p := &phase{e: e, t: t, r: Result{Scenario: e.scenario, Name: name}}
	e.tracker.Store(t)
	p.errs0 = e.protocolErrors()
	p.s0 = e.meter.sample(ctx)
	p.st0 = e.meter.statementSnapshot(ctx, true)
	p.start = time.Now()
	return p
}

// end waits for the deliveries and mutation responses (bounded by DrainTimeout), then for the
// jobs, and fills the result.
func (p *phase) end(ctx context.Context) Result {
	e, t := p.e, p.t
	deadline := time.Now().Add(e.cfg.DrainTimeout)
	t.wait(ctx, e.cfg.DrainTimeout)
	for ctx.Err() == nil && time.Now().Before(deadline) && int(t.committed.Load()+t.failed.Load()) < t.sentCount() {
		time.Sleep(10 * time.Millisecond)
	}
	wall := time.Since(p.start)
	// The window goes on through the embedding queue's drain, so what the sweep put off while
	// giving way to deliveries is this phase's (see embedding.go); sDrain times the drain alone.
	sDrain := e.meter.sample(ctx)
	backlog, drained := e.waitBackground(ctx)
	st1 := e.meter.statementSnapshot(ctx, false)
	p.st1 = st1
	s1 := e.meter.sample(ctx)
	e.tracker.Store(nil)
	r := p.r
	t.fill(&r)
	r.DurationSec = wall.Seconds()
	r.Clients = e.connectedClients()
	delta(p.s0, s1).perMessage(&r, r.Delivered)
	if r.Statements = e.meter.statementsBetween(ctx, p.st0, st1, r.Delivered); r.Statements != nil && r.Statements.Source != sourceUnavailable {
		r.StatementsPerMsg = fptr(r.Statements.PerMsg)
	}
	r.Phases = phasesBetween(p.st0.phases, st1.phases, r.Delivered)
	p.splitEmbedding(&r)
	r.ServerRSSBytes = e.meter.rss()
	if r.ServerRSSBytes > 0 && r.Clients > 0 {
		r.RSSPerClientBytes = fptr(float64(r.ServerRSSBytes) / float64(r.Clients))
	}
	r.ProtocolErrors = e.protocolErrors() - p.errs0
	if backlog > 0 && drained > 0 {
		// Embedding is background work: it may fall behind during a burst, and this is how far
		// and how fast it caught up afterwards.
		if r.Extra == nil {
			r.Extra = map[string]any{}
		}
		r.Extra["embeddingBacklog"] = backlog
		r.Extra["embeddingDrainSec"] = round3(drained.Seconds())
		r.Extra["embeddingsPerSec"] = round3(float64(backlog) / drained.Seconds())
		// The whole sweep's cost (plumbing included, which embeddingSplit cannot name), when
		// the backlog is big enough for /proc's 10 ms ticks; the server's idle work is in it.
		if d := delta(sDrain, s1); backlog >= drainMinBacklog {
			if d.serverOK {
				r.Extra["embeddingDrainServerCpuMsPerMsg"] = round3(ms(d.server) / float64(backlog))
			}
			if d.postgresOK {
				r.Extra["embeddingDrainPostgresCpuMsPerMsg"] = round3(ms(d.postgres) / float64(backlog))
			}
		}
	}
	if r.Delivered < r.Expected {
		r.Notes = append(r.Notes, fmt.Sprintf("%d of %d deliveries missing after the %s drain", r.Expected-r.Delivered, r.Expected, e.cfg.DrainTimeout))
	}
	return r
}

// drainMinBacklog is the smallest backlog whose drain CPU is reported per embedded message.
const drainMinBacklog = 50

// splitEmbedding reports the embedding sweep's share of the phase's CPU apart (embedding.go).
func (p *phase) splitEmbedding(r *Result) {
	if r.Delivered <= 0 {
		return
	}
	var pgMs *float64
	var texts *int64
	if st := r.Statements; st != nil && st.Embedding != nil {
		pgMs, texts = fptr(st.Embedding.ExecPlanMs), &st.Embedding.Texts
	} else {
		// Without pg_stat_statements the sweep's statements are unknown; it embeds every
		// committed message, and the window waits for the queue to empty.
		texts = new(int64)
		*texts = int64(r.Committed)
		r.Notes = append(r.Notes, "embedding: postgres share unknown (the sweep's statements could not be read from pg_stat_statements); provider share counts one text per committed send")
	}
	r.EmbeddedTexts = texts
	var msPerText *float64
	if p.e.provider != nil {
		msPerText = p.e.provider.MsPerText
	}
	embeddingSplit(r, pgMs, texts, msPerText)
}

// openLoop sends count messages at rate (msg/s in total) over the pairs, round robin, each
// pair alternating direction, on schedule whatever the responses do (users do not wait for each
// other). It expects one delivery per message, on the other side of the pair.
func (e *env) openLoop(ctx context.Context, name string, pairs []pair, rate float64, count int) Result {
	t := newTracker(fmt.Sprintf("%s%d", randomHex(3), count), count)
	t.expect(count)
	p := e.beginPhase(ctx, name, t)
	p.r.RatePerSec = rate
	interval := time.Duration(float64(time.Second) / rate)
	for k := 0; k < count && ctx.Err() == nil; k++ {
		if wait := time.Until(p.start.Add(time.Duration(k) * interval)); wait > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
		pr := pairs[k%len(pairs)]
		from, to := pr.a, pr.b
		if (k/len(pairs))%2 == 1 {
			from, to = to, from
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, _ = t.send(sctx, from, k, to)
		cancel()
	}
	return p.end(ctx)
}

// seedRate paces seeding per socket (each is one user) under the server's per-user mutation
// limit (engine.Config.MutationsPerSecond, 30/s by default).
const seedRate = 25

// seed sends n messages through messages:send on the given sockets, a window in flight each,
// counting acknowledged ones on bar (it takes minutes at the paced rate, so it shows an ETA).
func seed(ctx context.Context, socks []*client, n int, bar *progress.Bar) error {
	g, gctx := newGroup(ctx, len(socks))
	for i, c := range socks {
		g.Go(func() error {
			window := make(chan struct{}, 16)
			errc := make(chan error, 1)
			pace := time.NewTicker(time.Second / seedRate)
			defer pace.Stop()
			for k := i; k < n; k += len(socks) {
				select {
				case <-pace.C:
				case <-gctx.Done():
					return gctx.Err()
				}
				select {
				case window <- struct{}{}:
				case <-gctx.Done():
					return gctx.Err()
				}
				ch, err := c.send(gctx, fmt.Sprintf("history message %d", k))
				if err != nil {
					return err
				}
				go func() {
					r := <-ch
					bar.Add(1)
					if !r.ok {
						select {
						case errc <- errors.New("seeding: " + r.errMsg):
						default:
						}
					}
					<-window
				}()
				select {
				case err := <-errc:
					return err
				default:
				}
			}
			for range cap(window) {
				select {
				case window <- struct{}{}:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			select {
			case err := <-errc:
				return err
			default:
				return nil
			}
		})
	}
	return g.Wait()
}

// latency: one pair chatting at Rate; then a fresh pair after History messages, with the
// receiver scrolled to the top (every page loaded).
func (e *env) latency(ctx context.Context) ([]Result, error) {
	o := e.cfg.Latency
	n := 2
	if o.History >= 0 {
		n = 4
	}
	accts, err := e.api.signUpPairs(ctx, n, "lat")
	if err != nil {
		return nil, err
	}
	cl, err := e.connect(ctx, accts[:2], 2, true)
	if err != nil {
		return nil, err
	}
	var results []Result
	results = append(results, e.openLoop(ctx, fmt.Sprintf("1 pair, %g msg/s", o.Rate), pairsOf(cl), o.Rate, o.Messages))
	if o.History < 0 {
		return results, ctx.Err()
	}
	e.disconnect(cl...)

	// History goes in through the real path, on sockets with no screen attached.
	e.progress("latency: seeding %d messages of history", o.History)
	bar := progress.New(e.cfg.Progress, "bench chat: seeding history", int64(o.History), progress.Messages)
	var socks []*client
	for _, a := range accts[2:] {
		c, err := e.headless(ctx, a)
		if err != nil {
			return results, err
		}
		socks = append(socks, c)
	}
	if err := seed(ctx, socks, o.History, bar); err != nil {
		bar.Stop()
		return results, err
	}
	bar.Finish()
	e.disconnect(socks...)
	cl, err = e.connect(ctx, accts[2:], 2, true)
	if err != nil {
		return results, err
	}
	// The receiver of the first message scrolls to the top, like a user reading back.
	pages, err := cl[1].loadAll(ctx, o.History/e.cfg.PageSize+10)
	if err != nil {
		return results, fmt.Errorf("loading history: %w", err)
	}
	r := e.openLoop(ctx, fmt.Sprintf("1 pair, %g msg/s, after %d messages of history (receiver holds %d pages)", o.Rate, o.History, pages), pairsOf(cl), o.Rate, o.Messages)
	r.Extra = map[string]any{"history": o.History, "receiverPagesLoaded": pages, "receiverPagesAtEnd": cl[1].pageCount(), "senderPagesAtEnd": cl[0].pageCount()}
	results = append(results, r)
	return results, ctx.Err()
}

// round3 keeps three decimals, for figures printed and written as JSON.
func round3(x float64) float64 { return math.Round(x*1000) / 1000 }
