#!/usr/bin/env bash
# Fails when the committed TypeScript references to the chat's functions (web/src/generated/
# api.ts) differ from what `ripple codegen` writes from the registered Go functions now.
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}
committed=web/src/generated/api.ts

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ! "$GO" run ./cmd/ripple codegen --out "$tmp" >/dev/null; then
  echo "check-api: ripple codegen failed (see above)" >&2
  exit 1
fi
if ! cmp -s "$tmp/api.ts" "$committed"; then
  echo "check-api: $committed is stale; run \`make generate\` (or \`go run ./cmd/ripple codegen\`) and commit it:" >&2
  diff -u "$committed" "$tmp/api.ts" | head -n 30 | sed 's/^/    /' >&2 || true
  exit 1
fi
echo "check-api: $committed is up to date"
