#!/usr/bin/env bash
# Build the pinned CoreDNS (the DNS peer of the benchmark suite, bench/dns.ts) with
# `go install` of its module and cache it outside the repo, keyed by version:
#
#   ${MESHLET_BIN_CACHE:-$HOME/.cache/meshlet/bin}/coredns-<version>/coredns
#   ${MESHLET_BIN_CACHE:-$HOME/.cache/meshlet/bin}/current/coredns   (symlink)
#
# Nothing is rebuilt when the cached binary runs and reports the pinned version; a warm run
# takes a second. Same layout as scripts/build-k8s-binaries.sh.
set -euo pipefail

COREDNS_VERSION=1.15.0

usage() {
  cat <<'EOF'
usage: scripts/build-coredns.sh [--rebuild]
  --rebuild  rebuild the pinned binary even if it is cached
env: MESHLET_BIN_CACHE  cache dir (default $HOME/.cache/meshlet/bin)
EOF
}

REBUILD=0
for arg in "$@"; do
  case "$arg" in
    --rebuild) REBUILD=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

log() { echo "[build-coredns] $*"; }
die() { echo "[build-coredns] error: $*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "go is not on PATH (Go >= 1.24 needed)"

CACHE=${MESHLET_BIN_CACHE:-$HOME/.cache/meshlet/bin}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
DEST=$CACHE/coredns-$COREDNS_VERSION/coredns

# Static, reproducible build, as upstream's release binaries.
export CGO_ENABLED=0
export GOWORK=off
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"

# check_bin FILE: the binary runs and reports the pinned version ("CoreDNS-1.15.0").
check_bin() {
  local out
  [[ -x $1 ]] || return 1
  out=$(timeout 30 "$1" -version 2>&1) || { echo "$out" >&2; return 1; }
  if ! grep -qF -- "CoreDNS-$COREDNS_VERSION" <<<"$out"; then
    echo "[build-coredns] $1 reports: $out (want: CoreDNS-$COREDNS_VERSION)" >&2
    return 1
  fi
}

START=$SECONDS
if ((REBUILD)) || ! check_bin "$DEST" 2>/dev/null; then
  TMP=$(mktemp -d "$CACHE/.tmp.XXXXXX")
  trap 'rm -rf "$TMP"' EXIT
  log "building coredns v$COREDNS_VERSION (go install, a few minutes cold) ..."
  t0=$SECONDS
  (cd "$TMP" && GOBIN="$TMP/bin" go install -trimpath -ldflags "-s -w" \
    "github.com/coredns/coredns@v$COREDNS_VERSION") || die "go install failed for coredns v$COREDNS_VERSION"
  check_bin "$TMP/bin/coredns" || die "coredns was built but does not report v$COREDNS_VERSION"
  mkdir -p "$(dirname "$DEST")"
  mv -f "$TMP/bin/coredns" "$DEST"
  log "built coredns v$COREDNS_VERSION in $((SECONDS - t0))s"
fi

mkdir -p "$CACHE/current"
ln -sfn "../coredns-$COREDNS_VERSION/coredns" "$CACHE/current/coredns"
log "ready in $((SECONDS - START))s: $CACHE/current/coredns"
