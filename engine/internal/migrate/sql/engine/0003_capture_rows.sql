-- Change capture with row images, for index-range read sets.
--
-- A query that pages through an index (`WHERE conversation_id = $1 AND (created_at, id) < (…)
-- ORDER BY created_at DESC, id DESC LIMIT n`) depends on one range of that index, not on every
-- row with the same conversation_id. To match a change against such ranges the engine needs,
-- per changed row, the values of the index columns together: distinct values per column lose
-- which created_at went with which conversation_id.
--
-- So each statement's NOTIFY now carries the old and new images of the changed rows, restricted
-- to the captured columns: the watched key columns (primary key and the leading column of each
-- index; integers, text, booleans, whose text form equals the engine's formatting of a bound
-- value) plus every integer or timestamptz column of a btree index, which ranges order by.
-- Timestamps travel as integer microseconds since the epoch (NULL when infinite), so the
-- engine compares them exactly, whatever the session's DateStyle or TimeZone.
--
-- Payload: {"t": table, "x": xid, "k": [column, …], "r": [[value, …], …]}. A statement that
-- touched more than 50 rows, or whose rows would pass about 7 KB, sends the previous form
-- instead, distinct values per watched column ({"c": {column: [value, …]}}), against which
-- ranges match coarsely (every range with a matching key); past 7 KB, {"all": true}.

DROP FUNCTION ripple_capture_columns();

-- ripple_capture_columns lists, for every application table of the current schema, the
-- watched key columns, the primary key, the captured row columns (in row-image order) and
-- which of those ranges may order by.
CREATE FUNCTION ripple_capture_columns()
RETURNS TABLE (table_name text, watched text[], primary_key text[], row_columns text[], ordered text[])
LANGUAGE sql STABLE AS $$
  WITH tables AS (
    SELECT c.oid, c.relname::text AS relname
    FROM pg_class c
    WHERE c.relnamespace = current_schema()::regnamespace
      AND c.relkind IN ('r', 'p')
      AND NOT c.relispartition
      AND c.relname NOT LIKE 'ripple\_%'
      AND c.relname NOT LIKE 'river\_%'
  ),
  cols AS (
    -- Every column of an index, marked key (watched) and/or ordered (ranges may use it).
    SELECT t.oid, a.attnum, a.attname::text AS attname,
           bool_or(a.attnum = i.indkey[0] OR i.indisprimary)
             AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype,
                                'text'::regtype, 'varchar'::regtype, 'bool'::regtype) AS is_key,
           bool_or(am.amname = 'btree')
             AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype,
                                'timestamptz'::regtype) AS is_ordered
    FROM tables t
    JOIN pg_index i ON i.indrelid = t.oid
    JOIN pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_am am ON am.oid = ic.relam
    JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY (i.indkey::int2[]) AND a.attnum > 0
    GROUP BY t.oid, a.attnum, a.attname, a.atttypid
  )
  SELECT t.relname,
         coalesce((SELECT array_agg(c.attname ORDER BY c.attname) FROM cols c
                   WHERE c.oid = t.oid AND c.is_key), '{}'),
         coalesce((SELECT array_agg(a.attname::text ORDER BY a.attnum)
                   FROM pg_index i
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey::int2[])
                   WHERE i.indrelid = t.oid AND i.indisprimary), '{}'),
         coalesce((SELECT array_agg(c.attname ORDER BY c.attnum) FROM cols c
                   WHERE c.oid = t.oid AND (c.is_key OR c.is_ordered)), '{}'),
         coalesce((SELECT array_agg(c.attname ORDER BY c.attnum) FROM cols c
                   WHERE c.oid = t.oid AND c.is_ordered), '{}')
  FROM tables t
$$;

-- ripple_capture_notify(row_expr, column…): row_expr is a jsonb_build_array(…) of the captured
-- columns as text (built by ripple_capture_install_all); the column names follow, and the
-- watched key columns are those not prefixed with '~'.
CREATE OR REPLACE FUNCTION ripple_capture_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  col text;
  src text;
  vals jsonb;
  keys jsonb := '{}'::jsonb;
  names jsonb := '[]'::jsonb;
  rows_img jsonb;
  n int;
  body text;
  head jsonb := jsonb_build_object('t', TG_TABLE_NAME, 'x', pg_current_xact_id()::text);
  channel text := 'ripple_changes:' || TG_TABLE_SCHEMA;
BEGIN
  IF TG_OP = 'TRUNCATE' OR TG_NARGS < 2 THEN
    PERFORM pg_notify(channel, (head || '{"all": true}'::jsonb)::text);
    RETURN NULL;
  ELSIF TG_OP = 'INSERT' THEN
    src := 'SELECT * FROM ripple_new_rows';
  ELSIF TG_OP = 'DELETE' THEN
    src := 'SELECT * FROM ripple_old_rows';
  ELSE
    src := 'SELECT * FROM ripple_old_rows UNION ALL SELECT * FROM ripple_new_rows';
  END IF;

  -- Row images: one query for all captured columns, and at most 51 rows read to decide.
  EXECUTE format('SELECT jsonb_agg(%s), count(*) FROM (%s LIMIT 51) s', TG_ARGV[0], src)
    INTO rows_img, n;
  IF n = 0 THEN
    RETURN NULL; -- the statement touched no rows
  END IF;
  IF n <= 50 THEN
    FOR i IN 1 .. TG_NARGS - 1 LOOP
      names := names || to_jsonb(ltrim(TG_ARGV[i], '~'));
    END LOOP;
    body := (head || jsonb_build_object('k', names, 'r', rows_img))::text;
    IF octet_length(body) <= 7000 THEN
      PERFORM pg_notify(channel, body);
      RETURN NULL;
    END IF;
  END IF;

  -- Too many rows: distinct values per watched key column.
  FOR i IN 1 .. TG_NARGS - 1 LOOP
    col := TG_ARGV[i];
    CONTINUE WHEN left(col, 1) = '~';
    EXECUTE format('SELECT jsonb_agg(DISTINCT %I::text) FROM (%s) s', col, src) INTO vals;
    keys := keys || jsonb_build_object(col, vals);
  END LOOP;
  body := (head || jsonb_build_object('c', keys))::text;
  IF keys = '{}'::jsonb OR octet_length(body) > 7000 THEN
    body := (head || '{"all": true}'::jsonb)::text;
  END IF;
  PERFORM pg_notify(channel, body);
  RETURN NULL;
END
$$;

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
