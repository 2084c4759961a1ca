package doctor

import (
	"context"
	"errors"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/canary-tagger/canary-tagger/webhook/agentpod"
	"github.com/canary-tagger/canary-tagger/webhook/rollout"
)

// The list: unique names, a category's checks together, every input a
// check needs made by a step (or, earlier findings, by the runner).
func TestChecksList(t *testing.T) {
	made := map[input]bool{earlierFindings: true}
	for _, s := range steps {
		made[s.makes] = true
	}
	names := map[string]bool{}
	var order []Category
	for _, chk := range checks {
		if names[chk.name] {
			t.Errorf("check %q listed twice", chk.name)
		}
		names[chk.name] = true
		if len(order) == 0 || order[len(order)-1] != chk.category {
			if slices.Contains(order, chk.category) {
				t.Errorf("check %q: category %s is not next to its other checks", chk.name, chk.category)
			}
			order = append(order, chk.category)
		}
		for _, n := range chk.needs {
			if !made[n] {
				t.Errorf("check %q needs %q, which no step makes", chk.name, n)
			}
		}
	}
	want := []Category{Webhook, Namespaces, Heal, Rollout, PromotedCanary, AgentPod, ArgoRollouts}
	if !reflect.DeepEqual(order, want) {
		t.Errorf("categories in the order %v, want %v (the order of the report until now)", order, want)
	}
}

// docs/doctor.md's table of checks lists the categories in the list's order.
func TestDocsFollowTheList(t *testing.T) {
	doc, err := os.ReadFile("../../../../docs/doctor.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented []Category
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z-]+)`").FindAllStringSubmatch(string(doc), -1) {
		if c := Category(m[1]); len(documented) == 0 || documented[len(documented)-1] != c {
			documented = append(documented, c)
		}
	}
	var listed []Category
	for _, chk := range checks {
		if len(listed) == 0 || listed[len(listed)-1] != chk.category {
			listed = append(listed, chk.category)
		}
	}
	if !reflect.DeepEqual(documented, listed) {
		t.Errorf("docs/doctor.md's table has the categories %v, the list %v", documented, listed)
	}
}

// The runner: the list's order, each finding stamped with its check's
// category, each check seeing only the inputs it needs, and the findings of
// the checks before it by name.
func TestRunChecks(t *testing.T) {
	in := inputs{
		namespaces:   map[string]labels.Set{"shop": {}},
		registration: registration{name: "canary-tagger"},
		rollouts:     rolloutList{listed: true},
	}
	var seen []inputs
	record := func(msg string) func(context.Context, *cluster, inputs) []Finding {
		return func(_ context.Context, _ *cluster, in inputs) []Finding {
			seen = append(seen, in)
			return []Finding{{Status: OK, Message: msg}}
		}
	}
	list := []check{
		{name: "first", category: Webhook, needs: []input{webhookRegistration}, run: record("1")},
		{name: "second", category: Rollout, needs: []input{namespaceLabels, storedRollouts}, run: record("2")},
		{name: "third", category: ArgoRollouts, needs: []input{earlierFindings}, run: record("3")},
	}
	got := runChecks(t.Context(), &cluster{}, in, list)
	want := []Finding{{Category: Webhook, Status: OK, Message: "1"}, {Category: Rollout, Status: OK, Message: "2"}, {Category: ArgoRollouts, Status: OK, Message: "3"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("findings %+v, want %+v", got, want)
	}
	if len(seen) != 3 {
		t.Fatalf("%d checks ran, want 3", len(seen))
	}
	if v := seen[0]; v.registration.name != "canary-tagger" || v.namespaces != nil || v.rollouts.listed || v.earlier != nil {
		t.Errorf("first check saw %+v, want the registration only", v)
	}
	if v := seen[1]; v.registration.name != "" || len(v.namespaces) != 1 || !v.rollouts.listed || v.earlier != nil {
		t.Errorf("second check saw %+v, want the namespaces and Rollouts only", v)
	}
	if v := seen[2]; v.namespaces != nil || len(v.earlier) != 2 || v.earlier["second"][0].Message != "2" || v.earlier["second"][0].Category != Rollout {
		t.Errorf("third check saw %+v, want the findings of first and second only", v)
	}
}

// hook is a webhook called for every version of resource in group, on
// every operation.
func hook(name, group, resource string) admissionv1.MutatingWebhook {
	return admissionv1.MutatingWebhook{Name: name, Rules: []admissionv1.RuleWithOperations{{
		Operations: []admissionv1.OperationType{admissionv1.OperationAll},
		Rule:       admissionv1.Rule{APIGroups: []string{group}, APIVersions: []string{"*"}, Resources: []string{resource}}}}}
}

// configOf is the configuration canary-tagger with these webhooks.
func configOf(webhooks ...admissionv1.MutatingWebhook) *admissionv1.MutatingWebhookConfiguration {
	return &admissionv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "canary-tagger"}, Webhooks: webhooks}
}

// The configuration check: missing, unreadable, or without one of its
// webhooks; the fix to reinstall is the same text everywhere.
func TestCheckRegistration(t *testing.T) {
	rollouts, agents := hook("rollouts.canary-tagger.io", "argoproj.io", "rollouts"), hook("agent-pods.canary-tagger.io", "", "pods")
	for _, tc := range []struct {
		name string
		reg  registration
		want []string // status: message prefix
	}{
		{"not found", registration{name: "canary-tagger"}, []string{"action: not found"}},
		{"unreadable", registration{name: "canary-tagger", err: errors.New("forbidden")}, []string{"error: reading the webhook configuration: forbidden"}},
		{"both webhooks", registered(configOf(rollouts, agents)), nil},
		{"no agent webhook", registered(configOf(rollouts)), []string{"action: has no webhook for pods"}},
		{"neither", registered(configOf()), []string{"action: has no webhook for rollouts.argoproj.io", "action: has no webhook for pods"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := checkRegistration(t.Context(), &cluster{}, inputs{registration: tc.reg})
			if len(got) != len(tc.want) {
				t.Fatalf("findings %+v, want %q", got, tc.want)
			}
			for i, f := range got {
				if s := string(f.Status) + ": " + f.Message; !strings.HasPrefix(s, tc.want[i]) {
					t.Errorf("finding %d is %q, want %q…", i, s, tc.want[i])
				}
				if f.Object != "mutatingwebhookconfiguration/canary-tagger" {
					t.Errorf("finding %d is about %q, want the configuration", i, f.Object)
				}
				if f.Status == Action && !reflect.DeepEqual(f.Fix, installFix) {
					t.Errorf("finding %d: fix %q, want the install command %q", i, f.Fix, installFix)
				}
			}
		})
	}
}

// policyBinding is the chart's MutatingAdmissionPolicyBinding for
// rollouts.admission=policy, with this namespaceSelector.
func policyBinding(namespaces *metav1.LabelSelector) *admissionv1.MutatingAdmissionPolicyBinding {
	return &admissionv1.MutatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: "canary-tagger-rollouts"},
		Spec: admissionv1.MutatingAdmissionPolicyBindingSpec{PolicyName: "canary-tagger-rollouts",
			MatchResources: &admissionv1.MatchResources{NamespaceSelector: namespaces}}}
}

// With rollouts.admission=policy the binding admits Rollouts: no action
// for a missing Rollout webhook, and without any webhook configuration
// (agentPods.enabled=false too) an info line instead of "reinstall".
func TestCheckRegistrationPolicy(t *testing.T) {
	agents := hook("agent-pods.canary-tagger.io", "", "pods")
	policyOK := "ok: Rollouts are labelled by MutatingAdmissionPolicy canary-tagger-rollouts in the apiserver @mutatingadmissionpolicybinding/canary-tagger-rollouts"
	withPolicy := func(r registration) registration {
		r.policy = policyBinding(nil)
		return r
	}
	for _, tc := range []struct {
		name string
		reg  registration
		want []string // status: message prefix @object
	}{
		{"policy and agent webhook", withPolicy(registered(configOf(agents))), []string{policyOK}},
		{"policy only", withPolicy(registration{name: "canary-tagger"}), []string{policyOK,
			"info: not found: no agent-pod webhook (agentPods.enabled=false) @mutatingwebhookconfiguration/canary-tagger"}},
		{"neither webhook nor policy", registered(configOf(agents)), []string{
			"action: has no webhook for rollouts.argoproj.io @mutatingwebhookconfiguration/canary-tagger"}},
		{"binding unreadable", func() registration {
			r := registered(configOf(agents))
			r.policyErr = errors.New("forbidden")
			return r
		}(), []string{"error: has no webhook for rollouts.argoproj.io; reading the admission policy binding: forbidden @mutatingadmissionpolicybinding/canary-tagger-rollouts"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := checkRegistration(t.Context(), &cluster{}, inputs{registration: tc.reg})
			if len(got) != len(tc.want) {
				t.Fatalf("findings %+v, want %q", got, tc.want)
			}
			for i, f := range got {
				prefix, object, _ := strings.Cut(tc.want[i], " @")
				if s := string(f.Status) + ": " + f.Message; !strings.HasPrefix(s, prefix) || f.Object != object {
					t.Errorf("finding %d is %q about %s, want %q… about %s", i, s, f.Object, prefix, object)
				}
			}
		})
	}
}

// The registration loaded from a configuration: its Rollout and agent
// webhooks found as the heal loop finds them (resource, version,
// operations), whatever their order.
func TestRegistrationWebhooks(t *testing.T) {
	if r := (registration{}); len(r.webhooks()) != 0 {
		t.Errorf("webhooks of an empty registration: %v", r.webhooks())
	}
	rollouts, pods := hook("rollouts.canary-tagger.io", "argoproj.io", "rollouts"), hook("agent-pods.canary-tagger.io", "", "pods")
	deletes := hook("deletes.example.com", "*", "*")
	deletes.Rules[0].Operations = []admissionv1.OperationType{admissionv1.Delete}
	for _, tc := range []struct {
		name                   string
		config                 *admissionv1.MutatingWebhookConfiguration
		wantRollouts, wantPods string
	}{
		{"both, pods first", configOf(pods, rollouts), rollouts.Name, pods.Name},
		{"one webhook for */*", configOf(hook("all.example.com", "*", "*")), "all.example.com", "all.example.com"},
		{"pods only", configOf(pods), "", pods.Name},
		{"called on DELETE only", configOf(deletes), "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := registered(tc.config)
			if name(r.rollouts) != tc.wantRollouts || name(r.agents) != tc.wantPods {
				t.Errorf("rollouts %q, agents %q; want %q, %q", name(r.rollouts), name(r.agents), tc.wantRollouts, tc.wantPods)
			}
			if r.rolloutScope.Webhook != tc.wantRollouts || r.agentScope.Webhook != tc.wantPods {
				t.Errorf("scopes name %q, %q", r.rolloutScope.Webhook, r.agentScope.Webhook)
			}
		})
	}
}

func name(w *admissionv1.MutatingWebhook) string {
	if w == nil {
		return ""
	}
	return w.Name
}

// The namespaces the Rollout webhook leaves out, by mode, and how one comes in.
func TestCheckExcludedNamespaces(t *testing.T) {
	namespaces := map[string]labels.Set{
		"kube-system": {"kubernetes.io/metadata.name": "kube-system"},
		"legacy":      {"kubernetes.io/metadata.name": "legacy", injectLabel: "disabled"},
		"shop":        {"kubernetes.io/metadata.name": "shop", injectLabel: "enabled"},
		"web":         {"kubernetes.io/metadata.name": "web"},
	}
	clusterWide := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-system"}},
		{Key: injectLabel, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"disabled"}},
	}}
	optIn := &metav1.LabelSelector{MatchLabels: map[string]string{injectLabel: "enabled"}}
	for _, tc := range []struct {
		name     string
		selector *metav1.LabelSelector
		items    []string
		message  string
		fix      []string
	}{
		{"cluster-wide", clusterWide, []string{"kube-system", "legacy"}, "cluster-wide mode: 2 of 4 namespaces are not covered by rollouts.canary-tagger.io (1 labelled canary-tagger.io/inject=disabled)", namespaceFix(false)},
		{"opt-in", optIn, []string{"kube-system", "legacy", "web"}, "namespace opt-in mode: 3 of 4 namespaces are not covered by rollouts.canary-tagger.io (1 labelled canary-tagger.io/inject=disabled)", namespaceFix(true)},
		{"every namespace", nil, nil, "cluster-wide mode: 0 of 4 namespaces are not covered by rollouts.canary-tagger.io", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := hook("rollouts.canary-tagger.io", "argoproj.io", "rollouts")
			w.NamespaceSelector = tc.selector
			got := checkExcludedNamespaces(t.Context(), &cluster{}, inputs{namespaces: namespaces, registration: registered(configOf(w))})
			want := []Finding{{Status: Info, Object: "webhook/rollouts.canary-tagger.io", Message: tc.message, Items: tc.items, Fix: tc.fix}}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v\nwant %+v", got, want)
			}
		})
	}
	if got := checkExcludedNamespaces(t.Context(), &cluster{}, inputs{namespaces: namespaces}); got != nil {
		t.Errorf("without a Rollout webhook: %+v, want nothing", got)
	}
	// rollouts.admission=policy: the binding's namespaceSelector.
	reg := registered(configOf())
	reg.policy = policyBinding(clusterWide)
	got := checkExcludedNamespaces(t.Context(), &cluster{}, inputs{namespaces: namespaces, registration: reg})
	want := []Finding{{Status: Info, Object: "mutatingadmissionpolicybinding/canary-tagger-rollouts", Items: []string{"kube-system", "legacy"}, Fix: namespaceFix(false),
		Message: "cluster-wide mode: 2 of 4 namespaces are not covered by canary-tagger-rollouts (1 labelled canary-tagger.io/inject=disabled)"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("with the admission policy: got %+v\nwant %+v", got, want)
	}
}

func canaryRollout(labelsInTemplate map[string]any) *unstructured.Unstructured {
	tmplLabels := map[string]any{"app": "demo"}
	for k, v := range labelsInTemplate {
		tmplLabels[k] = v
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
		"metadata": map[string]any{"namespace": "shop", "name": "demo"},
		"spec": map[string]any{
			"selector": map[string]any{"matchLabels": map[string]any{"app": "demo"}},
			"template": map[string]any{"metadata": map[string]any{"labels": tmplLabels}},
			"strategy": map[string]any{"canary": map[string]any{"steps": []any{map[string]any{"setWeight": int64(20)}}}},
		},
	}}
}

// What the Rollout rule's result says about a Rollout in scope: one action
// with its fix, or nothing.
func TestRolloutFinding(t *testing.T) {
	now := time.Date(2026, 11, 28, 19, 42, 38, 0, time.UTC)
	opts := rollout.Options{LabelKey: "role", StableValue: "stable", CanaryValue: "canary"}
	c := &cluster{opts: Options{Now: func() time.Time { return now }}}
	c.opts.Rules.Rollout = opts
	for _, tc := range []struct {
		name    string
		rollout *unstructured.Unstructured
		want    *Finding
	}{
		{"unlabelled", canaryRollout(nil), &Finding{Status: Action, Object: "rollout/shop/demo",
			Message: `canary Rollout without the "role" label in its ephemeral metadata: created before canary-tagger was installed or while the webhook was down; any update goes through the webhook and adds it`,
			Items:   []string{"stableMetadata.labels.role=stable", "canaryMetadata.labels.role=canary"},
			Fix:     []string{"kubectl -n shop annotate rollout demo canary-tagger.io/reapplied-at=2026-11-28T19.42.38Z --overwrite   # or re-apply its manifest"}}},
		{"conflict", canaryRollout(map[string]any{"role": "web"}), &Finding{Status: Action, Object: "rollout/shop/demo",
			Reason: `label key in pod template labels: "role" in spec.template.metadata.labels`,
			Fix: []string{`# remove "role" from spec.template.metadata.labels, or run canary-tagger with another --label-key; or, to leave this Rollout unlabelled:`,
				"kubectl -n shop annotate rollout demo canary-tagger.io/inject=false"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, res := rollout.Mutate(tc.rollout.Object, opts, nil)
			got, ok := rolloutFinding(c, tc.rollout, res, false)
			if !ok {
				t.Fatalf("no finding for %+v", res)
			}
			if tc.want.Message == "" { // the rule's warning, checked for its gist
				if !strings.HasPrefix(got.Message, "skipped by the webhook because of a conflict: ") {
					t.Errorf("message %q", got.Message)
				}
				got.Message = ""
			}
			if !reflect.DeepEqual(got, *tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, *tc.want)
			}
		})
	}
	// Labelled already, or opted out: nothing to do.
	labelled := canaryRollout(nil)
	canary := labelled.Object["spec"].(map[string]any)["strategy"].(map[string]any)["canary"].(map[string]any)
	canary["stableMetadata"] = map[string]any{"labels": map[string]any{"role": "stable"}}
	canary["canaryMetadata"] = map[string]any{"labels": map[string]any{"role": "canary"}}
	optedOut := canaryRollout(nil)
	optedOut.SetAnnotations(map[string]string{rollout.OptOutAnnotation: "false"})
	for name, r := range map[string]*unstructured.Unstructured{"labelled": labelled, "opted out": optedOut} {
		_, res := rollout.Mutate(r.Object, opts, nil)
		if f, ok := rolloutFinding(c, r, res, false); ok {
			t.Errorf("%s (%s): finding %+v, want none", name, res.Outcome, f)
		}
	}
	// rollouts.admission=policy: the policy, not the webhook, is named.
	unlabelled := canaryRollout(nil)
	_, res := rollout.Mutate(unlabelled.Object, opts, nil)
	if f, _ := rolloutFinding(c, unlabelled, res, true); !strings.HasSuffix(f.Message, "created before the admission policy was installed; any update goes through the policy, which adds it") {
		t.Errorf("with the admission policy: message %q", f.Message)
	}
}

// What the agent pod rule's result says about one pod: the containers that
// started without the mapping, an action for an unusable value, an info
// line for a container the webhook cannot see into.
func TestContainerFindings(t *testing.T) {
	env := func(v any) []any {
		return []any{map[string]any{"name": agentpod.EnvName, "value": v}}
	}
	pod := map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"namespace": "shop", "name": "dd-agent-x", "labels": map[string]any{"app": "dd-agent"},
			"ownerReferences": []any{map[string]any{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "dd-agent", "uid": "1", "controller": true}}},
		"spec": map[string]any{"containers": []any{
			map[string]any{"name": "agent", "image": "datadog/agent:7", "env": env(`{"app":"kube_app"}`)},
			map[string]any{"name": "bad", "image": "datadog/agent:7", "env": env(`{"app":`)},
			map[string]any{"name": "hidden", "image": "datadog/agent:7", "env": []any{map[string]any{"name": agentpod.EnvName,
				"valueFrom": map[string]any{"configMapKeyRef": map[string]any{"name": "tags", "key": "labels"}}}}},
		}},
	}
	opts := agentpod.Options{LabelKey: "role", TagName: "kube_role", Selector: labels.SelectorFromSet(labels.Set{"app": "dd-agent"})}
	_, res := agentpod.MutatePod(pod, opts)
	injected, got := containerFindings("pod/shop/dd-agent-x", res, opts)
	if !reflect.DeepEqual(injected, []string{"agent"}) {
		t.Errorf("injected %q, want [agent]", injected)
	}
	if len(got) != 2 {
		t.Fatalf("findings %+v, want two", got)
	}
	if f := got[0]; f.Status != Action || f.Object != "pod/shop/dd-agent-x" || !strings.HasPrefix(f.Message, "container bad: ") ||
		!strings.HasPrefix(f.Reason, string(agentpod.ReasonInvalidJSON)) || !reflect.DeepEqual(f.Fix, agentEnvFix("bad")) {
		t.Errorf("first finding %+v, want an action on container bad with its fix", f)
	}
	if f := got[1]; f.Status != Info || !strings.HasPrefix(f.Message, "container hidden: ") || !strings.HasPrefix(f.Reason, string(agentpod.ReasonValueFrom)) || f.Fix != nil {
		t.Errorf("second finding %+v, want an info line on container hidden", f)
	}
}

// The restart each owner of agent pods gets.
func TestRestartFix(t *testing.T) {
	for ref, want := range map[string]string{
		"daemonset/dd-agent":             "kubectl -n shop rollout restart daemonset/dd-agent",
		"deployment/cluster-agent":       "kubectl -n shop rollout restart deployment/cluster-agent",
		"pod/dd-agent-x":                 "kubectl -n shop delete pod/dd-agent-x   # no controller found to restart it",
		"extendeddaemonsetreplicaset/ab": "kubectl -n shop delete pod p1 p2   # the ExtendedDaemonSet recreates them",
	} {
		if got := restartFix("shop", ref, []string{"p1", "p2"}); len(got) != 1 || got[0] != want {
			t.Errorf("restartFix(%s) = %q, want %q", ref, got, want)
		}
	}
}
