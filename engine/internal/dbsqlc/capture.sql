-- name: CaptureColumnsList :many
SELECT table_name::text, watched::text[], primary_key::text[], row_columns::text[], ordered::text[]
FROM ripple_capture_columns();

-- name: MutationLogGet :one
SELECT success, result, error_data FROM ripple_mutation_log
WHERE session_id = $1 AND request_id = $2;

-- MutationLogInsert fails on a duplicate: the mutation that ran again must not commit. It
-- returns the transaction's id, by which the reactor knows which snapshots see the commit.
-- name: MutationLogInsert :one
INSERT INTO ripple_mutation_log (session_id, request_id, success, result, error_data)
VALUES ($1, $2, $3, $4, $5)
RETURNING pg_current_xact_id()::text::bigint AS xid;

-- MutationLogPrune deletes at most batch_size outcomes older than created_before (the oldest
-- first), so one statement holds its locks briefly; housekeeping repeats it until it deletes
-- fewer.
-- name: MutationLogPrune :execrows
DELETE FROM ripple_mutation_log
WHERE (session_id, request_id) IN (
  SELECT old.session_id, old.request_id FROM ripple_mutation_log old
  WHERE old.created_at < @created_before
  ORDER BY old.created_at
  LIMIT @batch_size
);

-- name: CaptureSkipList :many
SELECT table_name FROM ripple_capture_skip ORDER BY table_name;

-- name: CaptureSkipClear :exec
DELETE FROM ripple_capture_skip;

-- name: CaptureSkipAdd :exec
INSERT INTO ripple_capture_skip (table_name) SELECT unnest(sqlc.arg(table_names)::text[]);

-- CaptureInstall (re)installs the capture triggers, leaving out the tables in ripple_capture_skip.
-- name: CaptureInstall :exec
SELECT ripple_capture_install_all();

-- CaptureSkipLock serialises processes that start at once and rewrite the skip list.
-- name: CaptureSkipLock :exec
SELECT pg_advisory_xact_lock(hashtext('ripple_capture_skip'));
