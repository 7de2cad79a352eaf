#!/usr/bin/env bash
# PostgreSQL for citybase from Debian's packages, listening on 127.0.0.1:5432 only, no Docker.
#
#   deploy/local/postgres.sh up       install (once), ensure cluster, start, wait, create role + databases
#   deploy/local/postgres.sh down     stop the cluster (data kept)
#   deploy/local/postgres.sh status   exit 0 when accepting connections on 127.0.0.1:5432, 3 otherwise
#   deploy/local/postgres.sh reset    drop and recreate the databases citybase and citybase_test
#
# Role citybase / password citybase (LOGIN CREATEDB) owns databases citybase and citybase_test:
#   postgresql://citybase:citybase@127.0.0.1:5432/citybase
# Env: PG_CLUSTER (default main), PG_VERSION (default: newest installed major),
#      PG_START_TIMEOUT (seconds, default 60). Needs root (apt-get, pg_ctlcluster).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG_PREFIX=postgres
# shellcheck source=deploy/local/lib/common.sh
. "$HERE/lib/common.sh"

PG_CLUSTER="${PG_CLUSTER:-main}"
PG_PORT=5432
PG_START_TIMEOUT="${PG_START_TIMEOUT:-60}"
DB_USER=citybase
DB_PASSWORD=citybase
DATABASES=(citybase citybase_test)

usage() { sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

# Newest major version whose server binary is installed (the psql client alone does not count).
installed_major() {
  local d v best=""
  for d in /usr/lib/postgresql/*/bin/postgres; do
    [ -x "$d" ] || continue
    v="${d#/usr/lib/postgresql/}"
    v="${v%%/*}"
    if [ -z "$best" ] || [ "${v%%.*}" -gt "${best%%.*}" ]; then best="$v"; fi
  done
  [ -n "$best" ] && echo "$best"
}

ensure_installed() {
  if command -v pg_ctlcluster >/dev/null 2>&1 && command -v pg_isready >/dev/null 2>&1 \
     && installed_major >/dev/null; then
    return 0
  fi
  log "PostgreSQL server not installed; installing Debian's postgresql"
  apt_install postgresql postgresql-contrib
  installed_major >/dev/null || die "postgresql installed but no /usr/lib/postgresql/*/bin/postgres found"
}

PG_VER=""
pick_version() {
  PG_VER="${PG_VERSION:-$(installed_major)}"
  [ -x "/usr/lib/postgresql/$PG_VER/bin/postgres" ] || die "PostgreSQL $PG_VER server binaries not installed"
}

conf_dir() { echo "/etc/postgresql/$PG_VER/$PG_CLUSTER"; }

cluster_status() { # prints online/down, or nothing when the cluster does not exist
  { pg_lsclusters -h 2>/dev/null || true; } | awk -v v="$PG_VER" -v c="$PG_CLUSTER" '$1 == v && $2 == c { print $4 }'
}

cluster_port() {
  { pg_lsclusters -h 2>/dev/null || true; } | awk -v v="$PG_VER" -v c="$PG_CLUSTER" '$1 == v && $2 == c { print $3 }'
}

ensure_cluster() {
  if [ -z "$(cluster_status)" ]; then
    log "creating cluster $PG_VER/$PG_CLUSTER on port $PG_PORT"
    pg_createcluster "$PG_VER" "$PG_CLUSTER" --port "$PG_PORT" --encoding UTF8 --locale C.UTF-8 >&2 \
      || die "pg_createcluster $PG_VER $PG_CLUSTER failed"
  fi
}

# Returns 0 when the config file changed (a running server then needs a restart).
write_config() {
  local dir f want
  dir="$(conf_dir)"
  f="$dir/conf.d/citybase.conf"
  [ -f "$dir/postgresql.conf" ] || die "$dir/postgresql.conf missing"
  mkdir -p "$dir/conf.d"
  grep -Eq "^[[:space:]]*include_dir[[:space:]]*=[[:space:]]*'conf\.d'" "$dir/postgresql.conf" \
    || echo "include_dir = 'conf.d'" >>"$dir/postgresql.conf"
  want="# Written by deploy/local/postgres.sh: loopback only, fixed port.
listen_addresses = '127.0.0.1'
port = $PG_PORT"
  if [ -f "$f" ] && [ "$(cat "$f")" = "$want" ] && [ "$(cluster_port)" = "$PG_PORT" ]; then
    return 1
  fi
  printf '%s\n' "$want" >"$f"
  chown postgres:postgres "$f" 2>/dev/null || true
  # pg_lsclusters reads the port from postgresql.conf itself, so keep that line in step too.
  sed -i -E "s/^[[:space:]]*port[[:space:]]*=.*/port = $PG_PORT/" "$dir/postgresql.conf"
  return 0
}

as_postgres() {
  if command -v runuser >/dev/null 2>&1; then
    runuser -u postgres -- "$@"
  else
    su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
  fi
}

psql_admin() { # runs SQL from stdin as the postgres superuser over the local socket
  as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" -h /var/run/postgresql -d postgres "$@"
}

wait_ready() {
  local deadline
  deadline=$(($(date +%s) + PG_START_TIMEOUT))
  until pg_isready -q -h 127.0.0.1 -p "$PG_PORT" -t 2; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      tail -n 30 "/var/log/postgresql/postgresql-$PG_VER-$PG_CLUSTER.log" >&2 2>/dev/null || true
      die "PostgreSQL not accepting connections on 127.0.0.1:$PG_PORT after ${PG_START_TIMEOUT}s"
    fi
    sleep 0.3
  done
}

ensure_role_and_dbs() {
  psql_admin <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER') THEN
    CREATE ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASSWORD';
  ELSE
    ALTER ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASSWORD';
  END IF;
END
\$\$;
SQL
  local db
  for db in "${DATABASES[@]}"; do
    if [ "$(psql_admin -tA -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
      log "creating database $db"
      psql_admin -c "CREATE DATABASE $db OWNER $DB_USER"
    else
      psql_admin -c "ALTER DATABASE $db OWNER TO $DB_USER"
    fi
  done
}

cmd_up() {
  local t0 changed=0 st
  t0="$(now_s)"
  need_root "postgres.sh up"
  ensure_installed
  pick_version
  ensure_cluster
  if write_config; then changed=1; fi
  install -d -o postgres -g postgres -m 2775 /var/run/postgresql
  st="$(cluster_status)"
  if [ "$st" = online ] && [ "$changed" -eq 1 ]; then
    log "restarting $PG_VER/$PG_CLUSTER to apply listen_addresses/port"
    pg_ctlcluster --mode fast "$PG_VER" "$PG_CLUSTER" restart >&2 || die "pg_ctlcluster restart failed"
  elif [ "$st" = online ]; then
    log "cluster $PG_VER/$PG_CLUSTER already running"
  else
    if port_open "$PG_PORT"; then
      die "127.0.0.1:$PG_PORT is taken by something other than cluster $PG_VER/$PG_CLUSTER"
    fi
    log "starting cluster $PG_VER/$PG_CLUSTER"
    pg_ctlcluster "$PG_VER" "$PG_CLUSTER" start >&2 || {
      tail -n 30 "/var/log/postgresql/postgresql-$PG_VER-$PG_CLUSTER.log" >&2 2>/dev/null || true
      die "pg_ctlcluster $PG_VER $PG_CLUSTER start failed"
    }
  fi
  wait_ready
  ensure_role_and_dbs
  log "PostgreSQL $PG_VER up on 127.0.0.1:$PG_PORT (postgresql://$DB_USER:$DB_PASSWORD@127.0.0.1:$PG_PORT/citybase) in $(elapsed "$t0")s"
}

cmd_down() {
  if ! installed_major >/dev/null; then
    log "not installed"
    return 0
  fi
  pick_version
  if [ "$(cluster_status)" = online ]; then
    log "stopping cluster $PG_VER/$PG_CLUSTER"
    pg_ctlcluster --mode fast "$PG_VER" "$PG_CLUSTER" stop >&2 || die "pg_ctlcluster stop failed"
  else
    log "not running"
  fi
}

cmd_status() {
  if pg_isready -q -h 127.0.0.1 -p "$PG_PORT" -t 2 2>/dev/null; then
    echo "postgres: running, accepting connections on 127.0.0.1:$PG_PORT"
    return 0
  fi
  echo "postgres: not accepting connections on 127.0.0.1:$PG_PORT"
  return 3
}

cmd_reset() {
  need_root "postgres.sh reset"
  pick_version
  wait_ready
  local db
  for db in "${DATABASES[@]}"; do
    log "dropping database $db"
    psql_admin -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
  done
  ensure_role_and_dbs
  log "databases ${DATABASES[*]} recreated empty"
}

main() {
  case "${1:-}" in
    up) cmd_up ;;
    down|stop) cmd_down ;;
    status) cmd_status ;;
    reset) cmd_reset ;;
    -h|--help|help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
