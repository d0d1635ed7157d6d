-- The chat application's tables. IDs are bigint identities everywhere (strings on the wire).

CREATE TABLE users (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name        text        NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
  email       text        NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_lower ON users (lower(email));

CREATE TABLE conversations (
  id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  type               text        NOT NULL CHECK (type IN ('direct', 'group')),
  -- For direct conversations: the two participants, lower id first, so a pair has at most one.
  direct_user_low    bigint      REFERENCES users (id),
  direct_user_high   bigint      REFERENCES users (id),
  last_message_time  timestamptz,
  created_at         timestamptz NOT NULL DEFAULT now(),
  CHECK ((type = 'direct') = (direct_user_low IS NOT NULL AND direct_user_high IS NOT NULL)),
  CHECK (direct_user_low < direct_user_high)
);
CREATE UNIQUE INDEX conversations_direct_pair ON conversations (direct_user_low, direct_user_high)
  WHERE type = 'direct';

CREATE TABLE conversation_participants (
  conversation_id  bigint      NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
  user_id          bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  joined_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX conversation_participants_user_joined ON conversation_participants (user_id, joined_at);
-- The primary key is the (conversation_id, user_id) index and the unique pair.

CREATE TABLE messages (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  sender_id        bigint      NOT NULL REFERENCES users (id),
  conversation_id  bigint      NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
  body             text        NOT NULL CHECK (char_length(body) BETWEEN 1 AND 4000 AND btrim(body) <> ''),
  created_at       timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX messages_conversation_created ON messages (conversation_id, created_at, id);

CREATE TABLE message_embeddings (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  message_id       bigint      NOT NULL UNIQUE REFERENCES messages (id) ON DELETE CASCADE,
  conversation_id  bigint      NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
  sender_id        bigint      NOT NULL REFERENCES users (id),
  embedding        vector(1536) NOT NULL,
  model            text        NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX message_embeddings_conversation ON message_embeddings (conversation_id);
CREATE INDEX message_embeddings_hnsw ON message_embeddings USING hnsw (embedding vector_cosine_ops);

-- Messages whose embedding is permanently impossible are recorded, not retried forever.
CREATE TABLE message_embedding_failures (
  message_id  bigint      PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
  reason      text        NOT NULL,
  failed_at   timestamptz NOT NULL DEFAULT now()
);
