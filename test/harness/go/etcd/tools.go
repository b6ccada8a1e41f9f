//go:build tools

// Package tools pins the etcd server command (the package
// go.etcd.io/etcd/server/v3 is etcd's main) that scripts/build-k8s-binaries.sh
// builds, so that `go mod tidy` keeps its dependencies in go.mod/go.sum.
// It is never compiled (build tag "tools").
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
