-- Group conversations. A group has a name (1 to 100 characters; conversations:createGroup always
-- gives one, groups written before or by other means may have none) and 2 to 200 members (the
-- functions keep the count: a member may leave a group of two); a member may be an admin (the
-- creator is the first; admins add, remove and rename). Membership changes are written into the
-- thread as system lines: messages of kind 'system', written by the function that made the
-- change, sent by the member who made it, never embedded or searchable as user text.
ALTER TABLE conversations
  ADD COLUMN name text,
  ADD CONSTRAINT conversations_group_name
    CHECK (name IS NULL OR (type = 'group' AND char_length(btrim(name)) BETWEEN 1 AND 100));

ALTER TABLE conversation_participants ADD COLUMN admin boolean NOT NULL DEFAULT false;

ALTER TABLE messages ADD COLUMN kind text NOT NULL DEFAULT 'text' CHECK (kind IN ('text', 'system'));

-- System lines do not go in the embedding queue (see 0008 for the rest).
CREATE OR REPLACE FUNCTION message_embedding_enqueue() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('ripple.importing', true) = 'on' THEN
    RETURN NULL;
  END IF;
  EXECUTE format('INSERT INTO %I.message_embedding_queue (message_id) SELECT id FROM ripple_enqueued_messages WHERE kind = ''text''',
                 TG_TABLE_SCHEMA);
  RETURN NULL;
END
$$;
