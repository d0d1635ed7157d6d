-- Capture only what is watched: an application names the tables no query of it reads
-- (engine Registry.DoNotCapture; the chat's embedding queue, say), the engine keeps that list here
-- at start, and ripple_capture_install_all gives those tables no capture triggers, so their
-- writes cost no row images and no NOTIFY. A query that reads one of them fails loudly instead of
-- going stale (engine/internal/readset).
CREATE TABLE ripple_capture_skip (
  table_name text PRIMARY KEY
);

CREATE OR REPLACE FUNCTION ripple_capture_install_all() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  r record;
  tbl text;
  args text;
  expr text;
  trig text;
BEGIN
  FOR r IN SELECT * FROM ripple_capture_columns() LOOP
    tbl := format('%I.%I', current_schema(), r.table_name);
    IF cardinality(r.row_columns) = 0 THEN
      args := '';
    ELSE
      SELECT 'jsonb_build_array(' || string_agg(
               CASE WHEN ty.atttypid = 'timestamptz'::regtype
                    THEN format('CASE WHEN isfinite(%1$I) THEN (extract(epoch FROM %1$I) * 1000000)::bigint::text END', c)
                    ELSE format('%I::text', c) END, ', ' ORDER BY o) || ')',
             string_agg(quote_literal(CASE WHEN c = ANY (r.watched) THEN c ELSE '~' || c END), ', ' ORDER BY o)
        INTO expr, args
        FROM unnest(r.row_columns) WITH ORDINALITY AS u(c, o)
        JOIN pg_attribute ty ON ty.attrelid = tbl::regclass AND ty.attname = c;
      args := quote_literal(expr) || ', ' || args;
    END IF;
    EXECUTE format('DROP TRIGGER IF EXISTS ripple_capture_ins ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS ripple_capture_upd ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS ripple_capture_del ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS ripple_capture_trunc ON %s', tbl);
    CONTINUE WHEN EXISTS (SELECT 1 FROM ripple_capture_skip s WHERE s.table_name = r.table_name);
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
