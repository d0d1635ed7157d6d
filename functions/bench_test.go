package functions_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/engine/embedding"
	"github.com/ripplehq/ripple/functions"
	"github.com/ripplehq/ripple/internal/testdb"
)

// BenchmarkSendWhileJobsRun sends 200 messages as fast as 4 senders (each in a conversation of
// its own) can, while the handleSentMessage jobs that every send schedules run in the same
// process with the local embedding provider. Each iteration is one burst of 200 sends. Reported:
//
//	send-p50-ms, send-p99-ms, send-max-ms  latency of messages:send (engine.Call, commit included)
//	embed-all-ms    from the burst's first send until all 200 messages have an embedding
//	embed-tail-ms   from the burst's last send until then
//	retries/op      serialization retries of mutations during a burst
//
// Run: go test ./functions/ -run '^$' -bench SendWhileJobsRun -benchtime 1x
func BenchmarkSendWhileJobsRun(b *testing.B) {
	const (
		burst   = 200
		senders = 4
	)
	ctx := context.Background()
	db := testdb.NewSchema(b)
	embedder, err := embedding.New(embedding.Config{Provider: embedding.ProviderLocal})
	if err != nil {
		b.Fatal(err)
	}
	reg := engine.NewRegistry()
	functions.Register(reg, &functions.Deps{Embedder: embedder})
	e, err := engine.New(db.Pool, reg, &engine.Config{Schema: db.Schema})
	if err != nil {
		b.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.Stop(stopCtx); err != nil {
			b.Error(err)
		}
	})

	// Each sender talks to a partner in a direct conversation of their own.
	type sender struct {
		who  engine.Identity
		conv string
	}
	var ss []sender
	for i := range senders {
		var ids [2]int64
		for k, name := range []string{fmt.Sprintf("s%d", i), fmt.Sprintf("p%d", i)} {
			if err := db.Pool.QueryRow(ctx, "INSERT INTO users (name, email) VALUES ($1, $1 || '@school.test') RETURNING id", name).Scan(&ids[k]); err != nil {
				b.Fatal(err)
			}
		}
		who := engine.Identity{UserID: strconv.FormatInt(ids[0], 10)}
		var conv string
		if err := e.Call(ctx, "conversations:getOrCreateDirect", map[string]any{"email": fmt.Sprintf("p%d@school.test", i)}, who, &conv); err != nil {
			b.Fatal(err)
		}
		ss = append(ss, sender{who: who, conv: conv})
	}

	var (
		latencies      []time.Duration
		embedAll, tail time.Duration
		rounds         int
		mu             sync.Mutex
	)
	retriesBefore := e.Stats().MutationRetries
	for b.Loop() {
		rounds++
		var ids []string
		start := time.Now()
		var wg sync.WaitGroup
		for s, snd := range ss {
			wg.Go(func() {
				for i := range burst / senders {
					body := fmt.Sprintf("round %d, message %d from sender %d: shall we meet at the library after the maths exam?", rounds, i, s)
					var id string
					t0 := time.Now()
					err := e.Call(ctx, "messages:send", map[string]any{"conversationId": snd.conv, "body": body}, snd.who, &id)
					d := time.Since(t0)
					if err != nil {
						b.Error(err)
						return
					}
					mu.Lock()
					latencies = append(latencies, d)
					ids = append(ids, id)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		lastSend := time.Now()
		if len(ids) != burst {
			b.Fatalf("sent %d of %d messages", len(ids), burst)
		}

		// Until every message of the burst has its embedding.
		deadline := time.Now().Add(2 * time.Minute)
		for {
			var n int
			if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM message_embeddings WHERE message_id = ANY($1::bigint[])", ids).Scan(&n); err != nil {
				b.Fatal(err)
			}
			if n == burst {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("only %d of %d messages had an embedding after 2 minutes", n, burst)
			}
			time.Sleep(5 * time.Millisecond)
		}
		embedAll += time.Since(start)
		tail += time.Since(lastSend)
	}
	b.StopTimer()

	slices.Sort(latencies)
	pct := func(p float64) float64 {
		i := min(len(latencies)-1, int(p*float64(len(latencies))))
		return float64(latencies[i].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "send-p50-ms")
	b.ReportMetric(pct(0.99), "send-p99-ms")
	b.ReportMetric(float64(latencies[len(latencies)-1].Microseconds())/1000, "send-max-ms")
	b.ReportMetric(float64(embedAll.Milliseconds())/float64(rounds), "embed-all-ms")
	b.ReportMetric(float64(tail.Milliseconds())/float64(rounds), "embed-tail-ms")
	b.ReportMetric(float64(e.Stats().MutationRetries-retriesBefore)/float64(rounds), "retries/op")
}
