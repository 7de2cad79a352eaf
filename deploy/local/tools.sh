#!/usr/bin/env bash
# The operator tools the tests of deploy/ need, cached under $CITYBASE_INFRA_DIR/tools/bin:
#
#   deploy/local/tools.sh up          install what is missing (idempotent), then print the paths
#   deploy/local/tools.sh promtool    print the promtool path (install it first if missing)
#   deploy/local/tools.sh kustomize   print a kustomize command (`kubectl kustomize` or kustomize)
#   deploy/local/tools.sh chromium    print the chromium and chromedriver paths (install them if missing)
#
# promtool comes from Debian's `prometheus` package. Only the .deb is downloaded and promtool
# extracted from it: installing the package would also install, enable and start a Prometheus
# daemon, and we need the checker, not a server. kustomize: `kubectl kustomize` when kubectl is
# installed, else `go install sigs.k8s.io/kustomize/kustomize/v5` into the same cache.
# chromium and chromedriver (the console's browser tests, headless) are Debian's `chromium` and
# `chromium-driver` packages, installed system-wide: they must match each other's version.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG_PREFIX=tools
# shellcheck source=deploy/local/lib/common.sh
. "$HERE/lib/common.sh"

TOOLS_BIN="$CITYBASE_INFRA_DIR/tools/bin"
KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.5.0}"

promtool_path() {
  if [ -x "$TOOLS_BIN/promtool" ]; then echo "$TOOLS_BIN/promtool"; return 0; fi
  command -v promtool 2>/dev/null
}

ensure_promtool() {
  promtool_path >/dev/null && return 0
  need_root "downloading Debian's prometheus package"
  mkdir -p "$TOOLS_BIN"
  local work apt_log="$CITYBASE_INFRA_DIR/apt.log"
  work="$(mktemp -d)"
  # apt-get download writes into the current directory as the _apt user when it can.
  chmod 755 "$work"
  log "apt-get download prometheus (promtool only; no daemon is installed)"
  if ! (cd "$work" && apt-get download prometheus >>"$apt_log" 2>&1); then
    log "apt-get update"
    apt-get -o DPkg::Lock::Timeout=120 update >>"$apt_log" 2>&1 \
      || { tail -n 30 "$apt_log" >&2; die "apt-get update failed (full log: $apt_log)"; }
    (cd "$work" && apt-get download prometheus >>"$apt_log" 2>&1) \
      || { tail -n 30 "$apt_log" >&2; die "apt-get download prometheus failed (full log: $apt_log)"; }
  fi
  dpkg-deb -x "$work"/prometheus_*.deb "$work/root" \
    || die "dpkg-deb could not unpack the prometheus package in $work"
  install -m 0755 "$work/root/usr/bin/promtool" "$TOOLS_BIN/promtool" \
    || die "no usr/bin/promtool in the prometheus package (unpacked in $work)"
  rm -rf "$work"
  "$TOOLS_BIN/promtool" --version >/dev/null || die "the extracted promtool does not run"
  log "promtool installed: $("$TOOLS_BIN/promtool" --version 2>&1 | head -n 1)"
}

kustomize_cmd() {
  if [ -x "$TOOLS_BIN/kustomize" ]; then echo "$TOOLS_BIN/kustomize build"; return 0; fi
  if command -v kustomize >/dev/null 2>&1; then echo "kustomize build"; return 0; fi
  if command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
    echo "kubectl kustomize"
    return 0
  fi
  return 1
}

ensure_kustomize() {
  kustomize_cmd >/dev/null && return 0
  command -v go >/dev/null 2>&1 || die "neither kubectl nor kustomize nor go is installed"
  mkdir -p "$TOOLS_BIN"
  log "go install sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION (a few minutes, once)"
  GOBIN="$TOOLS_BIN" go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" \
    || die "go install kustomize failed"
}

# The console's pages in Chinese need a CJK font, or the browser tests' screenshots show boxes.
CHROMIUM_PACKAGES=(chromium chromium-driver fonts-noto-cjk)

chromium_paths() {
  local browser driver
  browser="$(command -v chromium 2>/dev/null)" || return 1
  driver="$(command -v chromedriver 2>/dev/null)" || return 1
  fc-list :lang=zh-cn family 2>/dev/null | grep -q . || return 1
  echo "$browser $driver"
}

ensure_chromium() {
  chromium_paths >/dev/null && return 0
  need_root "installing chromium and chromium-driver"
  export DEBIAN_FRONTEND=noninteractive
  mkdir -p "$CITYBASE_INFRA_DIR"
  local apt_log="$CITYBASE_INFRA_DIR/apt.log"
  log "apt-get install -y ${CHROMIUM_PACKAGES[*]} (log: $apt_log)"
  if ! apt-get -o DPkg::Lock::Timeout=120 install -y "${CHROMIUM_PACKAGES[@]}" >>"$apt_log" 2>&1; then
    # A stale package index names versions the mirror no longer has: refresh it once and retry.
    log "apt-get update"
    apt-get -o DPkg::Lock::Timeout=120 update >>"$apt_log" 2>&1 \
      || { tail -n 30 "$apt_log" >&2; die "apt-get update failed (full log: $apt_log)"; }
    apt-get -o DPkg::Lock::Timeout=120 install -y "${CHROMIUM_PACKAGES[@]}" >>"$apt_log" 2>&1 \
      || { tail -n 30 "$apt_log" >&2; die "apt-get install ${CHROMIUM_PACKAGES[*]} failed (full log: $apt_log)"; }
  fi
  chromium_paths >/dev/null || die "chromium, chromedriver or a Chinese font is still missing after apt-get install"
  log "chromium installed: $(chromium --version 2>/dev/null | head -n 1)"
}

case "${1:-up}" in
  up)
    ensure_promtool
    ensure_kustomize
    ensure_chromium
    log "promtool: $(promtool_path); kustomize: $(kustomize_cmd); chromium, chromedriver: $(chromium_paths)"
    ;;
  promtool) ensure_promtool; promtool_path ;;
  kustomize) ensure_kustomize; kustomize_cmd ;;
  chromium) ensure_chromium; chromium_paths ;;
  *) die "usage: $0 [up|promtool|kustomize|chromium]" ;;
esac
