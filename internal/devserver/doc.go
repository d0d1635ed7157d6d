// Package devserver is `ripple dev`: it watches an application's source (Go files, SQL queries
// and migrations), and on a change regenerates (sqlc, read sets, api.ts: the application's own
// generate command), rebuilds its server binary and restarts it on the same address. Clients
// reconnect and resubscribe by themselves (the Convex protocol's reconnect), so open pages get
// the new behaviour without reloading.
//
// A build that fails is reported once and leaves the last good server serving; a new binary
// that does not come up (a migration that fails, say) is reported and the last good one is
// started again. The file tree is polled for modification times: no dependency, and it works
// on every file system; changes are debounced so a save of many files is one rebuild.
package devserver
