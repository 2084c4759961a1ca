package integration

import (
	"context"
	"testing"

	"k8s.io/apimachinery/pkg/util/rand"

	"github.com/canary-tagger/canary-tagger/test/internal/harness"
)

// modeCases run against both installs (TestRolloutAdmission).
var modeCases = []rolloutCase{{"namespace modes", namespaceModes}}

// Case 9: the two modes of contract 4 — the webhook configuration rendered
// from manifests/ (default, opt-in) or the policy bindings rendered from the
// chart, whose namespaceSelector is the webhook's — and the per-Rollout
// opt-out.
func namespaceModes(t *testing.T, in install) {
	t.Cleanup(func() { in.use(t, harness.ModeClusterWide) })
	optOut := map[string]string{harness.InjectLabel: "false"} // Rollout annotation

	type check struct {
		name        string
		ns          func(t *testing.T) string
		annotations map[string]string
		injected    bool
	}
	plain := func(t *testing.T) string { return newNamespace(t, nil) }
	labelled := func(v string) func(t *testing.T) string {
		return func(t *testing.T) string { return newNamespace(t, map[string]string{harness.InjectLabel: v}) }
	}
	existing := func(name string) func(t *testing.T) string {
		return func(t *testing.T) string { return name }
	}
	run := func(t *testing.T, mode harness.Mode, checks []check) {
		in.use(t, mode)
		for _, c := range checks {
			t.Run(c.name, func(t *testing.T) {
				ns := c.ns(t)
				name := applyNamedRollout(t, ns, c.annotations)
				got := getRollout(t, ns, name)
				if c.injected {
					wantInjected(t, got)
				} else {
					wantUntouched(t, got)
				}
			})
		}
	}

	t.Run("namespace opt-in", func(t *testing.T) {
		run(t, harness.ModeNamespaceOptIn, []check{
			{name: "unlabelled namespace untouched", ns: plain},
			{name: "enabled namespace injected", ns: labelled(harness.InjectEnabled), injected: true},
			{name: "disabled namespace untouched", ns: labelled(harness.InjectDisabled)},
			{name: "opt-out annotation in enabled namespace untouched", ns: labelled(harness.InjectEnabled), annotations: optOut},
		})
	})
	t.Run("cluster-wide", func(t *testing.T) {
		run(t, harness.ModeClusterWide, []check{
			{name: "kube-system untouched", ns: existing("kube-system")},
			{name: "kube-public untouched", ns: existing("kube-public")},
			{name: "kube-node-lease untouched", ns: existing("kube-node-lease")},
			{name: "own namespace untouched", ns: existing(env.OwnNamespace())},
			{name: "disabled namespace untouched", ns: labelled(harness.InjectDisabled)},
			{name: "unlabelled namespace injected", ns: plain, injected: true},
			{name: "enabled namespace injected", ns: labelled(harness.InjectEnabled), injected: true},
			{name: "default namespace injected", ns: existing("default"), injected: true},
			{name: "opt-out annotation untouched", ns: plain, annotations: optOut},
		})
	})
}

// applyNamedRollout applies the seed Rollout under a fresh name (namespaces
// like kube-system are shared by every run) with extra annotations, deletes it
// when the test ends, and returns its name.
func applyNamedRollout(t *testing.T, ns string, annotations map[string]string) string {
	t.Helper()
	name := "demo-" + rand.String(5)
	meta := "metadata:\n  name: " + name + "\n"
	if len(annotations) > 0 {
		meta += "  annotations:\n"
		for k, v := range annotations {
			meta += "    " + k + ": " + `"` + v + `"` + "\n"
		}
	}
	mustKubectl(t, "apply", "-n", ns, "-f", seedFile(t, "metadata:\n  name: demo\n", meta))
	t.Cleanup(func() {
		// t.Context() is already cancelled when Cleanup functions run.
		r := env.Kubectl.Run(context.Background(), "delete", "rollout", name, "-n", ns, "--ignore-not-found", "--wait=false")
		if !r.OK() {
			t.Logf("cleanup: %s", r)
		}
	})
	return name
}
