package integration

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/canary-tagger/canary-tagger/test/internal/harness"
)

// Case 1: `kubectl apply -f` the seed's Rollout → the stored object has
// stableMetadata.labels.role=stable and canaryMetadata.labels.role=canary,
// and nothing else differs from the file.
func TestKubectlApplyInjects(t *testing.T) {
	ns := newNamespace(t, nil)
	file := seedFile(t)
	r := mustKubectl(t, "apply", "-n", ns, "-f", file)
	wantContains(t, "kubectl apply stdout", r.Stdout, "rollout.argoproj.io/demo created")

	got := getRollout(t, ns, "demo")
	wantInjected(t, got)

	// Every other field of the spec is the file's (no typed round-trip, no
	// field the webhook does not own changed).
	spec := runtime.DeepCopyJSONValue(got.Object["spec"]).(map[string]any)
	unstructured.RemoveNestedField(spec, "strategy", "canary", "stableMetadata")
	unstructured.RemoveNestedField(spec, "strategy", "canary", "canaryMetadata")
	want := parseYAML(t, seedYAML(t))["spec"]
	if !reflect.DeepEqual(spec, normalise(t, want)) {
		t.Errorf("stored spec, without the injected metadata, differs from the file's:\n got %v\nwant %v", spec, want)
	}
}

// normalise round-trips a value through JSON the way the apiserver stores it
// (YAML ints become int64, as in unstructured).
func normalise(t *testing.T, v any) any {
	t.Helper()
	u := &unstructured.Unstructured{}
	data, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "X", "v": v})
	must(t, err)
	must(t, u.UnmarshalJSON(data))
	return u.Object["v"]
}

// Case 2: applying the same file again → kubectl says `unchanged`, and the
// stored object is not written (resourceVersion unchanged).
func TestKubectlReapplyUnchanged(t *testing.T) {
	ns := newNamespace(t, nil)
	file := seedFile(t)
	mustKubectl(t, "apply", "-n", ns, "-f", file)
	before := getRollout(t, ns, "demo")

	r := mustKubectl(t, "apply", "-n", ns, "-f", file)
	wantContains(t, "kubectl apply stdout", r.Stdout, "rollout.argoproj.io/demo unchanged")
	after := getRollout(t, ns, "demo")
	if a, b := after.GetResourceVersion(), before.GetResourceVersion(); a != b {
		t.Errorf("resourceVersion changed from %s to %s on a re-apply", b, a)
	}
	wantInjected(t, after)
}

// Case 3: `kubectl diff -f` the applied file → exit 0, no output. (The
// server-side dry run it does goes through the webhook, which injects the
// same labels again.)
func TestKubectlDiffNoChanges(t *testing.T) {
	ns := newNamespace(t, nil)
	file := seedFile(t)
	mustKubectl(t, "apply", "-n", ns, "-f", file)

	r := kubectl(t, "diff", "-n", ns, "-f", file)
	if r.ExitCode != 0 || r.Stdout != "" {
		t.Errorf("kubectl diff of the applied file: want exit 0 and no output, got %s", r)
	}
}

// Case 4: `kubectl apply --server-side` — on a fresh object, re-applied, and
// after a client-side apply — keeps the injected fields without conflicts,
// and so does a later server-side apply that changes the image.
func TestKubectlServerSideApply(t *testing.T) {
	ssa := func(t *testing.T, ns, file string) {
		t.Helper()
		r := mustKubectl(t, "apply", "--server-side", "-n", ns, "-f", file)
		if strings.Contains(strings.ToLower(r.Stdout+r.Stderr), "conflict") {
			t.Errorf("server-side apply reported a conflict: %s", r)
		}
		wantInjected(t, getRollout(t, ns, "demo"))
	}
	changeImage := func(t *testing.T, ns string) {
		t.Helper()
		ssa(t, ns, seedFile(t, imageChange...))
		if img := image(t, getRollout(t, ns, "demo")); img != imageChange[1] {
			t.Errorf("image is %s after the apply, want %s", img, imageChange[1])
		}
	}

	t.Run("fresh", func(t *testing.T) {
		ns := newNamespace(t, nil)
		file := seedFile(t)
		ssa(t, ns, file) // create
		ssa(t, ns, file) // re-apply
		changeImage(t, ns)
	})
	t.Run("after client-side apply", func(t *testing.T) {
		ns := newNamespace(t, nil)
		file := seedFile(t)
		mustKubectl(t, "apply", "-n", ns, "-f", file)
		wantInjected(t, getRollout(t, ns, "demo"))
		ssa(t, ns, file)
		changeImage(t, ns)
	})
}

// Case 5: `kubectl apply --dry-run=server -o yaml` shows the injection and
// stores nothing.
func TestKubectlDryRunServer(t *testing.T) {
	ns := newNamespace(t, nil)
	r := mustKubectl(t, "apply", "--dry-run=server", "-o", "yaml", "-n", ns, "-f", seedFile(t))
	wantInjected(t, &unstructured.Unstructured{Object: parseYAML(t, r.Stdout)})

	if _, err := env.GetRollout(t.Context(), ns, "demo"); !apierrors.IsNotFound(err) {
		t.Errorf("after a server-side dry run: GET rollout demo = %v, want NotFound", err)
	}
}

// Case 6: a Rollout whose pod template (or selector) uses the label key is
// stored untouched, and kubectl prints a Warning naming the key.
func TestTemplateLabelConflictWarns(t *testing.T) {
	key := env.Rules.Rollout.LabelKey
	for name, oldNew := range map[string][]string{
		// argo-rollouts #2916: the key in spec.template.metadata.labels.
		"template": {"    metadata:\n      labels:\n        app: demo\n", "    metadata:\n      labels:\n        app: demo\n        " + key + ": web\n"},
		// argo-rollouts #3351: the key in spec.selector.matchLabels (and so in the template).
		"selector": {
			"  selector:\n    matchLabels:\n      app: demo\n", "  selector:\n    matchLabels:\n      app: demo\n      " + key + ": web\n",
			"    metadata:\n      labels:\n        app: demo\n", "    metadata:\n      labels:\n        app: demo\n        " + key + ": web\n",
		},
	} {
		t.Run(name, func(t *testing.T) {
			ns := newNamespace(t, nil)
			r := mustKubectl(t, "apply", "-n", ns, "-f", seedFile(t, oldNew...))
			wantContains(t, "kubectl apply stderr", r.Stderr, "Warning:", `"`+key+`"`)
			wantUntouched(t, getRollout(t, ns, "demo"))
		})
	}
}

// Case 7: a Rollout created while the webhook was not registered is injected
// on its next update.
func TestRolloutFromBeforeRegistrationInjectedOnUpdate(t *testing.T) {
	ns := newNamespace(t, nil)
	must(t, env.UninstallWebhookConfiguration(t.Context()))
	t.Cleanup(func() { restoreDefault(t) })

	before := reviews(t, harness.WebhookRollout)
	mustKubectl(t, "apply", "-n", ns, "-f", seedFile(t))
	wantUntouched(t, getRollout(t, ns, "demo"))
	if after := reviews(t, harness.WebhookRollout); after != before {
		t.Errorf("the webhook got %v Rollout reviews while it was not registered", after-before)
	}

	must(t, env.InstallWebhookConfiguration(t.Context(), harness.ModeClusterWide))
	wantUntouched(t, getRollout(t, ns, "demo")) // registering changes nothing stored
	mustKubectl(t, "apply", "-n", ns, "-f", seedFile(t, imageChange...))
	got := getRollout(t, ns, "demo")
	wantInjected(t, got)
	if img := image(t, got); img != imageChange[1] {
		t.Errorf("image is %s after the update, want %s", img, imageChange[1])
	}
}

// restoreDefault brings back the package's default state: the server
// running and the cluster-wide configuration in effect. It is meant for
// t.Cleanup, where t.Context() is already cancelled.
func restoreDefault(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if !env.Webhook.Running() {
		if err := env.Webhook.Start(ctx); err != nil {
			t.Errorf("restarting the webhook server: %v", err)
			return
		}
	}
	if err := env.InstallWebhookConfiguration(ctx, harness.ModeClusterWide); err != nil {
		t.Errorf("restoring the cluster-wide configuration: %v", err)
	}
}

// Case 8: a client-side apply that drops stable/canary metadata it had
// applied before (kubectl's three-way merge deletes them) → injected again.
func TestClientSideApplyDroppingMetadataReinjects(t *testing.T) {
	ns := newNamespace(t, nil)
	key := env.Rules.Rollout.LabelKey
	withMetadata := seedFile(t, "      steps:\n", `      stableMetadata:
        labels:
          `+key+`: prod-stable
          tier: web
        annotations:
          example.com/owner: team-a
      canaryMetadata:
        labels:
          `+key+`: prod-canary
      steps:
`)
	mustKubectl(t, "apply", "-n", ns, "-f", withMetadata)
	got := getRollout(t, ns, "demo")
	// The user's values win (contract 2.3).
	if v, _ := nested(got.Object, "spec", "strategy", "canary", "stableMetadata", "labels", key); v != "prod-stable" {
		t.Fatalf("stableMetadata.labels.%s = %v, want the user's prod-stable", key, v)
	}

	r := mustKubectl(t, "apply", "-n", ns, "-f", seedFile(t))
	wantContains(t, "kubectl apply stdout", r.Stdout, "rollout.argoproj.io/demo configured")
	wantInjected(t, getRollout(t, ns, "demo"))
}

// Case 10: writes to rollouts/status never reach the webhook: its Rollout
// review counter (and controller-runtime's request counter for the path)
// stay put across a status patch, and move on the next spec update.
func TestStatusSubresourceNeverReachesWebhook(t *testing.T) {
	ns := newNamespace(t, nil)
	mustKubectl(t, "apply", "-n", ns, "-f", seedFile(t))

	before, beforeCR := reviews(t, harness.WebhookRollout), crRequests(t, "/mutate-rollout")
	mustKubectl(t, "patch", "rollout", "demo", "-n", ns, "--subresource=status", "--type=merge",
		"-p", `{"status":{"phase":"Paused","message":"written by the integration test","pauseConditions":null}}`)
	if phase, _ := nested(getRollout(t, ns, "demo").Object, "status", "phase"); phase != "Paused" {
		t.Fatalf("status.phase = %v after the status patch, want Paused", phase)
	}
	if after := reviews(t, harness.WebhookRollout); after != before {
		t.Errorf("a status write reached the webhook: %s went from %v to %v", harness.ReviewsMetric, before, after)
	}
	if after := crRequests(t, "/mutate-rollout"); after != beforeCR {
		t.Errorf("a status write reached the webhook: %s went from %v to %v", harness.CRRequestsMetric, beforeCR, after)
	}

	// Control: a write to the main resource does reach it.
	mustKubectl(t, "annotate", "rollout", "demo", "-n", ns, "example.com/touched=yes")
	if after := reviews(t, harness.WebhookRollout); after < before+1 {
		t.Errorf("a spec update did not reach the webhook: %s went from %v to %v", harness.ReviewsMetric, before, after)
	}
}

// Case 12: workloadRef — the webhook reads the referenced Deployment's pod
// template: a template using the key → untouched with a warning; a clean one
// → injected.
func TestWorkloadRef(t *testing.T) {
	key := env.Rules.Rollout.LabelKey
	ns := newNamespace(t, nil)
	manifest := func(name string, templateLabels string) string {
		return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ` + name + `
spec:
  replicas: 0
  selector:
    matchLabels:
      app: ` + name + `
  template:
    metadata:
      labels:
        app: ` + name + templateLabels + `
    spec:
      containers:
        - name: app
          image: argoproj/demo:blue
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: ` + name + `
spec:
  replicas: 5
  selector:
    matchLabels:
      app: ` + name + `
  workloadRef:
    apiVersion: apps/v1
    kind: Deployment
    name: ` + name + `
  strategy:
    canary:
      steps:
        - setWeight: 20
        - pause: {}
        - setWeight: 50
        - pause: {}
`
	}

	t.Run("template uses the key", func(t *testing.T) {
		r := mustKubectl(t, "apply", "-n", ns, "-f", writeFile(t, "ref.yaml", manifest("with-role", "\n        "+key+": web")))
		wantContains(t, "kubectl apply stderr", r.Stderr, "Warning:", `"`+key+`"`, "Deployment/with-role")
		wantUntouched(t, getRollout(t, ns, "with-role"))
	})
	t.Run("clean template", func(t *testing.T) {
		r := mustKubectl(t, "apply", "-n", ns, "-f", writeFile(t, "ref.yaml", manifest("clean", "")))
		if strings.Contains(r.Stderr, "Warning:") {
			t.Errorf("unexpected warning for a clean workloadRef: %s", r.Stderr)
		}
		wantInjected(t, getRollout(t, ns, "clean"))
	})
}
