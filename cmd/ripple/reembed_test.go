package main

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgvector/pgvector-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/engine/embedding"
	"github.com/ripplehq/ripple/functions"
	"github.com/ripplehq/ripple/internal/testdb"
)

const oldModel = "cohere/embed-v4.0@1536"

// reembedSeed is a chat whose embeddings come from a mix of models.
type reembedSeed struct {
	messages []int64 // every message, in id order
	// keptID is the embedding row that already has the current model and must survive.
	keptID int64
}

// seedReembed inserts n messages: the first stale of them embedded with oldModel, the next one
// with current, one with a recorded embedding failure, and the rest with no embedding at all.
func seedReembed(t *testing.T, db *testdb.Bundle, n, stale int, current embedding.Provider, bodies func(i int) string) reembedSeed {
	t.Helper()
	ctx := context.Background()
	var userID, convID int64
	require.NoError(t, db.Pool.QueryRow(ctx, "INSERT INTO users (name, email) VALUES ('ann', 'ann@school.test') RETURNING id").Scan(&userID))
	require.NoError(t, db.Pool.QueryRow(ctx, "INSERT INTO conversations (type) VALUES ('group') RETURNING id").Scan(&convID))
	var s reembedSeed
	for i := range n {
		body := fmt.Sprintf("message %d about the field trip", i)
		if bodies != nil {
			body = bodies(i)
		}
		var id int64
		require.NoError(t, db.Pool.QueryRow(ctx, "INSERT INTO messages (sender_id, conversation_id, body) VALUES ($1, $2, $3) RETURNING id",
			userID, convID, body).Scan(&id))
		s.messages = append(s.messages, id)
	}
	insert := func(msgID int64, vec []float32, model string) int64 {
		var id int64
		require.NoError(t, db.Pool.QueryRow(ctx, `INSERT INTO message_embeddings (message_id, conversation_id, sender_id, embedding, model)
VALUES ($1, $2, $3, $4, $5) RETURNING id`, msgID, convID, userID, pgvector.NewVector(vec), model).Scan(&id))
		return id
	}
	for i := range stale {
		vec := make([]float32, 1536)
		vec[i%1536] = 1 // any unit vector: it is of another model's space
		insert(s.messages[i], vec, oldModel)
	}
	if stale < n {
		var body string
		require.NoError(t, db.Pool.QueryRow(ctx, "SELECT body FROM messages WHERE id = $1", s.messages[stale]).Scan(&body))
		vecs, err := current.Embed(ctx, []string{body}, embedding.InputDocument)
		require.NoError(t, err)
		s.keptID = insert(s.messages[stale], vecs[0], current.Model())
	}
	if stale+1 < n {
		_, err := db.Pool.Exec(ctx, "INSERT INTO message_embedding_failures (message_id, reason) VALUES ($1, 'the old provider refused it')", s.messages[stale+1])
		require.NoError(t, err)
	}
	return s
}

type embeddingState struct {
	total, failures int
	models          map[string]int
}

func readEmbeddingState(t *testing.T, db *testdb.Bundle) embeddingState {
	t.Helper()
	ctx := context.Background()
	s := embeddingState{models: map[string]int{}}
	rows, err := db.Pool.Query(ctx, "SELECT model, count(*) FROM message_embeddings GROUP BY model")
	require.NoError(t, err)
	for rows.Next() {
		var model string
		var n int
		require.NoError(t, rows.Scan(&model, &n))
		s.models[model] = n
		s.total += n
	}
	require.NoError(t, rows.Err())
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*) FROM message_embedding_failures").Scan(&s.failures))
	return s
}

// requireAllCurrent checks that every message has exactly one embedding, of model, and that it is
// the provider's vector for the message's body.
func requireAllCurrent(t *testing.T, db *testdb.Bundle, provider embedding.Provider) {
	t.Helper()
	ctx := context.Background()
	rows, err := db.Pool.Query(ctx, `
SELECT m.id, m.body, count(e.id), coalesce(bool_and(e.model = $1), false), (array_agg(e.embedding))[1]
FROM messages m LEFT JOIN message_embeddings e ON e.message_id = m.id
GROUP BY m.id, m.body ORDER BY m.id`, provider.Model())
	require.NoError(t, err)
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var id, n int64
		var body string
		var current bool
		var vec *pgvector.Vector
		require.NoError(t, rows.Scan(&id, &body, &n, &current, &vec))
		require.Equal(t, int64(1), n, "message %d has %d embeddings", id, n)
		require.True(t, current, "message %d has an embedding of another model", id)
		want, err := provider.Embed(ctx, []string{body}, embedding.InputDocument)
		require.NoError(t, err)
		require.InDeltaSlice(t, want[0], vec.Slice(), 1e-6, "message %d's vector is not its body's", id)
		seen++
	}
	require.NoError(t, rows.Err())
	require.Positive(t, seen)
}

func localProvider(t *testing.T, dims int) embedding.Provider {
	t.Helper()
	p, err := embedding.New(embedding.Config{Provider: embedding.ProviderLocal, Dimensions: dims})
	require.NoError(t, err)
	return p
}

func TestReembedReplacesOtherModels(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.NewSchema(t)
	provider := localProvider(t, 1536)
	seed := seedReembed(t, db, 11, 6, provider, nil)
	before := readEmbeddingState(t, db)
	require.Equal(t, map[string]int{oldModel: 6, provider.Model(): 1}, before.models)

	// A dry run counts and changes nothing.
	res, err := functions.Reembed(ctx, db.Pool, provider, functions.ReembedOpts{BatchSize: 4})
	require.NoError(t, err)
	require.True(t, res.DryRun)
	require.Equal(t, provider.Model(), res.Model)
	require.Equal(t, []functions.ModelCount{{Model: oldModel, Count: 6}, {Model: provider.Model(), Count: 1}}, res.Before)
	require.Equal(t, int64(6), res.Stale)
	require.Equal(t, int64(10), res.Missing, "every message but the one already current")
	require.Zero(t, res.Deleted+res.Embedded+int64(res.Batches))
	require.Equal(t, before, readEmbeddingState(t, db))

	var progress []int64
	res, err = functions.Reembed(ctx, db.Pool, provider, functions.ReembedOpts{Apply: true, BatchSize: 4, Progress: func(r functions.ReembedResult) {
		progress = append(progress, r.Embedded)
	}})
	require.NoError(t, err)
	require.False(t, res.DryRun)
	require.Equal(t, int64(6), res.Deleted)
	require.Equal(t, int64(10), res.Embedded)
	require.Zero(t, res.Failed)
	require.Equal(t, 3, res.Batches, "10 messages in batches of 4")
	require.Equal(t, []int64{4, 8, 10}, progress)
	require.Equal(t, []functions.ModelCount{{Model: provider.Model(), Count: 11}}, res.After)

	after := readEmbeddingState(t, db)
	require.Equal(t, map[string]int{provider.Model(): 11}, after.models)
	require.Zero(t, after.failures, "the failure recorded under the old provider is cleared once embedded")
	requireAllCurrent(t, db, provider)
	var kept int
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*) FROM message_embeddings WHERE id = $1", seed.keptID).Scan(&kept))
	require.Equal(t, 1, kept, "an embedding of the current model is left alone")

	// Nothing left to do.
	res, err = functions.Reembed(ctx, db.Pool, provider, functions.ReembedOpts{Apply: true})
	require.NoError(t, err)
	require.Zero(t, res.Stale+res.Missing+res.Deleted+res.Embedded+int64(res.Batches))
	require.Equal(t, provider.MaxBatch(), res.BatchSize, "the provider's batch size by default")
}

func TestReembedRefusesOtherDimensions(t *testing.T) {
	t.Parallel()
	db := testdb.NewSchema(t)
	seedReembed(t, db, 4, 2, localProvider(t, 1536), nil)
	before := readEmbeddingState(t, db)

	_, err := functions.Reembed(context.Background(), db.Pool, localProvider(t, 768), functions.ReembedOpts{Apply: true})
	require.ErrorIs(t, err, functions.ErrDimensionMismatch)
	require.ErrorContains(t, err, "vector(1536)")
	require.Equal(t, before, readEmbeddingState(t, db), "nothing is deleted")
}

// fakeProvider wraps the local provider: it refuses texts containing "poison" (failing the whole
// call, as real providers do), can refuse everything, and can be rate limited once.
type fakeProvider struct {
	embedding.Provider
	refuseAll   bool
	rateLimited atomic.Bool
	calls       atomic.Int64
}

func (f *fakeProvider) Embed(ctx context.Context, texts []string, input embedding.InputType) ([][]float32, error) {
	f.calls.Add(1)
	if f.rateLimited.CompareAndSwap(true, false) {
		return nil, &embedding.RateLimitedError{Provider: "fake", RetryAfter: time.Millisecond}
	}
	for _, text := range texts {
		if f.refuseAll || strings.Contains(text, "poison") {
			return nil, fmt.Errorf("%w: fake: refused", embedding.ErrPermanent)
		}
	}
	return f.Provider.Embed(ctx, texts, input)
}

func TestReembedIsolatesRefusedMessages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.NewSchema(t)
	local := localProvider(t, 1536)
	seedReembed(t, db, 9, 3, local, func(i int) string {
		if i == 5 {
			return "poison pill"
		}
		return fmt.Sprintf("message %d", i)
	})

	// A provider that refuses everything is misconfigured: stop, record nothing.
	broken := &fakeProvider{Provider: local, refuseAll: true}
	res, err := functions.Reembed(ctx, db.Pool, broken, functions.ReembedOpts{Apply: true, BatchSize: 4})
	require.ErrorIs(t, err, embedding.ErrPermanent)
	require.ErrorContains(t, err, "configuration")
	require.Equal(t, int64(3), res.Deleted)
	require.Equal(t, 1, readEmbeddingState(t, db).failures, "only the seeded failure")

	// A rate limit is waited out; one refused text fails alone and is recorded.
	fake := &fakeProvider{Provider: local}
	fake.rateLimited.Store(true)
	res, err = functions.Reembed(ctx, db.Pool, fake, functions.ReembedOpts{Apply: true, BatchSize: 4, RetryWait: time.Millisecond})
	require.NoError(t, err)
	require.Equal(t, int64(7), res.Embedded)
	require.Equal(t, int64(1), res.Failed)
	state := readEmbeddingState(t, db)
	require.Equal(t, map[string]int{local.Model(): 8}, state.models)
	require.Equal(t, 1, state.failures)
	var reason string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT f.reason FROM message_embedding_failures f JOIN messages m ON m.id = f.message_id
WHERE m.body = 'poison pill'`).Scan(&reason))
	require.Contains(t, reason, "refused")
}

func TestReembedCommand(t *testing.T) {
	t.Parallel()
	db := testdb.NewSchema(t)
	provider := localProvider(t, 1536)
	seedReembed(t, db, 7, 3, provider, nil)
	before := readEmbeddingState(t, db)
	vars := map[string]string{"DATABASE_URL": db.URL}

	res := runBinary(t, vars, "reembed", "--schema", db.Schema)
	require.Equal(t, 0, res.code, res.stderr)
	t.Logf("dry run:\n%s", res.stdout)
	assert.Contains(t, res.stdout, "configured embedding model "+provider.Model())
	assert.Contains(t, res.stdout, oldModel)
	assert.Contains(t, res.stdout, "messages without a "+provider.Model()+" embedding: 6")
	assert.Contains(t, res.stdout, "dry run: would delete 3 embedding(s) of other models, then embed 6 message(s)")
	assert.Contains(t, res.stdout, "--yes")
	require.Equal(t, before, readEmbeddingState(t, db), "a dry run changes nothing")

	res = runBinary(t, vars, "reembed", "--schema", db.Schema, "--yes", "--batch", "4")
	require.Equal(t, 0, res.code, res.stderr)
	t.Logf("applied:\n%s", res.stdout)
	assert.Contains(t, res.stdout, "deleted 3 embedding(s) of other models")
	assert.Contains(t, res.stdout, "embedded 6 message(s) in 2 batch(es)")
	assert.Contains(t, res.stderr, "re-embedding: 6 messages done in ", "progress, as plain lines off a terminal")
	assert.NotContains(t, res.stdout, "warning")
	requireAllCurrent(t, db, provider)

	res = runBinary(t, vars, "reembed", "--schema", db.Schema)
	require.Equal(t, 0, res.code, res.stderr)
	assert.Contains(t, res.stdout, "nothing to do")

	// Another provider's dimensions do not fit the column: refused before anything is deleted.
	res = runBinary(t, map[string]string{"DATABASE_URL": db.URL, "RIPPLE_EMBEDDING_DIMENSIONS": "768"}, "reembed", "--schema", db.Schema, "--yes")
	require.Equal(t, 1, res.code)
	assert.Contains(t, requireOneErrorLine(t, res.stderr), "vector(1536)")
	assert.Equal(t, map[string]int{provider.Model(): 7}, readEmbeddingState(t, db).models)

	res = runBinary(t, vars, "reembed", "--batch", "-1")
	require.Equal(t, 2, res.code)
	requireOneErrorLine(t, res.stderr)
}
