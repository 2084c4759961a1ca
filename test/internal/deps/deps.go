//go:build tools

// Package deps pins the test module's dependencies before the suites import them.
package deps

import (
	_ "github.com/canary-tagger/canary-tagger/webhook"
	_ "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	_ "sigs.k8s.io/controller-runtime/pkg/envtest"
)
