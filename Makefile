# Ripple: `make run` serves everything on :3210, `make test` runs every suite.
SHELL := /bin/bash
export DATABASE_URL ?=
GO ?= go
SQLC := $(GO) tool -modfile=tools/go.mod sqlc
DEFAULT_DATABASE_URL := postgres://ripple:ripple@127.0.0.1:5432/ripple?sslmode=disable

.PHONY: run test db build build-web npm-install generate generate-examples check-generated vet test-go test-ts test-web soak fuzz fuzz-brief

# Postgres with pgvector on this machine, unless DATABASE_URL points elsewhere.
db:
	@bash scripts/postgres.sh

# The web app (web/, React + Vite) is built into web/dist first: the binary embeds it. The npm
# workspaces (client-ts, web; package.json) are installed from the root lockfile in CI, or when
# node_modules is missing.
build: build-web
	$(GO) build -o bin/ripple ./cmd/ripple

npm-install:
	@if [ -n "$${CI:-}" ] || [ ! -d node_modules ]; then npm ci --no-audit --no-fund; fi

# web's build builds client-ts (@ripplehq/client) first.
build-web: npm-install
	cd web && npm run build

# Serves on $RIPPLE_ADDR (default 127.0.0.1:3210) against $DATABASE_URL (default: `make db`'s).
run: db build
	DATABASE_URL="$${DATABASE_URL:-$(DEFAULT_DATABASE_URL)}" ./bin/ripple serve --addr "$${RIPPLE_ADDR:-127.0.0.1:3210}"

READSETGEN := $(GO) -C tools run ./readsetgen -C ..

# sqlc's Go code, then the read-set analysis of the same SQL (tools/readsetgen), then the chat's
# typed function references for the TypeScript client (web/src/generated/api.ts).
generate: generate-examples
	$(SQLC) generate
	$(READSETGEN)
	$(GO) run ./cmd/ripple codegen --out web/src/generated

# The example applications' generated code (examples/questions: sqlc, read sets, api.ts).
generate-examples:
	$(SQLC) generate -f examples/questions/sqlc.yaml
	$(GO) -C tools run ./readsetgen -C ../examples/questions
	$(GO) run ./examples/questions/cmd/questions codegen --out examples/questions/web/src/generated

# Fails when the committed generated code differs from what `make generate` writes.
check-generated:
	@bash scripts/check-generated.sh
	@bash scripts/check-api.sh
	@bash scripts/check-examples.sh

vet:
	$(GO) vet ./...

# -timeout: go test's default 10 m per package binary was passed by engine and cmd/ripple on a
# shared, loaded 2-core machine once they started private clusters (logical feed, replicas).
# promtool (scripts/promtool.sh) checks docs/alerts.yml in cmd/ripple's TestAlertRulesPromtool.
test-go: db npm-install
	bash scripts/promtool.sh
	$(GO) test -race -count=1 -timeout 30m ./...
	$(GO) -C tools test -count=1 ./readsetgen/

# The TypeScript client's suite (client-ts): its build, the type test (tsc --noEmit over the
# package, its tests and the @ts-expect-error cases of test/types.tsx), then Vitest against real
# servers on Postgres.
test-ts: db npm-install
	cd client-ts && npm test

# The browser end-to-end suites (web/e2e, and examples/questions/web/e2e): Debian's Chromium driven by playwright-core against a
# `ripple serve` built with the web app `build` just made.
test-web: db build
	bash scripts/chromium.sh
	cd web && RIPPLE_E2E_SKIP_BUILD=1 npm test
	cd examples/questions/web && npm test

# A short soak (docs/engine.md, Soak): `ripple bench chat --scenario soak` against a fresh
# `ripple serve` child with retention and token lifetime shortened so that every clean-up and
# refresh runs many times; it fails when a sampled resource trends upward after the warm-up
# (bounds relative to each series' own level, never a wall-clock figure) or a message is not
# delivered. SOAK_FLAGS="--duration 30m" is the long run.
SOAK_FLAGS ?= --duration 3m --sample-every 10s --warm-up 60s --soak-clients 12 --token-ttl 30s --retention 20s
soak: db build
	DATABASE_URL="$${DATABASE_URL:-$(DEFAULT_DATABASE_URL)}" ./bin/ripple bench chat --scenario soak $(SOAK_FLAGS)

# Go's native fuzzing, each target for $(FUZZTIME) (no database). `go test` already runs every
# target's seeds (f.Add and testdata/fuzz); a crasher found here is written to the package's
# testdata/fuzz/<Target>/ — fix it and commit that file as a regression seed. Entries are
# package:Target; packages under tools/ are in the tools module.
FUZZTIME ?= 10s
FUZZ_TARGETS := \
	./engine/internal/wire:FuzzDecodeClientMessage \
	./engine/internal/wire:FuzzDecodeTS \
	./engine/internal/wire:FuzzChunks \
	./engine/internal/values:FuzzDecode \
	./engine/internal/changefeed:FuzzParse \
	./engine/internal/changefeed:FuzzParseSnapshot \
	./engine/internal/auth:FuzzNormalizeEmail \
	./functions:FuzzDecodeCursor \
	tools/readsetgen:FuzzRangeAnalysis

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; echo "fuzz $$name ($$pkg) for $(FUZZTIME)"; \
		case $$pkg in \
		tools/*) $(GO) -C tools test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) ./$${pkg#tools/} ;; \
		*) $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg ;; \
		esac; \
	done

# Every target briefly, by executions rather than time (Go's fuzzer can report a time limit
# that runs out while a worker is busy as a failure, "context deadline exceeded"). Not part of
# `make test`: new random inputs make a gate that fails on whatever a run happens to find (a CI
# run found a too-strict property in a test this way); `go test` runs the committed seeds, and
# what `make fuzz` finds becomes a seed.
fuzz-brief:
	$(MAKE) fuzz FUZZTIME=20000x

test: db vet check-generated test-go test-ts test-web soak
