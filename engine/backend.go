package engine

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/ripplehq/ripple/engine/internal/caller"
	"github.com/ripplehq/ripple/engine/internal/changefeed"
	"github.com/ripplehq/ripple/engine/internal/reactor"
	"github.com/ripplehq/ripple/engine/internal/readset"
	"github.com/ripplehq/ripple/engine/internal/replicas"
	"github.com/ripplehq/ripple/engine/internal/wire"
)

// backend is the engine as its services see it: it runs the reactor's queries and the calls
// that sockets and HTTP requests make. It is a type of its own so that none of this is part of
// Engine's public API.
type backend struct{ e *Engine }

// RunQuery runs a subscription's query for the reactor: the whole of a plain query, or the
// result of a shared one (its callers' access was checked by RunAccess; identity is empty).
func (b backend) RunQuery(ctx context.Context, snap *reactor.Snapshot, q *reactor.Query, identity caller.Identity, journal string, isolate bool) reactor.Result {
	fn := q.Fn.(*function)
	if fn.access != nil {
		return b.e.runQueryInTx(ctx, snap, fn, q.Args, caller.Identity{}, journal, isolate, partResult)
	}
	if denied := b.internalDenied(fn, identity); denied != nil {
		return *denied
	}
	return b.e.runQueryInTx(ctx, snap, fn, q.Args, identity, journal, isolate, partWhole)
}

// RunAccess runs a shared query's access check for one caller: a Result without error admits
// the caller.
func (b backend) RunAccess(ctx context.Context, snap *reactor.Snapshot, q *reactor.Query, identity caller.Identity, isolate bool) reactor.Result {
	fn := q.Fn.(*function)
	if denied := b.internalDenied(fn, identity); denied != nil {
		return *denied
	}
	return b.e.runQueryInTx(ctx, snap, fn, q.Args, identity, "", isolate, partAccess)
}

// internalDenied stops an internal query for a caller who is no longer an admin: only an admin
// subscribes to one, and this admin signed out since, so internal data stops here.
func (b backend) internalDenied(fn *function, identity caller.Identity) *reactor.Result {
	if !fn.internal || identity.Admin {
		return nil
	}
	return &reactor.Result{Result: b.e.failed(fn.path, "", errUnknownFunction(fn.path, KindQuery)), Reads: readset.New()}
}

// Query resolves a query a client subscribes to; one that cannot run fails on every run.
func (b backend) Query(path string, args json.RawMessage, identity caller.Identity) *reactor.Query {
	q := &reactor.Query{Path: path, ArgsKey: string(args)}
	fn, err := b.e.resolve(path, KindQuery, true, identity)
	if err == nil {
		q.Fn = fn
		q.Args, err = fn.decode(args, b.e.config.MaxArgBytes)
	}
	if err != nil {
		q.Fn = &function{path: path, kind: KindQuery, query: func(*QueryCtx, any) (any, error) { return nil, err }}
	}
	q.Shared = q.Fn.(*function).access != nil
	return q
}

// Mutation runs a client's mutation over a socket.
func (b backend) Mutation(ctx context.Context, path string, args json.RawMessage, identity caller.Identity, logKey string, requestID int64, limitKey string) wire.Result {
	e := b.e
	fn, err := e.resolve(path, KindMutation, true, identity)
	if err == nil {
		err = e.limitClientCall(fn, identity, limitKey)
	}
	if err != nil {
		return e.failed(path, "", err)
	}
	decoded, err := fn.decode(args, e.config.MaxArgBytes)
	if err != nil {
		return e.failed(path, "", err)
	}
	return e.runMutation(ctx, fn, decoded, identity, &mutationKey{sessionID: logKey, requestID: requestID})
}

// Action runs a client's action over a socket.
func (b backend) Action(ctx context.Context, path string, args json.RawMessage, identity caller.Identity, limitKey string) wire.Result {
	return b.Call(ctx, string(KindAction), path, args, identity, limitKey)
}

// Call runs a function for an HTTP caller.
func (b backend) Call(ctx context.Context, kind, path string, args json.RawMessage, identity caller.Identity, limitKey string) wire.Result {
	e := b.e
	fn, err := e.resolve(path, FunctionKind(kind), true, identity)
	if err == nil {
		err = e.limitClientCall(fn, identity, limitKey)
	}
	if err != nil {
		return e.failed(path, "", err)
	}
	return e.call(ctx, fn, args, identity)
}

// Authenticate turns presented credentials into an identity.
func (b backend) Authenticate(ctx context.Context, tokenType, value string, impersonating json.RawMessage) (caller.Identity, time.Time, error) {
	return b.e.authenticateUntil(ctx, tokenType, value, impersonating)
}

// Sync waits for the reactor to catch up with every commit made before the call.
func (b backend) Sync(ctx context.Context) (uint64, error) { return b.e.reactor.Sync(ctx) }

// readyProbeTimeout bounds how long /readyz waits for its probe to come back through the change
// listener.
const readyProbeTimeout = time.Second

// ClientAddress is Config.ClientAddress.
func (b backend) ClientAddress(r *http.Request) string { return b.e.config.ClientAddress(r) }

// Ready reports whether the database answers and the change listener delivers: a probe NOTIFY
// sent through the pool must come back on the listener, since a half-open connection still
// looks connected. A listener that fails the probe is replaced (as a batch whose marker does not
// come back replaces it), so the server heals instead of waiting for the next batch to notice;
// but not a logical feed whose slot is behind, whose probe waits behind the backlog.
func (b backend) Ready(ctx context.Context) (map[string]any, bool) {
	e := b.e
	// Bounded: with every pooled connection busy, a ping would wait for one indefinitely.
	caller := ctx
	ctx, cancel := context.WithTimeout(ctx, 2*readyProbeTimeout)
	defer cancel()
	status := map[string]any{"database": "ok", "listener": "ok", "listenerGaps": e.listener.Gaps()}
	ok := true
	if err := e.pool.Ping(ctx); err != nil {
		status["database"] = "unreachable"
		ok = false
	}
	// The logical feed's slot (state "behind" past Config.SlotBehindBytes), read before the
	// probe, which it explains when the probe is late.
	slot, hasSlot := e.slotStatus(ctx)
	if hasSlot {
		status["changeFeed"] = slot
	}
	switch {
	case !e.listener.Connected():
		status["listener"] = "disconnected"
		ok = false
	case status["database"] == "ok":
		pctx, cancelProbe := context.WithTimeout(ctx, readyProbeTimeout)
		defer cancelProbe()
		err := e.listener.Probe(pctx, func(ctx context.Context, sql string, args ...any) error {
			_, err := e.pool.Exec(ctx, sql, args...)
			return err
		})
		switch {
		case err == nil, caller.Err() != nil: // fine, or the caller hung up: nothing learned
		case errors.Is(err, changefeed.ErrProbeNotSent):
			// The pool or the database is the trouble, not the listener: keep it.
			status["database"] = "busy"
			ok = false
		case slotBehind(slot):
			// The probe waits behind the slot's backlog: the stream is busy, not half-open.
			// A new connection would drop the slot, which only the operator does (ripple slots
			// drop), so it is reported, not replaced.
			status["listener"] = "behind"
			ok = false
		default:
			e.logger.Warn("the change listener did not deliver a probe; reconnecting it", "error", err)
			e.listener.Reconnect()
			status["listener"] = "unresponsive"
			ok = false
		}
	}
	// Replicas are reported, never a reason to be unready: reads fall back to the primary.
	if set := e.replicas.Load(); set != nil {
		var reps []replicas.Status
		for _, r := range set.Replicas() {
			reps = append(reps, r.Status())
		}
		status["replicas"] = reps
	}
	return status, ok
}
