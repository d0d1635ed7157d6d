-- A message's queue row no longer checks its message by foreign key. Sends run SERIALIZABLE, and
-- the check (SELECT … FROM messages … FOR KEY SHARE, run for the queue row 0008's trigger
-- writes) takes a predicate lock on the messages_pkey leaf page holding the new id: the
-- rightmost page, where every concurrent send inserts its own message. Two sends in flight
-- each read the page the other wrote, one of them failed serialization and ran again: about one
-- send in four with 100 senders in closed loop, every one a repeated round trip. The row is
-- written by the trigger for a message of the same statement, so the check proved nothing.
--
-- What the key also did stays: deleting a message removes its queue row (a trigger below), and
-- a row whose message is gone (written by hand, say) is dropped by the sweep's lease
-- (messages:leaseEmbeddings) instead of being leased again forever.
ALTER TABLE message_embedding_queue DROP CONSTRAINT message_embedding_queue_message_id_fkey;

CREATE FUNCTION message_embedding_dequeue() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('DELETE FROM %I.message_embedding_queue q USING ripple_deleted_messages d WHERE q.message_id = d.id',
                 TG_TABLE_SCHEMA);
  RETURN NULL;
END
$$;

CREATE TRIGGER message_embedding_dequeue AFTER DELETE ON messages
REFERENCING OLD TABLE AS ripple_deleted_messages
FOR EACH STATEMENT EXECUTE FUNCTION message_embedding_dequeue();
