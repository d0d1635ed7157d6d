-- The change feed is either NOTIFY from capture triggers (the default) or logical replication
-- (engine Config.ChangeFeed = "logical"; docs/engine.md, Change feeds). One deployment uses one:
-- ripple_change_feed holds which, and ripple_capture_install_all, which the migrator and the
-- engine call, sets the database up for it:
--   notify: capture triggers on every captured table, no publication;
--   logical: no capture triggers (writes pay neither row images nor the notify lock), a
--     publication named ripple_<schema> over the captured tables, and REPLICA IDENTITY FULL
--     where the captured columns go beyond the primary key (an update's WAL record then carries
--     the old values of conversation_id, created_at…, which subscriptions to the old values need).
CREATE TABLE ripple_change_feed (
  only_row      boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  mode          text    NOT NULL DEFAULT 'notify' CHECK (mode IN ('notify', 'logical')),
  -- The tables whose replica identity the logical mode set to FULL, restored on leaving it.
  full_identity text[]  NOT NULL DEFAULT '{}'
);
INSERT INTO ripple_change_feed DEFAULT VALUES;

-- ripple_change_feed_publication is the publication's name for the current schema.
CREATE FUNCTION ripple_change_feed_publication() RETURNS text
LANGUAGE sql STABLE AS $$ SELECT left('ripple_' || current_schema(), 63) $$;

-- The capture triggers as 0004 installed them, now one of the two modes.
CREATE FUNCTION ripple_capture_install_triggers() RETURNS void
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

CREATE FUNCTION ripple_capture_drop_triggers() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  r record;
  tbl text;
BEGIN
  FOR r IN SELECT * FROM ripple_capture_columns() LOOP
    tbl := format('%I.%I', current_schema(), r.table_name);
    EXECUTE format('DROP TRIGGER IF EXISTS ripple_capture_ins ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS ripple_capture_upd ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS ripple_capture_del ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS ripple_capture_trunc ON %s', tbl);
  END LOOP;
END
$$;

-- ripple_capture_install_logical publishes the captured tables and sets the replica identities
-- their old images need; ALTER TABLE runs only where something changes (it takes an exclusive
-- lock).
CREATE FUNCTION ripple_capture_install_logical() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  r record;
  tbl text;
  pub text := ripple_change_feed_publication();
  tables text[] := '{}';
  full_tables text[] := '{}';
  want char;
  have char;
  set_before text[] := (SELECT full_identity FROM ripple_change_feed);
BEGIN
  PERFORM ripple_capture_drop_triggers();
  FOR r IN SELECT c.* FROM ripple_capture_columns() c
           WHERE NOT EXISTS (SELECT 1 FROM ripple_capture_skip s WHERE s.table_name = c.table_name) LOOP
    tbl := format('%I.%I', current_schema(), r.table_name);
    tables := tables || tbl;
    -- FULL unless the primary key alone holds every captured column (then the key image,
    -- or the new row when the key did not change, is the old image).
    IF cardinality(r.primary_key) > 0 AND r.row_columns <@ r.primary_key THEN
      want := 'd';
    ELSE
      want := 'f';
      full_tables := full_tables || r.table_name;
    END IF;
    SELECT relreplident INTO have FROM pg_class WHERE oid = tbl::regclass;
    IF want = 'f' AND have <> 'f' THEN
      EXECUTE format('ALTER TABLE %s REPLICA IDENTITY FULL', tbl);
    ELSIF want = 'd' AND have = 'f'
          AND r.table_name = ANY (set_before) THEN
      EXECUTE format('ALTER TABLE %s REPLICA IDENTITY DEFAULT', tbl);
    END IF;
  END LOOP;
  UPDATE ripple_change_feed
     SET full_identity = ARRAY(SELECT DISTINCT unnest(full_identity || full_tables) ORDER BY 1);
  IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = pub) THEN
    -- Partitions publish under their root's name, which is the table queries read.
    EXECUTE format('CREATE PUBLICATION %I WITH (publish_via_partition_root = true)', pub);
  END IF;
  IF cardinality(tables) > 0 THEN
    EXECUTE format('ALTER PUBLICATION %I SET TABLE %s', pub, array_to_string(tables, ', '));
  ELSE
    FOR r IN SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = pub LOOP
      EXECUTE format('ALTER PUBLICATION %I DROP TABLE %I.%I', pub, r.schemaname, r.tablename);
    END LOOP;
  END IF;
END
$$;

-- ripple_capture_install_all sets the database up for the deployment's change feed.
CREATE OR REPLACE FUNCTION ripple_capture_install_all() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  t text;
  set_before text[] := (SELECT full_identity FROM ripple_change_feed);
BEGIN
  IF (SELECT mode FROM ripple_change_feed) = 'logical' THEN
    PERFORM ripple_capture_install_logical();
    RETURN;
  END IF;
  EXECUTE format('DROP PUBLICATION IF EXISTS %I', ripple_change_feed_publication());
  FOREACH t IN ARRAY set_before LOOP
    IF to_regclass(format('%I.%I', current_schema(), t)) IS NOT NULL THEN
      EXECUTE format('ALTER TABLE %I.%I REPLICA IDENTITY DEFAULT', current_schema(), t);
    END IF;
  END LOOP;
  UPDATE ripple_change_feed SET full_identity = '{}';
  PERFORM ripple_capture_install_triggers();
END
$$;

-- ripple_slots lists Ripple's replication slots in this database (ripple slots, /readyz) with
-- the WAL each holds back: from its restart_lsn (retained) and from what it confirmed (behind)
-- to the current position.
CREATE FUNCTION ripple_slots()
RETURNS TABLE (slot_name text, temporary boolean, active boolean, active_pid int,
               retained_bytes bigint, behind_bytes bigint, wal_status text)
LANGUAGE sql STABLE AS $$
  SELECT s.slot_name::text, s.temporary, s.active, coalesce(s.active_pid, 0),
         coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn), 0)::bigint,
         coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn), 0)::bigint,
         coalesce(s.wal_status, '')
  FROM pg_replication_slots s
  WHERE s.slot_name LIKE 'ripple\_%' AND s.database = current_database()
  ORDER BY s.slot_name
$$;
