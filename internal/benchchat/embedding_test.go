package benchchat

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/engine/embedding"
)

func TestSQLCName(t *testing.T) {
	for text, want := range map[string]string{
		"-- name: EmbeddingInsert :execrows\nINSERT INTO message_embeddings VALUES ($1)":      "EmbeddingInsert",
		"  -- name: EmbeddingQueueLease :many\r\nUPDATE message_embedding_queue q SET x = $1": "EmbeddingQueueLease",
		"-- name: MessageListByIDs :many SELECT id FROM messages":                             "MessageListByIDs",
		"-- Keep each 6 KB vector inline\nALTER TABLE message_embeddings":                     "",
		"SELECT count(*) FROM message_embedding_queue -- name: EmbeddingInsert":               "",
		"-- name:":   "",
		"":           "",
		"-- name: X": "X",
	} {
		require.Equal(t, want, sqlcName(text), text)
	}
}

func TestSweepStatements(t *testing.T) {
	key := func(id int64, top bool) stmtKey { return stmtKey{userID: 10, queryID: id, topLevel: top} }
	texts := map[stmtKey]string{
		key(1, true):  "-- name: EmbeddingQueueLease :many\nUPDATE ...",
		key(2, true):  "-- name: MessageListByIDs :many\nSELECT ...",
		key(3, true):  "-- name: EmbeddingInsert :execrows\nINSERT ...",
		key(4, true):  "-- name: EmbeddingQueueDone :exec\nDELETE ...",
		key(5, true):  "-- name: EmbeddingFailureInsert :exec\nINSERT ...",
		key(6, true):  "-- name: EmbeddingQueueEnsure :exec\nINSERT ...",  // queues; not the sweep's
		key(7, true):  "-- name: EmbeddingSearchExact :many\nWITH ...",    // a search
		key(8, true):  "-- name: MessageSend :one\nWITH ...",              // delivery
		key(9, false): "-- name: EmbeddingInsert :execrows\nINSERT ...",   // nested: inside its caller's time
		key(11, true): "-- name: EmbeddingQueueRelease :exec\nUPDATE ...", // evicted and back
	}
	a := stmtSnapshot{
		pgss:   map[stmtKey]int64{key(1, true): 10, key(2, true): 10, key(3, true): 100, key(4, true): 10, key(6, true): 5, key(7, true): 1, key(8, true): 100, key(9, false): 3, key(11, true): 50},
		pgssMs: map[stmtKey]float64{key(1, true): 5, key(2, true): 2, key(3, true): 300, key(4, true): 4, key(6, true): 1, key(7, true): 9, key(8, true): 200, key(9, false): 7, key(11, true): 80},
	}
	b := stmtSnapshot{
		pgss:   map[stmtKey]int64{key(1, true): 14, key(2, true): 14, key(3, true): 140, key(4, true): 15, key(5, true): 2, key(6, true): 9, key(7, true): 2, key(8, true): 140, key(9, false): 8, key(11, true): 2, key(12, true): 4},
		pgssMs: map[stmtKey]float64{key(1, true): 6.5, key(2, true): 2.25, key(3, true): 412, key(4, true): 5, key(5, true): 0.5, key(6, true): 2, key(7, true): 19, key(8, true): 260, key(9, false): 9, key(11, true): 0.75, key(12, true): 1},
	}
	deltas, reset := diffCalls(a.pgss, b.pgss)
	require.True(t, reset)
	got := sweepStatements(a, b, deltas, texts)
	require.Equal(t, []string{"EmbeddingFailureInsert", "EmbeddingInsert", "EmbeddingQueueDone", "EmbeddingQueueLease", "EmbeddingQueueRelease", "MessageListByIDs"}, got.Statements)
	// Lease 4 + list 4 + insert 40 + done 5 + failure 2 + release 2 (counted whole).
	require.EqualValues(t, 57, got.Calls)
	require.EqualValues(t, 42, got.Texts, "one insert or failure per embedded text")
	// 1.5 + 0.25 + 112 + 1 + 0.5 + 0.75 (the evicted one's new total, not a negative delta).
	require.InDelta(t, 116.0, got.ExecPlanMs, 1e-9)

	require.Nil(t, sweepStatements(a, b, deltas, nil), "no texts: unknown, not zero")
	none := sweepStatements(a, a, nil, nil)
	require.NotNil(t, none, "nothing ran: zero")
	require.Zero(t, none.Calls)
	require.Empty(t, none.Statements)
}

func TestEmbeddingSplit(t *testing.T) {
	r := Result{Delivered: 200, ServerCPUMsPerMsg: fptr(2.1), PostgresCPUMsPerMsg: fptr(5.8)}
	embeddingSplit(&r, fptr(320), ptr64(200), fptr(0.3))
	require.InDelta(t, 1.6, *r.EmbeddingPostgresMsPerMsg, 1e-9)
	require.InDelta(t, 0.3, *r.EmbeddingProviderMsPerMsg, 1e-9)
	require.InDelta(t, 1.9, *r.EmbeddingCPUMsPerMsg, 1e-9)
	require.InDelta(t, 6.0, *r.DeliveryCPUMsPerMsg, 1e-9)
	require.Equal(t, "embedding ≈ 1.900 (postgres 1.600 + provider 0.300);  delivery ≈ 6.000", embeddingCPUText(&r))

	// One message delivered to four sockets: the text is embedded once.
	r = Result{Delivered: 400, ServerCPUMsPerMsg: fptr(1), PostgresCPUMsPerMsg: fptr(1)}
	embeddingSplit(&r, fptr(40), ptr64(100), fptr(0.2))
	require.InDelta(t, 0.05, *r.EmbeddingProviderMsPerMsg, 1e-9)
	require.InDelta(t, 0.15, *r.EmbeddingCPUMsPerMsg, 1e-9)

	// A network provider: the Postgres part is a floor, delivery a ceiling; no totals in JSON.
	r = Result{Delivered: 100, ServerCPUMsPerMsg: fptr(2), PostgresCPUMsPerMsg: fptr(3)}
	embeddingSplit(&r, fptr(50), ptr64(100), nil)
	require.InDelta(t, 0.5, *r.EmbeddingPostgresMsPerMsg, 1e-9)
	require.Nil(t, r.EmbeddingProviderMsPerMsg)
	require.Nil(t, r.EmbeddingCPUMsPerMsg)
	require.Nil(t, r.DeliveryCPUMsPerMsg)
	require.Equal(t, "embedding ≥ 0.500 (postgres 0.500 + provider not measured);  delivery ≤ 4.500", embeddingCPUText(&r))

	// No pg_stat_statements, Postgres CPU not measurable (remote).
	r = Result{Delivered: 100, ServerCPUMsPerMsg: fptr(2)}
	embeddingSplit(&r, nil, ptr64(100), fptr(0.01))
	require.Nil(t, r.EmbeddingPostgresMsPerMsg)
	require.Nil(t, r.EmbeddingCPUMsPerMsg)
	require.Equal(t, "embedding ≥ 0.010 (postgres unknown + provider 0.010);  delivery unknown", embeddingCPUText(&r))

	r = Result{Delivered: 100}
	embeddingSplit(&r, nil, nil, nil)
	require.Equal(t, "embedding unknown;  delivery unknown", embeddingCPUText(&r))

	r = Result{}
	embeddingSplit(&r, fptr(1), ptr64(1), fptr(1))
	require.Nil(t, r.EmbeddingPostgresMsPerMsg, "nothing delivered: no per-message figures")
}

func TestMeasureProvider(t *testing.T) {
	pc := measureProvider(context.Background(), embedding.Config{})
	require.Equal(t, embedding.ProviderLocal, pc.Provider)
	require.NotNil(t, pc.MsPerText, pc.Note)
	require.Positive(t, *pc.MsPerText)
	require.Equal(t, 256, pc.Batch)
	require.Zero(t, pc.Texts%pc.Batch)
	require.GreaterOrEqual(t, pc.Texts, providerMinBatches*pc.Batch)
	require.Contains(t, embeddingMethod(pc), "ms/text")

	pc = measureProvider(context.Background(), embedding.Config{Provider: "openai"})
	require.Nil(t, pc.MsPerText)
	require.Equal(t, "openai", pc.Provider)
	m := embeddingMethod(pc)
	require.Contains(t, m, "provider (openai): a network provider, its compute not measured")
	require.False(t, strings.Contains(m, "\n"), "one line")
}

func ptr64(v int64) *int64 { return &v }
