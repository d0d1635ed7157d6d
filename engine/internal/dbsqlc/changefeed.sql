-- name: ChangeFeedGet :one
SELECT mode FROM ripple_change_feed;

-- ChangeFeedSet switches the deployment's change feed and sets the database up for it (capture
-- triggers or publication); the caller holds ChangeFeedSwitchLock and ChangeFeedTryExclusive.
-- name: ChangeFeedSet :exec
WITH updated AS (UPDATE ripple_change_feed SET mode = @mode::text RETURNING mode)
SELECT ripple_capture_install_all() FROM updated;

-- Every process holds ChangeFeedHoldShared(mode) on its feed's connection for as long as it
-- runs: a process with the other mode can switch only when it gets ChangeFeedTryExclusive(the
-- running mode), that is when none is connected. (Advisory lock keys are per database, so the
-- schema is part of the key.)
-- name: ChangeFeedTryExclusive :one
SELECT pg_try_advisory_xact_lock(hashtext('ripple_change_feed:' || current_schema() || ':' || @mode::text)::bigint)::bool AS locked;

-- name: ChangeFeedHoldShared :exec
SELECT pg_advisory_lock_shared(hashtext('ripple_change_feed:' || current_schema() || ':' || @mode::text)::bigint);

-- ChangeFeedSwitchLock serialises processes that start at once with different modes.
-- name: ChangeFeedSwitchLock :exec
SELECT pg_advisory_xact_lock(hashtext('ripple_change_feed:' || current_schema())::bigint);

-- name: ChangeFeedPublication :one
SELECT ripple_change_feed_publication()::text AS name;

-- name: SlotsList :many
SELECT slot_name::text, temporary::bool, active::bool, active_pid::int, retained_bytes::bigint,
       behind_bytes::bigint, wal_status::text
FROM ripple_slots();

-- SlotTerminate ends the session holding an active slot: a temporary slot goes with it (its
-- process reconnects with a new one and re-runs every subscription).
-- name: SlotTerminate :one
SELECT pg_terminate_backend(active_pid)::bool AS terminated FROM ripple_slots()
WHERE slot_name = @slot_name::text AND active;

-- name: SlotDrop :exec
SELECT pg_drop_replication_slot(@slot_name::text);
