package install

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v3/pkg/lint/support"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/canary-tagger/canary-tagger/test/internal/harness"
	"github.com/canary-tagger/canary-tagger/webhook/config"
	"github.com/canary-tagger/canary-tagger/webhook/rollout"
)

var policyValues = map[string]any{"rollouts": map[string]any{"admission": "policy"}}

// kinds lists the kinds of a render, sorted, one entry per document.
func kinds(r rendered) []string {
	var out []string
	for _, d := range r.docs {
		out = append(out, d.Kind)
	}
	slices.Sort(out)
	return out
}

// policyDocs decodes the four policy objects of a render strictly.
func policyDocs(t *testing.T, r rendered) (*admissionv1.MutatingAdmissionPolicy, *admissionv1.MutatingAdmissionPolicyBinding,
	*admissionv1.ValidatingAdmissionPolicy, *admissionv1.ValidatingAdmissionPolicyBinding) {
	t.Helper()
	return only[admissionv1.MutatingAdmissionPolicy](t, r, "MutatingAdmissionPolicy"),
		only[admissionv1.MutatingAdmissionPolicyBinding](t, r, "MutatingAdmissionPolicyBinding"),
		only[admissionv1.ValidatingAdmissionPolicy](t, r, "ValidatingAdmissionPolicy"),
		only[admissionv1.ValidatingAdmissionPolicyBinding](t, r, "ValidatingAdmissionPolicyBinding")
}

// ruleOptions are the Rollout rule's options for customSettings.
func ruleOptions() rollout.Options {
	return rollout.Options{
		LabelKey: customSettings["labelKey"].(string), StableValue: customSettings["stableValue"].(string),
		CanaryValue: customSettings["canaryValue"].(string), BlueGreen: customSettings["blueGreen"].(bool),
	}
}

// clashMessages are the rule's warnings for a key in the selector's
// matchLabels, its matchExpressions and the pod template, in that order.
func clashMessages(t *testing.T, opts rollout.Options) []string {
	t.Helper()
	shapes, err := harness.RolloutShapes(env.Repo, opts.LabelKey)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, name := range []string{"key in selector.matchLabels", "key in selector.matchExpressions", "key in the pod template"} {
		i := slices.IndexFunc(shapes, func(s harness.RolloutShape) bool { return s.Name == name })
		if i < 0 {
			t.Fatalf("no Rollout shape %q", name)
		}
		_, msgs, err := harness.RuleResult(shapes[i].Object, opts)
		if err != nil || len(msgs) != 1 {
			t.Fatalf("the rule on %q: warnings %q, %v; want one", name, msgs, err)
		}
		out = append(out, msgs[0])
	}
	return out
}

// TestChartPolicyMode: with rollouts.admission=policy, for every mode and
// TLS, the chart renders the policies and bindings (strict API types) and
// drops the Rollout webhook and what only it needs (the workloadRef RBAC
// and flag); the bindings select exactly the namespaces the Rollout webhook
// selects in the same mode, the policies match exactly its requests, fail
// open like it, and the warnings are the rule's words for the settings.
func TestChartPolicyMode(t *testing.T) {
	const release, ns = "ct", "platform-tools"
	for _, m := range chartModes() {
		t.Run(m.entry.dir, func(t *testing.T) {
			settings := map[string]any{"settings": customSettings}
			web := renderChart(t, release, ns, m, settings)
			r := renderChart(t, release, ns, m, withValues(settings, policyValues))
			checkReleaseNamespace(t, r, ns)
			webMWC := only[admissionv1.MutatingWebhookConfiguration](t, web, "MutatingWebhookConfiguration")
			rolloutWebhook := webhookNamed(t, webMWC, "rollouts.canary-tagger.io")

			// The agent-pod webhook only, as in webhook mode.
			mwc := only[admissionv1.MutatingWebhookConfiguration](t, r, "MutatingWebhookConfiguration")
			if len(mwc.Webhooks) != 1 || !reflect.DeepEqual(mwc.Webhooks[0], webhookNamed(t, webMWC, "agent-pods.canary-tagger.io")) {
				t.Errorf("webhooks %+v, want only the agent-pod webhook of webhook mode", mwc.Webhooks)
			}
			// No workloadRef reads: no flag, no RBAC for them.
			dep := only[appsv1.Deployment](t, r, "Deployment")
			if args := effectiveArgs(t, dep); slices.Contains(args, "--check-workload-ref") {
				t.Errorf("args %q still check workloadRefs", args)
			}
			for _, d := range r.docs {
				if strings.HasSuffix(d.Name, "-workloadref-reader") {
					t.Errorf("%s %s is rendered: only the Rollout webhook reads workloadRefs", d.Kind, d.Name)
				}
			}

			mp, mb, vp, vb := policyDocs(t, r)
			name := release + "-canary-tagger-rollouts"
			for kind, n := range map[string]string{"MutatingAdmissionPolicy": mp.Name, "MutatingAdmissionPolicyBinding": mb.Name,
				"ValidatingAdmissionPolicy": vp.Name, "ValidatingAdmissionPolicyBinding": vb.Name} {
				if n != name {
					t.Errorf("%s is named %s, want %s", kind, n, name)
				}
			}
			if mb.Spec.PolicyName != name || vb.Spec.PolicyName != name {
				t.Errorf("bindings bind %s and %s, want %s", mb.Spec.PolicyName, vb.Spec.PolicyName, name)
			}
			for what, sel := range map[string]any{"mutating binding": mb.Spec.MatchResources.NamespaceSelector, "validating binding": vb.Spec.MatchResources.NamespaceSelector} {
				if diff := cmp.Diff(rolloutWebhook.NamespaceSelector, sel); diff != "" {
					t.Errorf("%s namespaceSelector differs from the Rollout webhook's (-webhook +binding):\n%s", what, diff)
				}
			}
			for what, mc := range map[string]*admissionv1.MatchResources{"MutatingAdmissionPolicy": mp.Spec.MatchConstraints, "ValidatingAdmissionPolicy": vp.Spec.MatchConstraints} {
				if mc == nil || len(mc.ResourceRules) != 1 || !reflect.DeepEqual(mc.ResourceRules[0].RuleWithOperations, rolloutWebhook.Rules[0]) ||
					mc.MatchPolicy == nil || *mc.MatchPolicy != *rolloutWebhook.MatchPolicy {
					t.Errorf("%s matchConstraints %+v, want the Rollout webhook's rules %+v", what, mc, rolloutWebhook.Rules)
				}
			}
			if mp.Spec.FailurePolicy == nil || *mp.Spec.FailurePolicy != admissionv1.Ignore ||
				vp.Spec.FailurePolicy == nil || *vp.Spec.FailurePolicy != admissionv1.Ignore {
				t.Errorf("failurePolicy %v / %v, want Ignore for both (fail open, as the webhook)", mp.Spec.FailurePolicy, vp.Spec.FailurePolicy)
			}
			if mp.Spec.ReinvocationPolicy != admissionv1.IfNeededReinvocationPolicy || mp.Spec.ParamKind != nil || mb.Spec.ParamRef != nil {
				t.Errorf("reinvocation %s, paramKind %v, paramRef %v; want IfNeeded (as the webhook) and no parameters",
					mp.Spec.ReinvocationPolicy, mp.Spec.ParamKind, mb.Spec.ParamRef)
			}
			if !slices.Equal(vb.Spec.ValidationActions, []admissionv1.ValidationAction{admissionv1.Warn, admissionv1.Audit}) {
				t.Errorf("validationActions %v, want [Warn Audit]: a clash is told, never refused", vb.Spec.ValidationActions)
			}
			if len(mp.Spec.Mutations) != 1 || mp.Spec.Mutations[0].PatchType != admissionv1.PatchTypeJSONPatch {
				t.Errorf("mutations %+v, want one JSONPatch", mp.Spec.Mutations)
			}

			// The clash warnings are the rule's, for the configured key.
			var got []string
			for _, v := range vp.Spec.Validations {
				if v.Message != "" {
					got = append(got, v.Message)
				}
			}
			if want := clashMessages(t, ruleOptions()); !slices.Equal(got, want) {
				t.Errorf("ValidatingAdmissionPolicy messages:\n got %q\nwant %q (the rule's)", got, want)
			}
		})
	}
}

// TestChartPolicyOnly: rollouts.admission=policy with agentPods.enabled=false
// installs the four policy objects and nothing else — no Deployment,
// Service, ServiceAccount, webhook configuration, TLS, PDB, NetworkPolicy,
// RBAC or Namespace, whatever the other values ask for — and the analysis
// templates when enabled. The Rollout webhook without the agent-pod one
// keeps the server.
func TestChartPolicyOnly(t *testing.T) {
	policies := []string{"MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
	noAgentPods := map[string]any{"agentPods": map[string]any{"enabled": false}}
	everything := map[string]any{
		"namespace": map[string]any{"create": true}, "serviceMonitor": map[string]any{"enabled": true},
		"podDisruptionBudget": map[string]any{"enabled": true}, "networkPolicy": map[string]any{"enabled": true},
	}
	for _, m := range chartModes() {
		t.Run(m.entry.dir, func(t *testing.T) {
			r := renderChart(t, "canary-tagger", "platform", m, withValues(withValues(everything, noAgentPods), policyValues))
			if got := kinds(r); !slices.Equal(got, policies) {
				t.Errorf("kinds %q, want only %q", got, policies)
			}
			r = renderChart(t, "canary-tagger", "platform", m, withValues(withValues(noAgentPods, policyValues), map[string]any{"analysisTemplates": map[string]any{"enabled": true}}))
			want := slices.Concat(policies, []string{"ClusterAnalysisTemplate", "ClusterAnalysisTemplate"})
			slices.Sort(want)
			if got := kinds(r); !slices.Equal(got, want) {
				t.Errorf("with analysisTemplates: kinds %q, want %q", got, want)
			}

			r = renderChart(t, "canary-tagger", "platform", m, noAgentPods)
			mwc := only[admissionv1.MutatingWebhookConfiguration](t, r, "MutatingWebhookConfiguration")
			if len(mwc.Webhooks) != 1 || mwc.Webhooks[0].Name != "rollouts.canary-tagger.io" {
				t.Errorf("agentPods.enabled=false: webhooks %+v, want only rollouts.canary-tagger.io", mwc.Webhooks)
			}
			only[appsv1.Deployment](t, r, "Deployment")
			if n := len(r.ofKind("MutatingAdmissionPolicy")); n != 0 {
				t.Errorf("rollouts.admission=webhook renders %d MutatingAdmissionPolicy", n)
			}
		})
	}
}

// TestChartPolicyRefusals: the new values are checked, and a policy render
// for a Kubernetes without MutatingAdmissionPolicy v1 says so.
func TestChartPolicyRefusals(t *testing.T) {
	kv := controlPlaneVersion(t)
	for _, tc := range []struct {
		name, kubeVersion string
		values            map[string]any
		want              string
	}{
		{"admission not in [webhook, policy]", kv, map[string]any{"rollouts": map[string]any{"admission": "cel"}}, "at '/rollouts/admission'"},
		{"misspelt rollouts value", kv, map[string]any{"rollouts": map[string]any{"admision": "policy"}}, "additional properties 'admision' not allowed"},
		{"agentPods.enabled not a boolean", kv, map[string]any{"agentPods": map[string]any{"enabled": "no"}}, "at '/agentPods/enabled'"},
		{"policy before Kubernetes 1.36", "v1.35.4", policyValues, "rollouts.admission=policy needs Kubernetes 1.36 or later"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := harness.RenderChart(env.Repo, harness.ChartRender{ReleaseName: "canary-tagger", Namespace: "platform", KubeVersion: tc.kubeVersion, Values: tc.values})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("values %v for %s: %v; want refused with %q", tc.values, tc.kubeVersion, err, tc.want)
			}
		})
	}
	// Control: the same render for 1.36 passes, and Helm's linter is happy.
	if _, err := harness.RenderChart(env.Repo, harness.ChartRender{ReleaseName: "canary-tagger", Namespace: "platform", KubeVersion: harness.PolicyKubeVersion, Values: policyValues}); err != nil {
		t.Errorf("policy render for %s: %v", harness.PolicyKubeVersion, err)
	}
	msgs, err := harness.LintChart(env.Repo, harness.ChartRender{Namespace: "platform", KubeVersion: kv,
		Values: withValues(policyValues, map[string]any{"agentPods": map[string]any{"enabled": false}})})
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range msgs {
		if msg.Severity >= support.WarningSev {
			t.Errorf("helm lint: %s", msg)
		}
	}
}

// TestManifestsPolicyEntryPoint: manifests/policy is the policy-only install
// (the four objects, default settings, cluster-wide), and the apiserver
// takes it (a server-side dry run compiles every CEL expression).
func TestManifestsPolicyEntryPoint(t *testing.T) {
	r := render(t, "policy")
	want := []string{"MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
	if got := kinds(r); !slices.Equal(got, want) {
		t.Errorf("manifests/policy holds %q, want %q", got, want)
	}
	_, mb, _, _ := policyDocs(t, r)
	if sel := mb.Spec.MatchResources.NamespaceSelector; sel == nil || len(sel.MatchExpressions) != 2 {
		t.Errorf("manifests/policy binding namespaceSelector %+v, want cluster-wide's", sel)
	}
	if res := env.Kubectl.Run(t.Context(), "apply", "--dry-run=server", "-k", filepath.Join(env.Repo, "manifests", "policy")); !res.OK() {
		t.Errorf("the apiserver refuses manifests/policy: %s", res)
	}
}

// TestPolicyCustomSettingsOnAPIServer installs the chart's policy render
// with other settings (a label key with a prefix, other values, blue-green;
// opt-in mode, so no other test's Rollouts are touched) and creates every
// Rollout shape with `kubectl create --dry-run=server`: the apiserver's
// answer is the rule's result for those settings, and its warnings are the
// rule's.
func TestPolicyCustomSettingsOnAPIServer(t *testing.T) {
	opts := ruleOptions()
	rules, err := config.Flags{LabelKey: opts.LabelKey, StableValue: opts.StableValue, CanaryValue: opts.CanaryValue,
		TagName: "team_track", AgentSelector: config.DefaultAgentSelector, BlueGreen: opts.BlueGreen}.Validate()
	if err != nil {
		t.Fatal(err)
	}
	pr, err := harness.RenderPolicy(env.Repo, harness.ModeNamespaceOptIn, rules, false, controlPlaneVersion(t))
	if err != nil {
		t.Fatal(err)
	}
	if res := env.Kubectl.RunStdin(t.Context(), bytes.NewReader(pr.Policies), "apply", "--server-side", "-f", "-"); !res.OK() {
		t.Fatalf("applying the policies: %s", res)
	}
	t.Cleanup(func() {
		if res := env.Kubectl.RunStdin(context.Background(), bytes.NewReader(pr.Policies), "delete", "-f", "-"); !res.OK() {
			t.Errorf("deleting the policies: %s", res)
		}
	})
	ns := "policy-settings"
	if err := env.CreateNamespace(t.Context(), ns, map[string]string{harness.InjectLabel: harness.InjectEnabled}); err != nil {
		t.Fatal(err)
	}
	shapes, err := harness.RolloutShapes(env.Repo, opts.LabelKey)
	if err != nil {
		t.Fatal(err)
	}
	warning := func(m string) string {
		return fmt.Sprintf("Warning: Validation failed for ValidatingAdmissionPolicy '%s' with binding '%s': %s", pr.Name, pr.Name, m)
	}
	dryRun := func(ctx context.Context, o map[string]any) (map[string]any, []string, error) {
		doc, err := yaml.Marshal(o)
		if err != nil {
			return nil, nil, err
		}
		res := env.Kubectl.RunStdin(ctx, bytes.NewReader(doc), "create", "--dry-run=server", "-o", "json", "-n", ns, "-f", "-")
		if !res.OK() {
			return nil, nil, fmt.Errorf("%s", res)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(res.Stdout), &got); err != nil {
			return nil, nil, err
		}
		var warnings []string
		for line := range strings.Lines(res.Stderr) {
			if strings.HasPrefix(line, "Warning: ") {
				warnings = append(warnings, strings.TrimSuffix(line, "\n"))
			}
		}
		return got, warnings, nil
	}
	// Both policies in effect: the apiserver learns of them by informers.
	seed, clash := shapes[0].Object, shapes[slices.IndexFunc(shapes, func(s harness.RolloutShape) bool { return s.Name == "key in the pod template" })].Object
	if err := harness.Eventually(t.Context(), "TestPolicyCustomSettingsOnAPIServer", func(ctx context.Context) (bool, error) {
		got, _, err := dryRun(ctx, seed)
		if err != nil {
			return false, err
		}
		if v, _, _ := unstructured.NestedString(got, "spec", "strategy", "canary", "stableMetadata", "labels", opts.LabelKey); v != opts.StableValue {
			return false, fmt.Errorf("the seed is not injected yet")
		}
		if _, warnings, err := dryRun(ctx, clash); err != nil || len(warnings) == 0 {
			return false, fmt.Errorf("no clash warning yet (%v)", err)
		}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, s := range shapes {
		t.Run(s.Name, func(t *testing.T) {
			want, messages, err := harness.RuleResult(s.Object, opts)
			if err != nil {
				t.Fatal(err)
			}
			got, warnings, err := dryRun(t.Context(), s.Object)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want["spec"], got["spec"]); diff != "" {
				t.Errorf("spec as admitted differs from the rule's result (-rule +apiserver):\n%s", diff)
			}
			var wantWarnings []string
			for _, m := range messages {
				wantWarnings = append(wantWarnings, warning(m))
			}
			if !slices.Equal(warnings, wantWarnings) {
				t.Errorf("warnings\n got %q\nwant %q", warnings, wantWarnings)
			}
		})
	}
}
