-- name: UserGet :one
SELECT id, name, email FROM users WHERE id = $1;

-- name: UserGetByEmail :one
SELECT id, name, email FROM users WHERE lower(email) = lower($1);

-- name: UserInsert :one
INSERT INTO users (name, email) VALUES ($1, $2) RETURNING id, name, email;

-- name: UserListByEmails :many
SELECT id, name, email FROM users WHERE lower(email) = ANY(sqlc.arg(emails)::text[]);
