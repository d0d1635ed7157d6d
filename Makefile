# Ripple: `make run` serves everything on :3210, `make test` runs every suite.
SHELL := /bin/bash
export DATABASE_URL ?=
GO ?= go
SQLC := $(GO) tool -modfile=tools/go.mod sqlc
DEFAULT_DATABASE_URL := postgres://ripple:ripple@127.0.0.1:5432/ripple?sslmode=disable

.PHONY: run test db build generate check-generated vet test-go test-ts

# Postgres with pgvector on this machine, unless DATABASE_URL points elsewhere.
db:
	@bash scripts/postgres.sh

build:
	$(GO) build -o bin/ripple ./cmd/ripple

# Serves on $RIPPLE_ADDR (default 127.0.0.1:3210) against $DATABASE_URL (default: `make db`'s).
run: db build
	DATABASE_URL="$${DATABASE_URL:-$(DEFAULT_DATABASE_URL)}" ./bin/ripple serve --addr "$${RIPPLE_ADDR:-127.0.0.1:3210}"

READSETGEN := $(GO) -C tools run ./readsetgen -C ..

# sqlc's Go code, then the read-set analysis of the same SQL (tools/readsetgen).
generate:
	$(SQLC) generate
	$(READSETGEN)

# Fails when the committed generated code differs from what `make generate` writes.
check-generated:
	@bash scripts/check-generated.sh

vet:
	$(GO) vet ./...

test-go: db
	$(GO) test -race -count=1 ./...
	$(GO) -C tools test -count=1 ./readsetgen/

# The TypeScript client's suite; a no-op until client-ts/ exists. Dependencies are installed
# from the lockfile in CI, or when node_modules is missing.
test-ts:
	@if [ -f client-ts/package.json ]; then \
		cd client-ts && \
		if [ -n "$${CI:-}" ] || [ ! -d node_modules ]; then npm ci --no-audit --no-fund; fi && \
		npm test; \
	else \
		echo "test-ts: no client-ts/package.json yet; skipping"; \
	fi

# Later suites (the browser end-to-end tests) join this list.
test: db vet check-generated test-go test-ts
