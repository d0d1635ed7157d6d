-- Ripple's engine objects: change capture for every application table.
--
-- Each application table gets three statement-level AFTER triggers (insert, update, delete) with
-- transition tables, plus one for TRUNCATE. They send one NOTIFY per statement on the channel
-- 'ripple_changes:<schema>' whose payload names the table, the writing transaction and, for each
-- watched column (primary key and the leading column of every index), the distinct old and new
-- values as text. Payloads carry keys, never documents; a payload that would pass about 7 KB
-- degrades to a table-wide change ("all": true).

CREATE FUNCTION ripple_capture_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  col text;
  src text;
  vals jsonb;
  keys jsonb := '{}'::jsonb;
  body text;
  head jsonb := jsonb_build_object('t', TG_TABLE_NAME, 'x', pg_current_xact_id()::text);
  channel text := 'ripple_changes:' || TG_TABLE_SCHEMA;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    PERFORM pg_notify(channel, (head || '{"all": true}'::jsonb)::text);
    RETURN NULL;
  ELSIF TG_OP = 'INSERT' THEN
    src := 'SELECT %1$I::text AS v FROM ripple_new_rows';
  ELSIF TG_OP = 'DELETE' THEN
    src := 'SELECT %1$I::text AS v FROM ripple_old_rows';
  ELSE
    src := 'SELECT %1$I::text AS v FROM ripple_old_rows UNION SELECT %1$I::text FROM ripple_new_rows';
  END IF;

  FOREACH col IN ARRAY TG_ARGV LOOP
    EXECUTE format('SELECT jsonb_agg(DISTINCT v) FROM (' || src || ') s', col) INTO vals;
    IF vals IS NULL THEN
      RETURN NULL; -- the statement touched no rows
    END IF;
    keys := keys || jsonb_build_object(col, vals);
  END LOOP;

  IF array_length(TG_ARGV, 1) IS NULL THEN
    body := (head || '{"all": true}'::jsonb)::text;
  ELSE
    body := (head || jsonb_build_object('c', keys))::text;
    IF octet_length(body) > 7000 THEN
      body := (head || '{"all": true}'::jsonb)::text;
    END IF;
  END IF;
  PERFORM pg_notify(channel, body);
  RETURN NULL;
END
$$;

-- ripple_capture_columns lists, for every application table of the current schema, the columns
-- its triggers watch. Only scalar columns are watched (a vector or JSON column is never a key).
CREATE FUNCTION ripple_capture_columns()
RETURNS TABLE (table_name text, watched text[], primary_key text[])
LANGUAGE sql STABLE AS $$
  SELECT c.relname::text,
         coalesce((
           SELECT array_agg(DISTINCT a.attname::text ORDER BY a.attname::text)
           FROM pg_index i
           JOIN pg_attribute a ON a.attrelid = i.indrelid
            AND (a.attnum = i.indkey[0] OR (i.indisprimary AND a.attnum = ANY (i.indkey::int2[])))
           JOIN pg_type ty ON ty.oid = a.atttypid
           WHERE i.indrelid = c.oid AND a.attnum > 0 AND ty.typcategory IN ('N', 'S', 'B', 'D')
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
    AND c.relname NOT LIKE 'ripple\_%'
    AND c.relname NOT LIKE 'river\_%'
$$;

-- ripple_capture_install_all (re)creates the capture triggers on every application table of the
-- current schema. Ripple's migrator calls it after every migration run, so a table added by any
-- later migration is captured without hand-written triggers.
CREATE FUNCTION ripple_capture_install_all() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  r record;
  tbl text;
  args text;
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
  END LOOP;
END
$$;

-- Mutations are deduplicated by (session, request) across reconnects: the stored outcome is
-- replayed instead of running the mutation twice.
CREATE TABLE ripple_mutation_log (
  session_id  text        NOT NULL,
  request_id  bigint      NOT NULL,
  success     boolean     NOT NULL,
  result      jsonb,
  error_data  jsonb,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (session_id, request_id)
);
CREATE INDEX ripple_mutation_log_created_at ON ripple_mutation_log (created_at);
