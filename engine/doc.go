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
package engine
