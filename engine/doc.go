// Package engine is Ripple's public API: register query, mutation and action functions, start an
// Engine on a PostgreSQL pool, and serve the sync WebSocket and HTTP endpoints that Convex's
// client protocol expects.
//
// Queries run in a read-only REPEATABLE READ transaction and read through sqlc-generated code;
// what they read is recorded as a read set, and the invalidation tracker re-runs a subscription
// when a committed change (seen through LISTEN/NOTIFY) touches it. Mutations run SERIALIZABLE and
// are retried on serialization failures. Actions run outside any transaction and may call the
// network.
//
//	reg := engine.NewRegistry()
//	engine.AddQuery(reg, "users:me", func(ctx *engine.QueryCtx, args struct{}) (*User, error) { ... }, nil)
//	e, err := engine.New(pool, reg, &engine.Config{})
//	err = e.Start(ctx)
//	http.ListenAndServe(addr, e.Handler())
//
// A query whose result is the same for everyone allowed to see it (a conversation's page for its
// members) is registered with AddSharedQuery as an access check, run per caller and kept until
// what it read changes, and a result, run once per change for every subscriber. Tables no query
// reads (a work queue) can be left out of change capture with Registry.DoNotCapture, and
// background actions give way to live updates with ActionCtx.WaitForIdle. A mutation costs one
// round trip more than its own statements: BEGIN travels with the first and COMMIT with the
// mutation log's insert. docs/engine.md has the mechanisms and their soundness rules.
//
// This package is the public API only: Engine, Config, Registry and the AddX registration
// functions, the function contexts, errors, and the auth service's public face. Each service it
// wires together lives in a package of its own under engine/internal, which talk to each other
// only through the small interfaces they declare:
//
//   - changefeed: the change feeds: the LISTEN connection and the change events the capture
//     triggers send, or (Config.ChangeFeed = logical) the same events decoded from a logical
//     replication slot; either also carries the batches' markers
//   - replicas: streaming replicas that batches and one-shot queries may run on
//   - readset: what a query read (recorded from sqlc's generated analysis) and the index that
//     finds the subscriptions a change affects
//   - reactor: batches that re-run invalidated subscriptions in one snapshot, their statements
//     pipelined across queries, and deliver transitions, with each client's reply queue
//   - session: one sync WebSocket: reading messages, the serial mutation queue, the bounded
//     send queue
//   - httpapi: the HTTP function API, health endpoints, and the routing, CORS and body limits
//     of the application's HTTP actions
//   - auth: accounts, tokens and keys
//   - wire, values, caller, ratelimit: the protocol's messages, argument decoding, the
//     caller's identity and the per-caller mutation limit, shared by the services above
//
// The engine itself implements those interfaces in backend.go: it resolves and runs functions
// (exec.go), schedules them on River (jobs.go, cron.go), runs HTTP actions (httpaction.go), and
// serves the operators' /metrics and River's UI behind the admin key (metrics.go, admin.go).
package engine
