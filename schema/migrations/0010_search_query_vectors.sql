-- The vectors of search query texts, so that a live search (messages:searchLive, a query, which
-- may not call the network) can read its query's vector, and the embedding provider is asked for
-- a query text once per model, not on every re-run. messages:prepareSearch (an action) fills it.
--
-- key is the hex SHA-256 of the model, a NUL and the normalised query text (functions/search.go,
-- queryVectorKey): text, so the capture triggers watch it and a live search depends on its own
-- row only. used_at is when a search last asked for the row (moved at most every few minutes, so
-- an open search is not re-run for it); rows past the cap go oldest used_at first, when a new
-- row is stored. The vector has no fixed dimension: rows of another model are never read.
-- Numbered 0010: 0009 is left to the group conversations' migration being written beside this.
CREATE TABLE search_query_vectors (
  key        text PRIMARY KEY,
  model      text NOT NULL,
  embedding  vector NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  used_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX search_query_vectors_used ON search_query_vectors (used_at, key);
