#!/usr/bin/env bash
# Start the local citybase infrastructure (PostgreSQL on 127.0.0.1:5432, Kafka on 127.0.0.1:9092).
# Idempotent: what already runs is reused. Exits non-zero with the reason when a part fails.
#   deploy/local/up.sh [postgres|kafka ...]   (default: both)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG_PREFIX=up
# shellcheck source=deploy/local/lib/common.sh
. "$HERE/lib/common.sh"

parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(postgres kafka)

t_all="$(now_s)"
for part in "${parts[@]}"; do
  case "$part" in
    postgres|kafka) ;;
    *) die "unknown part '$part' (postgres, kafka)" ;;
  esac
  t="$(now_s)"
  if ! bash "$HERE/$part.sh" up; then
    die "$part failed to come up after $(elapsed "$t")s (see messages above)"
  fi
  log "$part ready in $(elapsed "$t")s"
done
log "all up in $(elapsed "$t_all")s: postgresql://citybase:citybase@127.0.0.1:5432/citybase(_test), kafka 127.0.0.1:9092 (infra dir $CITYBASE_INFRA_DIR)"
