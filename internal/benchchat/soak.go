package benchchat

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"
)

// SoakOpts configures the soak scenario: a population of clients that, for Duration, connect
// and disconnect at random, open and close conversations, scroll up through history, refresh
// their tokens, drop off the network without a close frame (TCP reset) and come back, search,
// and send at a steady Rate, with an operator scraping /metrics and watching a query alongside.
// Every SampleEvery the churn pauses, the server settles, and its resources are sampled; after
// WarmUp, any that trends upward beyond its tolerance (trend.go) fails the run, as does a
// message that never reached its receiver.
type SoakOpts struct {
	// Duration of the churn. Default 30 min.
	Duration time.Duration
	// SampleEvery is the sampling interval. Default 1 min.
	SampleEvery time.Duration
	// WarmUp is left out of the trend fits (pools fill, caches and the retained rows reach
	// their steady state). Default Duration/6.
	WarmUp time.Duration
	// Clients in the population, each its own account (even). Default 40.
	Clients int
	// Rate is messages per second over the whole population. Default 4.
	Rate float64
	// Think is the mean pause between one client's actions. Default 3 s.
	Think time.Duration
	// Offline is the mean time a client stays away after leaving. Default 5 s.
	Offline time.Duration
	// TokenTTL is the server's access-token lifetime: clients refresh at a third of it. A child
	// server is started with it (RIPPLE_ACCESS_TOKEN_TTL); a --url server must match it.
	// Default 1 min.
	TokenTTL time.Duration
	// Retention is what a child server keeps the mutation log and finished jobs for; it runs
	// its housekeeping every Retention/2 (RIPPLE_MUTATION_LOG_RETENTION,
	// RIPPLE_COMPLETED_JOB_RETENTION, RIPPLE_HOUSEKEEPING_INTERVAL, RIPPLE_SPENT_TOKEN_RETENTION),
	// so the retained rows reach their steady state within the warm-up. Default 2 min.
	Retention time.Duration
	// SettleTimeout bounds the wait, at each sample, for the server to hold exactly the sockets
	// and subscriptions the clients hold, and at the end for the last deliveries. Default 60 s.
	SettleTimeout time.Duration
}

func (o *SoakOpts) withDefaults() {
	def(&o.Duration, 30*time.Minute)
	def(&o.SampleEvery, time.Minute)
	def(&o.WarmUp, o.Duration/6)
	def(&o.Clients, 40)
	def(&o.Rate, 4)
	def(&o.Think, 3*time.Second)
	def(&o.Offline, 5*time.Second)
	def(&o.TokenTTL, time.Minute)
	def(&o.Retention, 2*time.Minute)
	def(&o.SettleTimeout, 60*time.Second)
}

func (o *SoakOpts) validate() error {
	switch {
	case o.Clients < 4 || o.Clients%2 != 0:
		return errors.New("soak clients must be even and at least 4")
	case o.Rate <= 0 || o.Duration <= 0 || o.SampleEvery <= 0 || o.WarmUp < 0 || o.WarmUp >= o.Duration:
		return errors.New("soak sizes must be positive (warm-up shorter than the duration)")
	case o.TokenTTL < 3*time.Second:
		return errors.New("soak token lifetime must be at least 3s")
	case o.Retention < 20*time.Second:
		return errors.New("soak retention must be at least 20s (the auth service's reuse grace is 10 s)")
	}
	return nil
}

// SoakEnv is the environment a child server of the soak gets (SoakOpts.TokenTTL, Retention).
func SoakEnv(o SoakOpts) []string {
	o.withDefaults()
	d := func(x time.Duration) string { return x.String() }
	return []string{
		"RIPPLE_ACCESS_TOKEN_TTL=" + d(o.TokenTTL),
		"RIPPLE_MUTATION_LOG_RETENTION=" + d(o.Retention),
		"RIPPLE_COMPLETED_JOB_RETENTION=" + d(o.Retention),
		"RIPPLE_SPENT_TOKEN_RETENTION=" + d(o.Retention),
		"RIPPLE_HOUSEKEEPING_INTERVAL=" + d(o.Retention/2),
	}
}

// soakRules are the sampled series and their bounds (trend.go). Latency is noisy on a shared
// machine (other processes' load comes and goes), so its bound is loose: it catches a delivery
// path that slows down steadily, not a busy minute.
var soakRules = []trendRule{
	{"server RSS bytes", 0.20, 0},
	{"Go heap bytes", 0.25, 0},
	{"goroutines", 0.25, 100},
	{"open fds", 0.25, 100},
	{"pool connections", 0.50, 4},
	{"Postgres backends", 0.50, 4},
	{"River job rows", 0.50, 50},
	{"mutation log rows", 0.50, 50},
	{"refresh token rows", 0.50, 50},
	{"auth session rows", 0.50, 20},
	{"rate-limit rows", 0.50, 20},
	{"embedding queue", 0.50, 50},
	{"delivery p50 ms", 2.00, 250},
	{"delivery p99 ms", 2.00, 250},
}

// SoakSample is one sample: the server's resources with the churn paused and settled.
type SoakSample struct {
	AtSec float64 `json:"atSec"`
	// Clients connected (the bench's count) against the server's sockets and subscriptions,
	// with the operator's watch socket included on both sides.
	Clients       int   `json:"clients"`
	Sockets       int64 `json:"sockets"`
	Subscriptions int64 `json:"subscriptions"`
	HeldQueries   int64 `json:"heldQueries"`
	// Values by rule name (soakRules); -1 when not measurable.
	Values map[string]float64 `json:"values"`
	// Since the previous sample: messages sent, delivered, and sends left without an answer
	// (the sender dropped off first: the message may or may not be there).
	Sent       int `json:"sent"`
	Delivered  int `json:"delivered"`
	Unanswered int `json:"unanswered"`
	// Actions since the previous sample, by kind.
	Actions map[string]int `json:"actions"`
}

// SoakReport is the soak's outcome.
type SoakReport struct {
	Samples  []SoakSample   `json:"samples"`
	Verdicts []TrendVerdict `json:"verdicts"`
	Missing  int            `json:"missing"`
	Failures []string       `json:"failures"`
}

// soaker is one client of the population: an account, and its socket while online.
type soaker struct {
	e    *soakEnv
	acct *account
	// convs are the account's conversations; convs[0] is the one it chats in, always open while
	// online; the others are opened and closed at random.
	convs []string
	rng   *rand.Rand

	mu      sync.Mutex // guards c, leaving, token, refresh, tokenAt
	c       *client
	raw     net.Conn // c's TCP connection, for an abrupt reset
	leaving bool
	token   string
	refresh string
	tokenAt time.Time

	pending atomic.Int64 // deliveries expected on c, not seen yet
}

// soakMsg is one message: 0 pending, 1 delivered, 2 unanswered (sender dropped off), 3 missing.
type soakMsg struct {
	to    *soaker
	sent  time.Time
	state atomic.Int32
}

type soakEnv struct {
	*env
	o        SoakOpts
	soakHTTP *http.Client // refreshes and searches
	prefix   string
	gate     sync.RWMutex // actions hold it shared; a sample holds it exclusively
	pop      []*soaker
	admin    *client
	started  time.Time

	mu        sync.Mutex // guards msgs, lat, counters, failures
	msgs      []*soakMsg
	lat       []time.Duration // since the last sample
	allLat    []time.Duration
	sent      int // since the last sample, and so on
	delivered int
	unanswer  int
	actions   map[string]int
	failures  []string
	missing   int
	protoErrs int64 // of the sockets closed so far: broken transition chains, failed queries, auth errors
}

func (s *soakEnv) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	if len(s.failures) < 20 {
		s.failures = append(s.failures, msg)
	}
	s.mu.Unlock()
	s.progress("soak: %s", msg)
}

func (s *soakEnv) count(action string) {
	s.mu.Lock()
	s.actions[action]++
	s.mu.Unlock()
}

// soak runs the soak scenario.
func (e *env) soak(ctx context.Context) ([]Result, error) {
	o := e.cfg.Soak
	s := &soakEnv{env: e, o: o, prefix: "soak " + randomHex(3) + " #", actions: map[string]int{},
		soakHTTP: boundClient(e.addrs.take())}
	defer s.soakHTTP.CloseIdleConnections()
	accts, err := e.api.signUpPairs(ctx, o.Clients, "soak")
	if err != nil {
		return nil, err
	}
	// Besides its partner's (accounts 2k, 2k+1), each account shares a conversation with the
	// accounts two and three further on, to open and close.
	extra := map[int][]string{}
	for i := range accts {
		for _, d := range []int{2, 3} {
			j := (i + d) % len(accts)
			conv, err := e.api.direct(ctx, accts[i], accts[j])
			if err != nil {
				return nil, err
			}
			extra[i] = append(extra[i], conv)
			extra[j] = append(extra[j], conv)
		}
	}
	for i, a := range accts {
		s.pop = append(s.pop, &soaker{e: s, acct: a, convs: append([]string{a.convID}, extra[i]...),
			rng: rand.New(rand.NewPCG(rand.Uint64(), uint64(i))), token: a.token, refresh: a.refresh, tokenAt: time.Now()})
	}
	e.progress("soak: %d clients, %g msg/s, %s, sampling every %s after a %s warm-up", o.Clients, o.Rate, o.Duration, o.SampleEvery, o.WarmUp)
	for _, p := range s.pop {
		if err := p.connect(ctx); err != nil {
			return nil, fmt.Errorf("connecting the population: %w", err)
		}
	}
	if e.srv.AdminKey != "" {
		if s.admin, err = s.watch(ctx, accts[0]); err != nil {
			return nil, fmt.Errorf("the operator's watch: %w", err)
		}
	}

	s.started = time.Now()
	runCtx, stop := context.WithTimeout(ctx, o.Duration)
	defer stop()
	var wg sync.WaitGroup
	for _, p := range s.pop {
		wg.Add(2)
		go func() { defer wg.Done(); p.act(runCtx) }()
		go func() { defer wg.Done(); p.refresher(runCtx) }()
	}
	wg.Add(2)
	go func() { defer wg.Done(); s.sendLoop(runCtx) }()
	go func() { defer wg.Done(); s.scrapeLoop(runCtx) }()

	rep := &SoakReport{}
	fmt.Fprintln(e.cfg.Out, soakHeader())
	tick := time.NewTicker(o.SampleEvery)
	for done := false; !done; {
		select {
		case <-runCtx.Done():
			done = true
		case <-tick.C:
			smp := s.sample(ctx)
			rep.Samples = append(rep.Samples, smp)
			fmt.Fprintln(e.cfg.Out, soakRow(smp))
		}
	}
	tick.Stop()
	wg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	// Every client leaves, waiting first for what was sent to it.
	for _, p := range s.pop {
		p.leave(ctx, false)
	}
	if s.admin != nil {
		s.admin.close()
		s.protoErrs += s.admin.protocolErrors.Load()
	}
	s.mu.Lock()
	if s.protoErrs > 0 {
		s.mu.Unlock()
		s.fail("%d protocol errors (broken transition chains, failed queries or auth errors) on the clients' sockets", s.protoErrs)
		s.mu.Lock()
	}
	for _, m := range s.msgs {
		if m.state.CompareAndSwap(0, 3) {
			s.missing++
		}
	}
	rep.Missing = s.missing
	s.mu.Unlock()

	rep.Verdicts = soakVerdicts(rep.Samples, o.WarmUp.Seconds())
	fmt.Fprintf(e.cfg.Out, "soak trends after the %s warm-up (fail when the fitted growth exceeds tolerance × max(mean, floor)):\n", o.WarmUp)
	for _, v := range rep.Verdicts {
		fmt.Fprintln(e.cfg.Out, "  "+v.String())
		if !v.Pass {
			s.fail("%s grows: %.4g over the window, allowed %.4g", v.Name, v.Growth, v.Allowed)
		}
	}
	if rep.Missing > 0 {
		s.fail("%d messages never reached their receiver", rep.Missing)
	}
	s.mu.Lock()
	rep.Failures = slices.Clone(s.failures)
	r := Result{Scenario: "soak", Name: fmt.Sprintf("%d clients, %g msg/s, %s", o.Clients, o.Rate, o.Duration),
		Clients: o.Clients, RatePerSec: o.Rate, DurationSec: time.Since(s.started).Seconds(), Latency: percentiles(s.allLat)}
	s.mu.Unlock()
	for _, smp := range rep.Samples {
		r.Messages += smp.Sent
		r.Delivered += smp.Delivered
		r.Expected += smp.Sent - smp.Unanswered
	}
	// What was sent after the last sample is in the totals too.
	s.mu.Lock()
	r.Messages += s.sent
	r.Delivered += s.delivered
	r.Expected += s.sent - s.unanswer
	s.mu.Unlock()
	// Every answered send committed (a failed one fails the run).
	r.Committed = r.Expected
	r.Soak = rep
	r.Notes = rep.Failures
	if len(rep.Failures) > 0 {
		return []Result{r}, fmt.Errorf("soak failed: %s", strings.Join(rep.Failures, "; "))
	}
	fmt.Fprintln(e.cfg.Out, "soak passed: every series flat after the warm-up, every message delivered")
	return []Result{r}, nil
}

// soakVerdicts fits every rule's series over the samples taken after warmUp seconds.
func soakVerdicts(samples []SoakSample, warmUp float64) []TrendVerdict {
	var out []TrendVerdict
	for _, rule := range soakRules {
		var t, v []float64
		for _, s := range samples {
			if x, ok := s.Values[rule.Name]; ok && x >= 0 && s.AtSec >= warmUp {
				t, v = append(t, s.AtSec), append(v, x)
			}
		}
		out = append(out, fitTrend(rule, t, v))
	}
	return out
}

// ---------- the clients ----------

// connect opens the client's socket with the chat screen on its own conversation.
func (p *soaker) connect(ctx context.Context) error {
	p.mu.Lock()
	token := p.token
	p.mu.Unlock()
	acct := *p.acct
	acct.token = token
	var raw net.Conn
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := &net.Dialer{Timeout: 10 * time.Second}
		c, err := d.DialContext(ctx, network, addr)
		raw = c
		return c, err
	}}}
	dctx, cancel := context.WithTimeout(ctx, p.e.o.SettleTimeout)
	defer cancel()
	c, err := p.e.dial.openVia(dctx, hc, &acct, func(c *client) {
		c.id, c.pageSize, c.onMessages = p.acct.index, p.e.cfg.PageSize, p.e.observeSoak
	})
	if err != nil {
		return err
	}
	c.soaker = p
	if err := c.subscribeApp(dctx); err == nil {
		err = c.waitUntil(dctx, func() bool { return c.identity >= 1 && c.allAnswered() })
	}
	if err == nil {
		if f := c.firstFailure(); f != "" {
			err = errors.New(f)
		}
	}
	if err != nil {
		c.close()
		return err
	}
	p.mu.Lock()
	p.c, p.raw = c, raw
	p.mu.Unlock()
	return nil
}

// leave closes the socket (with a close frame, or abruptly with a TCP reset) once every
// delivery expected on it arrived (or SettleTimeout passed: those messages are missing).
func (p *soaker) leave(ctx context.Context, reset bool) {
	p.mu.Lock()
	c, raw := p.c, p.raw
	if c == nil {
		p.mu.Unlock()
		return
	}
	p.leaving = true
	p.mu.Unlock()
	deadline := time.Now().Add(p.e.o.SettleTimeout)
	for p.pending.Load() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	p.e.mu.Lock()
	for _, m := range p.e.msgs {
		if m.to == p && m.state.CompareAndSwap(0, 3) {
			p.e.missing++
			p.pending.Add(-1)
		}
	}
	p.e.mu.Unlock()
	if reset {
		if tcp, ok := raw.(*net.TCPConn); ok {
			_ = tcp.SetLinger(0)
		}
		if raw != nil {
			_ = raw.Close()
		}
	}
	c.close()
	p.e.mu.Lock()
	p.e.protoErrs += c.protocolErrors.Load()
	p.e.mu.Unlock()
	p.mu.Lock()
	p.c, p.raw, p.leaving = nil, nil, false
	p.mu.Unlock()
}

// online is the client's socket, or nil while it is away (or on its way out).
func (p *soaker) online() *client {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.leaving {
		return nil
	}
	return p.c
}

// act is one client's life: think, then do something, until ctx ends.
func (p *soaker) act(ctx context.Context) {
	o := p.e.o
	for ctx.Err() == nil {
		if !sleepCtx(ctx, time.Duration(p.rng.ExpFloat64()*float64(o.Think))) {
			return
		}
		p.e.gate.RLock()
		away := p.step(ctx)
		p.e.gate.RUnlock()
		if away {
			if !sleepCtx(ctx, time.Duration(p.rng.ExpFloat64()*float64(o.Offline))) {
				return
			}
			p.e.gate.RLock()
			// A sample may have brought the client back already.
			if p.online() == nil {
				if err := p.connect(ctx); err != nil && ctx.Err() == nil {
					p.e.fail("reconnecting %s: %v", p.acct.email, err)
				}
				p.e.count("reconnect")
			}
			p.e.gate.RUnlock()
		}
	}
}

// step does one action; it returns true when the client went away.
func (p *soaker) step(ctx context.Context) bool {
	c := p.online()
	if c == nil {
		return false
	}
	if c.deadErr() != nil {
		// The socket died under the client (it should not: tokens are refreshed in time).
		p.e.fail("%s's socket closed by the server: %v", p.acct.email, c.deadErr())
		p.leave(ctx, false)
		return true
	}
	actx, cancel := context.WithTimeout(ctx, p.e.o.SettleTimeout)
	defer cancel()
	var err error
	var name string
	switch x := p.rng.IntN(100); {
	case x < 22:
		name, err = "open", p.openConv(actx, c)
	case x < 44:
		name, err = "close", p.closeConv(actx, c)
	case x < 66:
		name, err = "scroll", p.scroll(actx, c)
	case x < 80:
		name, err = "search", p.search(actx)
	case x < 90:
		p.e.count("disconnect")
		p.leave(ctx, false)
		return true
	default:
		p.e.count("reset")
		p.leave(ctx, true)
		return true
	}
	p.e.count(name)
	if err != nil && ctx.Err() == nil {
		p.e.fail("%s by %s: %v", name, p.acct.email, err)
	}
	return false
}

// openConv opens one of the account's other conversations not open yet (its first page).
func (p *soaker) openConv(ctx context.Context, c *client) error {
	c.mu.Lock()
	open := map[string]bool{}
	for _, th := range c.threads {
		open[th.convID] = true
	}
	c.mu.Unlock()
	var closed []string
	for _, conv := range p.convs[1:] {
		if !open[conv] {
			closed = append(closed, conv)
		}
	}
	if len(closed) == 0 {
		return nil
	}
	conv := closed[p.rng.IntN(len(closed))]
	var first *page
	err := c.modify(ctx, func() []addMod {
		c.nextPag++
		th := &thread{convID: conv, pagID: c.nextPag}
		first = &page{thread: th}
		th.pages = []*page{first}
		c.mu.Lock()
		c.threads = append(c.threads, th)
		c.mu.Unlock()
		return []addMod{c.addQuery("messages:list", c.pageArgs(first), first)}
	})
	if err != nil {
		return err
	}
	return c.waitAnswered(ctx)
}

// closeConv closes one open conversation other than the client's own: every page of it is
// unsubscribed.
func (p *soaker) closeConv(ctx context.Context, c *client) error {
	c.mu.Lock()
	if len(c.threads) < 2 {
		c.mu.Unlock()
		return nil
	}
	i := 1 + p.rng.IntN(len(c.threads)-1)
	th := c.threads[i]
	var qids []int64
	for _, pg := range th.pages {
		qids = append(qids, pg.qid)
		for _, half := range pg.split {
			qids = append(qids, half.qid)
		}
	}
	c.threads = slices.Delete(c.threads, i, i+1)
	for _, q := range qids {
		delete(c.queries, q)
	}
	c.mu.Unlock()
	return c.modify(ctx, func() []addMod {
		mods := make([]addMod, 0, len(qids))
		for _, q := range qids {
			mods = append(mods, addMod{Type: "Remove", QueryID: q})
		}
		return mods
	})
}

// scroll loads the next older page of an open conversation, unless it is at the top.
func (p *soaker) scroll(ctx context.Context, c *client) error {
	c.mu.Lock()
	th := c.threads[p.rng.IntN(len(c.threads))]
	last := th.pages[len(th.pages)-1]
	if last.res == nil || last.res.IsDone {
		c.mu.Unlock()
		return nil
	}
	cursor := last.res.ContinueCursor
	next := &page{thread: th, cursor: &cursor}
	th.pages = append(th.pages, next)
	c.mu.Unlock()
	if err := c.modify(ctx, func() []addMod { return []addMod{c.addQuery("messages:list", c.pageArgs(next), next)} }); err != nil {
		return err
	}
	return c.waitAnswered(ctx)
}

// search runs messages:search in the client's own conversation over HTTP.
func (p *soaker) search(ctx context.Context) error {
	p.mu.Lock()
	token := p.token
	p.mu.Unlock()
	var resp struct {
		Status       string `json:"status"`
		ErrorMessage string `json:"errorMessage"`
	}
	body := map[string]any{"path": "messages:search", "format": "json",
		"args": []any{map[string]any{"conversationId": p.convs[0], "query": "soak message"}}}
	if err := postJSON(ctx, p.e.soakHTTP, p.e.srv.URL+"/api/action", token, body, &resp); err != nil {
		return err
	}
	if resp.Status != "success" {
		return fmt.Errorf("messages:search: %s", resp.ErrorMessage)
	}
	return nil
}

// refresher refreshes the client's token at a third of its lifetime, online or not, and
// authenticates its socket with the new one, as the official client's token fetcher does.
func (p *soaker) refresher(ctx context.Context) {
	ttl := p.e.o.TokenTTL
	for sleepCtx(ctx, ttl/12) {
		p.mu.Lock()
		due := time.Since(p.tokenAt) > ttl/3
		refresh := p.refresh
		p.mu.Unlock()
		if !due {
			continue
		}
		var resp authResponse
		// Started at a third of the lifetime at the latest 5/12 of it; done by 11/12.
		rctx, cancel := context.WithTimeout(ctx, ttl/2)
		err := postJSON(rctx, p.e.soakHTTP, p.e.srv.URL+"/api/auth/refresh", "", map[string]string{"refreshToken": refresh}, &resp)
		cancel()
		if err != nil || resp.AccessToken == "" || resp.RefreshToken == "" {
			if ctx.Err() == nil {
				p.e.fail("refreshing %s's token: %v", p.acct.email, err)
			}
			continue
		}
		p.mu.Lock()
		p.token, p.refresh, p.tokenAt = resp.AccessToken, resp.RefreshToken, time.Now()
		c := p.c
		if p.leaving {
			c = nil
		}
		p.mu.Unlock()
		p.e.count("refresh")
		if c != nil {
			// The server takes the new token when the frame arrives; the wait is for the
			// transition that re-runs the queries under it.
			actx, cancel := context.WithTimeout(ctx, p.e.o.SettleTimeout)
			if err := c.reauthenticate(actx, resp.AccessToken); err != nil && ctx.Err() == nil && c.deadErr() == nil {
				p.e.fail("authenticating %s's socket with a refreshed token: %v", p.acct.email, err)
			}
			cancel()
		}
	}
}

// reauthenticate sends Authenticate with a new token on the open socket.
func (c *client) reauthenticate(ctx context.Context, token string) error {
	c.mu.Lock()
	base := c.identity
	c.mu.Unlock()
	c.wmu.Lock()
	err := c.write(ctx, map[string]any{"type": "Authenticate", "tokenType": "User", "value": token, "baseVersion": base})
	c.wmu.Unlock()
	if err != nil {
		return err
	}
	return c.waitUntil(ctx, func() bool { return c.identity > base })
}

// waitAnswered waits until every subscription has a result and the server has seen the
// client's latest query set.
func (c *client) waitAnswered(ctx context.Context) error {
	if err := c.waitUntil(ctx, c.allAnswered); err != nil {
		return err
	}
	if f := c.firstFailure(); f != "" {
		return errors.New(f)
	}
	return nil
}

func (c *client) deadErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readErr
}

func (c *client) heldQueries() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int64(len(c.queries))
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// ---------- messages ----------

// sendLoop sends at the steady rate: each message from a random client to its partner, when
// both are online (a real user does not write to a closed screen; skipped sends are not made
// up later).
func (s *soakEnv) sendLoop(ctx context.Context) {
	interval := time.Duration(float64(time.Second) / s.o.Rate)
	rng := rand.New(rand.NewPCG(rand.Uint64(), 7))
	next := time.Now()
	for {
		next = next.Add(interval)
		if !sleepCtx(ctx, time.Until(next)) {
			return
		}
		k := rng.IntN(len(s.pop) / 2)
		from, to := s.pop[2*k], s.pop[2*k+1]
		if rng.IntN(2) == 1 {
			from, to = to, from
		}
		s.gate.RLock()
		s.sendOne(ctx, from, to)
		s.gate.RUnlock()
	}
}

func (s *soakEnv) sendOne(ctx context.Context, from, to *soaker) {
	sender := from.online()
	if sender == nil {
		return
	}
	// The receiver cannot start leaving between being found online and expecting the message.
	to.mu.Lock()
	if to.c == nil || to.leaving {
		to.mu.Unlock()
		return
	}
	m := &soakMsg{to: to, sent: time.Now()}
	s.mu.Lock()
	seq := len(s.msgs)
	s.msgs = append(s.msgs, m)
	s.sent++
	s.mu.Unlock()
	to.pending.Add(1)
	to.mu.Unlock()
	body := s.prefix + strconv.Itoa(seq) + " sent " + strconv.FormatInt(m.sent.UnixNano(), 10)
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	ch, err := sender.send(sctx, body)
	cancel()
	if err != nil {
		s.unanswered(m)
		return
	}
	go func() {
		r := <-ch
		if !r.ok {
			if r.errMsg != "socket closed" {
				s.fail("messages:send: %s", r.errMsg)
			}
			s.unanswered(m)
		}
	}()
}

// unanswered gives up on a message whose send got no answer (the sender dropped off): it may
// not have been written, so it is not expected (but counted if it shows up).
func (s *soakEnv) unanswered(m *soakMsg) {
	if m.state.CompareAndSwap(0, 2) {
		m.to.pending.Add(-1)
		s.mu.Lock()
		s.unanswer++
		s.mu.Unlock()
	}
}

// observeSoak is every client's first-page hook: a message addressed to this client counts as
// delivered the first time it shows up, live or in a first result after a reconnect.
func (s *soakEnv) observeSoak(c *client, msgs []wireMessage, at time.Time) {
	for i := range msgs {
		rest, ok := strings.CutPrefix(msgs[i].Body, s.prefix)
		if !ok {
			continue
		}
		if j := strings.IndexByte(rest, ' '); j >= 0 {
			rest = rest[:j]
		}
		seq, err := strconv.Atoi(rest)
		if err != nil {
			continue
		}
		s.mu.Lock()
		if seq < 0 || seq >= len(s.msgs) || s.msgs[seq].to != c.soaker {
			s.mu.Unlock()
			continue
		}
		m := s.msgs[seq]
		if m.state.CompareAndSwap(0, 1) {
			m.to.pending.Add(-1)
			s.delivered++
			s.lat = append(s.lat, at.Sub(m.sent))
			s.allLat = append(s.allLat, at.Sub(m.sent))
		}
		s.mu.Unlock()
	}
}

// ---------- the operator ----------

// watch opens the operator's socket: the admin key, acting as the account, watching
// conversations:list (what `ripple run --watch` does).
func (s *soakEnv) watch(ctx context.Context, as *account) (*client, error) {
	subject, err := tokenSubject(as.token)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, s.o.SettleTimeout)
	defer cancel()
	conn, _, err := websocket.Dial(wctx, s.dial.wsURL, &websocket.DialOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(64 << 20)
	c := &client{id: -2, acct: as, conn: conn, queries: map[int64]*subState{}, mutWait: map[int64]chan mutationResult{},
		changed: make(chan struct{}), done: make(chan struct{}), lastEnd: version{TS: "AAAAAAAAAAA="}}
	go c.readLoop()
	for _, m := range []map[string]any{
		{"type": "Connect", "sessionId": uuid(), "connectionCount": 0, "lastCloseReason": "InitialConnect", "clientTs": time.Now().UnixMilli()},
		{"type": "Authenticate", "tokenType": "Admin", "value": s.srv.AdminKey, "baseVersion": 0, "impersonating": map[string]string{"subject": subject}},
	} {
		if err := c.write(wctx, m); err != nil {
			c.close()
			return nil, err
		}
	}
	if err := c.modify(wctx, func() []addMod { return []addMod{c.addQuery("conversations:list", map[string]any{}, nil)} }); err != nil {
		c.close()
		return nil, err
	}
	if err := c.waitAnswered(wctx); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// tokenSubject is the sub claim of a JWT (read, not verified: it is the bench's own token).
func tokenSubject(token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("the access token is not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if err := json.Unmarshal(raw, &claims); err != nil || claims.Sub == "" {
		return "", fmt.Errorf("the access token has no subject (%v)", err)
	}
	return claims.Sub, nil
}

// scrapeLoop scrapes /metrics every few seconds, as a Prometheus server would.
func (s *soakEnv) scrapeLoop(ctx context.Context) {
	if s.srv.MetricsURL == "" {
		return
	}
	for sleepCtx(ctx, 5*time.Second) {
		if _, err := s.scrape(ctx); err != nil && ctx.Err() == nil {
			s.fail("scraping /metrics: %v", err)
		}
		s.count("scrape")
	}
}

// scrape reads the server's metrics: unlabelled series by name, labelled ones summed by name.
func (s *soakEnv) scrape(ctx context.Context) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.srv.MetricsURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.meter.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 64<<20))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		name := line[:i]
		if j := strings.IndexByte(name, '{'); j >= 0 {
			name = name[:j]
		}
		out[name] += v
	}
	return out, sc.Err()
}

// ---------- sampling ----------

// sample pauses the churn, waits for the server to hold exactly what the clients hold, and
// reads everything.
func (s *soakEnv) sample(ctx context.Context) SoakSample {
	s.gate.Lock()
	defer s.gate.Unlock()
	smp := SoakSample{AtSec: time.Since(s.started).Seconds(), Values: map[string]float64{}}
	// Every client away comes back first: samples of the whole population are comparable
	// (goroutines, descriptors and memory go with the sockets held). The bench's idle HTTP
	// connections are closed, so the server's count of them does not vary from sample to sample.
	s.soakHTTP.CloseIdleConnections()
	s.meter.http.CloseIdleConnections()
	for _, p := range s.pop {
		if p.online() == nil {
			if err := p.connect(ctx); err != nil && ctx.Err() == nil {
				s.fail("at %.0fs reconnecting %s: %v", smp.AtSec, p.acct.email, err)
			}
			s.count("rejoin")
		}
	}
	var live []*client
	for _, p := range s.pop {
		if c := p.online(); c != nil && c.deadErr() == nil {
			live = append(live, c)
		}
	}
	if s.admin != nil {
		live = append(live, s.admin)
	}
	smp.Clients = len(live)
	sctx, cancel := context.WithTimeout(ctx, s.o.SettleTimeout)
	defer cancel()
	for _, c := range live {
		if err := c.waitUntil(sctx, c.allAnswered); err != nil {
			s.fail("at %.0fs a client's queries did not settle: %v", smp.AtSec, err)
			break
		}
	}
	for _, c := range live {
		smp.HeldQueries += c.heldQueries()
	}
	var m map[string]float64
	for {
		var err error
		if m, err = s.scrape(sctx); err != nil {
			s.fail("at %.0fs scraping /metrics: %v", smp.AtSec, err)
			return smp
		}
		smp.Sockets, smp.Subscriptions = int64(m["ripple_sockets"]), int64(m["ripple_subscriptions"])
		if smp.Sockets == int64(smp.Clients) && smp.Subscriptions == smp.HeldQueries {
			break
		}
		if !sleepCtx(sctx, 100*time.Millisecond) {
			s.fail("at %.0fs the server holds %d sockets and %d subscriptions, the clients %d and %d",
				smp.AtSec, smp.Sockets, smp.Subscriptions, smp.Clients, smp.HeldQueries)
			break
		}
	}
	if s.srv.GC != nil {
		if err := s.srv.GC(sctx); err != nil {
			s.fail("collecting the server's garbage: %v", err)
		} else if m2, err := s.scrape(sctx); err == nil {
			m = m2
		}
	}
	get := func(name string) float64 {
		if v, ok := m[name]; ok {
			return v
		}
		return -1
	}
	smp.Values["Go heap bytes"] = get("go_memstats_heap_alloc_bytes")
	smp.Values["goroutines"] = get("go_goroutines")
	smp.Values["server RSS bytes"] = get("process_resident_memory_bytes")
	smp.Values["open fds"] = get("process_open_fds")
	smp.Values["pool connections"] = get("ripple_db_pool_connections")
	smp.Values["embedding queue"] = get("ripple_embedding_queue")
	if rss := s.meter.rss(); rss > 0 {
		smp.Values["server RSS bytes"] = float64(rss)
	}
	if s.srv.PID > 0 {
		if fds, err := os.ReadDir("/proc/" + strconv.Itoa(s.srv.PID) + "/fd"); err == nil {
			smp.Values["open fds"] = float64(len(fds))
		}
	}
	s.rows(sctx, smp.Values)

	s.mu.Lock()
	p := percentiles(s.lat)
	smp.Values["delivery p50 ms"], smp.Values["delivery p99 ms"] = -1, -1
	if len(s.lat) > 0 {
		smp.Values["delivery p50 ms"], smp.Values["delivery p99 ms"] = p.P50, p.P99
	}
	smp.Sent, smp.Delivered, smp.Unanswered, smp.Actions = s.sent, s.delivered, s.unanswer, s.actions
	s.sent, s.delivered, s.unanswer, s.actions, s.lat = 0, 0, 0, map[string]int{}, nil
	// Sent counts are per interval, the messages kept for the final check.
	s.mu.Unlock()
	return smp
}

// rows counts the server's Postgres backends and the rows of what grows by design.
func (s *soakEnv) rows(ctx context.Context, into map[string]float64) {
	conn := s.meter.conn
	for _, k := range []string{"Postgres backends", "River job rows", "mutation log rows", "refresh token rows", "auth session rows", "rate-limit rows"} {
		into[k] = -1
	}
	if conn == nil {
		return
	}
	var n int64
	if s.srv.AppName != "" {
		if conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", s.srv.AppName).Scan(&n) == nil {
			into["Postgres backends"] = float64(n)
		}
	}
	for k, table := range map[string]string{"River job rows": "river_job", "mutation log rows": "ripple_mutation_log",
		"refresh token rows": "ripple_auth_refresh_tokens", "auth session rows": "ripple_auth_sessions", "rate-limit rows": "ripple_auth_rate_limits"} {
		id := pgx.Identifier{table}
		if s.srv.AppName != "" {
			id = pgx.Identifier{s.srv.AppName, table}
		}
		if conn.QueryRow(ctx, "SELECT count(*) FROM "+id.Sanitize()).Scan(&n) == nil {
			into[k] = float64(n)
		}
	}
}

// ---------- the table ----------

var soakColumns = []struct {
	head, key string
	scale     float64
}{
	{"RSS MiB", "server RSS bytes", 1 << 20}, {"heap MiB", "Go heap bytes", 1 << 20}, {"gorout", "goroutines", 1},
	{"fds", "open fds", 1}, {"pool", "pool connections", 1}, {"pg", "Postgres backends", 1},
	{"jobs", "River job rows", 1}, {"mutlog", "mutation log rows", 1}, {"refresh", "refresh token rows", 1},
	{"sess", "auth session rows", 1}, {"ratelim", "rate-limit rows", 1}, {"embedq", "embedding queue", 1},
	{"p50 ms", "delivery p50 ms", 1}, {"p99 ms", "delivery p99 ms", 1},
}

func soakHeader() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| %5s | %7s | %11s | %11s |", "min", "clients", "sockets", "subs/held")
	for _, c := range soakColumns {
		fmt.Fprintf(&b, " %8s |", c.head)
	}
	fmt.Fprintf(&b, " %9s |", "sent/dlvd")
	b.WriteString("\n|" + strings.Repeat("---|", 5+len(soakColumns)))
	return b.String()
}

func soakRow(s SoakSample) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| %5.1f | %7d | %11d | %5d/%-5d |", s.AtSec/60, s.Clients, s.Sockets, s.Subscriptions, s.HeldQueries)
	for _, c := range soakColumns {
		v := s.Values[c.key]
		if v < 0 {
			fmt.Fprintf(&b, " %8s |", "-")
		} else if c.scale != 1 || v != float64(int64(v)) {
			fmt.Fprintf(&b, " %8.1f |", v/c.scale)
		} else {
			fmt.Fprintf(&b, " %8d |", int64(v))
		}
	}
	fmt.Fprintf(&b, " %4d/%-4d |", s.Sent, s.Delivered)
	return b.String()
}
