-- The question board's SQL. `make generate` turns it into Go (sqlc) and read sets (readsetgen).

-- name: UserGet :one
SELECT id, name, is_teacher FROM users WHERE id = @id;

-- name: QuestionInsert :one
INSERT INTO questions (author_id, body) VALUES (@author_id, @body)
RETURNING id;

-- A page of the board, most votes first: one index range of questions, so a vote re-runs only
-- the pages the question was on and moves to.
-- name: QuestionPage :many
SELECT id, author_id, body, votes, answered_at, created_at FROM questions
WHERE (sqlc.narg(after_votes)::integer IS NULL
       OR (votes, id) < (sqlc.narg(after_votes)::integer, sqlc.narg(after_id)::bigint))
  AND (sqlc.narg(until_votes)::integer IS NULL
       OR (votes, id) >= (sqlc.narg(until_votes)::integer, sqlc.narg(until_id)::bigint))
ORDER BY votes DESC, id DESC
LIMIT @max_rows;

-- name: VoteList :many
SELECT question_id FROM question_votes
WHERE user_id = @user_id AND question_id = ANY(@question_ids::bigint[]);

-- name: VoteInsert :execrows
INSERT INTO question_votes (question_id, user_id) VALUES (@question_id, @user_id)
ON CONFLICT DO NOTHING;

-- name: QuestionVotesAdd :execrows
UPDATE questions SET votes = votes + 1 WHERE id = @id AND answered_at IS NULL;

-- name: QuestionMarkAnswered :execrows
UPDATE questions SET answered_at = now() WHERE id = @id AND answered_at IS NULL;

-- name: QuestionDeleteAnswered :execrows
DELETE FROM questions WHERE id = @id AND answered_at IS NOT NULL;

-- name: QuestionDeleteAnsweredBefore :execrows
DELETE FROM questions WHERE answered_at < @before;

-- name: QuestionCountOpen :one
SELECT count(*) FROM questions WHERE answered_at IS NULL;

-- name: UserSetTeacher :execrows
UPDATE users SET is_teacher = true WHERE lower(email) = lower(@email);
