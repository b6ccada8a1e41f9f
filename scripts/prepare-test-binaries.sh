#!/usr/bin/env bash
# Run before the tests (npm's pretest): builds or reuses the pinned Kubernetes binaries when Go
# is available. Without Go (a laptop) it says so in one line and the tests that need the
# binaries skip; in CI (CI=true) a missing Go is an error, since those tests must run there.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if ! command -v go >/dev/null 2>&1; then
  if [ "${CI:-}" = "true" ]; then
    echo "[pretest] go is not installed: cannot build the Kubernetes binaries the tests need" >&2
    exit 1
  fi
  echo "[pretest] go not found: tests that need kube-apiserver, etcd, kubectl or helm will skip"
  exit 0
fi
exec bash "$here/build-k8s-binaries.sh"
