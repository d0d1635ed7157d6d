// Package bench measures Ripple end to end on this machine: the latency from a committed write
// to the subscriber's WebSocket receiving the new result, with one subscriber alone and with
// many idle, unrelated subscriptions held open. `ripple bench` and `go test -bench` run it.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/schema"
)

// Opts configures a latency run.
type Opts struct {
	DatabaseURL string
	// Samples is how many writes are timed per configuration.
	Samples int
	// IdleSubscriptions is how many unrelated subscriptions the second configuration holds.
	IdleSubscriptions int
	// Out receives the report.
	Out io.Writer
}

// Result is one configuration's latencies.
type Result struct {
	Name          string
	Subscriptions int
	Samples       []time.Duration
}

// Percentile returns the p-th percentile (0..100) of the samples.
func (r *Result) Percentile(p float64) time.Duration { return percentile(r.Samples, p) }

// percentile returns the p-th percentile (0..100) of samples (nearest rank, rounding down).
func percentile(samples []time.Duration, p float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	s := append([]time.Duration{}, samples...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	idx := int(float64(len(s)-1) * p / 100)
	return s[idx]
}

// latestSQL costs the same however many messages exist (an index scan for one row), so later
// samples are not slower than earlier ones for reasons that have nothing to do with the engine.
const latestSQL = `-- name: BenchMessageLatest :one
SELECT id FROM messages WHERE conversation_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1`

type countArgs struct {
	ConversationID string `json:"conversationId"`
}

func registry() *engine.Registry {
	reg := engine.NewRegistry()
	reg.AddReadSpecs(map[string]engine.ReadSpec{"BenchMessageLatest": {Tables: []engine.TableRead{{Table: "messages", Kind: engine.ReadParam, Column: "conversation_id", Param: 1}}}})
	engine.AddQuery(reg, "messages:count", func(ctx *engine.QueryCtx, args countArgs) (int64, error) {
		id, err := strconv.ParseInt(args.ConversationID, 10, 64)
		if err != nil {
			return 0, engine.InvalidArgument("bad conversationId")
		}
		var n int64
		err = ctx.DB().QueryRow(ctx, latestSQL, id).Scan(&n)
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, nil
		}
		return n, err
	}, nil)
	return reg
}

// env is a private schema with a running engine and server.
type env struct {
	pool     *pgxpool.Pool
	engine   *engine.Engine
	server   *http.Server
	url      string
	userID   int64
	convID   int64
	cleanups []func()
}

func (e *env) close() {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
}

// privateSchema migrates a new, uniquely named schema and returns a pool whose connections use
// it, and a function that drops the schema and closes the pool.
func privateSchema(ctx context.Context, databaseURL string, maxConns int32) (*pgxpool.Pool, string, func(), error) {
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	name := "bench_" + hex.EncodeToString(suffix[:])
	cfg, err := schema.PoolConfig(databaseURL, name)
	if err != nil {
		return nil, "", nil, err
	}
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, "", nil, err
	}
	drop := func() {
		_, _ = pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE")
		pool.Close()
	}
	if _, err := schema.Migrate(ctx, pool, &schema.MigrateOpts{Schema: name}); err != nil {
		drop()
		return nil, "", nil, err
	}
	return pool, name, drop, nil
}

func newEnv(ctx context.Context, databaseURL string) (*env, error) {
	pool, name, drop, err := privateSchema(ctx, databaseURL, 16)
	if err != nil {
		return nil, err
	}
	e := &env{pool: pool}
	e.cleanups = append(e.cleanups, drop)
	if err := pool.QueryRow(ctx, "INSERT INTO users (name, email) VALUES ('bench', 'bench@example.com') RETURNING id").Scan(&e.userID); err != nil {
		e.close()
		return nil, err
	}
	if err := pool.QueryRow(ctx, "INSERT INTO conversations (type) VALUES ('group') RETURNING id").Scan(&e.convID); err != nil {
		e.close()
		return nil, err
	}
	eng, err := engine.New(pool, registry(), &engine.Config{Schema: name, DisableJobs: true, SendQueueLength: 1024})
	if err != nil {
		e.close()
		return nil, err
	}
	if err := eng.Start(ctx); err != nil {
		e.close()
		return nil, err
	}
	e.engine = eng
	e.cleanups = append(e.cleanups, func() { _ = eng.Stop(context.Background()) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.close()
		return nil, err
	}
	e.server = &http.Server{Handler: eng.Handler()}
	go func() { _ = e.server.Serve(ln) }()
	e.cleanups = append(e.cleanups, func() { _ = e.server.Close() })
	e.url = "ws://" + ln.Addr().String() + "/api/1.48.0/sync"
	return e, nil
}

// socket is a bare protocol client.
type socket struct {
	conn  *websocket.Conn
	qsVer int64
}

func dial(ctx context.Context, url string) (*socket, error) {
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(64 << 20)
	s := &socket{conn: conn}
	return s, s.send(ctx, map[string]any{"type": "Connect", "sessionId": hex.EncodeToString([]byte(url + time.Now().String()))[:32], "connectionCount": 0, "clientTs": 0})
}

func (s *socket) send(ctx context.Context, m any) error {
	buf, _ := json.Marshal(m)
	return s.conn.Write(ctx, websocket.MessageText, buf)
}

func (s *socket) subscribe(ctx context.Context, firstID int64, convIDs []int64) error {
	mods := make([]any, len(convIDs))
	for i, c := range convIDs {
		mods[i] = map[string]any{"type": "Add", "queryId": firstID + int64(i), "udfPath": "messages:count", "args": []any{map[string]any{"conversationId": strconv.FormatInt(c, 10)}}}
	}
	err := s.send(ctx, map[string]any{"type": "ModifyQuerySet", "baseVersion": s.qsVer, "newVersion": s.qsVer + 1, "modifications": mods})
	s.qsVer++
	return err
}

type serverMsg struct {
	Type          string `json:"type"`
	Modifications []struct {
		Type    string          `json:"type"`
		QueryID int64           `json:"queryId"`
		Value   json.RawMessage `json:"value"`
	} `json:"modifications"`
	EndVersion struct {
		QuerySet int64 `json:"querySet"`
	} `json:"endVersion"`
}

// waitQuerySet reads until a transition answers the socket's latest query-set version.
func (s *socket) waitQuerySet(ctx context.Context) error {
	for {
		var m serverMsg
		_, data, err := s.conn.Read(ctx)
		if err != nil {
			return err
		}
		if json.Unmarshal(data, &m) == nil && m.Type == "Transition" && m.EndVersion.QuerySet == s.qsVer {
			return nil
		}
	}
}

// waitValue reads until query 1 has the wanted value.
func (s *socket) waitValue(ctx context.Context, want int64) error {
	wantText := strconv.FormatInt(want, 10)
	for {
		var m serverMsg
		_, data, err := s.conn.Read(ctx)
		if err != nil {
			return err
		}
		if json.Unmarshal(data, &m) != nil || m.Type != "Transition" {
			continue
		}
		for _, mod := range m.Modifications {
			if mod.QueryID == 1 && string(mod.Value) == wantText {
				return nil
			}
		}
	}
}

// measure times `samples` writes from commit to the subscriber's receipt of the new message's
// id (the statement's RETURNING adds no round trip).
func measure(ctx context.Context, e *env, sub *socket, samples int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, samples)
	for i := 0; i < samples; i++ {
		t0 := time.Now()
		var id int64
		if err := e.pool.QueryRow(ctx, "INSERT INTO messages (sender_id, conversation_id, body) VALUES ($1, $2, 'bench') RETURNING id", e.userID, e.convID).Scan(&id); err != nil {
			return nil, err
		}
		if err := sub.waitValue(ctx, id); err != nil {
			return nil, err
		}
		out = append(out, time.Since(t0))
	}
	return out, nil
}

// RunLatency runs both configurations and writes a report.
func RunLatency(ctx context.Context, opts Opts) ([]Result, error) {
	e, err := newEnv(ctx, opts.DatabaseURL)
	if err != nil {
		return nil, err
	}
	defer e.close()

	sub, err := dial(ctx, e.url)
	if err != nil {
		return nil, err
	}
	defer sub.conn.CloseNow()
	if err := sub.subscribe(ctx, 1, []int64{e.convID}); err != nil {
		return nil, err
	}
	if err := sub.waitQuerySet(ctx); err != nil {
		return nil, err
	}
	warm := min(200, opts.Samples/5)
	if _, err := measure(ctx, e, sub, warm); err != nil {
		return nil, err
	}
	alone, err := measure(ctx, e, sub, opts.Samples)
	if err != nil {
		return nil, err
	}
	results := []Result{{Name: "1 subscriber", Subscriptions: 1, Samples: alone}}

	// Hold idle subscriptions to conversations nobody writes to, 500 per socket.
	const perSocket = 500
	var idle []*socket
	defer func() {
		for _, s := range idle {
			s.conn.CloseNow()
		}
	}()
	for n := 0; n < opts.IdleSubscriptions; n += perSocket {
		s, err := dial(ctx, e.url)
		if err != nil {
			return nil, err
		}
		idle = append(idle, s)
		convs := make([]int64, min(perSocket, opts.IdleSubscriptions-n))
		for i := range convs {
			convs[i] = 1_000_000 + int64(n+i)
		}
		if err := s.subscribe(ctx, 1, convs); err != nil {
			return nil, err
		}
		if err := s.waitQuerySet(ctx); err != nil {
			return nil, err
		}
		// Keep draining pings so the server never sees these clients as slow.
		go func() {
			for {
				if _, _, err := s.conn.Read(context.Background()); err != nil {
					return
				}
			}
		}()
	}
	crowded, err := measure(ctx, e, sub, opts.Samples)
	if err != nil {
		return nil, err
	}
	results = append(results, Result{Name: fmt.Sprintf("1 subscriber + %d idle", opts.IdleSubscriptions), Subscriptions: opts.IdleSubscriptions + 1, Samples: crowded})

	if opts.Out != nil {
		fmt.Fprintf(opts.Out, "write -> subscriber update latency (%d samples each)\n", opts.Samples)
		fmt.Fprintf(opts.Out, "%-28s %10s %10s %10s\n", "configuration", "p50", "p99", "max")
		for _, r := range results {
			fmt.Fprintf(opts.Out, "%-28s %10s %10s %10s\n", r.Name, round(r.Percentile(50)), round(r.Percentile(99)), round(r.Percentile(100)))
		}
		stats := e.engine.Stats()
		fmt.Fprintf(opts.Out, "engine: batches=%d executions=%d skipped_changes=%d\n", stats.Batches, stats.Executions, stats.SkippedChanges)
	}
	return results, nil
}

func round(d time.Duration) string { return d.Round(time.Microsecond).String() }
