# Ripple: `make run` serves everything on :3210, `make test` runs every suite.
SHELL := /bin/bash
export DATABASE_URL ?=
GO ?= go
SQLC := $(GO) tool -modfile=tools/go.mod sqlc

.PHONY: run test db build generate check-generated vet test-go

# Postgres with pgvector on this machine, unless DATABASE_URL points elsewhere.
db:
	@bash scripts/postgres.sh

build:
	$(GO) build -o bin/ripple ./cmd/ripple

run: db build
	DATABASE_URL="$${DATABASE_URL:-postgres://ripple:ripple@127.0.0.1:5432/ripple?sslmode=disable}" ./bin/ripple serve --addr "$${RIPPLE_ADDR:-127.0.0.1:3210}"

generate:
	$(SQLC) generate

# Fails when the committed generated code differs from what `make generate` writes.
check-generated:
	@bash scripts/check-generated.sh

vet:
	$(GO) vet ./...

test-go: db
	$(GO) test -race -count=1 ./...

test: db vet check-generated test-go
