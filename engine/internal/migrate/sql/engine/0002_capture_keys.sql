-- Change capture, tightened:
-- * Only columns whose text form equals the engine's formatting of the bound value are watched
--   as keys (integers, text, booleans). A numeric, char(n), timestamp or citext column would
--   print differently from the value a query bound ("42.0" vs "42"), so queries filtering on
--   one now depend on the whole table instead of risking a missed update.
-- * Partitions are captured through their partitioned parent only (Postgres refuses transition
--   tables on partitions).
-- * Triggers fire ALWAYS, so rows written under session_replication_role = replica (logical
--   replication, pg_restore) are captured too.

CREATE OR REPLACE FUNCTION ripple_capture_columns()
RETURNS TABLE (table_name text, watched text[], primary_key text[])
LANGUAGE sql STABLE AS $$
  SELECT c.relname::text,
         coalesce((
           SELECT array_agg(DISTINCT a.attname::text ORDER BY a.attname::text)
           FROM pg_index i
           JOIN pg_attribute a ON a.attrelid = i.indrelid
            AND (a.attnum = i.indkey[0] OR (i.indisprimary AND a.attnum = ANY (i.indkey::int2[])))
           WHERE i.indrelid = c.oid AND a.attnum > 0
             AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype,
                                'text'::regtype, 'varchar'::regtype, 'bool'::regtype)
         ), '{}'),
         coalesce((
           SELECT array_agg(a.attname::text ORDER BY a.attnum)
           FROM pg_index i
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey::int2[])
           WHERE i.indrelid = c.oid AND i.indisprimary
         ), '{}')
  FROM pg_class c
  WHERE c.relnamespace = current_schema()::regnamespace
    AND c.relkind IN ('r', 'p')
    AND NOT c.relispartition
    AND c.relname NOT LIKE 'ripple\_%'
    AND c.relname NOT LIKE 'river\_%'
$$;

CREATE OR REPLACE FUNCTION ripple_capture_install_all() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  r record;
  tbl text;
  args text;
  trig text;
BEGIN
  FOR r IN SELECT * FROM ripple_capture_columns() LOOP
    tbl := format('%I.%I', current_schema(), r.table_name);
    SELECT coalesce(string_agg(quote_literal(w), ', '), '') INTO args FROM unnest(r.watched) w;
    EXECUTE format('DROP TRIGGER IF EXISTS ripple_capture_ins ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS ripple_capture_upd ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS ripple_capture_del ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS ripple_capture_trunc ON %s', tbl);
    EXECUTE format('CREATE TRIGGER ripple_capture_ins AFTER INSERT ON %s REFERENCING NEW TABLE AS ripple_new_rows FOR EACH STATEMENT EXECUTE FUNCTION ripple_capture_notify(%s)', tbl, args);
    EXECUTE format('CREATE TRIGGER ripple_capture_upd AFTER UPDATE ON %s REFERENCING OLD TABLE AS ripple_old_rows NEW TABLE AS ripple_new_rows FOR EACH STATEMENT EXECUTE FUNCTION ripple_capture_notify(%s)', tbl, args);
    EXECUTE format('CREATE TRIGGER ripple_capture_del AFTER DELETE ON %s REFERENCING OLD TABLE AS ripple_old_rows FOR EACH STATEMENT EXECUTE FUNCTION ripple_capture_notify(%s)', tbl, args);
    EXECUTE format('CREATE TRIGGER ripple_capture_trunc AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION ripple_capture_notify()', tbl);
    FOREACH trig IN ARRAY ARRAY['ripple_capture_ins', 'ripple_capture_upd', 'ripple_capture_del', 'ripple_capture_trunc'] LOOP
      EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', tbl, trig);
    END LOOP;
  END LOOP;
END
$$;
