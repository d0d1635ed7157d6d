-- The question board. The auth service's tables reference users (id bigint), so every Ripple
-- application has this table with at least id, name and email.
CREATE TABLE users (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name        text        NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
  email       text        NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
  is_teacher  boolean     NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_lower ON users (lower(email));

CREATE TABLE questions (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  author_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  body         text        NOT NULL CHECK (char_length(body) BETWEEN 1 AND 500),
  votes        integer     NOT NULL DEFAULT 0 CHECK (votes >= 0),
  answered_at  timestamptz,
  created_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- The board's order. An integer column of a btree index is captured with every change, so a
-- page of the board depends only on its own range of (votes, id).
CREATE INDEX questions_board ON questions (votes, id);

CREATE TABLE question_votes (
  question_id  bigint NOT NULL REFERENCES questions (id) ON DELETE CASCADE,
  user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  PRIMARY KEY (question_id, user_id)
);
CREATE INDEX question_votes_user ON question_votes (user_id);
