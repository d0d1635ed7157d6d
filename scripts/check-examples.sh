#!/usr/bin/env bash
# Fails when an example application's committed generated code is stale: its sqlc code and read
# sets (from its queries/*.sql and migrations) and its web client's api.ts (from its registered
# functions). Each is regenerated into a temporary copy and compared; the tree is not touched.
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}
SQLC=("$GO" tool -modfile=tools/go.mod sqlc)
app=examples/questions

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# sqlc resolves paths relative to its config, which names the engine's SQL as ../../engine/...
mkdir -p "$tmp/$app" "$tmp/engine/internal/migrate"
cp -R engine/internal/migrate/sql "$tmp/engine/internal/migrate/"
cp "$app/sqlc.yaml" "$tmp/$app/"
cp -R "$app/migrations" "$tmp/$app/"
mkdir -p "$tmp/$app/queries"
cp "$app"/queries/*.sql "$tmp/$app/queries/"
"${SQLC[@]}" generate -f "$tmp/$app/sqlc.yaml"
"$GO" -C tools run ./readsetgen -C "$tmp/$app"
"$GO" run ./$app/cmd/questions codegen --out "$tmp/$app/web/src/generated"

stale=()
for f in "$tmp/$app"/queries/*.go "$tmp/$app/web/src/generated/api.ts"; do
  rel=${f#"$tmp/"}
  if ! cmp -s "$f" "$rel"; then
    stale+=("$rel")
    diff -u "$rel" "$f" 2>&1 | head -n 20 | sed 's/^/    /' >&2 || true
  fi
done
if [ ${#stale[@]} -gt 0 ]; then
  echo "check-examples: stale generated code in ${stale[*]}; run \`make generate\` and commit it" >&2
  exit 1
fi
echo "check-examples: $app's generated code is up to date"
