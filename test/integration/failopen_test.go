package integration

import (
	"testing"
	"time"
)

// Case 13: with the webhook server stopped, failurePolicy: Ignore lets
// `kubectl apply` of a Rollout succeed, untouched; once it runs again, the
// next update injects.
func TestWebhookDownFailsOpen(t *testing.T) {
	ns := newNamespace(t, nil)
	t.Cleanup(func() { restoreDefault(t) })

	must(t, env.Webhook.Stop(t.Context()))
	start := time.Now()
	r := mustKubectl(t, "apply", "-n", ns, "-f", seedFile(t))
	t.Logf("apply with the webhook down took %s", time.Since(start).Round(time.Millisecond))
	wantContains(t, "kubectl apply stdout", r.Stdout, "rollout.argoproj.io/demo created")
	wantUntouched(t, getRollout(t, ns, "demo"))

	must(t, env.Webhook.Start(t.Context()))
	must(t, env.WaitWebhookServing(t.Context()))
	mustKubectl(t, "apply", "-n", ns, "-f", seedFile(t, imageChange...))
	got := getRollout(t, ns, "demo")
	wantInjected(t, got)
	if img := image(t, got); img != imageChange[1] {
		t.Errorf("image is %s after the update, want %s", img, imageChange[1])
	}
}
