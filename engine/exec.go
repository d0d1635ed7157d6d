package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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
)

// callResult is the outcome of one function call, ready for the wire.
type callResult struct {
	value    json.RawMessage
	err      error // nil, a user-facing *Error, or an internal error
	logLines []string
	reads    *ReadSet // queries only
	journal  string   // queries only
	// requestID identifies the call in server logs.
	requestID string
}

// wireError is an error as the client sees it.
func (r *callResult) wireError() (message string, data map[string]any) {
	if e, ok := AsError(r.err); ok {
		return e.Message, e.errorData()
	}
	return fmt.Sprintf("Server error (request %s)", r.requestID), map[string]any{"code": string(CodeInternal), "requestId": r.requestID}
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
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

// finish logs internal errors and encodes the value.
func (e *Engine) finish(base *baseCtx, fn *function, value any, err error) callResult {
	res := callResult{requestID: base.requestID}
	if err == nil {
		res.value, err = encodeResult(value)
	}
	if err != nil {
		if _, user := AsError(err); !user {
			if isUnavailable(err) {
				e.logger.Warn("function failed: database unavailable", "function", fn.path, "request_id", base.requestID, "error", err)
				err = errUnavailable()
			} else {
				e.logger.Error("function failed", "function", fn.path, "request_id", base.requestID, "error", err)
			}
		}
		res.err = err
	}
	res.logLines = base.logs.snapshot()
	return res
}

// snapshotTx is a read-only snapshot transaction that queries run in, one after another.
type snapshotTx struct {
	tx pgx.Tx
	// statementTimeout is the statement_timeout set on tx (zero: the server's default), so it is
	// set again only when a query needs a different one.
	statementTimeout time.Duration
}

// errSnapshotAborted is the result of a query whose SQL error aborted the shared snapshot: the
// batch is run again, with that query under a savepoint of its own.
var errSnapshotAborted = errors.New("the query aborted the shared snapshot")

// runQueryInTx runs a query inside a snapshot shared by a batch.
//
// Queries run without a savepoint: a read-only query leaves nothing to undo, and a savepoint
// pair per query was a third of a batch's round trips. The rare query that fails in SQL (a
// timeout, a bad cast) aborts the shared transaction; it then returns errSnapshotAborted and
// the caller re-runs the batch with that query isolated under a savepoint, where its error
// is its own. A statement that changes settings (SET, set_config) starts a savepoint first,
// rolled back when the query ends, so its settings never reach the next query.
//
// The query's time limit is enforced without ever cancelling the shared connection (pgx closes
// a connection whose context ends mid-statement): Postgres bounds each statement with
// statement_timeout, and the tracking DB refuses to start a statement once the query's budget
// is spent.
func (e *Engine) runQueryInTx(ctx context.Context, snap *snapshotTx, fn *function, args any, identity Identity, journal string, isolate bool) callResult {
	ctx = context.WithoutCancel(ctx)
	base := e.newBaseCtx(ctx, fn.path, identity)
	timeout := e.timeoutFor(fn)

	// Set outside any savepoint, so a rollback to it does not undo it.
	if snap.statementTimeout != timeout {
		if _, err := snap.tx.Exec(ctx, "SELECT set_config('statement_timeout', $1, true)", strconv.FormatInt(timeout.Milliseconds(), 10)); err != nil {
			return callResult{err: err, requestID: base.requestID, reads: &ReadSet{all: true}}
		}
		snap.statementTimeout = timeout
	}
	db := &trackingDB{tx: snap.tx, reg: e.registry, catalog: e.catalog(), reads: newReadSet(), deadline: time.Now().Add(timeout)}
	if isolate {
		if err := db.beginSavepoint(ctx); err != nil {
			return callResult{err: err, requestID: base.requestID, reads: &ReadSet{all: true}}
		}
	}
	qctx := &QueryCtx{baseCtx: base, journal: journal, db: db}
	value, callErr := invoke(func() (any, error) { return fn.query(qctx, args) })
	if db.savepoint != nil {
		// Read-only: a rollback only undoes settings (and a failed statement's abort).
		if err := db.savepoint.Rollback(ctx); err != nil && callErr == nil {
			callErr = err
		}
	} else if snap.tx.Conn().PgConn().TxStatus() == 'E' {
		return callResult{err: errSnapshotAborted, requestID: base.requestID, reads: &ReadSet{all: true}}
	}
	res := e.finish(&base, fn, value, callErr)
	db.finishPending()
	db.reads.compact()
	res.reads = db.reads
	res.journal = qctx.journal
	return res
}

// runQuery runs a one-shot query in its own snapshot (HTTP calls, actions).
func (e *Engine) runQuery(ctx context.Context, fn *function, args any, identity Identity) callResult {
	tx, err := e.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return callResult{err: e.internalErr("begin query", err), requestID: newRequestID()}
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	return e.runQueryInTx(ctx, &snapshotTx{tx: tx}, fn, args, identity, "", false)
}

func (e *Engine) internalErr(what string, err error) error {
	e.logger.Error(what, "error", err)
	return fmt.Errorf("%s: %w", what, err)
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
func (e *Engine) runMutation(ctx context.Context, fn *function, args any, identity Identity, key *mutationKey) callResult {
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
			if res.err != nil { // the database stayed unreachable
				e.logger.Warn("mutation gave up: database unavailable", "function", fn.path, "error", res.err)
				res.err = errUnavailable()
				return res
			}
			e.logger.Warn("mutation gave up after serialization failures", "function", fn.path, "attempts", attempt+1)
			res.err = NewError(CodeConflict, "too much contention; try again")
			return res
		}
		sleep := backoff/2 + mrand.N(backoff)
		select {
		case <-ctx.Done():
			res.err = ctx.Err()
			return res
		case <-time.After(sleep):
		}
		backoff = min(backoff*2, 200*time.Millisecond)
	}
}

func (e *Engine) tryMutation(ctx context.Context, fn *function, args any, identity Identity, key *mutationKey) (callResult, bool) {
	base := e.newBaseCtx(ctx, fn.path, identity)
	q := dbsqlc.New()
	if key != nil {
		// Looked up outside the SERIALIZABLE transaction: a read of the log inside it took
		// predicate locks on index pages that every concurrent mutation writes to, and under
		// load mutations aborted each other over it. The insert below is unique, so a duplicate
		// committing meanwhile fails this attempt, and the retry finds it here.
		prior, err := q.MutationLogGet(ctx, e.pool, dbsqlc.MutationLogGetParams{SessionID: key.sessionID, RequestID: key.requestID})
		if err == nil {
			return callResult{requestID: base.requestID, value: prior.Result, logLines: []string{}}, false
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return callResult{err: err, requestID: base.requestID}, ctx.Err() == nil
		}
	}
	tx, err := e.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
	if err != nil {
		// Nothing ran yet, so a dead pooled connection (Postgres restarted, say) is retried on
		// a fresh one.
		if ctx.Err() == nil {
			return callResult{err: err, requestID: base.requestID}, true
		}
		return callResult{err: e.internalErr("begin mutation", err), requestID: base.requestID}, false
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	mctx := &MutationCtx{baseCtx: base, tx: tx}
	value, callErr := invoke(func() (any, error) { return fn.mutation(mctx, args) })
	if callErr != nil {
		if isRetryable(callErr) {
			return callResult{}, true
		}
		return e.finish(&base, fn, nil, callErr), false
	}
	res := e.finish(&base, fn, value, nil)
	if res.err != nil {
		return res, false
	}
	if key != nil {
		err := q.MutationLogInsert(ctx, tx, dbsqlc.MutationLogInsertParams{
			SessionID: key.sessionID, RequestID: key.requestID, Success: true, Result: res.value,
		})
		if err != nil {
			return callResult{err: err, requestID: base.requestID}, isRetryable(err) || isUniqueViolation(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		if isRetryable(err) {
			return callResult{}, true
		}
		res.err = e.internalErr("commit mutation", err)
		return res, false
	}
	return res, false
}

// runAction runs an action outside any transaction.
func (e *Engine) runAction(ctx context.Context, fn *function, args any, identity Identity) callResult {
	ctx, cancel := context.WithTimeout(ctx, e.timeoutFor(fn))
	defer cancel()
	base := e.newBaseCtx(ctx, fn.path, identity)
	actx := &ActionCtx{baseCtx: base}
	value, err := invoke(func() (any, error) { return fn.action(actx, args) })
	return e.finish(&base, fn, value, err)
}

// call decodes raw args and runs a function of any kind once (HTTP, actions, jobs).
func (e *Engine) call(ctx context.Context, fn *function, rawArgs json.RawMessage, identity Identity) callResult {
	args, err := fn.decode(rawArgs, e.config.MaxArgBytes)
	if err != nil {
		return callResult{err: err, requestID: newRequestID(), logLines: []string{}}
	}
	return e.callDecoded(ctx, fn, args, identity)
}

// callDecoded runs fn with arguments already of its type.
func (e *Engine) callDecoded(ctx context.Context, fn *function, args any, identity Identity) callResult {
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
	var res callResult
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
	if res.err != nil {
		return res.err
	}
	return decodeInto(res.value, out)
}
