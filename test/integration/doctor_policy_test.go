package integration

import (
	"strings"
	"testing"

	"github.com/canary-tagger/canary-tagger/test/internal/harness"
)

// TestDoctorPolicy: with rollouts.admission=policy (the chart's render on
// this apiserver; the agent-pod webhook kept), doctor names the policy
// binding instead of asking for a Rollout webhook, and takes the Rollouts'
// scope from the binding: a Rollout stored before the policy is listed
// with the fix that sends it through the policy, which then labels it; a
// Rollout in an opted-out namespace is left out.
func TestDoctorPolicy(t *testing.T) {
	ctx := t.Context()
	ns := newNamespace(t, nil)
	optedOut := newNamespace(t, map[string]string{"canary-tagger.io/inject": "disabled"})

	// Stored while nothing admits Rollouts, then the policy is installed.
	must(t, env.UninstallWebhookConfiguration(ctx))
	t.Cleanup(func() { restoreDefault(t) })
	mustKubectl(t, "apply", "-n", ns, "-f", seedFile(t))
	must(t, env.InstallPolicy(ctx, harness.ModeClusterWide))
	mustKubectl(t, "apply", "-n", optedOut, "-f", seedFile(t))
	wantUntouched(t, getRollout(t, optedOut, "demo"))
	binding := "mutatingadmissionpolicybinding/" + env.PolicyName()

	rep, code := runDoctor(t, "-n", ns)
	if code != 1 {
		t.Errorf("exit %d with a Rollout stored before the policy, want 1\n%s", code, rep)
	}
	if f := rep.find("webhook", "ok", binding); len(f) != 1 || !strings.Contains(f[0].Message, "MutatingAdmissionPolicy "+env.PolicyName()) {
		t.Errorf("want one ok finding naming the policy about %s:\n%s", binding, rep)
	}
	if f := rep.find("webhook", "action", ""); len(f) != 0 {
		t.Errorf("actions about the webhooks with the policy installed: %+v", f)
	}
	if f := rep.find("namespaces", "info", binding); len(f) != 1 || !strings.Contains(strings.Join(f[0].Items, " "), optedOut) {
		t.Errorf("want the namespaces the binding leaves out, %s among them:\n%s", optedOut, rep)
	}
	f := rep.find("rollout", "action", "rollout/"+ns+"/demo")
	if len(f) != 1 || !strings.Contains(f[0].Message, "created before the admission policy was installed") {
		t.Fatalf("want one action for rollout/%s/demo, saying the policy missed it:\n%s", ns, rep)
	}
	runFix(t, f[0].Fix[0])
	wantInjected(t, getRollout(t, ns, "demo"))
	if rep, code := runDoctor(t, "-n", ns); code != 0 {
		t.Errorf("exit %d after the fix, want 0\n%s", code, rep)
	}

	// Out of the binding's scope: not a finding.
	rep, code = runDoctor(t, "-n", optedOut)
	if code != 0 || len(rep.find("rollout", "action", "")) != 0 {
		t.Errorf("exit %d in a namespace the binding leaves out, want 0 and no rollout action\n%s", code, rep)
	}
}
