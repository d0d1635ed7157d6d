package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ripplehq/ripple/engine/internal/caller"
	"github.com/ripplehq/ripple/engine/internal/readset"
	"github.com/ripplehq/ripple/engine/internal/wire"
)

// Identity is the verified caller of a function: UserID (empty when anonymous) and Admin (a
// call made with an admin key, which may also act as a user). The zero value is an anonymous
// caller.
type Identity = caller.Identity

// DBTX is what sqlc-generated code calls; QueryCtx.DB and MutationCtx.DB satisfy it.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// IdentityHolder is implemented by every function context.
type IdentityHolder interface {
	Identity() Identity
}

// RequireAuth returns the signed-in user's ID, or an UNAUTHENTICATED error for an anonymous
// caller. Every function of an application starts with it (or with an explicit check).
func RequireAuth(ctx IdentityHolder) (string, error) {
	id := ctx.Identity()
	if id.UserID == "" {
		return "", Unauthenticated("sign in to do this")
	}
	return id.UserID, nil
}

type baseCtx struct {
	context.Context
	engine    *Engine
	identity  Identity
	requestID string
	logs      *logCollector
	logger    *slog.Logger
}

// Identity is the caller's verified identity.
func (c *baseCtx) Identity() Identity { return c.identity }

// Logger returns a request-scoped logger: its lines go to the server log and, as logLines, back
// to the client that made the call.
func (c *baseCtx) Logger() *slog.Logger { return c.logger }

// RequestID identifies this call in server logs.
func (c *baseCtx) RequestID() string { return c.requestID }

// QueryCtx is passed to queries. Reads go through DB(), in a read-only snapshot shared by every
// query of one update.
type QueryCtx struct {
	baseCtx
	db      *readset.DB
	journal string
}

// DB is the read-only connection for sqlc's generated code. Its reads make up the read set.
func (c *QueryCtx) DB() DBTX { return c.db }

// DependOnTable makes the query re-run on any change to table.
func (c *QueryCtx) DependOnTable(table string) { c.db.Reads().AddTable(table) }

// DependOnKey makes the query re-run on a change to a row of table whose column equals value.
// The column must be watched (a primary key or the leading column of an index), or the whole
// table is depended on.
func (c *QueryCtx) DependOnKey(table, column, value string) {
	if c.db.Catalog().IsWatched(table, column) {
		c.db.Reads().AddKey(table, column, value)
	} else {
		c.db.Reads().AddTable(table)
	}
}

// DescribeReads describes the read set recorded so far, for tests and debugging: `table.*` for
// a whole table, `table.column=value` for a key, ranges as `table[eq…](lo, hi)`; "everything"
// when any change re-runs the query. The order is unspecified.
func (c *QueryCtx) DescribeReads() string { return c.db.Reads().String() }

// Journal is the opaque state the subscription carries between runs (see docs/protocol.md,
// Pagination). It is empty on a first run.
func (c *QueryCtx) Journal() string { return c.journal }

// SetJournal stores state for the next run of this subscription.
func (c *QueryCtx) SetJournal(j string) { c.journal = j }

// MutationCtx is passed to mutations, which run in a SERIALIZABLE transaction.
type MutationCtx struct {
	baseCtx
	tx pgx.Tx
}

// DB is the mutation's transaction, for sqlc's generated code.
func (c *MutationCtx) DB() DBTX { return c.tx }

// Tx is the mutation's transaction, for libraries that take one (River's InsertTx).
func (c *MutationCtx) Tx() pgx.Tx { return c.tx }

// RunAfter schedules a mutation or action to run after delay, transactionally: it runs only if
// this mutation commits. It returns the job's ID, for CancelScheduled.
func (c *MutationCtx) RunAfter(delay time.Duration, path string, args any) (int64, error) {
	return c.engine.schedule(c, c.tx, time.Now().Add(delay), path, args, c.identity)
}

// RunAt schedules a function at a time, transactionally.
func (c *MutationCtx) RunAt(at time.Time, path string, args any) (int64, error) {
	return c.engine.schedule(c, c.tx, at, path, args, c.identity)
}

// CancelScheduled cancels a scheduled function that has not run yet, transactionally.
func (c *MutationCtx) CancelScheduled(jobID int64) error {
	return c.engine.cancelScheduled(c, c.tx, jobID)
}

// ActionCtx is passed to actions, which run outside any transaction.
type ActionCtx struct {
	baseCtx
}

// RunQuery runs a query (internal ones included) as the same caller and decodes its result
// into out (a pointer, or nil to discard).
func (c *ActionCtx) RunQuery(path string, args any, out any) error {
	return c.engine.callFromAction(c, KindQuery, path, args, out)
}

// RunMutation runs a mutation as the same caller and decodes its result into out.
func (c *ActionCtx) RunMutation(path string, args any, out any) error {
	return c.engine.callFromAction(c, KindMutation, path, args, out)
}

// RunAction runs another action as the same caller and decodes its result into out.
func (c *ActionCtx) RunAction(path string, args any, out any) error {
	return c.engine.callFromAction(c, KindAction, path, args, out)
}

// RunAfter schedules a function after delay.
func (c *ActionCtx) RunAfter(delay time.Duration, path string, args any) (int64, error) {
	return c.engine.schedule(c, nil, time.Now().Add(delay), path, args, c.identity)
}

// RunAt schedules a function at a time.
func (c *ActionCtx) RunAt(at time.Time, path string, args any) (int64, error) {
	return c.engine.schedule(c, nil, at, path, args, c.identity)
}

// CancelScheduled cancels a scheduled function that has not run yet.
func (c *ActionCtx) CancelScheduled(jobID int64) error {
	return c.engine.cancelScheduled(c, nil, jobID)
}

// logCollector gathers a call's log lines for the client (Convex's logLines).
type logCollector struct {
	mu    sync.Mutex
	lines []string
}

const maxLogLines = 256

func (l *logCollector) snapshot() []string {
	if l == nil {
		return []string{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string{}, l.lines...)
}

// collectingHandler sends records to the server's handler and a copy to the call's collector.
type collectingHandler struct {
	next  slog.Handler
	logs  *logCollector
	attrs []slog.Attr
}

func (h *collectingHandler) Enabled(ctx context.Context, level slog.Level) bool { return true }

func (h *collectingHandler) Handle(ctx context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] %s", r.Level.String(), r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value.Any())
		return true
	})
	h.logs.mu.Lock()
	if len(h.logs.lines) < maxLogLines {
		h.logs.lines = append(h.logs.lines, b.String())
	}
	h.logs.mu.Unlock()
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *collectingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &collectingHandler{next: h.next.WithAttrs(attrs), logs: h.logs}
}

func (h *collectingHandler) WithGroup(name string) slog.Handler {
	return &collectingHandler{next: h.next.WithGroup(name), logs: h.logs}
}

func (e *Engine) newBaseCtx(ctx context.Context, path string, identity Identity) baseCtx {
	logs := &logCollector{}
	reqID := wire.NewRequestID()
	logger := slog.New(&collectingHandler{next: e.logger.Handler(), logs: logs}).With("function", path, "request_id", reqID)
	return baseCtx{Context: ctx, engine: e, identity: identity, requestID: reqID, logs: logs, logger: logger}
}

// decodeInto converts a result (already wire JSON) into out.
func decodeInto(raw json.RawMessage, out any) error {
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}
