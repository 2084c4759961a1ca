package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/canary-tagger/canary-tagger/test/internal/harness"
)

// rolloutCases are contract 2's kubectl cases, run against both installs
// (TestRolloutAdmission).
var rolloutCases = []rolloutCase{
	{"kubectl apply injects", kubectlApplyInjects},
	{"kubectl apply again: unchanged", kubectlReapplyUnchanged},
	{"kubectl diff: no changes", kubectlDiffNoChanges},
	{"kubectl apply --server-side", kubectlServerSideApply},
	{"kubectl apply --dry-run=server", kubectlDryRunServer},
	{"label key clash warns", labelKeyClashWarns},
	{"created before the install: injected on update", injectedOnUpdateAfterInstall},
	{"client-side apply dropping metadata reinjects", clientSideApplyDroppingMetadataReinjects},
	{"status writes never evaluated", statusWritesNeverEvaluated},
	{"workloadRef", workloadRef},
}

// Case 1: `kubectl apply -f` the seed's Rollout → the stored object has
// stableMetadata.labels.role=stable and canaryMetadata.labels.role=canary,
// and nothing else differs from the file.
func kubectlApplyInjects(t *testing.T, _ install) {
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
func kubectlReapplyUnchanged(t *testing.T, _ install) {
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
// server-side dry run it does goes through the webhook or the policy, which
// injects the same labels again.)
func kubectlDiffNoChanges(t *testing.T, _ install) {
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
func kubectlServerSideApply(t *testing.T, _ install) {
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
func kubectlDryRunServer(t *testing.T, _ install) {
	ns := newNamespace(t, nil)
	r := mustKubectl(t, "apply", "--dry-run=server", "-o", "yaml", "-n", ns, "-f", seedFile(t))
	wantInjected(t, &unstructured.Unstructured{Object: parseYAML(t, r.Stdout)})

	if _, err := env.GetRollout(t.Context(), ns, "demo"); !apierrors.IsNotFound(err) {
		t.Errorf("after a server-side dry run: GET rollout demo = %v, want NotFound", err)
	}
}

// Case 6: a Rollout whose pod template (or selector) uses the label key is
// stored untouched, and kubectl prints one warning: the rule's, naming the
// key and where it is (the first clash only, when there are two).
func labelKeyClashWarns(t *testing.T, in install) {
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
			file := seedFile(t, oldNew...)
			_, messages, err := harness.RuleResult(parseYAML(t, seedYAML(t, oldNew...)), env.Rules.Rollout)
			must(t, err)
			if len(messages) != 1 || !strings.Contains(messages[0], `"`+key+`"`) {
				t.Fatalf("the rule's warnings %q: want one naming %q", messages, key)
			}
			r := mustKubectl(t, "apply", "-n", ns, "-f", file)
			wantWarnings(t, in, r, messages...)
			wantUntouched(t, getRollout(t, ns, "demo"))
		})
	}
}

// Case 7: a Rollout created while the webhook (or the policy) was not
// installed is injected on its next update.
func injectedOnUpdateAfterInstall(t *testing.T, in install) {
	ns := newNamespace(t, nil)
	in.remove(t)
	t.Cleanup(func() { in.use(t, harness.ModeClusterWide) })

	before := in.evaluations(t)
	mustKubectl(t, "apply", "-n", ns, "-f", seedFile(t))
	wantUntouched(t, getRollout(t, ns, "demo"))
	if after := in.evaluations(t); after != before {
		t.Errorf("%v Rollout evaluations while the %s was not installed", after-before, in.admission)
	}

	in.use(t, harness.ModeClusterWide)
	wantUntouched(t, getRollout(t, ns, "demo")) // registering changes nothing stored
	mustKubectl(t, "apply", "-n", ns, "-f", seedFile(t, imageChange...))
	got := getRollout(t, ns, "demo")
	wantInjected(t, got)
	if img := image(t, got); img != imageChange[1] {
		t.Errorf("image is %s after the update, want %s", img, imageChange[1])
	}
}

// restoreDefault brings back the package's default state: the server
// running and the cluster-wide webhook configuration in effect (no policy).
// It is meant for t.Cleanup, where t.Context() is already cancelled.
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
func clientSideApplyDroppingMetadataReinjects(t *testing.T, _ install) {
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

// Case 10: writes to rollouts/status never reach the webhook, nor the
// policy: the webhook's Rollout review counter (and controller-runtime's
// request counter for the path), or the apiserver's count of the policy's
// evaluations, stay put across a status patch, and move on the next spec
// update.
func statusWritesNeverEvaluated(t *testing.T, in install) {
	ns := newNamespace(t, nil)
	mustKubectl(t, "apply", "-n", ns, "-f", seedFile(t))

	before, beforeCR := in.evaluations(t), crRequests(t, "/mutate-rollout")
	mustKubectl(t, "patch", "rollout", "demo", "-n", ns, "--subresource=status", "--type=merge",
		"-p", `{"status":{"phase":"Paused","message":"written by the integration test","pauseConditions":null}}`)
	if phase, _ := nested(getRollout(t, ns, "demo").Object, "status", "phase"); phase != "Paused" {
		t.Fatalf("status.phase = %v after the status patch, want Paused", phase)
	}
	if after := in.evaluations(t); after != before {
		t.Errorf("a status write reached the %s: its evaluations went from %v to %v", in.admission, before, after)
	}
	if after := crRequests(t, "/mutate-rollout"); after != beforeCR {
		t.Errorf("a status write reached the webhook: %s went from %v to %v", harness.CRRequestsMetric, beforeCR, after)
	}

	// Control: a write to the main resource does reach it.
	mustKubectl(t, "annotate", "rollout", "demo", "-n", ns, "example.com/touched=yes")
	if after := in.evaluations(t); after < before+1 {
		t.Errorf("a spec update did not reach the %s: its evaluations went from %v to %v", in.admission, before, after)
	}
}

// Case 12: workloadRef — the webhook reads the referenced Deployment's pod
// template: a template using the key → untouched with a warning; a clean one
// → injected. A policy cannot read another object: it injects either way
// and warns, once per new reference, that the template was not checked
// (README, "Rollouts without a webhook").
func workloadRef(t *testing.T, in install) {
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

	notChecked := func(name string) string {
		return fmt.Sprintf("canary-tagger: workloadRef Deployment/%s not checked for label %q (an admission policy cannot read it); injected anyway", name, key)
	}
	t.Run("template uses the key", func(t *testing.T) {
		file := writeFile(t, "ref.yaml", manifest("with-role", "\n        "+key+": web"))
		r := mustKubectl(t, "apply", "-n", ns, "-f", file)
		if in.policy() {
			wantWarnings(t, in, r, notChecked("with-role"))
			wantInjected(t, getRollout(t, ns, "with-role"))
			return
		}
		wantWarnings(t, in, r, fmt.Sprintf("canary-tagger: label %q not injected: already used in workloadRef Deployment/with-role template; "+
			"Argo Rollouts removes it on promotion and Services selecting on it lose pods (argo-rollouts #2916)", key))
		wantUntouched(t, getRollout(t, ns, "with-role"))
	})
	t.Run("clean template", func(t *testing.T) {
		file := writeFile(t, "ref.yaml", manifest("clean", ""))
		r := mustKubectl(t, "apply", "-n", ns, "-f", file)
		if in.policy() {
			wantWarnings(t, in, r, notChecked("clean"))
		} else {
			wantWarnings(t, in, r)
		}
		wantInjected(t, getRollout(t, ns, "clean"))
		// The same reference again: nothing new to say.
		r = mustKubectl(t, "apply", "-n", ns, "-f", writeFile(t, "ref.yaml", strings.ReplaceAll(manifest("clean", ""), "replicas: 5", "replicas: 4")))
		wantWarnings(t, in, r)
	})
}
