package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"reflect"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ripplehq/ripple/engine/internal/dbsqlc"
	"github.com/ripplehq/ripple/engine/internal/reactor"
	"github.com/ripplehq/ripple/engine/internal/readset"
	"github.com/ripplehq/ripple/engine/internal/wire"
)

// failed is the Result of a call that failed with err (nil: a success with no value yet),
// logging an internal error under the request id the client is shown.
func (e *Engine) failed(path, requestID string, err error) wire.Result {
	if requestID == "" {
		requestID = wire.NewRequestID()
	}
	if err == nil {
		return wire.Result{RequestID: requestID}
	}
	if _, user := AsError(err); !user {
		if !isUnavailable(err) {
			e.logger.Error("function failed", "function", path, "request_id", requestID, "error", err)
			return wire.Internal(err, requestID)
		}
		e.logger.Warn("function failed: database unavailable", "function", path, "request_id", requestID, "error", err)
		err = errUnavailable()
	}
	ue, _ := AsError(err)
	return wire.Result{Err: err, ErrorMessage: ue.Message, ErrorData: ue.errorData(), RequestID: requestID,
		Transient: ue.Code == CodeUnavailable}
}

// errUnknownFunction is what a client gets for a missing function and for an internal one, so
// internal functions cannot be discovered.
func errUnknownFunction(path string, kind FunctionKind) *Error {
	return NotFound("could not find public %s function %q", kind, path)
}

// resolve finds a function the caller may call as the given kind.
func (e *Engine) resolve(path string, kind FunctionKind, fromClient bool, identity Identity) (*function, error) {
	fn := e.registry.lookup(path)
	if fn == nil || (fn.internal && fromClient && !identity.Admin) {
		return nil, errUnknownFunction(path, kind)
	}
	if kind != "" && fn.kind != kind {
		return nil, InvalidArgument("%q is a %s, not a %s", path, fn.kind, kind)
	}
	return fn, nil
}

func (e *Engine) timeoutFor(fn *function) time.Duration {
	if fn.timeout > 0 {
		return fn.timeout
	}
	switch fn.kind {
	case KindQuery:
		return e.config.QueryTimeout
	case KindMutation:
		return e.config.MutationTimeout
	default:
		return e.config.ActionTimeout
	}
}

// invoke calls fn, turning a panic into an internal error for this call only.
func invoke(call func() (any, error)) (value any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return call()
}

// finish encodes a function's value, or its error as the client sees it, with its log lines.
func (e *Engine) finish(base *baseCtx, fn *function, value any, err error) wire.Result {
	var buf json.RawMessage
	if err == nil {
		if buf, err = json.Marshal(value); err != nil {
			err = fmt.Errorf("encoding the result: %w", err)
		}
	}
	res := e.failed(fn.path, base.requestID, err)
	if err == nil {
		res.Value = buf
	}
	res.LogLines = base.logs.snapshot()
	return res
}

// runQueryInTx runs a query inside a snapshot shared by a batch (or its own).
//
// Queries run without a savepoint: a read-only query leaves nothing to undo, and a savepoint
// pair per query was a third of a batch's round trips. The rare query that fails in SQL (a
// timeout, a bad cast) aborts the shared transaction; it then returns errSnapshotAborted and
// the reactor re-runs the batch with that query isolated under a savepoint, where its error
// is its own. A statement that changes settings (SET, set_config) starts a savepoint first,
// rolled back when the query ends, so its settings never reach the next query.
//
// The query's time limit is enforced without ever cancelling the shared connection (pgx closes
// a connection whose context ends mid-statement): Postgres bounds each statement with
// statement_timeout, and the tracking DB refuses to start a statement once the query's budget
// is spent.
// queryPart is what of a query runQueryInTx runs: the whole of a plain query, or the access
// check or the result of a shared one (AddSharedQuery).
type queryPart int

const (
	partWhole queryPart = iota
	partAccess
	partResult
)

func (e *Engine) runQueryInTx(ctx context.Context, snap *reactor.Snapshot, fn *function, args any, identity Identity, journal string, isolate bool, part queryPart) reactor.Result {
	ctx = context.WithoutCancel(ctx)
	defer e.prom.observe(fn, time.Now())
	base := e.newBaseCtx(ctx, fn.path, identity)
	timeout := e.timeoutFor(fn)
	broken := func(err error) reactor.Result {
		return reactor.Result{Result: e.failed(fn.path, base.requestID, err), Reads: readset.Everything()}
	}
	lost := func(err error) reactor.Result {
		return reactor.Result{Result: wire.Result{Err: err, RequestID: base.requestID}, Reads: readset.Everything()}
	}

	// Set outside any savepoint, so a rollback to it does not undo it. Other queries sending
	// on the same connection at once keep the batch's: this one runs alone next time.
	if snap.StatementTimeout != timeout && snap.Shared {
		return lost(reactor.ErrNeedsOwnConnection)
	}
	if snap.StatementTimeout != timeout {
		if _, err := snap.Tx.Exec(ctx, "SELECT set_config('statement_timeout', $1, true)", strconv.FormatInt(timeout.Milliseconds(), 10)); err != nil {
			return broken(err)
		}
		snap.StatementTimeout = timeout
	}
	db := readset.NewDB(snap.Tx, &e.registry.readSpecs, e.catalog(), time.Now().Add(timeout))
	if isolate {
		if err := db.BeginSavepoint(ctx); err != nil {
			return broken(err)
		}
	}
	qctx := &QueryCtx{baseCtx: base, journal: journal, db: db}
	value, callErr := invoke(func() (any, error) {
		if part == partAccess {
			return nil, fn.access(qctx, args)
		}
		return fn.query(qctx, args)
	})
	if sp := db.Savepoint(); sp != nil {
		// Read-only: a rollback only undoes settings (and a failed statement's abort).
		if err := sp.Rollback(ctx); err != nil && callErr == nil {
			callErr = err
		}
	} else if errors.Is(callErr, reactor.ErrNeedsOwnConnection) || db.NeedsOwnConnection() {
		return lost(reactor.ErrNeedsOwnConnection)
	} else if snap.Aborted() {
		if snap.Collateral() {
			return lost(reactor.ErrCollateral)
		}
		return lost(reactor.ErrSnapshotAborted)
	}
	res := reactor.Result{Result: e.finish(&base, fn, value, callErr)}
	db.FinishPending()
	res.Reads = db.Reads()
	res.Reads.Compact()
	res.Journal = qctx.journal
	return res
}

// runQuery runs a one-shot query in its own snapshot (HTTP calls, actions): on a replica that
// has replayed everything committed before the call (so an action's query still sees the
// action's own mutations), else on the primary.
func (e *Engine) runQuery(ctx context.Context, fn *function, args any, identity Identity) wire.Result {
	tx, release, err := e.beginOneShot(ctx)
	if err != nil {
		return e.failed(fn.path, "", fmt.Errorf("begin query: %w", err))
	}
	defer release()
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	snap := &reactor.Snapshot{Tx: tx}
	if fn.access == nil {
		return e.runQueryInTx(ctx, snap, fn, args, identity, "", false, partWhole).Result
	}
	if res := e.runQueryInTx(ctx, snap, fn, args, identity, "", false, partAccess).Result; res.Err != nil {
		return res
	}
	return e.runQueryInTx(ctx, snap, fn, args, Identity{}, "", false, partResult).Result
}

// beginOneShot begins a one-shot query's read-only transaction, on a replica when one is in
// rotation and catches up within Config.ReplicaMaxWait. Its visibility needs no checking: the
// replica had replayed the primary's WAL position read after the call began.
func (e *Engine) beginOneShot(ctx context.Context) (pgx.Tx, func(), error) {
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	if set := e.replicas.Load(); set != nil {
		if lease, err := set.Acquire(ctx); err == nil {
			tx, err := lease.Conn.BeginTx(ctx, opts)
			if err == nil {
				e.metrics.replicaQueries.Add(1)
				return tx, func() { lease.Release(nil) }, nil
			}
			lease.Release(err)
		}
	}
	tx, err := e.pool.BeginTx(ctx, opts)
	if err == nil {
		e.metrics.primaryQueries.Add(1)
	}
	return tx, func() {}, err
}

// mutationKey deduplicates a client's mutation across reconnects.
type mutationKey struct {
	sessionID string
	requestID int64
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

func isRetryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "40001" || pgErr.Code == "40P01"
	}
	return false
}

// runMutation runs fn in a SERIALIZABLE transaction, retrying serialization failures and
// deadlocks with jittered backoff. With a key, a mutation that already committed is not run
// again: its stored outcome is returned.
func (e *Engine) runMutation(ctx context.Context, fn *function, args any, identity Identity, key *mutationKey) wire.Result {
	defer e.prom.observe(fn, time.Now())
	ctx, cancel := context.WithTimeout(ctx, e.timeoutFor(fn))
	defer cancel()
	backoff := 2 * time.Millisecond
	for attempt := 0; ; attempt++ {
		res, retry := e.tryMutation(ctx, fn, args, identity, key)
		if !retry {
			return res
		}
		e.metrics.mutationRetries.Add(1)
		if attempt+1 >= e.config.MutationMaxRetries {
			e.metrics.mutationGiveUps.Add(1)
			if res.Err != nil { // the database stayed unreachable
				e.logger.Warn("mutation gave up: database unavailable", "function", fn.path, "error", res.Err)
				return e.failed(fn.path, res.RequestID, errUnavailable())
			}
			// Contention, which a busy database gives legitimately: the retries ran out, and a
			// later try may pass.
			e.logger.Warn("mutation gave up after serialization failures", "function", fn.path, "attempts", attempt+1)
			return e.failed(fn.path, res.RequestID, NewError(CodeConflict,
				"too much contention: the mutation failed serialization %d times; try again", attempt+1))
		}
		sleep := backoff/2 + mrand.N(backoff)
		select {
		case <-ctx.Done():
			return e.failed(fn.path, res.RequestID, ctx.Err())
		case <-time.After(sleep):
		}
		backoff = min(backoff*2, 200*time.Millisecond)
	}
}

// tryMutation runs one attempt. When it says to retry, res.Err is set only when the database
// could not be reached (runMutation then gives up with UNAVAILABLE), and unset after a
// serialization failure or deadlock (CONFLICT).
func (e *Engine) tryMutation(ctx context.Context, fn *function, args any, identity Identity, key *mutationKey) (wire.Result, bool) {
	base := e.newBaseCtx(ctx, fn.path, identity)
	conn, err := e.pool.Acquire(ctx)
	if err != nil {
		if ctx.Err() == nil {
			return wire.Result{Err: err, RequestID: base.requestID}, true
		}
		return e.failed(fn.path, base.requestID, fmt.Errorf("begin mutation: %w", err)), false
	}
	defer conn.Release()
	tx := newLazyTx(conn, pgx.TxOptions{IsoLevel: pgx.Serializable})
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	mctx := &MutationCtx{baseCtx: base, tx: tx}
	started := time.Now()
	value, callErr := invoke(func() (any, error) { return fn.mutation(mctx, args) })
	ran := time.Now()
	if callErr != nil {
		if isRetryable(callErr) {
			return wire.Result{RequestID: base.requestID}, true
		}
		if conn.Conn().IsClosed() && !isUserError(callErr) && ctx.Err() == nil {
			// The connection died under the function (a dead pooled connection fails the first
			// statement, which carries BEGIN: Postgres restarted, say). Nothing committed, so it
			// runs again on a fresh one.
			return wire.Result{Err: callErr, RequestID: base.requestID}, true
		}
		if key != nil {
			// A resend of a mutation that committed may fail now (the world moved on): its
			// outcome is the one the client is owed.
			if prior, ok := e.priorOutcome(ctx, base, key); ok {
				return prior, false
			}
		}
		return e.finish(&base, fn, nil, callErr), false
	}
	res := e.finish(&base, fn, value, nil)
	if res.Err != nil {
		return res, false
	}
	var sqlErr, commitErr error
	defer func() {
		if sqlErr == nil && commitErr == nil {
			e.prom.observePhase(phaseFunction, ran.Sub(started))
			e.prom.observePhase(phaseCommit, time.Since(ran))
		}
	}()
	if key != nil {
		// The log's insert rides with COMMIT. It is unique: a resend of a mutation that already
		// committed fails here, rolls back what it did, and is answered from the log.
		stmt := recordStatement(func(db dbsqlc.DBTX) error {
			_, err := dbsqlc.New().MutationLogInsert(ctx, db, dbsqlc.MutationLogInsertParams{
				SessionID: key.sessionID, RequestID: key.requestID, Success: true, Result: res.Value,
			})
			return err
		})
		var xid int64
		sqlErr, commitErr = tx.commitWith(ctx, stmt, &xid)
		res.Xid = uint64(xid)
	} else {
		commitErr = tx.Commit(ctx)
	}
	switch {
	case sqlErr != nil && isUniqueViolation(sqlErr):
		_ = tx.Rollback(context.WithoutCancel(ctx))
		if prior, ok := e.priorOutcome(ctx, base, key); ok {
			return prior, false
		}
		return wire.Result{Err: sqlErr, RequestID: base.requestID}, true
	case sqlErr != nil && isRetryable(sqlErr):
		// Most serialization failures under contention surface here, at the log's insert
		// (where Postgres finds the pivot): contention, so no Err, which would mean an
		// unreachable database.
		return wire.Result{RequestID: base.requestID}, true
	case sqlErr != nil:
		return e.failed(fn.path, base.requestID, sqlErr), false
	case commitErr != nil && isRetryable(commitErr):
		return wire.Result{RequestID: base.requestID}, true
	case commitErr != nil:
		return e.failed(fn.path, base.requestID, fmt.Errorf("commit mutation: %w", commitErr)), false
	}
	return res, false
}

// priorOutcome is the stored outcome of a mutation that committed under key, if any. It is read
// only when a mutation fails or collides on the log's unique key, never on the common path, and
// outside the SERIALIZABLE transaction: a read of the log inside it took predicate locks on
// index pages that every concurrent mutation writes to.
func (e *Engine) priorOutcome(ctx context.Context, base baseCtx, key *mutationKey) (wire.Result, bool) {
	prior, err := dbsqlc.New().MutationLogGet(ctx, e.pool, dbsqlc.MutationLogGetParams{SessionID: key.sessionID, RequestID: key.requestID})
	if err != nil {
		return wire.Result{}, false
	}
	return wire.Result{RequestID: base.requestID, Value: prior.Result, LogLines: []string{}}, true
}

// recordedStatement is one statement of sqlc's generated code, captured instead of sent, so
// that the engine can pipeline it while its SQL stays in the sqlc files. Its result is read by
// whoever sends it.
type recordedStatement struct {
	sql  string
	args []any
}

func (r *recordedStatement) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	r.sql, r.args = sql, args
	return pgconn.CommandTag{}, nil
}

func (r *recordedStatement) Query(context.Context, string, ...any) (pgx.Rows, error) {
	return nil, errors.New("recordedStatement records Exec and QueryRow statements only")
}

func (r *recordedStatement) QueryRow(_ context.Context, sql string, args ...any) pgx.Row {
	r.sql, r.args = sql, args
	return recordedRow{}
}

// recordedRow is the row of a statement that was recorded, not run: it scans nothing.
type recordedRow struct{}

func (recordedRow) Scan(...any) error { return nil }

func recordStatement(call func(dbsqlc.DBTX) error) recordedStatement {
	var r recordedStatement
	_ = call(&r)
	return r
}

func isUserError(err error) bool {
	_, user := AsError(err)
	return user
}

// runAction runs an action outside any transaction.
func (e *Engine) runAction(ctx context.Context, fn *function, args any, identity Identity) wire.Result {
	defer e.prom.observe(fn, time.Now())
	ctx, cancel := context.WithTimeout(ctx, e.timeoutFor(fn))
	defer cancel()
	base := e.newBaseCtx(ctx, fn.path, identity)
	actx := &ActionCtx{baseCtx: base}
	value, err := invoke(func() (any, error) { return fn.action(actx, args) })
	return e.finish(&base, fn, value, err)
}

// call decodes raw args and runs a function of any kind once (HTTP, actions, jobs).
func (e *Engine) call(ctx context.Context, fn *function, rawArgs json.RawMessage, identity Identity) wire.Result {
	args, err := fn.decode(rawArgs, e.config.MaxArgBytes)
	if err != nil {
		return e.failed(fn.path, "", err)
	}
	return e.callDecoded(ctx, fn, args, identity)
}

// callDecoded runs fn with arguments already of its type.
func (e *Engine) callDecoded(ctx context.Context, fn *function, args any, identity Identity) wire.Result {
	switch fn.kind {
	case KindQuery:
		return e.runQuery(ctx, fn, args, identity)
	case KindMutation:
		return e.runMutation(ctx, fn, args, identity, nil)
	default:
		return e.runAction(ctx, fn, args, identity)
	}
}

func (e *Engine) callFromAction(c *ActionCtx, kind FunctionKind, path string, args any, out any) error {
	fn, err := e.resolve(path, kind, false, c.identity)
	if err != nil {
		return err
	}
	var res wire.Result
	if reflect.TypeOf(args) == fn.argsType {
		// The function's own argument type: no JSON round trip (a vector of 1,536 floats
		// cost more to encode and decode than to store). Validate still runs.
		ptr := reflect.New(fn.argsType)
		ptr.Elem().Set(reflect.ValueOf(args))
		if err := validateArgs(ptr.Interface()); err != nil {
			return err
		}
		res = e.callDecoded(c.Context, fn, args, c.identity)
	} else {
		raw, err := json.Marshal(args)
		if err != nil {
			return InvalidArgument("encoding arguments for %s: %v", path, err)
		}
		res = e.call(c.Context, fn, raw, c.identity)
	}
	if res.Err != nil {
		return res.Err
	}
	return decodeInto(res.Value, out)
}
