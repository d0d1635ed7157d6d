#!/usr/bin/env bash
# Makes a local PostgreSQL 15 with pgvector available for `make run` and `make test`.
#
# When DATABASE_URL is set, this script does nothing: the caller brought its own server.
# Otherwise, on Debian bookworm as root (the project's machines and CI), it:
#   1. installs pgvector 0.8 if missing, building Debian trixie's source package against
#      postgresql-server-dev-15 (bookworm ships no binary package of that version);
#   2. starts the 15/main cluster;
#   3. creates the `ripple` role and database and the `vector` extension;
#   4. raises max_connections, sets wal_level = logical with room for replication slots and WAL
#      senders (RIPPLE_CHANGE_FEED=logical, streaming replicas) and preloads pg_stat_statements
#      (for `ripple bench chat`'s statements per message), restarting the cluster once if any of
#      it changed, and creates that extension in the `ripple` database.
# Every step checks first, so a second run takes well under a second.
set -euo pipefail

if [ -n "${DATABASE_URL:-}" ]; then
  exit 0
fi

PG_MAJOR=15
PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
log() { echo "postgres.sh: $*" >&2; }

need_root() {
  if [ "$(id -u)" != 0 ]; then
    log "needs root to $1; or set DATABASE_URL to a server with pgvector (see README)"
    exit 1
  fi
}

apt_updated=""
apt_update_once() {
  if [ -z "$apt_updated" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    apt_updated=1
  fi
}

# 1. The server itself.
if [ ! -x "$PG_BIN/postgres" ]; then
  need_root "install PostgreSQL $PG_MAJOR"
  apt_update_once
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "postgresql-$PG_MAJOR" >/dev/null
fi

# 2. pgvector, from trixie's source package.
sharedir=$("$PG_BIN/pg_config" --sharedir 2>/dev/null || echo "/usr/share/postgresql/$PG_MAJOR")
if ! ls "$sharedir"/extension/vector--0.8*.sql >/dev/null 2>&1; then
  need_root "build pgvector"
  log "installing pgvector 0.8 from Debian's trixie source package (about a minute, once)"
  src_list=/etc/apt/sources.list.d/ripple-trixie-src.list
  if [ ! -f "$src_list" ]; then
    echo "deb-src http://deb.debian.org/debian trixie main" > "$src_list"
    apt_updated=""
  fi
  apt_update_once
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "postgresql-server-dev-$PG_MAJOR" build-essential dpkg-dev >/dev/null
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  ( cd "$work" && apt-get source -qq --download-only pgvector >/dev/null && dpkg-source -x --no-check ./pgvector_*.dsc src >/dev/null )
  make -s -C "$work/src" PG_CONFIG="$PG_BIN/pg_config" USE_PGXS=1 with_llvm=no OPTFLAGS="" >/dev/null
  make -s -C "$work/src" PG_CONFIG="$PG_BIN/pg_config" USE_PGXS=1 with_llvm=no install >/dev/null
fi

# 3. A running cluster.
if ! pg_lsclusters -h 2>/dev/null | awk '{print $1"/"$2}' | grep -qx "$PG_MAJOR/main"; then
  need_root "create the cluster"
  pg_createcluster "$PG_MAJOR" main >/dev/null
fi
if ! pg_lsclusters -h | awk -v v="$PG_MAJOR" '$1==v && $2=="main" {print $4}' | grep -q online; then
  need_root "start the cluster"
  pg_ctlcluster "$PG_MAJOR" main start
fi
for _ in $(seq 1 50); do
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p 5432 && break
  sleep 0.2
done

# 4. Role, database, extension. The role is a superuser because tests create and drop schemas
# and River's tables freely; it listens on loopback only.
psql_admin() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 "$@"; }
if ! psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname='ripple'" | grep -q 1; then
  psql_admin -c "CREATE ROLE ripple LOGIN SUPERUSER PASSWORD 'ripple'"
fi
if ! psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname='ripple'" | grep -q 1; then
  psql_admin -c "CREATE DATABASE ripple OWNER ripple"
fi
psql_admin -d ripple -c "CREATE EXTENSION IF NOT EXISTS vector"

# 5. Settings that take a restart, set together so the cluster restarts at most once.
restart=""
# Many tests run in parallel, each with its own pool, listener and River client.
if [ "$(psql_admin -tAc 'SHOW max_connections')" -lt 400 ]; then
  psql_admin -c "ALTER SYSTEM SET max_connections = 500"
  restart=1
fi
# The logical change feed (RIPPLE_CHANGE_FEED=logical): one temporary slot and one WAL sender
# per server process, tests' included. (Tests of the feed make a private server of their own,
# so they do not depend on this.)
if [ "$(psql_admin -tAc 'SHOW wal_level')" != logical ]; then
  psql_admin -c "ALTER SYSTEM SET wal_level = logical"
  restart=1
fi
if [ "$(psql_admin -tAc 'SHOW max_replication_slots')" -lt 50 ]; then
  psql_admin -c "ALTER SYSTEM SET max_replication_slots = 100"
  restart=1
fi
if [ "$(psql_admin -tAc 'SHOW max_wal_senders')" -lt 50 ]; then
  psql_admin -c "ALTER SYSTEM SET max_wal_senders = 100"
  restart=1
fi
# pg_stat_statements (contrib, shipped in postgresql-15) lets bench chat count the statements
# each message costs. Libraries preloaded already stay in the list.
preload=$(psql_admin -tAc 'SHOW shared_preload_libraries')
libs="" has_pgss=""
IFS=, read -ra preloaded <<<"$preload"
for lib in "${preloaded[@]}"; do
  lib=${lib//[\" ]/}
  [ -z "$lib" ] && continue
  [ "$lib" = pg_stat_statements ] && has_pgss=1
  libs+="'$lib', "
done
if [ -z "$has_pgss" ]; then
  pkglibdir=$("$PG_BIN/pg_config" --pkglibdir 2>/dev/null || echo "/usr/lib/postgresql/$PG_MAJOR/lib")
  if [ -f "$pkglibdir/pg_stat_statements.so" ]; then
    # A library that is not there would stop the cluster from starting: checked above.
    psql_admin -c "ALTER SYSTEM SET shared_preload_libraries = ${libs}'pg_stat_statements'"
    restart=1
  else
    log "no pg_stat_statements.so in $pkglibdir: bench chat will not count statements"
  fi
fi
if [ -n "$restart" ]; then
  pg_ctlcluster "$PG_MAJOR" main restart
fi
if ! psql_admin -d ripple -tAc "SELECT 1 FROM pg_extension WHERE extname='pg_stat_statements'" | grep -q 1; then
  psql_admin -d ripple -c "CREATE EXTENSION pg_stat_statements"
fi
