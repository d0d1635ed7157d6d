-- A handleSentMessage job claims the recent messages it will embed, so concurrent jobs for a
-- burst of messages do not send the same texts to the provider. A claim is a lease: another
-- job may take it over once it expires; the claiming job (named by its message) may renew it
-- when River retries it.
CREATE TABLE message_embedding_claims (
  message_id     bigint      PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
  claimer        bigint      NOT NULL,
  claimed_until  timestamptz NOT NULL
);
