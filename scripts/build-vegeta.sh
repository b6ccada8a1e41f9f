#!/usr/bin/env bash
# Build the pinned vegeta (the open-loop HTTP load generator of the EAA benchmark, bench/eaa.ts)
# with `go install` of its module and cache it outside the repo, keyed by version:
#
#   ${MESHLET_BIN_CACHE:-$HOME/.cache/meshlet/bin}/vegeta-<version>/vegeta
#   ${MESHLET_BIN_CACHE:-$HOME/.cache/meshlet/bin}/current/vegeta   (symlink)
#
# Nothing is rebuilt when the cached binary runs and reports the pinned version; a warm run
# takes a second. Same layout as scripts/build-coredns.sh.
set -euo pipefail

VEGETA_VERSION=12.13.0

usage() {
  cat <<'USAGE'
usage: scripts/build-vegeta.sh [--rebuild]
  --rebuild  rebuild the pinned binary even if it is cached
env: MESHLET_BIN_CACHE  cache dir (default $HOME/.cache/meshlet/bin)
USAGE
}

REBUILD=0
for arg in "$@"; do
  case "$arg" in
    --rebuild) REBUILD=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

log() { echo "[build-vegeta] $*"; }
die() { echo "[build-vegeta] error: $*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "go is not on PATH (Go >= 1.22 needed)"

CACHE=${MESHLET_BIN_CACHE:-$HOME/.cache/meshlet/bin}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
DEST=$CACHE/vegeta-$VEGETA_VERSION/vegeta

# Static, reproducible build, as upstream's release binaries.
export CGO_ENABLED=0
export GOWORK=off
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"

# check_bin FILE: the binary runs and reports the pinned version ("Version: 12.13.0"; a module
# build without release ldflags reports the module version "v12.13.0").
check_bin() {
  local out
  [[ -x $1 ]] || return 1
  out=$(timeout 30 "$1" -version 2>&1) || { echo "$out" >&2; return 1; }
  if ! grep -qE -- "Version: v?${VEGETA_VERSION//./\\.}\$" <<<"$out"; then
    echo "[build-vegeta] $1 reports: $out (want: Version: $VEGETA_VERSION)" >&2
    return 1
  fi
}

START=$SECONDS
if ((REBUILD)) || ! check_bin "$DEST" 2>/dev/null; then
  TMP=$(mktemp -d "$CACHE/.tmp.XXXXXX")
  trap 'rm -rf "$TMP"' EXIT
  log "building vegeta v$VEGETA_VERSION (go install, a minute cold) ..."
  t0=$SECONDS
  # The release binaries get their version from -X ldflags; set the same so -version reports it.
  (cd "$TMP" && GOBIN="$TMP/bin" go install -trimpath \
    -ldflags "-s -w -X main.Version=$VEGETA_VERSION" \
    "github.com/tsenart/vegeta/v12@v$VEGETA_VERSION") || die "go install failed for vegeta v$VEGETA_VERSION"
  check_bin "$TMP/bin/vegeta" || die "vegeta was built but does not report v$VEGETA_VERSION"
  mkdir -p "$(dirname "$DEST")"
  mv -f "$TMP/bin/vegeta" "$DEST"
  log "built vegeta v$VEGETA_VERSION in $((SECONDS - t0))s"
fi

mkdir -p "$CACHE/current"
ln -sfn "../vegeta-$VEGETA_VERSION/vegeta" "$CACHE/current/vegeta"
log "ready in $((SECONDS - START))s: $CACHE/current/vegeta"
