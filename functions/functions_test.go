package functions_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/engine/embedding"
	"github.com/ripplehq/ripple/functions"
	"github.com/ripplehq/ripple/internal/testdb"
)

type testBundle struct {
	db     *testdb.Bundle
	engine *engine.Engine
}

type setupOpts struct {
	embedder embedding.Provider
	// register adds test functions to the chat's.
	register func(*engine.Registry)
}

func setup(t *testing.T, opts *setupOpts) *testBundle {
	t.Helper()
	ctx := context.Background()
	db := testdb.NewSchema(t)
	reg := engine.NewRegistry()
	functions.Register(reg, &functions.Deps{Embedder: embedderOr(t, opts.embedder)})
	if opts.register != nil {
		opts.register(reg)
	}
	e, err := engine.New(db.Pool, reg, &engine.Config{Schema: db.Schema, JobWorkers: 4})
	require.NoError(t, err)
	require.NoError(t, e.Start(ctx))
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, e.Stop(stopCtx))
	})
	return &testBundle{db: db, engine: e}
}

// embedderOr is p, or the local provider when p is nil.
func embedderOr(t *testing.T, p embedding.Provider) embedding.Provider {
	t.Helper()
	if p != nil {
		return p
	}
	local, err := embedding.New(embedding.Config{Provider: embedding.ProviderLocal})
	require.NoError(t, err)
	return local
}

func (b *testBundle) user(t *testing.T, name string) engine.Identity {
	var id int64
	require.NoError(t, b.db.Pool.QueryRow(context.Background(),
		"INSERT INTO users (name, email) VALUES ($1, $2) RETURNING id", name, name+"@school.test").Scan(&id))
	return engine.Identity{UserID: strconv.FormatInt(id, 10)}
}

func (b *testBundle) call(t *testing.T, who engine.Identity, path string, args any, out any) error {
	t.Helper()
	return b.engine.Call(context.Background(), path, args, who, out)
}

func requireCode(t *testing.T, err error, code engine.ErrorCode) {
	t.Helper()
	require.Error(t, err)
	e, ok := engine.AsError(err)
	require.True(t, ok, "want a %s error, got %v", code, err)
	require.Equal(t, code, e.Code, e.Message)
}

func (b *testBundle) direct(t *testing.T, a, c engine.Identity, cName string) string {
	var id string
	require.NoError(t, b.call(t, a, "conversations:getOrCreateDirect", map[string]any{"email": cName + "@school.test"}, &id))
	return id
}

func TestUsersMe(t *testing.T) {
	t.Parallel()
	b := setup(t, &setupOpts{})
	ann := b.user(t, "ann")
	var me *functions.User
	require.NoError(t, b.call(t, engine.Identity{}, "users:me", map[string]any{}, &me))
	require.Nil(t, me)
	require.NoError(t, b.call(t, ann, "users:me", map[string]any{}, &me))
	require.Equal(t, &functions.User{ID: ann.UserID, Name: "ann", Email: "ann@school.test"}, me)
}

func TestGetOrCreateDirect(t *testing.T) {
	t.Parallel()
	b := setup(t, &setupOpts{})
	ann, bob := b.user(t, "ann"), b.user(t, "bob")

	requireCode(t, b.call(t, engine.Identity{}, "conversations:getOrCreateDirect", map[string]any{"email": "bob@school.test"}, nil), engine.CodeUnauthenticated)
	requireCode(t, b.call(t, ann, "conversations:getOrCreateDirect", map[string]any{"email": "nobody@school.test"}, nil), engine.CodeNotFound)
	requireCode(t, b.call(t, ann, "conversations:getOrCreateDirect", map[string]any{"email": "ANN@school.test"}, nil), engine.CodeInvalidArgument)
	requireCode(t, b.call(t, ann, "conversations:getOrCreateDirect", map[string]any{"email": 7}, nil), engine.CodeInvalidArgument)

	// Both sides at once, many times: one conversation.
	var wg sync.WaitGroup
	ids := make([]string, 16)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			who, other := ann, "bob"
			if i%2 == 1 {
				who, other = bob, "ann"
			}
			require.NoError(t, b.call(t, who, "conversations:getOrCreateDirect", map[string]any{"email": " " + other + "@School.test "}, &ids[i]))
		}()
	}
	wg.Wait()
	for _, id := range ids {
		require.Equal(t, ids[0], id)
	}
	var n int
	require.NoError(t, b.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM conversations").Scan(&n))
	require.Equal(t, 1, n)
}

func TestConversationsListAndMessages(t *testing.T) {
	t.Parallel()
	b := setup(t, &setupOpts{})
	ann, bob, cat := b.user(t, "ann"), b.user(t, "bob"), b.user(t, "cat")
	withBob := b.direct(t, ann, bob, "bob")
	withCat := b.direct(t, ann, cat, "cat")

	var sent string
	require.NoError(t, b.call(t, ann, "messages:send", map[string]any{"conversationId": withBob, "body": "  hi bob  "}, &sent))
	requireCode(t, b.call(t, ann, "messages:send", map[string]any{"conversationId": withBob, "body": "   "}, nil), engine.CodeInvalidArgument)
	requireCode(t, b.call(t, ann, "messages:send", map[string]any{"conversationId": withBob, "body": string(make([]byte, 4001))}, nil), engine.CodeInvalidArgument)
	requireCode(t, b.call(t, engine.Identity{}, "messages:send", map[string]any{"conversationId": withBob, "body": "x"}, nil), engine.CodeUnauthenticated)

	// cat is not in ann+bob's conversation, and cannot tell it from one that does not exist.
	requireCode(t, b.call(t, cat, "messages:send", map[string]any{"conversationId": withBob, "body": "sneaky"}, nil), engine.CodeForbidden)
	page := map[string]any{"numItems": 10, "cursor": nil}
	requireCode(t, b.call(t, cat, "messages:list", map[string]any{"conversationId": withBob, "paginationOpts": page}, nil), engine.CodeForbidden)
	requireCode(t, b.call(t, cat, "messages:list", map[string]any{"conversationId": "999999", "paginationOpts": page}, nil), engine.CodeForbidden)
	requireCode(t, b.call(t, cat, "messages:search", map[string]any{"conversationId": withBob, "query": "hi"}, nil), engine.CodeForbidden)

	var list []functions.Conversation
	require.NoError(t, b.call(t, ann, "conversations:list", map[string]any{}, &list))
	require.Len(t, list, 2)
	require.Equal(t, withBob, list[0].ID, "most recent activity first")
	require.Equal(t, "direct", list[0].Type)
	require.Equal(t, "hi bob", list[0].LastMessage.Body)
	require.Equal(t, ann.UserID, list[0].LastMessage.SenderID)
	require.Len(t, list[0].Participants, 2)
	require.Equal(t, withCat, list[1].ID)
	require.Nil(t, list[1].LastMessage)

	// Pages, newest first, with cursors.
	for i := 0; i < 25; i++ {
		require.NoError(t, b.call(t, bob, "messages:send", map[string]any{"conversationId": withBob, "body": fmt.Sprintf("m%d", i)}, nil))
	}
	var first functions.PaginationResult[functions.Message]
	require.NoError(t, b.call(t, bob, "messages:list", map[string]any{"conversationId": withBob, "paginationOpts": map[string]any{"numItems": 10, "cursor": nil}}, &first))
	require.Len(t, first.Page, 10)
	require.False(t, first.IsDone)
	require.Equal(t, "m24", first.Page[0].Body)
	var second functions.PaginationResult[functions.Message]
	require.NoError(t, b.call(t, bob, "messages:list", map[string]any{"conversationId": withBob, "paginationOpts": map[string]any{"numItems": 20, "cursor": first.ContinueCursor}}, &second))
	require.Len(t, second.Page, 16)
	require.True(t, second.IsDone)
	require.Equal(t, "m14", second.Page[0].Body)
	require.Equal(t, "hi bob", second.Page[15].Body)

	// endCursor pins a page: (cursor, endCursor] even after new messages arrive.
	require.NoError(t, b.call(t, ann, "messages:send", map[string]any{"conversationId": withBob, "body": "newer"}, nil))
	var pinned functions.PaginationResult[functions.Message]
	require.NoError(t, b.call(t, bob, "messages:list", map[string]any{"conversationId": withBob, "paginationOpts": map[string]any{"numItems": 10, "cursor": first.ContinueCursor, "endCursor": second.ContinueCursor}}, &pinned))
	require.Len(t, pinned.Page, 16)
	require.NoError(t, b.call(t, bob, "messages:list", map[string]any{"conversationId": withBob, "paginationOpts": map[string]any{"numItems": 10, "cursor": nil, "endCursor": first.ContinueCursor}}, &pinned))
	require.Len(t, pinned.Page, 11)
	require.Equal(t, "newer", pinned.Page[0].Body)
}

// countingEmbedder counts provider calls and texts, to show a burst is embedded in batches and
// no text is sent twice.
type countingEmbedder struct {
	embedding.Provider
	calls, texts atomic.Int64
}

func (c *countingEmbedder) Embed(ctx context.Context, texts []string, input embedding.InputType) ([][]float32, error) {
	if input == embedding.InputDocument {
		c.calls.Add(1)
		c.texts.Add(int64(len(texts)))
	}
	return c.Provider.Embed(ctx, texts, input)
}

func TestWorkflowEmbedsEveryMessageOnceAndSearchFindsIt(t *testing.T) {
	t.Parallel()
	local, err := embedding.New(embedding.Config{Provider: embedding.ProviderLocal})
	require.NoError(t, err)
	counter := &countingEmbedder{Provider: local}
	b := setup(t, &setupOpts{embedder: counter})
	ann, bob, cat := b.user(t, "ann"), b.user(t, "bob"), b.user(t, "cat")
	conv := b.direct(t, ann, bob, "bob")
	otherConv := b.direct(t, ann, cat, "cat")

	bodies := []string{
		"The maths test is on Friday, revise chapter four",
		"Can you bring the football to practice tomorrow?",
		"Lunch at the cafeteria was pizza again",
	}
	for i := 0; i < 200; i++ {
		body := fmt.Sprintf("message number %d about the weekend", i)
		if i < len(bodies) {
			body = bodies[i]
		}
		who := ann
		if i%2 == 1 {
			who = bob
		}
		require.NoError(t, b.call(t, who, "messages:send", map[string]any{"conversationId": conv, "body": body}, nil))
	}
	// The same text in a conversation bob is not in must never come back to bob.
	require.NoError(t, b.call(t, ann, "messages:send", map[string]any{"conversationId": otherConv, "body": bodies[0]}, nil))

	ctx := context.Background()
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM message_embeddings").Scan(&n))
		return n == 201
	}, 60*time.Second, 50*time.Millisecond)
	var dup int
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM (SELECT message_id FROM message_embeddings GROUP BY 1 HAVING count(*) > 1) d").Scan(&dup))
	require.Zero(t, dup)
	// Jobs lease what they embed: no text goes to the provider twice, and bursts share calls.
	require.Equal(t, int64(201), counter.texts.Load())
	t.Logf("provider calls for 201 messages: %d", counter.calls.Load())

	// Last activity is the newest message's time, at once.
	var last time.Time
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT max(created_at) FROM messages WHERE conversation_id = $1", conv).Scan(&last))
	var list []functions.Conversation
	require.NoError(t, b.call(t, bob, "conversations:list", map[string]any{}, &list))
	require.Len(t, list, 1)
	require.NotNil(t, list[0].LastMessageTime)
	require.Equal(t, float64(last.UnixMicro())/1000, *list[0].LastMessageTime)

	var hits []functions.SearchHit
	require.NoError(t, b.call(t, bob, "messages:search", map[string]any{"conversationId": conv, "query": "when is the math exam", "limit": 5}, &hits))
	require.NotEmpty(t, hits)
	require.Equal(t, bodies[0], hits[0].Body)
	for _, h := range hits {
		var c string
		require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT conversation_id::text FROM messages WHERE id = $1", h.ID).Scan(&c))
		require.Equal(t, conv, c)
	}
	requireCode(t, b.call(t, bob, "messages:search", map[string]any{"conversationId": conv, "query": "x", "limit": 51}, nil), engine.CodeInvalidArgument)
	requireCode(t, b.call(t, bob, "messages:search", map[string]any{"conversationId": otherConv, "query": "maths"}, nil), engine.CodeForbidden)
}

// cohereServer speaks Cohere's v2 embed API: 429, then 500, then success.
func TestCohereRateLimitSnoozesThenSucceedsOnce(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"message":"rate limited"}`))
		case 2:
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"message":"oops"}`))
		default:
			vec := make([]float64, 1536)
			vec[0] = 1
			w.Header().Set("Content-Type", "application/json")
			_, _ = fmt.Fprintf(w, `{"id":"x","embeddings":{"float":[%s]},"texts":["t"],"meta":{}}`, mustJSON(vec))
		}
	}))
	t.Cleanup(srv.Close)
	embedder, err := embedding.New(embedding.Config{Provider: embedding.ProviderCohere, APIKey: "test-key", BaseURL: srv.URL})
	require.NoError(t, err)
	b := setup(t, &setupOpts{embedder: embedder})
	ann, bob := b.user(t, "ann"), b.user(t, "bob")
	conv := b.direct(t, ann, bob, "bob")
	require.NoError(t, b.call(t, ann, "messages:send", map[string]any{"conversationId": conv, "body": "hello"}, nil))

	ctx := context.Background()
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM message_embeddings").Scan(&n))
		return n == 1
	}, 60*time.Second, 50*time.Millisecond)
	require.GreaterOrEqual(t, calls.Load(), int32(3))
	var model string
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT model FROM message_embeddings").Scan(&model))
	require.Equal(t, embedder.Model(), model)
}

// A message the provider refuses for good is recorded as failed, and the job ends.
func TestPermanentEmbeddingFailureIsRecorded(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"message":"invalid input"}`))
	}))
	t.Cleanup(srv.Close)
	embedder, err := embedding.New(embedding.Config{Provider: embedding.ProviderCohere, APIKey: "test-key", BaseURL: srv.URL})
	require.NoError(t, err)
	b := setup(t, &setupOpts{embedder: embedder})
	ann, bob := b.user(t, "ann"), b.user(t, "bob")
	conv := b.direct(t, ann, bob, "bob")
	var id string
	require.NoError(t, b.call(t, ann, "messages:send", map[string]any{"conversationId": conv, "body": "refused"}, &id))

	ctx := context.Background()
	var reason string
	require.Eventually(t, func() bool {
		return b.db.Pool.QueryRow(ctx, "SELECT reason FROM message_embedding_failures WHERE message_id = $1", id).Scan(&reason) == nil
	}, 30*time.Second, 20*time.Millisecond)
	require.Contains(t, reason, "400")
	// Two more sweeps complete without asking the provider again.
	sweeps := func() (n int) {
		require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM river_job WHERE kind = 'ripple.function' AND state = 'completed'").Scan(&n))
		return n
	}
	after := sweeps()
	require.Eventually(t, func() bool { return sweeps() >= after+2 }, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, int32(1), calls.Load(), "a permanent failure is not retried")
}

// setupLocalChat is a bundle with the local embedding provider, and ann's conversation with bob.
func setupLocalChat(t *testing.T) (*testBundle, engine.Identity, string) {
	t.Helper()
	local, err := embedding.New(embedding.Config{Provider: embedding.ProviderLocal})
	require.NoError(t, err)
	b := setup(t, &setupOpts{embedder: local})
	ann, bob := b.user(t, "ann"), b.user(t, "bob")
	return b, ann, b.direct(t, ann, bob, "bob")
}

// insertLeased writes a message as a dead sweep leaves it: queued (the message queues itself,
// schema 0008) with a lease until leasedUntil (SQL), in one transaction so no live sweep takes
// it first. It returns the message's id.
func insertLeased(t *testing.T, b *testBundle, senderID string, conv any, body, leasedUntil string) int64 {
	t.Helper()
	ctx := context.Background()
	var id int64
	require.NoError(t, pgx.BeginFunc(ctx, b.db.Pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO messages (sender_id, conversation_id, body) VALUES ($1, $2, $3) RETURNING id`,
			senderID, conv, body).Scan(&id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE message_embedding_queue SET leased_until = `+leasedUntil+` WHERE message_id = $1`, id)
		return err
	}))
	return id
}

// A sweep that died holding a lease loses nothing: once the lease expires, the next sweep
// embeds the message.
func TestEmbeddingSweepRecoversExpiredLeases(t *testing.T) {
	t.Parallel()
	b, ann, conv := setupLocalChat(t)
	ctx := context.Background()
	// Written as a dead sweep leaves it: queued, leased until a moment ago, no embedding.
	id := insertLeased(t, b, ann.UserID, conv, "orphaned by a crash", "now() - interval '1 second'")
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM message_embeddings WHERE message_id = $1", id).Scan(&n))
		return n == 1
	}, 30*time.Second, 20*time.Millisecond)
	var queued int
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM message_embedding_queue").Scan(&queued))
	require.Zero(t, queued, "the stored embedding left the queue")
}

// The queue has no foreign key to messages (schema 0012: its check made concurrent sends fail
// serialization): deleting a message still takes its queue row with it, and a row whose message
// is gone (written by hand) leaves the queue at the next sweep instead of being leased forever,
// while the messages queued beside it are embedded.
func TestEmbeddingQueueWithoutItsMessage(t *testing.T) {
	t.Parallel()
	b, ann, conv := setupLocalChat(t)
	ctx := context.Background()
	count := func(sql string, args ...any) (n int) {
		t.Helper()
		require.NoError(t, b.db.Pool.QueryRow(ctx, sql, args...).Scan(&n))
		return n
	}
	// Held by a lease so no sweep takes it before it is deleted.
	deleted := insertLeased(t, b, ann.UserID, conv, "sent, then deleted", "now() + interval '1 hour'")
	_, err := b.db.Pool.Exec(ctx, "DELETE FROM messages WHERE id = $1", deleted)
	require.NoError(t, err)
	require.Zero(t, count("SELECT count(*) FROM message_embedding_queue WHERE message_id = $1", deleted), "the deletion took its queue row")

	var ghost int64
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT coalesce(max(id), 0) + 1000 FROM messages").Scan(&ghost))
	_, err = b.db.Pool.Exec(ctx, "INSERT INTO message_embedding_queue (message_id) VALUES ($1)", ghost)
	require.NoError(t, err)
	kept := insertLeased(t, b, ann.UserID, conv, "queued beside a ghost", "now() - interval '1 second'")
	require.Eventually(t, func() bool {
		return count("SELECT count(*) FROM message_embeddings WHERE message_id = $1", kept) == 1 &&
			count("SELECT count(*) FROM message_embedding_queue") == 0
	}, 30*time.Second, 20*time.Millisecond, "the ghost's row leaves the queue and its neighbour is embedded")
}

// A lease a dead sweep left, however long, is taken back by the next sweep at once: sweeps run
// one at a time (under an exclusive lock that died with the dead one), so the next knows every
// lease it finds is a dead sweep's.
func TestEmbeddingSweepTakesBackADeadSweepsLease(t *testing.T) {
	t.Parallel()
	b, ann, conv := setupLocalChat(t)
	ctx := context.Background()
	id := insertLeased(t, b, ann.UserID, conv, "held by a sweep that crashed", "now() + interval '1 hour'")
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM message_embeddings WHERE message_id = $1", id).Scan(&n))
		return n == 1
	}, 30*time.Second, 20*time.Millisecond, "the dead sweep's message waited for its lease")
}

// While a sweep holds the sweep's lock (in another process, say), no other sweep runs: one
// called directly returns at once and leaves the queue alone; the lock's end lets the next one
// embed everything.
func TestEmbeddingSweepsRunOneAtATime(t *testing.T) {
	t.Parallel()
	b, ann, conv := setupLocalChat(t)
	ctx := context.Background()
	holder, err := b.db.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer holder.Release()
	key := b.db.Schema + ":messages:embedDue"
	_, err = holder.Exec(ctx, "SELECT pg_advisory_lock(hashtextextended($1, 0))", key)
	require.NoError(t, err)

	require.NoError(t, b.call(t, ann, "messages:send", map[string]any{"conversationId": conv, "body": "while another sweep runs"}, nil))
	require.NoError(t, b.engine.Call(ctx, "messages:embedDue", struct{}{}, engine.Identity{Admin: true}, nil))
	var queued, leased int64
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT count(*), count(leased_until) FROM message_embedding_queue").Scan(&queued, &leased))
	require.Equal(t, int64(1), queued)
	require.Zero(t, leased, "a second sweep ran beside the lock's holder")

	_, err = holder.Exec(ctx, "SELECT pg_advisory_unlock(hashtextextended($1, 0))", key)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM message_embedding_queue").Scan(&queued))
		return queued == 0
	}, 30*time.Second, 20*time.Millisecond)
}

func TestSendRefusesNULCharacters(t *testing.T) {
	t.Parallel()
	b := setup(t, &setupOpts{})
	ann, bob := b.user(t, "ann"), b.user(t, "bob")
	conv := b.direct(t, ann, bob, "bob")
	err := b.call(t, ann, "messages:send", map[string]any{"conversationId": conv, "body": "hi\x00there"}, nil)
	requireCode(t, err, engine.CodeInvalidArgument)
}

// A deleted account's token still verifies, but starting a conversation says so clearly.
func TestDeletedUserStartingAConversationIsUnauthenticated(t *testing.T) {
	t.Parallel()
	b := setup(t, &setupOpts{})
	ghost := b.user(t, "ghost")
	b.user(t, "kim")
	_, err := b.db.Pool.Exec(context.Background(), "DELETE FROM users WHERE id = $1", ghost.UserID)
	require.NoError(t, err)
	err = b.call(t, ghost, "conversations:getOrCreateDirect", map[string]any{"email": "kim@school.test"}, nil)
	requireCode(t, err, engine.CodeUnauthenticated)
}

// A message written with plain SQL (psql, another service, an import that is not Ripple's)
// queues itself and is embedded once, like a send; several rows in one statement too.
func TestMessagesWrittenOutsideRippleAreEmbedded(t *testing.T) {
	t.Parallel()
	b, ann, conv := setupLocalChat(t)
	ctx := context.Background()
	rows, err := b.db.Pool.Query(ctx, `INSERT INTO messages (sender_id, conversation_id, body)
		SELECT $1, $2, 'written by psql ' || g FROM generate_series(1, 3) g RETURNING id`, ann.UserID, conv)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	require.Len(t, ids, 3)
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM message_embeddings WHERE message_id = ANY($1)", ids).Scan(&n))
		return n == len(ids)
	}, 30*time.Second, 20*time.Millisecond, "messages written with SQL were not embedded")
	var queued, embedded int
	require.NoError(t, b.db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM message_embedding_queue WHERE message_id = ANY($1)),
		(SELECT count(*) FROM message_embeddings WHERE message_id = ANY($1))`, ids).Scan(&queued, &embedded))
	require.Zero(t, queued, "the queue is empty once they are embedded")
	require.Equal(t, len(ids), embedded, "each embedded once")
}
