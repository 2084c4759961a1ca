package heal

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/yaml"

	"github.com/canary-tagger/canary-tagger/webhook/outcome"
	"github.com/canary-tagger/canary-tagger/webhook/rollout"
)

var rules = rollout.Options{LabelKey: "role", StableValue: "stable", CanaryValue: "canary"}

// chartConfig is the chart's cluster-wide configuration, installed in canary-tagger.
func chartConfig() *admissionv1.MutatingWebhookConfiguration {
	w := webhookWith("rollouts.canary-tagger.io", rule(argo, every, rollouts, nil, createUpd...))
	w.NamespaceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-system", "canary-tagger"}},
		{Key: "canary-tagger.io/inject", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"disabled"}},
	}}
	return configWith(w, webhookWith("agent-pods.canary-tagger.io", rule([]string{""}, every, []string{"pods"}, nil, admissionv1.Create)))
}

func namespace(name string, kv ...string) *corev1.Namespace {
	l := map[string]string{"kubernetes.io/metadata.name": name}
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}
}

// rolloutIn is a canary Rollout with steps, resourceVersion 7, and extra
// YAML merged over spec.strategy.canary / metadata / spec by the caller.
func rolloutIn(t *testing.T, ns, name, extra string) *unstructured.Unstructured {
	t.Helper()
	doc := fmt.Sprintf(`{apiVersion: argoproj.io/v1alpha1, kind: Rollout,
metadata: {name: %s, namespace: %s, uid: uid-%s-%s, resourceVersion: "7"},
spec: {replicas: 1, selector: {matchLabels: {app: %s}}, template: {metadata: {labels: {app: %s}}, spec: {containers: [{name: app, image: demo}]}},
  strategy: {canary: {steps: [{setWeight: 20}, {pause: {}}]}}}}`, name, ns, ns, name, name, name)
	var o map[string]any
	if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
		t.Fatal(err)
	}
	if extra != "" {
		var patch map[string]any
		if err := yaml.Unmarshal([]byte(extra), &patch); err != nil {
			t.Fatal(err)
		}
		merge(o, patch)
	}
	return &unstructured.Unstructured{Object: o}
}

func merge(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

type fixture struct {
	kube     *fake.Clientset
	dynamic  *dynamicfake.FakeDynamicClient
	recorder *events.FakeRecorder
	healer   *Healer
}

func newFixture(t *testing.T, cfg *admissionv1.MutatingWebhookConfiguration, objects ...runtime.Object) *fixture {
	t.Helper()
	kubeObjects := []runtime.Object{namespace("shop"), namespace("kube-system"), namespace("quiet", "canary-tagger.io/inject", "disabled")}
	if cfg != nil {
		kubeObjects = append(kubeObjects, cfg)
	}
	f := &fixture{
		kube: fake.NewClientset(kubeObjects...),
		dynamic: dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
			map[schema.GroupVersionResource]string{Rollouts.GroupVersionResource: "RolloutList"}, objects...),
		recorder: events.NewFakeRecorder(100),
	}
	f.healer = New(Options{Rules: rules, CheckWorkloadRef: true, WebhookConfigName: "canary-tagger", Logger: logr.Discard()}, f.kube, f.dynamic, f.recorder)
	return f
}

// pass runs one pass and returns its Rollout report.
func (f *fixture) pass(t *testing.T) Report {
	t.Helper()
	f.dynamic.ClearActions()
	reports := f.healer.Pass(context.Background())
	if len(reports) != 1 || reports[0].Kind != kindRollout {
		t.Fatalf("reports %+v, want one for Rollouts", reports)
	}
	if reports[0].Err != nil {
		t.Fatalf("pass: %v", reports[0].Err)
	}
	return reports[0]
}

// patches are the JSON Patches the last pass sent, by object name.
func (f *fixture) patches(t *testing.T) map[string][]map[string]any {
	t.Helper()
	out := map[string][]map[string]any{}
	for _, a := range f.dynamic.Actions() {
		switch a.GetVerb() {
		case "list", "get":
		case "patch":
			p := a.(clienttesting.PatchAction)
			if p.GetPatchType() != "application/json-patch+json" {
				t.Errorf("patch type %s", p.GetPatchType())
			}
			var ops []map[string]any
			if err := json.Unmarshal(p.GetPatch(), &ops); err != nil {
				t.Fatal(err)
			}
			out[p.GetName()] = ops
		default:
			t.Errorf("unexpected %s %s", a.GetVerb(), a.GetResource())
		}
	}
	return out
}

func (f *fixture) events() []string {
	var out []string
	for {
		select {
		case e := <-f.recorder.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func (f *fixture) get(t *testing.T, ns, name string) *unstructured.Unstructured {
	t.Helper()
	u, err := f.dynamic.Resource(Rollouts.GroupVersionResource).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func labelsAt(u *unstructured.Unstructured, side string) map[string]string {
	l, _, _ := unstructured.NestedStringMap(u.Object, "spec", "strategy", "canary", side, "labels")
	return l
}

// TestPassWritesOnlyWhatAdmissionWould: one pass over every case of
// contract 2; only the unlabelled Rollout in scope is written, with a test
// of its resourceVersion and add operations only.
func TestPassWritesOnlyWhatAdmissionWould(t *testing.T) {
	f := newFixture(t, chartConfig(),
		rolloutIn(t, "shop", "unlabelled", ""),
		rolloutIn(t, "shop", "half", `{spec: {strategy: {canary: {canaryMetadata: {labels: {role: mine}}}}}}`),
		rolloutIn(t, "shop", "labelled", `{spec: {strategy: {canary: {stableMetadata: {labels: {role: stable}}, canaryMetadata: {labels: {role: canary}}}}}}`),
		rolloutIn(t, "shop", "annotated", `{metadata: {annotations: {canary-tagger.io/inject: "false"}}}`),
		rolloutIn(t, "shop", "clash", `{spec: {selector: {matchLabels: {role: web}}}}`),
		rolloutIn(t, "shop", "deleting", `{metadata: {deletionTimestamp: "2026-01-01T00:00:00Z", finalizers: [x]}}`),
		rolloutIn(t, "quiet", "opted-out-namespace", ""),
		rolloutIn(t, "kube-system", "system", ""),
	)
	rep := f.pass(t)
	patches := f.patches(t)
	if len(patches) != 2 {
		t.Fatalf("patched %d Rollouts, want unlabelled and half: %v", len(patches), patches)
	}
	for name, ops := range patches {
		if ops[0]["op"] != "test" || ops[0]["path"] != "/metadata/resourceVersion" || ops[0]["value"] != "7" {
			t.Errorf("%s: first operation %v, want a test of the resourceVersion 7", name, ops[0])
		}
		for _, op := range ops[1:] {
			if op["op"] != "add" {
				t.Errorf("%s: operation %v is not an add", name, op)
			}
		}
	}
	for name, want := range map[string][2]string{"unlabelled": {"stable", "canary"}, "half": {"stable", "mine"}} {
		u := f.get(t, "shop", name)
		if got := [2]string{labelsAt(u, "stableMetadata")["role"], labelsAt(u, "canaryMetadata")["role"]}; got != want {
			t.Errorf("%s: role labels %v, want %v", name, got, want)
		}
	}
	if rep.Listed != 8 || rep.InScope != 6 || rep.Patches != 2 {
		t.Errorf("report: listed %d, in scope %d, patches %d; want 8, 6, 2", rep.Listed, rep.InScope, rep.Patches)
	}
	wantOutcomes := map[outcome.Outcome]int{outcome.Injected: 2, outcome.Present: 1, outcome.Skipped: 2, outcome.Conflict: 1}
	for o, n := range wantOutcomes {
		if rep.Outcomes[o] != n {
			t.Errorf("outcomes %v, want %v", rep.Outcomes, wantOutcomes)
			break
		}
	}
	if rep.Requests[verbList] != 2 || rep.Requests[verbGet] != 1 || rep.Requests[verbPatch] != 2 {
		t.Errorf("requests %v, want 2 lists (namespaces, Rollouts), 1 get (the configuration), 2 patches", rep.Requests)
	}

	evs := f.events()
	var healed, conflicts int
	for _, e := range evs {
		switch {
		case strings.HasPrefix(e, "Normal Healed added "):
			healed++
			if !strings.Contains(e, healedWhy) {
				t.Errorf("event %q does not say why", e)
			}
		case strings.HasPrefix(e, `Warning LabelConflict canary-tagger: label "role" not injected: already used in spec.selector.matchLabels`):
			conflicts++
		default:
			t.Errorf("unexpected event %q", e)
		}
	}
	if healed != 2 || conflicts != 1 {
		t.Errorf("events %q: want 2 Healed, 1 LabelConflict", evs)
	}

	// Converged: the next passes write nothing and say nothing.
	for i := range 3 {
		rep := f.pass(t)
		if p := f.patches(t); len(p) != 0 || rep.Patches != 0 {
			t.Errorf("pass %d after convergence patched %v", i+2, p)
		}
		if evs := f.events(); len(evs) != 0 {
			t.Errorf("pass %d after convergence: events %q", i+2, evs)
		}
	}
}

// TestConflictEventPerResourceVersion: a clashing Rollout gets one Warning
// per resourceVersion, not one per pass.
func TestConflictEventPerResourceVersion(t *testing.T) {
	f := newFixture(t, chartConfig(), rolloutIn(t, "shop", "clash", `{spec: {template: {metadata: {labels: {role: web}}}}}`))
	f.pass(t)
	if evs := f.events(); len(evs) != 1 || !strings.Contains(evs[0], "spec.template.metadata.labels") {
		t.Fatalf("events %q, want one Warning naming the template", evs)
	}
	f.pass(t)
	if evs := f.events(); len(evs) != 0 {
		t.Fatalf("second pass: events %q", evs)
	}
	changed := f.get(t, "shop", "clash")
	changed.SetResourceVersion("8")
	if _, err := f.dynamic.Resource(Rollouts.GroupVersionResource).Namespace("shop").Update(context.Background(), changed, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.pass(t)
	if evs := f.events(); len(evs) != 1 {
		t.Fatalf("after a change: events %q, want one", evs)
	}
	if p := f.patches(t); len(p) != 0 {
		t.Errorf("a clashing Rollout was written: %v", p)
	}
}

// TestNoConfigurationNoList: without the configuration, or without a
// Rollout webhook in it, a pass reads the configuration and nothing else.
func TestNoConfigurationNoList(t *testing.T) {
	for name, cfg := range map[string]*admissionv1.MutatingWebhookConfiguration{
		"no configuration": nil,
		"no Rollout webhook": configWith(webhookWith("agent-pods.canary-tagger.io",
			rule([]string{""}, every, []string{"pods"}, nil, admissionv1.Create))),
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, cfg, rolloutIn(t, "shop", "unlabelled", ""))
			f.kube.ClearActions()
			rep := f.pass(t)
			if rep.Scope.Heals() {
				t.Fatalf("scope %s", rep.Scope)
			}
			if n := len(f.dynamic.Actions()); n != 0 {
				t.Errorf("%d Rollout requests: %v", n, f.dynamic.Actions())
			}
			if a := f.kube.Actions(); len(a) != 1 || a[0].GetVerb() != "get" {
				t.Errorf("requests %v, want the configuration's GET only", a)
			}
		})
	}
}

// TestSupersededWriteIsNotAnError: the apiserver refuses the patch because
// the object changed (a 422 from the failed test): nothing is overwritten,
// no error, and the next pass decides on the new version.
func TestSupersededWriteIsNotAnError(t *testing.T) {
	f := newFixture(t, chartConfig(), rolloutIn(t, "shop", "raced", ""))
	f.dynamic.PrependReactor("patch", "rollouts", func(clienttesting.Action) (bool, runtime.Object, error) {
		// A user's write lands first (through the tracker: the fake
		// client is locked while a reactor runs).
		o, err := f.dynamic.Tracker().Get(Rollouts.GroupVersionResource, "shop", "raced")
		if err != nil {
			return true, nil, err
		}
		u := o.(*unstructured.Unstructured).DeepCopy()
		_ = unstructured.SetNestedStringMap(u.Object, map[string]string{"role": "mine"}, "spec", "strategy", "canary", "canaryMetadata", "labels")
		u.SetResourceVersion("8")
		if err := f.dynamic.Tracker().Update(Rollouts.GroupVersionResource, u, "shop"); err != nil {
			return true, nil, err
		}
		return true, nil, apierrors.NewGenericServerResponse(422, "patch", schema.GroupResource{}, "", "testing value /metadata/resourceVersion failed", 0, false)
	})
	rep := f.pass(t)
	if rep.Superseded != 1 || rep.Outcomes[outcome.Error] != 0 || rep.Outcomes[outcome.Injected] != 0 {
		t.Fatalf("report %+v, want one superseded write and no error", rep)
	}
	if evs := f.events(); len(evs) != 0 {
		t.Errorf("events %q for a write that did not happen", evs)
	}
	f.dynamic.ReactionChain = f.dynamic.ReactionChain[1:]
	f.pass(t)
	u := f.get(t, "shop", "raced")
	if got := labelsAt(u, "canaryMetadata")["role"]; got != "mine" {
		t.Errorf("the user's canary value became %q", got)
	}
	if got := labelsAt(u, "stableMetadata")["role"]; got != "stable" {
		t.Errorf("the next pass did not heal the new version: stable %q", got)
	}
}

// TestRefusedWriteIsAnError: a 422 on an unchanged object (e.g. the CRD's
// schema) is an error, not a race.
func TestRefusedWriteIsAnError(t *testing.T) {
	f := newFixture(t, chartConfig(), rolloutIn(t, "shop", "refused", ""))
	f.dynamic.PrependReactor("patch", "rollouts", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInvalid(schema.GroupKind{Group: "argoproj.io", Kind: "Rollout"}, "refused", nil)
	})
	rep := f.pass(t)
	if rep.Outcomes[outcome.Error] != 1 || rep.Superseded != 0 {
		t.Errorf("report %+v, want one error", rep)
	}
}

// TestWorkloadRefReadOnlyWhenNeeded: the workloadRef template is read for
// a Rollout the rule would change, and not for one already labelled; a key
// in the template is a conflict, as at admission.
func TestWorkloadRefReadOnlyWhenNeeded(t *testing.T) {
	ref := `{spec: {template: null, workloadRef: {apiVersion: apps/v1, kind: Deployment, name: web}}}`
	deployment := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "namespace": "shop"},
		"spec":     map[string]any{"template": map[string]any{"metadata": map[string]any{"labels": map[string]any{"role": "web"}}}},
	}}
	labelled := rolloutIn(t, "shop", "labelled", ref)
	merge(labelled.Object, map[string]any{"spec": map[string]any{"strategy": map[string]any{"canary": map[string]any{
		"stableMetadata": map[string]any{"labels": map[string]any{"role": "stable"}},
		"canaryMetadata": map[string]any{"labels": map[string]any{"role": "canary"}},
	}}}})
	f := newFixture(t, chartConfig(), labelled)
	f.dynamic = dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{Rollouts.GroupVersionResource: "RolloutList"}, labelled, rolloutIn(t, "shop", "clash", ref), deployment)
	f.healer = New(Options{Rules: rules, CheckWorkloadRef: true, WebhookConfigName: "canary-tagger", Logger: logr.Discard()}, f.kube, f.dynamic, f.recorder)

	rep := f.pass(t)
	var gets []string
	for _, a := range f.dynamic.Actions() {
		if a.GetVerb() == "get" {
			gets = append(gets, a.(clienttesting.GetAction).GetName())
		}
	}
	if len(gets) != 1 || gets[0] != "web" {
		t.Errorf("GETs %v, want the clashing Rollout's workloadRef only", gets)
	}
	if rep.Outcomes[outcome.Conflict] != 1 || rep.Outcomes[outcome.Present] != 1 || rep.Patches != 0 {
		t.Errorf("report %+v, want a conflict and a present, no patch", rep)
	}
	if evs := f.events(); len(evs) != 1 || !strings.Contains(evs[0], "workloadRef Deployment/web template") {
		t.Errorf("events %q", evs)
	}
}
