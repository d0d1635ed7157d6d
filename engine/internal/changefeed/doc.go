// Package changefeed keeps one LISTEN connection open on a schema's change channel and turns its
// notifications into Events: changes written by the capture triggers, markers the reactor sends
// to itself, and resets when the connection was lost (notifications may have been missed, so
// every subscription must re-run). It reconnects with backoff.
package changefeed
