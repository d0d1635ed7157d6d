package benchchat

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
)

// GroupOpts configures the group scenario: Groups groups of Members members, each member one
// socket with the app's subscriptions (users:me, conversations:list and messages:list of the
// group, open), members sending at Rate in total.
type GroupOpts struct {
	// Groups and Members per group. Defaults 10 and 30.
	Groups, Members int
	// Rate is messages per second over all groups (round robin over groups, each group's
	// members in turn). Default 20.
	Rate float64
	// Messages sent in the phase. Default 300.
	Messages int
}

// Query-run counters the server exports (engine/metrics.go).
const (
	queryRunsMetric = "ripple_query_executions_total"
	rerunsMetric    = "ripple_reruns_total"
)

// group: G groups of M members chatting; each message must reach the other M-1 members' open
// threads. Besides latency (every delivery, and the slowest member of each message) it reports
// the cost per message sent: CPU, statements and query runs. A message re-runs its group's
// shared thread query once and each member's conversations:list (the unread count is theirs),
// so query runs per message are about 1 + M.
func (e *env) group(ctx context.Context) ([]Result, error) {
	o := e.cfg.Group
	accts, err := e.api.signUp(ctx, o.Groups*o.Members, "grp"+randomHex(4))
	if err != nil {
		return nil, err
	}
	e.progress("group: creating %d groups of %d", o.Groups, o.Members)
	convs := make([]string, o.Groups)
	for g := range o.Groups {
		members := accts[g*o.Members : (g+1)*o.Members]
		id, err := e.api.createGroup(ctx, members[0], fmt.Sprintf("Bench group %d", g), members[1:])
		if err != nil {
			return nil, err
		}
		convs[g] = id
		for _, a := range members {
			a.convID = id
		}
	}
	e.progress("group: connecting %d members", len(accts))
	cl, err := e.connect(ctx, accts, 16, true)
	if err != nil {
		return nil, err
	}
	byGroup := make([][]*client, o.Groups)
	for i, c := range cl {
		byGroup[i/o.Members] = append(byGroup[i/o.Members], c)
	}

	t := newMultiTracker(randomHex(3), o.Messages, nil)
	senders := make([]atomic.Int32, o.Messages)
	t.accept = func(c *client, seq int) bool {
		g := seq % o.Groups
		return c.acct.convID == convs[g] && int32(c.id)+1 != senders[seq].Load()
	}
	t.expect(o.Messages * (o.Members - 1))
	e.waitBackground(ctx)
	p := e.beginPhase(ctx, fmt.Sprintf("%d groups of %d members, %g msg/s", o.Groups, o.Members, o.Rate), t)
	p.r.RatePerSec = o.Rate
	interval := time.Duration(float64(time.Second) / o.Rate)
	for k := 0; k < o.Messages && ctx.Err() == nil; k++ {
		if wait := time.Until(p.start.Add(time.Duration(k) * interval)); wait > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
		members := byGroup[k%o.Groups]
		from := members[(k/o.Groups)%len(members)]
		senders[k].Store(int32(from.id) + 1)
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, _ = t.send(sctx, from, k, nil)
		cancel()
	}
	r := p.end(ctx)

	t.mu.Lock()
	var slowest []time.Duration
	for _, d := range t.multiLast {
		if d > 0 {
			slowest = append(slowest, d)
		}
	}
	t.mu.Unlock()
	r.Extra = map[string]any{"groups": o.Groups, "members": o.Members, "slowestMemberLatency": latencyMap(percentiles(slowest))}
	// The figures per delivery (Result's) over M-1 deliveries per message, and per message sent.
	if sent := float64(r.Committed); sent > 0 {
		perSend := float64(r.Delivered) / sent
		if r.ServerCPUMsPerMsg != nil {
			r.Extra["serverCpuMsPerSend"] = round3(*r.ServerCPUMsPerMsg * perSend)
		}
		if r.PostgresCPUMsPerMsg != nil {
			r.Extra["postgresCpuMsPerSend"] = round3(*r.PostgresCPUMsPerMsg * perSend)
		}
		if r.StatementsPerMsg != nil {
			r.Extra["statementsPerSend"] = round3(*r.StatementsPerMsg * perSend)
		}
		// Read with the phase's statement count, from the same scrapes.
		c0, c1 := p.st0.counters, p.st1.counters
		if _, ok := c0[queryRunsMetric]; ok && c1 != nil {
			r.Extra["queryRunsPerSend"] = round3((c1[queryRunsMetric] - c0[queryRunsMetric]) / sent)
			r.Extra["rerunsPerSend"] = round3((c1[rerunsMetric] - c0[rerunsMetric]) / sent)
		} else {
			r.Notes = append(r.Notes, "query runs unknown: the server's metrics could not be read")
		}
	}
	r.Notes = append(r.Notes, "latency: every (message, other member) delivery; slowestMemberLatency: per message, its last member; "+
		"query runs: the server's ripple_query_executions_total (each member's conversations:list re-runs; the group's messages:list once, shared)")
	return []Result{r}, ctx.Err()
}

// createGroup makes a group of creator and the members (conversations:createGroup over the HTTP
// function API, as the app does).
func (a *apiClient) createGroup(ctx context.Context, creator *account, name string, members []*account) (string, error) {
	client := boundClient(a.addrs.take())
	defer client.CloseIdleConnections()
	emails := make([]string, len(members))
	for i, m := range members {
		emails[i] = m.email
	}
	var resp struct {
		Status       string `json:"status"`
		Value        string `json:"value"`
		ErrorMessage string `json:"errorMessage"`
	}
	body := map[string]any{"path": "conversations:createGroup", "format": "convex_encoded_json", "args": []any{map[string]any{"name": name, "emails": emails}}}
	if err := postJSON(ctx, client, a.base+"/api/mutation", creator.token, body, &resp); err != nil {
		return "", fmt.Errorf("conversations:createGroup: %w", err)
	}
	if resp.Status != "success" || resp.Value == "" {
		return "", fmt.Errorf("conversations:createGroup: %s", strings.TrimSpace(resp.ErrorMessage))
	}
	return resp.Value, nil
}

func latencyMap(p Percentiles) map[string]float64 {
	return map[string]float64{"p50Ms": p.P50, "p90Ms": p.P90, "p99Ms": p.P99, "maxMs": p.Max}
}
