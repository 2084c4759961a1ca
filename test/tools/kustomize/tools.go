//go:build tools

// Package tools pins the standalone kustomize, built by hack/tools.sh from
// this module.
package tools

import (
	_ "sigs.k8s.io/kustomize/kustomize/v5"
)
