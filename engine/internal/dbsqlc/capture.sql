-- name: CaptureColumnsList :many
SELECT table_name::text, watched::text[], primary_key::text[], row_columns::text[], ordered::text[]
FROM ripple_capture_columns();

-- name: MutationLogGet :one
SELECT success, result, error_data FROM ripple_mutation_log
WHERE session_id = $1 AND request_id = $2;

-- MutationLogInsert fails on a duplicate: the mutation that ran again must not commit.
-- name: MutationLogInsert :exec
INSERT INTO ripple_mutation_log (session_id, request_id, success, result, error_data)
VALUES ($1, $2, $3, $4, $5);

-- name: MutationLogPrune :execrows
DELETE FROM ripple_mutation_log WHERE created_at < $1;
