#!/usr/bin/env bash
# Build a pinned Go tool of the benchmark suite with `go install` of its module and cache it
# outside the repo, keyed by version:
#
#   coredns  1.15.0   the DNS peer of bench/dns.ts
#   vegeta   12.13.0  the open-loop HTTP load generator of bench/eaa.ts
#
#   ${MESHLET_BIN_CACHE:-$HOME/.cache/meshlet/bin}/<tool>-<version>/<tool>
#   ${MESHLET_BIN_CACHE:-$HOME/.cache/meshlet/bin}/current/<tool>   (symlink)
#
# Nothing is rebuilt when the cached binary runs and reports the pinned version; a warm run
# takes a second. Same layout as scripts/build-k8s-binaries.sh.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: scripts/build-go-tool.sh coredns|vegeta [--rebuild]
  --rebuild  rebuild the pinned binary even if it is cached
env: MESHLET_BIN_CACHE  cache dir (default $HOME/.cache/meshlet/bin)
USAGE
}

TOOL=${1:-}
REBUILD=0
[[ $# -ge 1 ]] && shift
for arg in "$@"; do
  case "$arg" in
    --rebuild) REBUILD=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

# Per tool: version, module path, extra ldflags, and the line its -version prints (a regex).
case "$TOOL" in
  coredns)
    VERSION=1.15.0
    MODULE=github.com/coredns/coredns
    LDFLAGS=""
    WANT="CoreDNS-${VERSION//./\\.}"
    ;;
  vegeta)
    VERSION=12.13.0
    MODULE=github.com/tsenart/vegeta/v12
    # The release binaries get their version from -X ldflags; set the same so -version reports it.
    LDFLAGS="-X main.Version=$VERSION"
    WANT="Version: v?${VERSION//./\\.}\$"
    ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; exit 2 ;;
esac

log() { echo "[build-$TOOL] $*"; }
die() { echo "[build-$TOOL] error: $*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "go is not on PATH (Go >= 1.24 needed)"

CACHE=${MESHLET_BIN_CACHE:-$HOME/.cache/meshlet/bin}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
DEST=$CACHE/$TOOL-$VERSION/$TOOL

# Static, reproducible build, as upstream's release binaries.
export CGO_ENABLED=0
export GOWORK=off
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"

# check_bin FILE: the binary runs and reports the pinned version.
check_bin() {
  local out
  [[ -x $1 ]] || return 1
  out=$(timeout 30 "$1" -version 2>&1) || { echo "$out" >&2; return 1; }
  if ! grep -qE -- "$WANT" <<<"$out"; then
    echo "[build-$TOOL] $1 reports: $out (want: $WANT)" >&2
    return 1
  fi
}

START=$SECONDS
if ((REBUILD)) || ! check_bin "$DEST" 2>/dev/null; then
  TMP=$(mktemp -d "$CACHE/.tmp.XXXXXX")
  trap 'rm -rf "$TMP"' EXIT
  log "building $TOOL v$VERSION (go install, up to a few minutes cold) ..."
  t0=$SECONDS
  (cd "$TMP" && GOBIN="$TMP/bin" go install -trimpath -ldflags "-s -w $LDFLAGS" \
    "$MODULE@v$VERSION") || die "go install failed for $TOOL v$VERSION"
  check_bin "$TMP/bin/$TOOL" || die "$TOOL was built but does not report v$VERSION"
  mkdir -p "$(dirname "$DEST")"
  mv -f "$TMP/bin/$TOOL" "$DEST"
  log "built $TOOL v$VERSION in $((SECONDS - t0))s"
fi

mkdir -p "$CACHE/current"
ln -sfn "../$TOOL-$VERSION/$TOOL" "$CACHE/current/$TOOL"
log "ready in $((SECONDS - START))s: $CACHE/current/$TOOL"
