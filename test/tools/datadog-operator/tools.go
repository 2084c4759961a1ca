//go:build tools

// Package tools pins the Datadog Operator binary built by hack/tools.sh.
package tools

import (
	_ "github.com/DataDog/datadog-operator/cmd"
	_ "github.com/DataDog/datadog-operator/cmd/operator-render"
)
