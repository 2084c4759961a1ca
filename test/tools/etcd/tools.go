//go:build tools

// Package tools pins etcd, built by hack/tools.sh from this module.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
