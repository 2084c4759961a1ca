package faults

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/canary-tagger/canary-tagger/test/bench"
	"github.com/canary-tagger/canary-tagger/test/internal/harness"
)

// TestWebhookKilledDuringApplies registers canary-tagger as manifests/
// registers it (cluster-wide mode, failurePolicy Ignore), then runs a stream
// of `kubectl apply` of Rollouts and SIGKILLs the webhook half-way: every
// apply must succeed (fail-open), Rollouts applied while it was down are
// admitted unmutated, and once it is back an update of those Rollouts
// injects them.
func TestWebhookKilledDuringApplies(t *testing.T) {
	setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	env, err := harness.Start(ctx, harness.Options{NoWebhook: true, Logf: t.Logf})
	if err != nil {
		t.Fatalf("starting the control plane (make tools-k8s builds it): %v", err)
	}
	defer func() {
		if err := env.Stop(); err != nil {
			t.Log(err)
		}
	}()

	ca, dir, certDir, ports := servingSetup(t, "failopen", 1)
	startWebhook := func(n int) *bench.Server {
		s, err := bench.StartCanaryTaggerOn(binary, ports[0], certDir, filepath.Join(dir, fmt.Sprintf("server-%d.log", n)), "--check-workload-ref=false")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.WaitReady(ctx, bench.Load{TLS: bench.ClientTLS(ca)}, &bodies[0], 30*time.Second); err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := startWebhook(1)
	defer func() { s.Stop(5 * time.Second) }()

	// The webhook configuration exactly as manifests/ renders it, pointed at
	// the local server.
	wc, err := harness.RenderWebhookConfiguration(ctx, env.Kubectl, env.Repo, harness.ModeClusterWide)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range wc.Object.Webhooks {
		if w.FailurePolicy == nil || *w.FailurePolicy != admissionv1.Ignore {
			t.Fatalf("webhook %s: failurePolicy %v, this test is about Ignore", w.Name, w.FailurePolicy)
		}
	}
	install := envtest.WebhookInstallOptions{
		MutatingWebhooks:   []*admissionv1.MutatingWebhookConfiguration{wc.Object.DeepCopy()},
		LocalServingHost:   "127.0.0.1",
		LocalServingPort:   ports[0],
		LocalServingCAData: ca.CertPEM,
		MaxTime:            harness.DefaultTimeout,
		PollInterval:       harness.DefaultInterval,
	}
	if err := install.ModifyWebhookDefinitions(); err != nil {
		t.Fatal(err)
	}
	if err := install.Install(env.Config); err != nil {
		t.Fatal(err)
	}
	const ns = "faults"
	if err := env.CreateNamespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	injects := func(ctx context.Context) (bool, error) {
		r := harness.ProbeRollout(ns, "probe-"+rand.String(5))
		if err := env.Client.Create(ctx, r, client.DryRunAll); err != nil {
			return false, err
		}
		v, _, _ := unstructured.NestedString(r.Object, "spec", "strategy", "canary", "stableMetadata", "labels", "role")
		if v != "stable" {
			return false, errors.New("a Rollout is not injected yet")
		}
		return true, nil
	}
	if err := harness.Eventually(ctx, "the webhook to inject", injects); err != nil {
		t.Fatal(err)
	}
	t.Logf("control plane and webhook ready in %s", time.Since(start).Round(time.Millisecond))

	apply := func(name, image string) harness.Result {
		doc := fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: %s
  namespace: %s
spec:
  replicas: 1
  selector:
    matchLabels:
      app: %s
  template:
    metadata:
      labels:
        app: %s
    spec:
      containers:
        - name: app
          image: %s
  strategy:
    canary:
      steps:
        - setWeight: 20
        - pause: {}
`, name, ns, name, name, image)
		return env.Kubectl.RunStdin(ctx, strings.NewReader(doc), "apply", "-f", "-")
	}
	role := func(name string) string {
		r, err := env.GetRollout(ctx, ns, name)
		if err != nil {
			t.Fatalf("get %s: %v", name, err)
		}
		v, _, _ := unstructured.NestedString(r.Object, "spec", "strategy", "canary", "stableMetadata", "labels", "role")
		return v
	}

	// The stream: 8 applies with the webhook up, SIGKILL, 8 more.
	const n = 16
	var down []string
	for i := range n {
		name := fmt.Sprintf("r-%02d", i)
		if i == n/2 {
			s.Kill()
			t.Logf("webhook killed (SIGKILL) after %d applies", i)
		}
		t0 := time.Now()
		if res := apply(name, "argoproj/demo:blue"); !res.OK() {
			t.Fatalf("apply %s with the webhook %s: %s", name, map[bool]string{true: "down", false: "up"}[i >= n/2], res)
		} else if d := time.Since(t0); d > 6*time.Second {
			t.Errorf("apply %s took %s: longer than the webhook timeout", name, d.Round(time.Millisecond))
		}
		if i >= n/2 {
			down = append(down, name)
		}
	}
	for i := range n {
		name := fmt.Sprintf("r-%02d", i)
		got, want := role(name), "stable"
		if i >= n/2 {
			want = "" // admitted unmutated: fail-open
		}
		if got != want {
			t.Errorf("%s: role %q, want %q", name, got, want)
		}
	}

	// Back up: updates of the Rollouts applied while it was down inject them.
	s = startWebhook(2)
	if err := harness.Eventually(ctx, "the restarted webhook to inject", injects); err != nil {
		t.Fatal(err)
	}
	for _, name := range down {
		if res := apply(name, "argoproj/demo:yellow"); !res.OK() {
			t.Fatalf("update %s: %s", name, res)
		}
		if got := role(name); got != "stable" {
			t.Errorf("%s after an update with the webhook back: role %q, want stable", name, got)
		}
	}
	t.Logf("done in %s", time.Since(start).Round(time.Millisecond))
}
