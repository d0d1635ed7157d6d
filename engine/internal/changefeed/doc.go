// Package changefeed turns commits into Events: changes (row images of the captured columns),
// markers the reactor sends to itself, and resets when the connection was lost (changes may have
// been missed, so every subscription must re-run). Two feeds deliver the same Events for the
// same writes:
//
//   - Listener keeps one LISTEN connection open on a schema's change channel and parses the
//     NOTIFY payloads of the capture triggers;
//   - Logical streams a temporary logical replication slot with pgoutput over the schema's
//     publication, and builds the same row images from the WAL.
//
// Both share one lifecycle (lifecycle.go): Start and Stop, delivery, and the reconnect with
// backoff that delivers EventReset.
package changefeed
