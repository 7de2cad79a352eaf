# shellcheck shell=bash
# Shared helpers for deploy/local/*.sh. Source it; do not execute it.

CITYBASE_INFRA_DIR="${CITYBASE_INFRA_DIR:-${HOME:-/root}/.cache/citybase/infra}"
export CITYBASE_INFRA_DIR

_log_prefix="${LOG_PREFIX:-infra}"

log()  { printf '[%s] %s\n' "$_log_prefix" "$*" >&2; }
warn() { printf '[%s] WARNING: %s\n' "$_log_prefix" "$*" >&2; }
die()  { printf '[%s] ERROR: %s\n' "$_log_prefix" "$*" >&2; exit 1; }

need_root() {
  [ "$(id -u)" -eq 0 ] || die "$1 needs root (apt-get / system services); re-run as root or with sudo"
}

# apt-get update runs at most once per script invocation.
_APT_UPDATED=0
apt_install() {
  need_root "installing $*"
  export DEBIAN_FRONTEND=noninteractive
  mkdir -p "$CITYBASE_INFRA_DIR"
  local apt_log="$CITYBASE_INFRA_DIR/apt.log"
  if [ "$_APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    apt-get -o DPkg::Lock::Timeout=120 update >"$apt_log" 2>&1 \
      || { tail -n 30 "$apt_log" >&2; die "apt-get update failed (full log: $apt_log)"; }
    _APT_UPDATED=1
  fi
  log "apt-get install -y $* (log: $apt_log)"
  apt-get -o DPkg::Lock::Timeout=120 install -y --no-install-recommends "$@" >>"$apt_log" 2>&1 \
    || { tail -n 30 "$apt_log" >&2; die "apt-get install $* failed (full log: $apt_log)"; }
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
  # shellcheck disable=SC2016  # $0 is expanded by the inner bash
  timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null
}

# Seconds since the epoch with millisecond precision (for timings).
now_s() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }'; }
