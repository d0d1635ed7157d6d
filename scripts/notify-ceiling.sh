#!/usr/bin/env bash
# Measures the NOTIFY ceiling docs/scaling.md quotes: durable commits per second inserting a
# chat-sized row, without and with a chat-sized pg_notify in the same transaction, while one
# session listens; and, when the server has wal_level = logical, plain commits again while a
# logical slot streams them (pgoutput, as RIPPLE_CHANGE_FEED=logical reads them: the ceiling
# that feed leaves). Uses a scratch schema in $DATABASE_URL (default: `make db`'s) and drops it.
#   bash scripts/notify-ceiling.sh [clients...]   (default 16 64; 12 s a run)
set -euo pipefail
URL=${DATABASE_URL:-postgres://ripple:ripple@127.0.0.1:5432/ripple?sslmode=disable}
clients=("${@:-16 64}")
tmp=$(mktemp -d)
listener=""
streamer=""
cleanup() {
  [ -n "$listener" ] && kill "$listener" 2>/dev/null || true
  [ -n "$streamer" ] && kill "$streamer" 2>/dev/null && wait "$streamer" 2>/dev/null || true
  psql "$URL" -qc "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'notify_ceiling'" >/dev/null 2>&1 || true
  psql "$URL" -qc "DROP PUBLICATION IF EXISTS notify_ceiling" >/dev/null 2>&1 || true
  psql "$URL" -qc "DROP SCHEMA IF EXISTS notify_ceiling CASCADE" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

psql "$URL" -qc "DROP SCHEMA IF EXISTS notify_ceiling CASCADE" >/dev/null 2>&1
psql "$URL" -qc "CREATE SCHEMA notify_ceiling;
  CREATE TABLE notify_ceiling.t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, conv bigint NOT NULL,
    body text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
  CREATE INDEX ON notify_ceiling.t (conv, created_at);"
row="INSERT INTO notify_ceiling.t (conv, body) VALUES (:c, 'a message of about the usual length for a school chat, say sixty to a hundred characters');"
printf '\\set c random(1, 50)\n%s\n' "$row" > "$tmp/plain.sql"
printf '\\set c random(1, 50)\nBEGIN;\n%s\nSELECT pg_notify('"'"'notify_ceiling'"'"', '"'"'{"t":"messages","x":"123456","k":["id","conversation_id","sender_id","created_at"],"r":[["123456",":c","42","1796047432000000"]]}'"'"');\nCOMMIT;\n' "$row" > "$tmp/notify.sql"

psql "$URL" -qc "LISTEN notify_ceiling; SELECT pg_sleep(600)" >/dev/null 2>&1 &
listener=$!
for c in ${clients[@]}; do
  for script in plain notify; do
    tps=$(pgbench -n -c "$c" -j 2 -T 12 -f "$tmp/$script.sql" "$URL" 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    echo "clients $c, $script: $tps commits/s"
  done
done
if [ "$(psql "$URL" -XAtc "SHOW wal_level")" = logical ]; then
  psql "$URL" -qc "CREATE PUBLICATION notify_ceiling FOR TABLE notify_ceiling.t" >/dev/null
  pg_recvlogical -d "$URL" --slot notify_ceiling --create-slot --if-not-exists --plugin pgoutput >/dev/null
  pg_recvlogical -d "$URL" --slot notify_ceiling --start -o proto_version=1 -o publication_names=notify_ceiling \
    --fsync-interval 1 -f /dev/null &
  streamer=$!
  for c in ${clients[@]}; do
    tps=$(pgbench -n -c "$c" -j 2 -T 12 -f "$tmp/plain.sql" "$URL" 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    echo "clients $c, plain with a logical slot streaming: $tps commits/s"
  done
else
  echo "(wal_level is not logical: no run with a logical slot streaming)"
fi
