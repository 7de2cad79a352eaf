#!/usr/bin/env bash
# Stop the local citybase infrastructure. Data is kept; --purge also deletes Kafka's data
# (PostgreSQL databases are reset with `postgres.sh reset` while it runs).
#   deploy/local/down.sh [--purge]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG_PREFIX=down
# shellcheck source=deploy/local/lib/common.sh
. "$HERE/lib/common.sh"

purge=()
case "${1:-}" in
  "") ;;
  --purge) purge=(--purge) ;;
  *) die "usage: down.sh [--purge]" ;;
esac

t_all="$(now_s)"
rc=0
t="$(now_s)"
bash "$HERE/kafka.sh" down "${purge[@]}" || { warn "kafka down failed"; rc=1; }
log "kafka down in $(elapsed "$t")s"
t="$(now_s)"
bash "$HERE/postgres.sh" down || { warn "postgres down failed"; rc=1; }
log "postgres down in $(elapsed "$t")s"
log "all down in $(elapsed "$t_all")s"
exit "$rc"
