-- Every message queues itself for the embedding sweep, whoever inserts it: messages:send, psql,
-- another service, an import. (Until now only messages:send queued its message, so a message
-- written any other way was never embedded.) Statement-level, with a transition table: one
-- insert into the queue per statement, however many rows. A plain INSERT, no ON CONFLICT: a new
-- message cannot be queued yet, and a uniqueness check would take predicate locks that the
-- sweep's writes conflict with (sends run SERIALIZABLE).
--
-- ripple import restores the queue as it was exported, and ripple import --convex queues what it
-- loads itself, so both turn this off for their own transaction: set_config('ripple.importing',
-- 'on', true). The queue is named with the trigger's own schema, so a psql session with another
-- search_path queues into the right one.
CREATE FUNCTION message_embedding_enqueue() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('ripple.importing', true) = 'on' THEN
    RETURN NULL;
  END IF;
  EXECUTE format('INSERT INTO %I.message_embedding_queue (message_id) SELECT id FROM ripple_enqueued_messages',
                 TG_TABLE_SCHEMA);
  RETURN NULL;
END
$$;

CREATE TRIGGER message_embedding_enqueue AFTER INSERT ON messages
REFERENCING NEW TABLE AS ripple_enqueued_messages
FOR EACH STATEMENT EXECUTE FUNCTION message_embedding_enqueue();
