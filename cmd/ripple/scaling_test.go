package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/internal/benchchat"
	"github.com/ripplehq/ripple/internal/testdb"
)

// roundRobin stands in for a load balancer in front of several `ripple serve` processes. Sync
// sockets take turns on a counter of their own, so two sockets opened one after the other (a
// pair of users) are always on different processes; other requests take turns too. It keeps
// the Host header, as a load balancer does, so the same-origin check sees the public address.
type roundRobin struct {
	backends    []*url.URL
	next, socks atomic.Int64
	mu          sync.Mutex
	sockets     map[string]int // per backend host
}

func (rr *roundRobin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	turn := &rr.next
	socket := strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
	if socket {
		turn = &rr.socks
	}
	target := rr.backends[int(turn.Add(1)-1)%len(rr.backends)]
	if socket {
		rr.mu.Lock()
		rr.sockets[target.Host]++
		rr.mu.Unlock()
	}
	proxy := &httputil.ReverseProxy{Rewrite: func(p *httputil.ProxyRequest) {
		p.SetURL(target)
		p.Out.Host = p.In.Host
	}}
	proxy.ServeHTTP(w, r)
}

// Several `ripple serve` processes on one database behind a load balancer: bench chat's pairs
// and one user's many devices, with sockets spread over three processes, get every message
// live whichever process took the write (docs/scaling.md).
func TestThreeServersOneDatabase(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	db := testdb.NewSchema(t)
	// The processes' Postgres backends carry the schema's name, so bench chat can measure them.
	appURL := db.URL + "&application_name=" + db.Schema
	if !strings.Contains(db.URL, "?") {
		appURL = db.URL + "?application_name=" + db.Schema
	}
	vars := map[string]string{"DATABASE_URL": appURL, "RIPPLE_LOG_LEVEL": "warn"}
	rr := &roundRobin{sockets: map[string]int{}}
	for range 3 {
		u, err := url.Parse(startServe(t, vars, db.Schema, "").base())
		require.NoError(t, err)
		rr.backends = append(rr.backends, u)
	}
	lb := httptest.NewServer(rr)
	defer lb.Close()

	var out strings.Builder
	rep, err := benchchat.Run(ctx, &benchchat.Config{
		DatabaseURL: db.URL,
		Launch: func(context.Context) (*benchchat.Server, error) {
			return &benchchat.Server{URL: lb.URL, AppName: db.Schema}, nil
		},
		Scenarios:    []string{"latency", "devices"},
		PageSize:     5,
		DrainTimeout: 60 * time.Second, // a busy machine under -race; nothing here times anything
		JobsTimeout:  -1,
		Latency:      benchchat.LatencyOpts{Rate: 20, Messages: 12, History: -1},
		Devices:      benchchat.DevicesOpts{Counts: []int{6}, Writes: 2, StatsSettle: -1},
		Out:          &out,
	})
	require.NoError(t, err, out.String())
	t.Log(out.String())
	require.Len(t, rep.Results, 2)
	for _, r := range rep.Results {
		require.Positive(t, r.Expected, r.Name)
		require.Equal(t, r.Messages, r.Committed, "%s: every send committed", r.Name)
		require.Equal(t, r.Expected, r.Delivered, "%s: every socket got every message", r.Name)
		require.Zero(t, r.ProtocolErrors, r.Name)
	}
	rr.mu.Lock()
	defer rr.mu.Unlock()
	require.Len(t, rr.sockets, 3, "sockets on every process: %v", rr.sockets)
	for host, n := range rr.sockets {
		require.GreaterOrEqual(t, n, 2, "process %s", host)
	}
}
