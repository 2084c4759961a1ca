// Package integration proves canary-tagger inside a real kube-apiserver, with
// the real Argo Rollouts CRD and the real kubectl (contract sections 2-4, issue 3).
//
// One control plane (envtest: etcd + kube-apiserver from bin/k8s) serves the
// whole package; each test works in namespaces of its own. Tests that change
// what is registered or whether the server runs (modes, registration,
// fail-open) restore the default state — cluster-wide mode, server up —
// before they return, and the tests do not run in parallel: several assert
// that a counter of the shared server did not move.
//
// Run: make test-integration, or `cd test && go test ./integration/...` after
// `make tools` (KUBEBUILDER_ASSETS defaults to <repo>/bin/k8s).
package integration

import (
	"os"
	"testing"

	"github.com/canary-tagger/canary-tagger/test/internal/harness"
)

var env *harness.Env

func TestMain(m *testing.M) {
	// --blue-green on: no other test uses a blue-green Rollout, and the
	// blue-green case needs it. The audit log: the audit annotations case.
	os.Exit(harness.RunMain(m, harness.Options{Flags: []string{"--blue-green"}, AuditLog: true}, func(e *harness.Env) { env = e }))
}
