-- Full-text search over message bodies, beside the vector search: an expression index (no new
-- column, so exports and change capture are unaffected) on the English text-search vector.
-- messages:search ranks the text matches and the nearest vectors together (reciprocal rank
-- fusion). The expression must stay exactly to_tsvector('english', body) for the index to serve.
CREATE INDEX messages_body_fts ON messages USING gin (to_tsvector('english', body));
