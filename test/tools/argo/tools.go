//go:build tools

// Package tools pins the Argo Rollouts binaries built by hack/tools.sh.
package tools

import (
	_ "github.com/argoproj/argo-rollouts/cmd/kubectl-argo-rollouts"
	_ "github.com/argoproj/argo-rollouts/cmd/rollouts-controller"
)
