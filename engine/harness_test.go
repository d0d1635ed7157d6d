package engine_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/internal/synctest"
	"github.com/ripplehq/ripple/internal/testdb"
	"github.com/ripplehq/ripple/queries"
)

// Test functions over the chat tables, with hand-written SQL in sqlc's shape (a `-- name:`
// header) and hand-written read specs, so the engine is tested without the application.

const (
	sqlMessagesByConversation = `-- name: TestMessageList :many
SELECT id, body FROM messages WHERE conversation_id = $1 ORDER BY created_at, id`
	sqlParticipantGet = `-- name: TestParticipantGet :one
SELECT user_id FROM conversation_participants WHERE conversation_id = $1 AND user_id = $2`
	sqlMessageCount = `-- name: TestMessageCount :one
SELECT count(*) FROM messages WHERE conversation_id = $1`
	sqlMessageInsert = `-- name: TestMessageInsert :one
INSERT INTO messages (sender_id, conversation_id, body) VALUES ($1, $2, $3) RETURNING id`
	sqlUnanalysed = `SELECT count(*) FROM messages`
	sqlLatest     = `-- name: TestMessageLatest :many
SELECT id, body FROM messages WHERE conversation_id = $1 ORDER BY created_at DESC, id DESC LIMIT 3`
	sqlWithConversation = `-- name: TestMessageWithConversation :many
SELECT c.id, coalesce(to_char(c.last_message_time, 'HH24:MI:SS.US'), '-'), m.id, m.body FROM messages m JOIN conversations c ON c.id = m.conversation_id
WHERE m.conversation_id = $1 ORDER BY m.id`
	// Index-range reads, in the shapes readsetgen recognises (their specs below are what it
	// generates for this SQL).
	sqlPageBefore = `-- name: TestMessagePageBefore :many
SELECT id, body, created_at FROM messages
WHERE conversation_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2::timestamptz, $3::bigint))
ORDER BY created_at DESC, id DESC LIMIT $4`
	sqlPageAfter = `-- name: TestMessagePageAfter :many
SELECT id, body FROM messages WHERE conversation_id = $1 AND id > $2 ORDER BY id LIMIT $3`
	sqlWindowCount = `-- name: TestMessageWindowCount :one
SELECT count(*) FROM messages WHERE conversation_id = $1 AND id >= $2 AND id <= $3`
)

var testReadSpecs = map[string]engine.ReadSpec{
	"TestParticipantGet": {Tables: []engine.TableRead{{Table: "conversation_participants", Kind: engine.ReadParam, Column: "conversation_id", Param: 1}}},
	"TestMessageList":    {Tables: []engine.TableRead{{Table: "messages", Kind: engine.ReadParam, Column: "conversation_id", Param: 1}}},
	"TestMessageLatest":  {Tables: []engine.TableRead{{Table: "messages", Kind: engine.ReadParam, Column: "conversation_id", Param: 1}}},
	"TestMessageWithConversation": {Tables: []engine.TableRead{
		{Table: "messages", Kind: engine.ReadParam, Column: "conversation_id", Param: 1},
		{Table: "conversations", Kind: engine.ReadOutput, Column: "id", Output: 0},
	}},
	"TestMessageCount": {Tables: []engine.TableRead{{Table: "messages", Kind: engine.ReadParam, Column: "conversation_id", Param: 1}}},
	"TestMessagePageBefore": {Tables: []engine.TableRead{{Table: "messages", Kind: engine.ReadRange, Range: &engine.RangeSpec{
		Eq: []engine.EqParam{{Column: "conversation_id", Param: 1}}, Order: []string{"created_at", "id"}, Desc: true,
		Bounds: []engine.RangeBound{{Op: "<", Params: []int{2, 3}, Guard: 2}}, Limit: 4, Outputs: []int{2, 0}}}}},
	"TestMessagePageAfter": {Tables: []engine.TableRead{{Table: "messages", Kind: engine.ReadRange, Range: &engine.RangeSpec{
		Eq: []engine.EqParam{{Column: "conversation_id", Param: 1}}, Order: []string{"id"},
		Bounds: []engine.RangeBound{{Op: ">", Params: []int{2}}}, Limit: 3, Outputs: []int{0}}}}},
	"TestMessageWindowCount": {Tables: []engine.TableRead{{Table: "messages", Kind: engine.ReadRange, Range: &engine.RangeSpec{
		Eq: []engine.EqParam{{Column: "conversation_id", Param: 1}}, Order: []string{"id"},
		Bounds: []engine.RangeBound{{Op: ">=", Params: []int{2}}, {Op: "<=", Params: []int{3}}}}}}},
}

// pageArgs select one range of a conversation: messages:pageBefore takes the newest Limit
// messages before (BeforeAt, BeforeID) (all when BeforeAt is empty), messages:pageAfter the
// first Limit with an id above AfterID, messages:windowCount counts ids in [FromID, ToID].
type pageArgs struct {
	ConversationID string `json:"conversationId"`
	BeforeAt       string `json:"beforeAt,omitempty"`
	BeforeID       int64  `json:"beforeId,omitempty"`
	AfterID        int64  `json:"afterId,omitempty"`
	FromID         int64  `json:"fromId,omitempty"`
	ToID           int64  `json:"toId,omitempty"`
	Limit          int    `json:"limit,omitempty"`
}

type convArgs struct {
	ConversationID string `json:"conversationId"`
}

type sendArgs struct {
	ConversationID string `json:"conversationId"`
	Body           string `json:"body"`
}

type message struct {
	ID   string `json:"_id"`
	Body string `json:"body"`
}

// gates are test:wait's, by name.
var gates sync.Map // string -> *gate

type gate struct {
	once sync.Once
	open chan struct{}
	// entered closes when a call first waits at the gate.
	enterOnce sync.Once
	entered   chan struct{}
}

func gateNamed(name string) *gate {
	g, _ := gates.LoadOrStore(name, &gate{open: make(chan struct{}), entered: make(chan struct{})})
	return g.(*gate)
}

// wait waits until the gate opens or ctx ends.
func (g *gate) wait(ctx context.Context) error {
	g.enterOnce.Do(func() { close(g.entered) })
	select {
	case <-g.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// openGate lets every test:wait call on the named gate return (again and again).
func openGate(name string) {
	g := gateNamed(name)
	g.once.Do(func() { close(g.open) })
}

func registerTestFunctions(reg *engine.Registry, senderID int64) {
	reg.AddReadSpecs(testReadSpecs)
	engine.AddQuery(reg, "messages:list", func(ctx *engine.QueryCtx, args convArgs) ([]message, error) {
		rows, err := ctx.DB().Query(ctx, sqlMessagesByConversation, mustInt(args.ConversationID))
		if err != nil {
			return nil, err
		}
		return scanMessages(rows)
	}, nil)
	// A shared query: the conversation's messages, for its participants only.
	engine.AddSharedQuery(reg, "shared:messages", engine.SharedQuery[convArgs, []message]{
		Access: func(ctx *engine.QueryCtx, args convArgs) error {
			me, err := engine.RequireAuth(ctx)
			if err != nil {
				return err
			}
			var id int64
			err = ctx.DB().QueryRow(ctx, sqlParticipantGet, mustInt(args.ConversationID), mustInt(me)).Scan(&id)
			if errors.Is(err, pgx.ErrNoRows) {
				return engine.Forbidden("not a participant")
			}
			return err
		},
		Result: func(ctx *engine.QueryCtx, args convArgs) ([]message, error) {
			if ctx.Identity() != (engine.Identity{}) {
				return nil, errors.New("a shared result ran with an identity")
			}
			rows, err := ctx.DB().Query(ctx, sqlMessagesByConversation, mustInt(args.ConversationID))
			if err != nil {
				return nil, err
			}
			return scanMessages(rows)
		},
	}, nil)
	engine.AddQuery(reg, "messages:count", func(ctx *engine.QueryCtx, args convArgs) (int64, error) {
		var n int64
		err := ctx.DB().QueryRow(ctx, sqlMessageCount, mustInt(args.ConversationID)).Scan(&n)
		return n, err
	}, nil)
	engine.AddQuery(reg, "messages:latest", func(ctx *engine.QueryCtx, args convArgs) ([]message, error) {
		rows, err := ctx.DB().Query(ctx, sqlLatest, mustInt(args.ConversationID))
		if err != nil {
			return nil, err
		}
		return scanMessages(rows)
	}, nil)
	engine.AddQuery(reg, "messages:withConversation", func(ctx *engine.QueryCtx, args convArgs) ([]string, error) {
		rows, err := ctx.DB().Query(ctx, sqlWithConversation, mustInt(args.ConversationID))
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		out := []string{}
		for rows.Next() {
			var convID, msgID int64
			var typ, body string
			if err := rows.Scan(&convID, &typ, &msgID, &body); err != nil {
				return nil, err
			}
			out = append(out, typ+"/"+body)
		}
		return out, rows.Err()
	}, nil)
	// test:breakOnce lists messages, and once per armed token terminates its own backend: the
	// shared snapshot's connection breaks in the middle of a batch.
	engine.AddQuery(reg, "test:breakOnce", func(ctx *engine.QueryCtx, args breakArgs) ([]message, error) {
		rows, err := ctx.DB().Query(ctx, sqlMessagesByConversation, mustInt(args.ConversationID))
		if err != nil {
			return nil, err
		}
		out, err := scanMessages(rows)
		if err != nil {
			return nil, err
		}
		if _, armed := breakTokens.LoadAndDelete(args.Token); armed {
			_, err := ctx.DB().Exec(ctx, "SELECT pg_terminate_backend(pg_backend_pid())")
			return nil, err
		}
		return out, nil
	}, nil)
	engine.AddQuery(reg, "messages:pageBefore", func(ctx *engine.QueryCtx, args pageArgs) ([]message, error) {
		var before *time.Time
		if args.BeforeAt != "" {
			at, err := time.Parse(time.RFC3339Nano, args.BeforeAt)
			if err != nil {
				return nil, engine.InvalidArgument("beforeAt: %v", err)
			}
			before = &at
		}
		rows, err := ctx.DB().Query(ctx, sqlPageBefore, mustInt(args.ConversationID), before, args.BeforeID, args.Limit)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		out := []message{}
		for rows.Next() {
			var m message
			var id int64
			var at time.Time
			if err := rows.Scan(&id, &m.Body, &at); err != nil {
				return nil, err
			}
			m.ID = strconv.FormatInt(id, 10)
			out = append(out, m)
		}
		return out, rows.Err()
	}, nil)
	engine.AddQuery(reg, "messages:pageAfter", func(ctx *engine.QueryCtx, args pageArgs) ([]message, error) {
		rows, err := ctx.DB().Query(ctx, sqlPageAfter, mustInt(args.ConversationID), args.AfterID, args.Limit)
		if err != nil {
			return nil, err
		}
		return scanMessages(rows)
	}, nil)
	engine.AddQuery(reg, "messages:windowCount", func(ctx *engine.QueryCtx, args pageArgs) (int64, error) {
		var n int64
		err := ctx.DB().QueryRow(ctx, sqlWindowCount, mustInt(args.ConversationID), args.FromID, args.ToID).Scan(&n)
		return n, err
	}, nil)
	// The chat's conversations:list statement (queries/conversations.sql), with its generated
	// read set: one statement driven by the user's participations (listone_test.go).
	reg.AddReadSpecs(map[string]engine.ReadSpec{"ConversationSummaryListForUser": queries.ReadSpecs["ConversationSummaryListForUser"]})
	engine.AddQuery(reg, "test:listOne", func(ctx *engine.QueryCtx, args struct {
		UserID string `json:"userId"`
	}) ([]queries.ConversationSummaryListForUserRow, error) {
		return queries.New().ConversationSummaryListForUser(ctx, ctx.DB(),
			queries.ConversationSummaryListForUserParams{UserID: mustInt(args.UserID), MaxUnread: 3})
	}, nil)
	engine.AddMutation(reg, "test:noop", func(ctx *engine.MutationCtx, _ struct{}) (bool, error) { return true, nil }, nil)
	// test:sendOnce stores a body once: a second call with the same body fails, as a resend
	// whose world moved on does.
	engine.AddMutation(reg, "test:sendOnce", func(ctx *engine.MutationCtx, args sendArgs) (string, error) {
		var n int64
		if err := ctx.DB().QueryRow(ctx, "SELECT count(*) FROM messages WHERE body = $1", args.Body).Scan(&n); err != nil {
			return "", err
		}
		if n > 0 {
			return "", engine.InvalidArgument("already sent")
		}
		var id int64
		err := ctx.DB().QueryRow(ctx, sqlMessageInsert, senderID, mustInt(args.ConversationID), args.Body).Scan(&id)
		return strconv.FormatInt(id, 10), err
	}, nil)
	engine.AddQuery(reg, "messages:total", func(ctx *engine.QueryCtx, _ struct{}) (int64, error) {
		var n int64
		err := ctx.DB().QueryRow(ctx, sqlUnanalysed).Scan(&n)
		return n, err
	}, nil)
	engine.AddMutation(reg, "messages:send", func(ctx *engine.MutationCtx, args sendArgs) (string, error) {
		if strings.TrimSpace(args.Body) == "" {
			return "", engine.InvalidArgument("body must not be empty")
		}
		var id int64
		err := ctx.DB().QueryRow(ctx, sqlMessageInsert, senderID, mustInt(args.ConversationID), args.Body).Scan(&id)
		return strconv.FormatInt(id, 10), err
	}, nil)
	engine.AddQuery(reg, "secret:peek", func(ctx *engine.QueryCtx, _ struct{}) (string, error) {
		return "internal", nil
	}, &engine.FunctionOpts{Internal: true})
	engine.AddQuery(reg, "test:pause", func(ctx *engine.QueryCtx, args struct {
		N int `json:"n"`
	}) (int, error) {
		_, err := ctx.DB().Exec(ctx, "SELECT pg_sleep(0.005)")
		return args.N, err
	}, nil)
	// slow:gated counts a conversation's messages once its gate is open (a query as slow as
	// the test wants).
	engine.AddQuery(reg, "slow:gated", func(ctx *engine.QueryCtx, a struct {
		Gate           string `json:"gate"`
		ConversationID string `json:"conversationId"`
	}) (int, error) {
		if err := gateNamed(a.Gate).wait(ctx); err != nil {
			return 0, err
		}
		var n int
		err := ctx.DB().QueryRow(ctx, "SELECT count(*) FROM messages WHERE conversation_id = $1", mustInt(a.ConversationID)).Scan(&n)
		return n, err
	}, nil)
	engine.AddQuery(reg, "slow:sleep", func(ctx *engine.QueryCtx, _ struct{}) (bool, error) {
		_, err := ctx.DB().Exec(ctx, "SELECT pg_sleep(5)")
		return true, err
	}, nil)
	// test:setting changes a setting for itself, then reports it; test:divideByZero fails in SQL,
	// which aborts the transaction it runs in.
	engine.AddQuery(reg, "test:setting", func(ctx *engine.QueryCtx, args struct {
		Set bool
		N   int64
	}) (string, error) {
		if args.Set {
			if _, err := ctx.DB().Exec(ctx, "SET LOCAL work_mem = '77kB'"); err != nil {
				return "", err
			}
		}
		var v string
		err := ctx.DB().QueryRow(ctx, "SELECT current_setting('work_mem')").Scan(&v)
		return v, err
	}, nil)
	engine.AddQuery(reg, "test:divideByZero", func(ctx *engine.QueryCtx, _ struct{}) (int, error) {
		var n int
		err := ctx.DB().QueryRow(ctx, "SELECT 1/0").Scan(&n)
		return n, err
	}, nil)
	// test:limited may be called twice an hour by one client.
	engine.AddMutation(reg, "test:limited", func(ctx *engine.MutationCtx, _ struct{}) (bool, error) { return true, nil },
		&engine.FunctionOpts{RateLimit: &engine.RateLimit{Every: time.Hour, Burst: 2}})
	// test:wait waits until its gate is opened (openGate) or the call ends.
	engine.AddAction(reg, "test:wait", func(ctx *engine.ActionCtx, a struct {
		Gate string `json:"gate"`
	}) (bool, error) {
		select {
		case <-gateNamed(a.Gate).open:
			return true, nil
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}, nil)
	// test:double has validated arguments; test:callDouble calls it from an action with its
	// own argument type (passed as Go values) or a map (passed as JSON).
	engine.AddMutation(reg, "test:double", func(ctx *engine.MutationCtx, a boundedArgs) (int, error) { return 2 * a.N, nil }, nil)
	engine.AddAction(reg, "test:callDouble", func(ctx *engine.ActionCtx, a struct {
		N     int
		AsMap bool
	}) (int, error) {
		var out int
		var args any = boundedArgs{N: a.N}
		if a.AsMap {
			args = map[string]any{"n": a.N}
		}
		err := ctx.RunMutation("test:double", args, &out)
		return out, err
	}, nil)
	engine.AddQuery(reg, "boom:panic", func(ctx *engine.QueryCtx, _ struct{}) (string, error) {
		panic("boom")
	}, nil)
}

func scanMessages(rows pgx.Rows) ([]message, error) {
	defer rows.Close()
	out := []message{}
	for rows.Next() {
		var id int64
		var body string
		if err := rows.Scan(&id, &body); err != nil {
			return nil, err
		}
		out = append(out, message{ID: strconv.FormatInt(id, 10), Body: body})
	}
	return out, rows.Err()
}

type boundedArgs struct {
	N int `json:"n"`
}

func (a *boundedArgs) Validate() error {
	if a.N > 10 {
		return engine.InvalidArgument("n must be at most 10")
	}
	return nil
}

type breakArgs struct {
	ConversationID string `json:"conversationId"`
	Token          string `json:"token"`
}

// breakTokens arms test:breakOnce (token -> struct{}).
var breakTokens sync.Map

func mustInt(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// testBundle is what setup returns.
type testBundle struct {
	db       *testdb.Bundle
	engine   *engine.Engine
	server   *httptest.Server
	senderID int64
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	return setupOn(t, testdb.NewSchema(t))
}

// setupLogical starts an engine with the logical change feed on a schema of the private
// wal_level = logical server.
func setupLogical(t *testing.T) *testBundle {
	t.Helper()
	db := testdb.NewSchemaAt(t, logicalPG.Get(t).URL())
	return setupWith(t, db, func(c *engine.Config) { c.ChangeFeed = engine.ChangeFeedLogical })
}

// setupOn starts an engine (a "process") on an existing schema.
func setupOn(t *testing.T, db *testdb.Bundle) *testBundle {
	t.Helper()
	return setupWith(t, db, nil)
}

// setupWith is setupOn with a chance to change the engine's configuration.
func setupWith(t *testing.T, db *testdb.Bundle, configure func(*engine.Config)) *testBundle {
	t.Helper()
	b := &testBundle{db: db, senderID: insertSender(t, db)}
	reg := engine.NewRegistry()
	registerTestFunctions(reg, b.senderID)
	cfg := &engine.Config{Schema: db.Schema, DisableJobs: true}
	if configure != nil {
		configure(cfg)
	}
	b.serve(t, reg, cfg, func(e *engine.Engine) http.Handler { return e.Handler() })
	return b
}

// insertSender makes the user the test functions send as.
func insertSender(t *testing.T, db *testdb.Bundle) int64 {
	t.Helper()
	var id int64
	require.NoError(t, db.Pool.QueryRow(context.Background(), "INSERT INTO users (name, email) VALUES ('Ann', 'ann-'||gen_random_uuid()||'@example.com') RETURNING id").Scan(&id))
	return id
}

// serve starts an engine with reg and cfg on the bundle's schema and serves handler(engine) on a
// test server; both stop when the test ends.
func (b *testBundle) serve(t *testing.T, reg *engine.Registry, cfg *engine.Config, handler func(*engine.Engine) http.Handler) {
	t.Helper()
	e, err := engine.New(b.db.Pool, reg, cfg)
	require.NoError(t, err)
	require.NoError(t, e.Start(context.Background()))
	srv := httptest.NewServer(handler(e))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		require.NoError(t, e.Stop(context.Background()))
		srv.Close()
	})
	b.engine, b.server = e, srv
}

func (b *testBundle) newConversation(t *testing.T) string {
	var id int64
	require.NoError(t, b.db.Pool.QueryRow(context.Background(), "INSERT INTO conversations (type) VALUES ('group') RETURNING id").Scan(&id))
	return strconv.FormatInt(id, 10)
}

// syncClient is the shared protocol client (internal/synctest) with the test it belongs to,
// for the engine tests' own helpers on it.
type syncClient struct {
	*synctest.Client
	t *testing.T
}

func dial(t *testing.T, b *testBundle) *syncClient {
	t.Helper()
	return &syncClient{Client: synctest.Dial(t, b.server.URL), t: t}
}

// syncURL is the bundle's sync WebSocket address.
func syncURL(b *testBundle) string {
	return synctest.URL(b.server.URL)
}
