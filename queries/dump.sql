-- Statements for `ripple export` and `ripple import` (internal/dump). They read the catalog of
-- the current schema (the pool's search_path); the per-table SELECT and INSERT are built from
-- what these return, since a table name cannot be a parameter.
--
-- DumpColumnList lists every stored column of every table of the current schema, in table and
-- column order. key_position is the column's 1-based place in the primary key (0: not in it);
-- collatable columns are ordered under COLLATE "C" so row order does not depend on the
-- database's collation.
-- name: DumpColumnList :many
SELECT c.relname::text AS table_name,
       a.attname::text AS column_name,
       format_type(a.atttypid, a.atttypmod)::text AS column_type,
       (a.attidentity <> '')::bool AS is_identity,
       (a.attcollation <> 0)::bool AS is_collatable,
       -- indkey is an int2vector: its subscripts start at 0.
       coalesce((SELECT array_position(i.indkey::int2[], a.attnum) - array_lower(i.indkey::int2[], 1) + 1
                 FROM pg_catalog.pg_index i
                 WHERE i.indrelid = c.oid AND i.indisprimary), 0)::int AS key_position
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
WHERE c.relnamespace = current_schema()::regnamespace
  AND c.relkind IN ('r', 'p')
  AND NOT c.relispartition
  AND a.attnum > 0
  AND NOT a.attisdropped
  AND a.attgenerated = ''
ORDER BY c.relname, a.attnum;

-- DumpForeignKeyList lists which table of the current schema references which: import loads
-- referenced tables first.
-- name: DumpForeignKeyList :many
SELECT DISTINCT src.relname::text AS table_name, dst.relname::text AS referenced_table
FROM pg_catalog.pg_constraint k
JOIN pg_catalog.pg_class src ON src.oid = k.conrelid
JOIN pg_catalog.pg_class dst ON dst.oid = k.confrelid
WHERE k.contype = 'f' AND src.relnamespace = current_schema()::regnamespace
ORDER BY 1, 2;

-- DumpSettingsSet fixes, for the rest of the transaction, the settings that change how values
-- print, so two exports of the same data are byte-identical whatever the server's defaults.
-- name: DumpSettingsSet :exec
SELECT set_config('TimeZone', 'UTC', true),
       set_config('extra_float_digits', '1', true),
       set_config('bytea_output', 'hex', true),
       set_config('IntervalStyle', 'iso_8601', true);

-- DumpCurrentSchema is the first schema of the search_path that exists: when the one asked for
-- does not, Postgres falls back silently to the next (public), which export and import refuse.
-- name: DumpCurrentSchema :one
SELECT coalesce(current_schema(), '')::text AS schema_name;

-- DumpRelationExists says whether a (qualified) table exists: ripple_migration and River's
-- tables are created outside the migration files, so sqlc cannot name them in a query.
-- name: DumpRelationExists :one
SELECT (to_regclass(sqlc.arg(relation)::text) IS NOT NULL)::bool AS exists;

-- ImportBegin marks the import's transaction, so the rows it writes do not queue themselves for
-- embedding (schema/migrations/0008_message_enqueue.sql): an import restores the queue as
-- exported, or queues what it loads itself.
-- name: ImportBegin :exec
SELECT set_config('ripple.importing', 'on', true);

-- EmbeddingImport stores vectors an import carries over (ripple import --convex
-- --embedding-model), each for its message, as text ('[0.1,0.2,...]') cast to vector.
-- name: EmbeddingImport :execrows
INSERT INTO message_embeddings (message_id, conversation_id, sender_id, embedding, model)
SELECT m.id, m.conversation_id, m.sender_id, v.embedding::vector, sqlc.arg(model)::text
FROM ROWS FROM (unnest(sqlc.arg(message_ids)::bigint[]), unnest(sqlc.arg(embeddings)::text[])) AS v(message_id, embedding)
JOIN messages m ON m.id = v.message_id;
