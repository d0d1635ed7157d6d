package benchchat

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SearchOpts configures the search scenario: live searches (messages:searchLive) open in one
// conversation, as the web app holds them, while matching messages arrive.
type SearchOpts struct {
	// Searches is how many live searches are open: sockets of the conversation's two members,
	// alternately (tabs and devices), each with the app's subscriptions and one search. Default 50.
	Searches int
	// Texts is how many distinct query texts the searches use, round robin. Default 5.
	Texts int
	// Messages is how many matching messages are sent, one at a time, each matching one text
	// by its words. Default 40.
	Messages int
}

// searchTexts are the query texts; a message matching text t is "<t> update <k> <tag>".
var searchTexts = []string{"field trip", "maths exam", "football practice", "science fair", "library books",
	"school play", "chemistry homework", "art class"}

// searchResult is messages:searchLive's result as the bench reads it.
type searchResult struct {
	Hits []struct {
		Body string `json:"body"`
	} `json:"hits"`
	Semantic string `json:"semantic"`
}

// searcher is one open live search.
type searcher struct {
	c    *client
	qid  int64
	text string

	mu       sync.Mutex
	semantic string
	seen     map[string]time.Time // bodies seen in the results, when first seen
	changed  chan struct{}
}

func (s *searcher) update(value json.RawMessage, at time.Time) {
	var r searchResult
	if json.Unmarshal(value, &r) != nil {
		s.c.protocolErrors.Add(1)
		return
	}
	s.mu.Lock()
	s.semantic = r.Semantic
	for _, h := range r.Hits {
		if _, ok := s.seen[h.Body]; !ok {
			s.seen[h.Body] = at
		}
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// waitFor waits until cond (under s.mu) holds.
func (s *searcher) waitFor(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ok, ch := cond(), s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// search: one conversation, Searches live searches open over Texts query texts, each text prepared
// once (messages:prepareSearch over HTTP, as the web app does when a result says semantic
// "pending"); then Messages matching messages, one at a time, each timed from its Mutation frame
// to every search of its text holding it. Provider calls come from the server's
// ripple_chat_search_query_vectors_total{source="provider"}.
func (e *env) search(ctx context.Context) ([]Result, error) {
	o := e.cfg.Search
	accts, err := e.api.signUpPairs(ctx, 2, "search")
	if err != nil {
		return nil, err
	}
	e.progress("search: opening %d live searches", o.Searches)
	searchers := make([]*searcher, o.Searches)
	for i := range searchers {
		c, err := e.dial.connect(ctx, i, accts[i%2], e.cfg.PageSize, nil, false)
		if err != nil {
			return nil, err
		}
		e.mu.Lock()
		e.clients = append(e.clients, c)
		e.mu.Unlock()
		s := &searcher{c: c, text: searchTexts[i%o.Texts], seen: map[string]time.Time{}, changed: make(chan struct{})}
		searchers[i] = s
		err = c.modify(ctx, func() []addMod {
			m := c.addQuery("messages:searchLive", map[string]any{"conversationId": accts[0].convID, "query": s.text, "limit": 50}, nil)
			s.qid = m.QueryID
			c.mu.Lock()
			c.onResult = func(qid int64, value json.RawMessage, at time.Time) {
				if qid == s.qid {
					s.update(value, at)
				}
			}
			c.mu.Unlock()
			return []addMod{m}
		})
		if err != nil {
			return nil, err
		}
	}
	// A tab whose result says semantic "pending" asks for its text's vector, as the web app
	// does; the first tab of each text is enough for all (the rest see "ready" by themselves).
	hc := boundClient(e.addrs.take())
	defer hc.CloseIdleConnections()
	for _, s := range searchers[:min(o.Texts, len(searchers))] {
		var resp struct {
			Status       string `json:"status"`
			ErrorMessage string `json:"errorMessage"`
		}
		body := map[string]any{"path": "messages:prepareSearch", "format": "convex_encoded_json",
			"args": []any{map[string]string{"conversationId": accts[0].convID, "query": s.text}}}
		if err := postJSON(ctx, hc, e.srv.URL+"/api/action", s.c.acct.token, body, &resp); err != nil {
			return nil, fmt.Errorf("messages:prepareSearch: %w", err)
		}
		if resp.Status != "success" {
			return nil, fmt.Errorf("messages:prepareSearch: %s", resp.ErrorMessage)
		}
	}
	readyCtx, cancel := context.WithTimeout(ctx, time.Minute)
	for _, s := range searchers {
		if err := s.waitFor(readyCtx, func() bool { return s.semantic == "ready" }); err != nil {
			cancel()
			return nil, fmt.Errorf("waiting for the searches' vectors: %w", err)
		}
	}
	cancel()
	callsPrepared, callsOK := e.providerCalls(ctx)

	senders := make([]*client, 2)
	for i := range senders {
		if senders[i], err = e.headless(ctx, accts[i]); err != nil {
			return nil, err
		}
	}
	// Set-up's embeddings are not the phase's.
	e.waitBackground(ctx)
	e.progress("search: %d matching messages", o.Messages)
	tag := randomHex(3)
	var latencies []time.Duration
	r := Result{Scenario: e.scenario, Name: fmt.Sprintf("%d live searches over %d texts in one conversation, %d matching messages one at a time", o.Searches, o.Texts, o.Messages)}
	s0, st0 := e.meter.sample(ctx), e.meter.statementSnapshot(ctx, true)
	start := time.Now()
	for k := 0; k < o.Messages && ctx.Err() == nil; k++ {
		text := searchTexts[k%o.Texts]
		body := fmt.Sprintf("%s update %d %s", text, k, tag)
		sentAt := time.Now()
		ch, err := senders[k%2].send(ctx, body)
		if err != nil {
			return []Result{r}, err
		}
		r.Messages++
		wctx, cancel := context.WithTimeout(ctx, e.cfg.DrainTimeout)
		for _, s := range searchers {
			if s.text != text {
				continue
			}
			r.Expected++
			if s.waitFor(wctx, func() bool { _, ok := s.seen[body]; return ok }) == nil {
				s.mu.Lock()
				latencies = append(latencies, s.seen[body].Sub(sentAt))
				s.mu.Unlock()
				r.Delivered++
			}
		}
		cancel()
		if res := <-ch; res.ok {
			r.Committed++
		}
	}
	r.DurationSec = time.Since(start).Seconds()
	// CPU and statements run until the messages are embedded (the meaning half's work), per
	// appearance in a search (Delivered), as every scenario counts per delivered message.
	e.waitBackground(ctx)
	st1 := e.meter.statementSnapshot(ctx, false)
	delta(s0, e.meter.sample(ctx)).perMessage(&r, r.Delivered)
	if r.Statements = e.meter.statementsBetween(ctx, st0, st1, r.Delivered); r.Statements != nil && r.Statements.Source != sourceUnavailable {
		r.StatementsPerMsg = fptr(r.Statements.PerMsg)
	}
	(&phase{e: e}).splitEmbedding(&r)
	r.ServerRSSBytes = e.meter.rss()
	r.Latency = percentiles(latencies)
	r.Clients = e.connectedClients()
	r.Extra = map[string]any{"searches": o.Searches, "texts": o.Texts}
	if callsEnd, ok := e.providerCalls(ctx); ok && callsOK {
		r.Extra["providerCallsPreparing"] = callsPrepared
		r.Extra["providerCallsPerText"] = round3(float64(callsEnd) / float64(o.Texts))
		r.Extra["providerCallsDuringMessages"] = callsEnd - callsPrepared
	} else {
		r.Notes = append(r.Notes, "provider calls unknown: the server's metrics could not be read")
	}
	for _, s := range searchers {
		r.ProtocolErrors += s.c.protocolErrors.Load()
	}
	if r.Delivered < r.Expected {
		r.Notes = append(r.Notes, fmt.Sprintf("%d of %d appearances missing after %s", r.Expected-r.Delivered, r.Expected, e.cfg.DrainTimeout))
	}
	return []Result{r}, ctx.Err()
}

// providerCalls reads ripple_chat_search_query_vectors_total{source="provider"} from the
// server's metrics.
func (e *env) providerCalls(ctx context.Context) (int64, bool) {
	if e.srv.MetricsURL == "" {
		return 0, false
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.MetricsURL, nil)
	if err != nil {
		return 0, false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, `ripple_chat_search_query_vectors_total{source="provider"} `); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return int64(v), err == nil
		}
	}
	return 0, false
}
