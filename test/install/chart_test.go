package install

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v3/pkg/lint/support"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"

	"github.com/canary-tagger/canary-tagger/certs"
	"github.com/canary-tagger/canary-tagger/test/internal/harness"
	"github.com/canary-tagger/canary-tagger/webhook/agentpod"
	"github.com/canary-tagger/canary-tagger/webhook/config"
	"github.com/canary-tagger/canary-tagger/webhook/webhooktest"
)

// chartMode is one mode × TLS combination of the chart, named like the
// kustomize entry point it corresponds to.
type chartMode struct {
	entry  entryPoint
	values map[string]any
}

func chartModes() []chartMode {
	var out []chartMode
	for _, ep := range entryPoints {
		m := chartMode{entry: ep, values: map[string]any{"mode": "cluster-wide", "tls": "cert-manager"}}
		if ep.optIn {
			m.values["mode"] = "opt-in"
		}
		if ep.selfManaged {
			m.values["tls"] = "self-managed"
		}
		out = append(out, m)
	}
	return out
}

// withValues merges overrides into a copy of base (one level deep for maps).
func withValues(base map[string]any, overrides map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range overrides {
		out[k] = v
	}
	return out
}

// controlPlaneVersion is the envtest apiserver's version: Helm's Go packages
// render for Kubernetes v1.20 unless told otherwise, and the chart needs ≥ 1.27.
func controlPlaneVersion(t *testing.T) string {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	v, err := dc.ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	return v.GitVersion
}

// renderChart renders the chart with Helm's Go packages for the control
// plane's Kubernetes version and splits the manifest into documents.
func renderChart(t *testing.T, release, namespace string, mode chartMode, values map[string]any) rendered {
	t.Helper()
	manifest, err := harness.RenderChart(env.Repo, harness.ChartRender{
		ReleaseName: release, Namespace: namespace, KubeVersion: controlPlaneVersion(t),
		Values: withValues(mode.values, values),
	})
	if err != nil {
		t.Fatalf("rendering the chart (%s) into %s: %v", mode.entry.dir, namespace, err)
	}
	docs, err := splitDocs([]byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	return rendered{entry: mode.entry, yaml: manifest, docs: docs}
}

// TestChartAnalysisTemplates: with analysisTemplates.enabled the chart
// renders the same ClusterAnalysisTemplates as manifests/analysis, their
// Argo arguments ({{args.…}}) untouched by Helm; without it, none.
func TestChartAnalysisTemplates(t *testing.T) {
	m := chartModes()[0]
	if r := renderChart(t, "ct", "platform", m, nil); strings.Contains(r.yaml, "ClusterAnalysisTemplate") {
		t.Errorf("analysis templates rendered although analysisTemplates.enabled is false")
	}
	r := renderChart(t, "ct", "platform", m, map[string]any{"analysisTemplates": map[string]any{"enabled": true}})
	var names []string
	for _, d := range r.docs {
		if d.Kind == "ClusterAnalysisTemplate" {
			names = append(names, d.Name)
		}
	}
	slices.Sort(names)
	if want := []string{"canary-tagger-error-ratio", "canary-tagger-latency"}; !slices.Equal(names, want) {
		t.Errorf("ClusterAnalysisTemplates %q, want %q", names, want)
	}
	for _, arg := range []string{"{{args.service}}", "{{args.canary-value}}", "{{args.stable-value}}"} {
		if !strings.Contains(r.yaml, arg) {
			t.Errorf("the render lost the Argo argument %s", arg)
		}
	}
}

// TestChartLint runs Helm's linter on the chart for every mode, and with the
// optional ServiceMonitor on: no warning, no error.
func TestChartLint(t *testing.T) {
	kv := controlPlaneVersion(t)
	for _, m := range chartModes() {
		for name, extra := range map[string]map[string]any{
			"":                nil,
			"+servicemonitor": {"serviceMonitor": map[string]any{"enabled": true}},
			"+analysis":       {"analysisTemplates": map[string]any{"enabled": true}},
		} {
			t.Run(m.entry.dir+name, func(t *testing.T) {
				vals := m.values
				if extra != nil {
					vals = withValues(vals, extra)
				}
				msgs, err := harness.LintChart(env.Repo, harness.ChartRender{Namespace: "platform", KubeVersion: kv, Values: vals})
				if err != nil {
					t.Fatal(err)
				}
				for _, msg := range msgs {
					if msg.Severity >= support.WarningSev {
						t.Errorf("helm lint: %s", msg)
					}
				}
			})
		}
	}
}

// TestChartKubeVersion measures the first fact of issue 13: Helm's Go
// packages render for Kubernetes v1.20 unless given a version, and then the
// chart (kubeVersion ≥ 1.27, for the topology spread's matchLabelKeys) is
// refused; with the control plane's version it renders.
func TestChartKubeVersion(t *testing.T) {
	_, err := harness.RenderChart(env.Repo, harness.ChartRender{ReleaseName: "canary-tagger", Namespace: "platform"})
	if err == nil || !strings.Contains(err.Error(), "chart requires kubeVersion: >=1.27.0-0 which is incompatible with Kubernetes v1.20.0") {
		t.Errorf("rendering without a Kubernetes version: %v; want Helm's v1.20 default refused", err)
	}
	kv := controlPlaneVersion(t)
	if _, err := harness.RenderChart(env.Repo, harness.ChartRender{ReleaseName: "canary-tagger", Namespace: "platform", KubeVersion: kv}); err != nil {
		t.Errorf("rendering for the control plane's %s: %v", kv, err)
	}
	if _, err := harness.RenderChart(env.Repo, harness.ChartRender{ReleaseName: "canary-tagger", Namespace: "platform", KubeVersion: "v1.26.9"}); err == nil {
		t.Errorf("the chart renders for Kubernetes v1.26, which has no matchLabelKeys")
	}
}

// TestChartSchemaRefusesBadValues: values.schema.json (and the two checks a
// schema cannot express, in the templates) refuse bad values with a message
// naming the value and what is allowed.
func TestChartSchemaRefusesBadValues(t *testing.T) {
	kv := controlPlaneVersion(t)
	settings := func(k string, v any) map[string]any {
		s := map[string]any{
			"labelKey": "role", "stableValue": "stable", "canaryValue": "canary", "tagName": "kube_role",
			"agentComponents": []any{},
			"agentSelector":   map[string]any{"matchLabels": map[string]any{"agent.datadoghq.com/component": "agent"}},
		}
		s[k] = v
		return map[string]any{"settings": s}
	}
	cases := []struct {
		name   string
		values map[string]any
		want   []string
	}{
		{"mode not in [cluster-wide, opt-in]", map[string]any{"mode": "namespaced"}, []string{"at '/mode'", "'cluster-wide', 'opt-in'"}},
		{"tls not in [cert-manager, self-managed]", map[string]any{"tls": "vault"}, []string{"at '/tls'", "'cert-manager', 'self-managed'"}},
		{"replicas < 1", map[string]any{"replicas": 0}, []string{"at '/replicas'", "minimum"}},
		{"replicas not a number", map[string]any{"replicas": "two"}, []string{"at '/replicas'", "integer"}},
		{"empty label key", settings("labelKey", ""), []string{"at '/settings/labelKey'", "minLength"}},
		{"label key with a space", settings("labelKey", "my role"), []string{"at '/settings/labelKey'", "does not match pattern"}},
		{"empty canary value", settings("canaryValue", ""), []string{"at '/settings/canaryValue'", "minLength"}},
		{"label value too long", settings("stableValue", strings.Repeat("s", 64)), []string{"at '/settings/stableValue'", "maxLength"}},
		{"upper-case tag name", settings("tagName", "Kube_Role"), []string{"at '/settings/tagName'", "does not match pattern"}},
		{"blueGreen not a boolean", settings("blueGreen", "yes"), []string{"at '/settings/blueGreen'", "boolean"}},
		{"bad selector operator", settings("agentSelector", map[string]any{"matchExpressions": []any{map[string]any{"key": "app", "operator": "Equals", "values": []any{"datadog"}}}}),
			[]string{"operator", "'In', 'NotIn', 'Exists', 'DoesNotExist'"}},
		{"In without values", settings("agentSelector", map[string]any{"matchExpressions": []any{map[string]any{"key": "app", "operator": "In"}}}),
			[]string{"matchExpressions/0", "values"}},
		{"misspelt top-level value", map[string]any{"replica": 3}, []string{"additional properties 'replica' not allowed"}},
		{"empty image repository", map[string]any{"image": map[string]any{"repository": "", "tag": "v1"}}, []string{"at '/image/repository'", "minLength"}},
		{"bad pull policy", map[string]any{"image": map[string]any{"repository": "canary-tagger", "tag": "v1", "pullPolicy": "Sometimes"}}, []string{"at '/image/pullPolicy'"}},
		{"bad certificate lifetime", map[string]any{"selfManagedTLS": map[string]any{"certLifetime": "90 days"}}, []string{"at '/selfManagedTLS/certLifetime'"}},
		{"stable and canary the same", withValues(settings("canaryValue", "stable"), nil), []string{`settings.stableValue and settings.canaryValue are both "stable"`}},
		{"empty agent selector", withValues(settings("agentSelector", map[string]any{}), nil), []string{"settings.agentComponents and settings.agentSelector are both empty"}},
		{"component not a label value", settings("agentComponents", []any{"cluster agent"}), []string{"at '/settings/agentComponents/0'", "does not match pattern"}},
		{"heal interval not a duration", map[string]any{"heal": map[string]any{"interval": "soon"}}, []string{"at '/heal/interval'", "does not match pattern"}},
		{"heal enabled not a boolean", map[string]any{"heal": map[string]any{"enabled": "yes"}}, []string{"at '/heal/enabled'", "boolean"}},
		{"misspelt heal value", map[string]any{"heal": map[string]any{"agentPod": true}}, []string{"additional properties 'agentPod' not allowed"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := harness.RenderChart(env.Repo, harness.ChartRender{ReleaseName: "canary-tagger", Namespace: "platform", KubeVersion: kv, Values: tc.values})
			if err == nil {
				t.Fatalf("values %v rendered; want them refused", tc.values)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message does not say %q:\n%v", w, err)
				}
			}
		})
	}
	// Control: the same helper with good values renders, so the refusals
	// above come from the values.
	if _, err := harness.RenderChart(env.Repo, harness.ChartRender{ReleaseName: "canary-tagger", Namespace: "platform", KubeVersion: kv, Values: settings("labelKey", "example.com/role")}); err != nil {
		t.Errorf("good values refused: %v", err)
	}
}

// TestChartHealValues: heal.* reach serve's flags — healing on with leader
// election in the release namespace by default, the interval as given,
// --heal=false and no heal RBAC when disabled — and heal.agentPods adds its
// flag and its grants (pods list, replicasets get, daemonsets and
// deployments get and patch) and nothing else.
func TestChartHealValues(t *testing.T) {
	const release, ns = "ct", "platform-tools"
	m := chartModes()[0]
	grantsOf := func(r rendered, dep *appsv1.Deployment) []string {
		var out []string
		for _, g := range grants(t, r, dep) {
			out = append(out, g.namespace+"|"+g.group+"/"+g.resource+"|"+g.verb+"|"+g.name)
		}
		return out
	}
	// Without healing the release has only the workloadRef check's grants.
	withoutHeal := renderChart(t, release, ns, m, map[string]any{"heal": map[string]any{"enabled": false}})
	workloadRefGrants := grantsOf(withoutHeal, only[appsv1.Deployment](t, withoutHeal, "Deployment"))
	for name, tc := range map[string]struct {
		heal      map[string]any
		wantArgs  map[string]string // "" = absent
		agentPods bool
		healing   bool
	}{
		"default": {nil, map[string]string{"heal-interval": "1m", "leader-elect": "true", "leader-election-namespace": ns,
			"webhook-config-name": release + "-canary-tagger", "heal": "", "heal-agent-pods": ""}, false, true},
		"interval":   {map[string]any{"interval": "30s"}, map[string]string{"heal-interval": "30s", "leader-elect": "true"}, false, true},
		"agent pods": {map[string]any{"agentPods": true}, map[string]string{"heal-agent-pods": "true", "leader-elect": "true"}, true, true},
		"disabled": {map[string]any{"enabled": false, "agentPods": true}, map[string]string{"heal": "false", "heal-interval": "",
			"leader-elect": "", "leader-election-namespace": "", "heal-agent-pods": "", "webhook-config-name": release + "-canary-tagger"}, false, false},
	} {
		t.Run(name, func(t *testing.T) {
			var values map[string]any
			if tc.heal != nil {
				values = map[string]any{"heal": tc.heal}
			}
			r := renderChart(t, release, ns, m, values)
			dep := only[appsv1.Deployment](t, r, "Deployment")
			args := effectiveArgs(t, dep)
			for flagName, want := range tc.wantArgs {
				got, ok := argValue(args, flagName)
				if want == "" && ok {
					t.Errorf("--%s=%s rendered, want it absent", flagName, got)
				} else if want != "" && got != want {
					t.Errorf("--%s=%q, want %q", flagName, got, want)
				}
			}
			got := grantsOf(r, dep)
			want := slices.Clone(workloadRefGrants)
			if tc.healing {
				want = append(want, healGrants(t, dep, tc.agentPods)...)
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("service account permissions:\n got  %q\n want %q", got, want)
			}
		})
	}
}

// TestManifestsAreChartRenders: the kustomize entry points under manifests/
// are the chart's renders (`make manifests`), byte for byte, and hold nothing
// else. A hand edit of either side fails here.
func TestManifestsAreChartRenders(t *testing.T) {
	want, err := harness.ManifestFiles(env.Repo, harness.ManifestsKubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	dirs := map[string]bool{}
	for p, b := range want {
		dirs[filepath.Dir(p)] = true
		got, err := os.ReadFile(filepath.Join(env.Repo, p))
		if err != nil {
			t.Errorf("%v: run `make manifests`", err)
			continue
		}
		if !bytes.Equal(got, b) {
			t.Errorf("%s is not the chart's render: run `make manifests` (-chart +on disk)\n%s", p, cmp.Diff(string(b), string(got)))
		}
	}
	for d := range dirs {
		entries, err := os.ReadDir(filepath.Join(env.Repo, d))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if _, ok := want[filepath.Join(d, e.Name())]; !ok {
				t.Errorf("%s/%s is not generated from the chart: the entry points hold only renders", d, e.Name())
			}
		}
	}
	// The objects have one source: no kustomize base or components left
	// that could be edited instead of the chart.
	for _, old := range []string{"manifests/base", "manifests/components"} {
		if _, err := os.Stat(filepath.Join(env.Repo, old)); err == nil {
			t.Errorf("%s exists: the chart is the only source of the install's objects", old)
		}
	}
}

// customSettings are contract 1 settings other than the defaults, and an
// agent selector with both matchLabels and matchExpressions.
var customSettings = map[string]any{
	"labelKey": "example.com/track", "stableValue": "steady", "canaryValue": "trial", "tagName": "team_track", "blueGreen": true,
	"agentSelector": map[string]any{
		"matchLabels": map[string]any{"app": "datadog"},
		"matchExpressions": []any{
			map[string]any{"key": "tier", "operator": "NotIn", "values": []any{"test", "dev"}},
			map[string]any{"key": "agent.datadoghq.com/component", "operator": "Exists"},
		},
	},
}

// TestChartRendersEveryMode renders the chart for every mode into the
// release namespace platform-tools with other settings, and runs the checks
// of the kustomize entry points on it (Deployment, NetworkPolicy, RBAC, TLS
// per mode), plus: every namespace the objects name is the release
// namespace; the settings reach the server's flags; the objectSelector is
// the --agent-selector; the namespace called canary-tagger is an ordinary
// namespace to this install.
func TestChartRendersEveryMode(t *testing.T) {
	const release, ns = "ct", "platform-tools"
	for _, m := range chartModes() {
		t.Run(m.entry.dir, func(t *testing.T) {
			r := renderChart(t, release, ns, m, map[string]any{
				"settings": customSettings,
				"image":    map[string]any{"repository": "registry.example/platform/canary-tagger", "tag": "v1.2.3", "pullPolicy": "Always"},
			})
			if n := len(r.ofKind("Namespace")); n != 0 {
				t.Errorf("%d Namespace objects: helm install creates the release namespace (--create-namespace)", n)
			}
			checkReleaseNamespace(t, r, ns)

			dep := only[appsv1.Deployment](t, r, "Deployment")
			mwc := only[admissionv1.MutatingWebhookConfiguration](t, r, "MutatingWebhookConfiguration")
			c := container(t, dep)
			args := effectiveArgs(t, dep)
			if c.Image != "registry.example/platform/canary-tagger:v1.2.3" || c.ImagePullPolicy != corev1.PullAlways {
				t.Errorf("image %q pull policy %s, want the image values", c.Image, c.ImagePullPolicy)
			}

			// The settings are the server's flags, and valid ones.
			for flagName, want := range map[string]string{"label-key": "example.com/track", "stable-value": "steady", "canary-value": "trial", "tag-name": "team_track"} {
				if got := mustArg(t, args, flagName); got != want {
					t.Errorf("--%s=%s, want %s", flagName, got, want)
				}
			}
			var shared []string
			for _, name := range []string{"label-key", "stable-value", "canary-value", "tag-name", "agent-selector"} {
				shared = append(shared, "--"+name+"="+mustArg(t, args, name))
			}
			if !slices.Contains(args, "--blue-green") {
				t.Errorf("settings.blueGreen is set, but the args %q have no --blue-green", args)
			}
			shared = append(shared, "--blue-green")
			if rules, err := harness.ServeRules(shared...); err != nil {
				t.Errorf("serve refuses the rendered settings: %v", err)
			} else if !rules.Rollout.BlueGreen {
				t.Errorf("--blue-green not carried into the Rollout rule")
			}
			// The agent selector, rendered twice from one value, selects the same pods.
			want, err := labels.Parse(mustArg(t, args, "agent-selector"))
			if err != nil {
				t.Fatal(err)
			}
			ap := webhookNamed(t, mwc, "agent-pods.canary-tagger.io")
			got, err := metav1.LabelSelectorAsSelector(ap.ObjectSelector)
			if err != nil || ap.ObjectSelector == nil {
				t.Fatalf("objectSelector %v: %v", ap.ObjectSelector, err)
			}
			if got.String() != want.String() || want.String() != "agent.datadoghq.com/component,app=datadog,tier notin (dev,test)" {
				t.Errorf("objectSelector %q, --agent-selector %q; want both agent.datadoghq.com/component,app=datadog,tier notin (dev,test)", got, want)
			}

			// Namespaces: the release namespace is excluded from both
			// webhooks; one called canary-tagger is not special here.
			ro := webhookNamed(t, mwc, "rollouts.canary-tagger.io")
			cases := map[string]struct {
				labels             map[string]string
				clusterWide, optIn bool
			}{
				ns:                {map[string]string{"canary-tagger.io/inject": "enabled"}, false, true},
				"canary-tagger":   {nil, true, false},
				"team-a":          {nil, true, false},
				"team-b":          {map[string]string{"canary-tagger.io/inject": "enabled"}, true, true},
				"team-c":          {map[string]string{"canary-tagger.io/inject": "disabled"}, false, false},
				"kube-system":     {nil, false, false},
				"kube-node-lease": {nil, false, false},
			}
			for name, tc := range cases {
				want := tc.clusterWide
				if m.entry.optIn {
					want = tc.optIn
				}
				if name == ns && m.entry.optIn {
					// Opt-in: whoever labels the release namespace enabled asks for it.
					want = true
				}
				if got := selectorMatches(t, ro.NamespaceSelector, nsLabels(name, tc.labels)); got != want {
					t.Errorf("rollout webhook applies to namespace %s %v: %t, want %t", name, tc.labels, got, want)
				}
			}
			if !m.entry.optIn && selectorMatches(t, ro.NamespaceSelector, nsLabels(ns, nil)) {
				t.Errorf("cluster-wide rollout webhook applies to the release namespace %s", ns)
			}
			if selectorMatches(t, ap.NamespaceSelector, nsLabels(ns, nil)) || !selectorMatches(t, ap.NamespaceSelector, nsLabels("canary-tagger", nil)) {
				t.Errorf("agent webhook namespaceSelector %v: want every namespace but %s", ap.NamespaceSelector, ns)
			}

			// The kustomize entry points' checks.
			checkDeployment(t, r, dep, args)
			checkNetworkPolicy(t, r, dep, c, args)
			checkRBAC(t, r, dep)
			if m.entry.selfManaged {
				checkSelfManaged(t, r, dep, mwc, args)
				if got := mustArg(t, args, "cluster-domain"); got != "cluster.local" {
					t.Errorf("--cluster-domain=%s", got)
				}
			} else {
				checkCertManager(t, r, dep, mwc, args)
			}
		})
	}
}

// TestChartAgentComponents: by default the agent selector is the Datadog
// components' label, In the listed components; a selector given instead
// replaces it. Either way the flag and the objectSelector are the same.
func TestChartAgentComponents(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings map[string]any
		want     string
	}{
		// The chart's default is serve's.
		{"default", nil, mustParseSelector(t, config.DefaultAgentSelector)},
		{"node agents only", map[string]any{"agentComponents": []any{"agent"}}, "agent.datadoghq.com/component in (agent)"},
		{"selector instead", map[string]any{"agentSelector": map[string]any{"matchLabels": map[string]any{"app": "datadog"}}}, "app=datadog"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var vals map[string]any
			if tc.settings != nil {
				vals = map[string]any{"settings": tc.settings}
			}
			r := renderChart(t, "canary-tagger", "platform", chartModes()[0], vals)
			flagSel, err := labels.Parse(mustArg(t, effectiveArgs(t, only[appsv1.Deployment](t, r, "Deployment")), "agent-selector"))
			if err != nil {
				t.Fatal(err)
			}
			ap := webhookNamed(t, only[admissionv1.MutatingWebhookConfiguration](t, r, "MutatingWebhookConfiguration"), "agent-pods.canary-tagger.io")
			objSel, err := metav1.LabelSelectorAsSelector(ap.ObjectSelector)
			if err != nil {
				t.Fatal(err)
			}
			if flagSel.String() != tc.want || objSel.String() != tc.want {
				t.Errorf("--agent-selector %q, objectSelector %q; want both %q", flagSel, objSel, tc.want)
			}
		})
	}
}

func mustParseSelector(t *testing.T, s string) string {
	t.Helper()
	sel, err := labels.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return sel.String()
}

// checkReleaseNamespace: every namespaced object is in ns, and every
// namespace the objects refer to — any "namespace" field, cert-manager's
// inject-ca-from, the certificate's DNS names, --service-namespace — is ns.
func checkReleaseNamespace(t *testing.T, r rendered, ns string) {
	t.Helper()
	clusterScoped := map[string]bool{"Namespace": true, "ClusterRole": true, "ClusterRoleBinding": true, "MutatingWebhookConfiguration": true,
		"MutatingAdmissionPolicy": true, "MutatingAdmissionPolicyBinding": true, "ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true}
	for _, d := range r.docs {
		if clusterScoped[d.Kind] != (d.Namespace == "") {
			t.Errorf("%s %s has namespace %q", d.Kind, d.Name, d.Namespace)
		}
		if d.Namespace != "" && d.Namespace != ns {
			t.Errorf("%s %s is in namespace %s, not the release namespace %s", d.Kind, d.Name, d.Namespace, ns)
		}
		var obj any
		if err := yaml.Unmarshal(d.Raw, &obj); err != nil {
			t.Fatal(err)
		}
		walkNamespaceFields(obj, func(path, v string) {
			if v != ns {
				t.Errorf("%s %s: %s = %q, not the release namespace %s", d.Kind, d.Name, path, v, ns)
			}
		})
		if m := hardCodedNamespace.Find(d.Raw); m != nil {
			t.Errorf("%s %s names the namespace canary-tagger: %q", d.Kind, d.Name, m)
		}
	}
	mwc := only[admissionv1.MutatingWebhookConfiguration](t, r, "MutatingWebhookConfiguration")
	if from, ok := mwc.Annotations[injectCAFrom]; ok && !strings.HasPrefix(from, ns+"/") {
		t.Errorf("%s=%s is not in the release namespace", injectCAFrom, from)
	}
	for _, d := range r.ofKind("Certificate") {
		c := decodeStrict[cmv1.Certificate](t, d)
		for _, dns := range c.Spec.DNSNames {
			if parts := strings.Split(dns, "."); len(parts) > 1 && parts[1] != ns {
				t.Errorf("Certificate %s dnsName %s is not in the release namespace", c.Name, dns)
			}
		}
	}
	if v, ok := argValue(effectiveArgs(t, only[appsv1.Deployment](t, r, "Deployment")), "service-namespace"); ok && v != ns {
		t.Errorf("--service-namespace=%s", v)
	}
}

// hardCodedNamespace finds the namespace canary-tagger in a DNS name, an
// inject-ca-from annotation or a flag.
var hardCodedNamespace = regexp.MustCompile(`\.canary-tagger\.svc|inject-ca-from: *"?canary-tagger/|-namespace=canary-tagger\b`)

// walkNamespaceFields calls found for every string under a "namespace" key.
func walkNamespaceFields(v any, found func(path, value string)) {
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				if s, ok := c.(string); ok && k == "namespace" {
					found(path+"."+k, s)
				}
				walk(path+"."+k, c)
			}
		case []any:
			for i, c := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), c)
			}
		}
	}
	walk("", v)
}

// TestChartOptions: replicas, resources, the PodDisruptionBudget, the
// NetworkPolicy and the ServiceMonitor follow their values.
func TestChartOptions(t *testing.T) {
	m := chartModes()[0]
	r := renderChart(t, "canary-tagger", "platform", m, map[string]any{
		"replicas":            3,
		"resources":           map[string]any{"requests": map[string]any{"cpu": "100m", "memory": "96Mi"}, "limits": map[string]any{"memory": "256Mi"}},
		"podDisruptionBudget": map[string]any{"enabled": true, "minAvailable": 2},
		"serviceMonitor":      map[string]any{"enabled": true, "interval": "15s", "labels": map[string]any{"release": "prometheus"}},
	})
	dep := only[appsv1.Deployment](t, r, "Deployment")
	c := container(t, dep)
	if *dep.Spec.Replicas != 3 || c.Resources.Requests.Cpu().String() != "100m" || c.Resources.Limits.Memory().String() != "256Mi" {
		t.Errorf("replicas %d, resources %v", *dep.Spec.Replicas, c.Resources)
	}
	if pdb := only[policyPDB](t, r, "PodDisruptionBudget"); pdb.Spec.MinAvailable.IntValue() != 2 {
		t.Errorf("PodDisruptionBudget minAvailable %v", pdb.Spec.MinAvailable)
	}

	// The ServiceMonitor scrapes the metrics Service's port, in the release namespace.
	sms := r.ofKind("ServiceMonitor")
	if len(sms) != 1 || sms[0].APIVersion != "monitoring.coreos.com/v1" || sms[0].Namespace != "platform" {
		t.Fatalf("ServiceMonitors: %+v", sms)
	}
	var sm struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        metav1.ObjectMeta `json:"metadata"`
		Spec            struct {
			NamespaceSelector struct {
				MatchNames []string `json:"matchNames"`
			} `json:"namespaceSelector"`
			Selector  metav1.LabelSelector `json:"selector"`
			Endpoints []struct {
				Port, Path, Scheme, Interval string
			} `json:"endpoints"`
		} `json:"spec"`
	}
	if err := yaml.UnmarshalStrict(sms[0].Raw, &sm, yaml.DisallowUnknownFields); err != nil {
		t.Fatalf("ServiceMonitor: %v", err)
	}
	if sm.Metadata.Labels["release"] != "prometheus" || !slices.Equal(sm.Spec.NamespaceSelector.MatchNames, []string{"platform"}) {
		t.Errorf("ServiceMonitor labels %v, namespaces %v", sm.Metadata.Labels, sm.Spec.NamespaceSelector.MatchNames)
	}
	var selected []string
	for _, d := range r.ofKind("Service") {
		svc := decodeStrict[corev1.Service](t, d)
		if selectorMatches(t, &sm.Spec.Selector, svc.Labels) {
			selected = append(selected, svc.Name)
			if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Interval != "15s" || sm.Spec.Endpoints[0].Path != "/metrics" ||
				len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != sm.Spec.Endpoints[0].Port ||
				fmt.Sprint(containerPort(t, c, svc.Spec.Ports[0].TargetPort.String())) != strings.TrimPrefix(mustArg(t, effectiveArgs(t, dep), "metrics-bind-address"), ":") {
				t.Errorf("ServiceMonitor endpoints %+v do not scrape Service %s's metrics port %+v", sm.Spec.Endpoints, svc.Name, svc.Spec.Ports)
			}
		}
	}
	if !slices.Equal(selected, []string{"canary-tagger-metrics"}) {
		t.Errorf("ServiceMonitor selects Services %v, want canary-tagger-metrics", selected)
	}

	// Off: no PodDisruptionBudget, NetworkPolicy or ServiceMonitor (the default).
	r = renderChart(t, "canary-tagger", "platform", m, map[string]any{
		"podDisruptionBudget": map[string]any{"enabled": false}, "networkPolicy": map[string]any{"enabled": false},
	})
	for _, kind := range []string{"PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor"} {
		if n := len(r.ofKind(kind)); n != 0 {
			t.Errorf("%d %s rendered while disabled", n, kind)
		}
	}
}

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// canaryTaggerBinary builds ./cmd/canary-tagger once per test run.
func canaryTaggerBinary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "canary-tagger-bin-")
		if err != nil {
			binaryErr = err
			return
		}
		binaryPath = filepath.Join(dir, "canary-tagger")
		binaryErr = harness.BuildCanaryTagger(context.Background(), env.Repo, binaryPath)
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

// TestChartInstallsOnAPIServer installs every mode's render into its own
// release namespace with a server-side apply (what `helm install` sends,
// strict field validation, no warning), then runs what the pods would run —
// the real binary with the rendered container args, only ports and the
// certificate directory moved to this machine, as the release's service
// account — behind the installed webhook configuration. The Service becomes
// an ExternalName for localhost (envtest has no pods or endpoints), and the
// TLS the mode provides is checked end to end: self-managed, the server
// bootstraps its Secret and writes the caBundle through the chart's RBAC;
// cert-manager, the test issues the Certificate's Secret and injects its CA
// as cert-manager's CA injector would from the annotation. Then a Rollout is
// injected through the installed webhook in the namespaces the mode covers
// and not elsewhere, and an agent pod is patched.
func TestChartInstallsOnAPIServer(t *testing.T) {
	installCertManagerCRDs(t)
	bin := canaryTaggerBinary(t)
	for _, m := range chartModes() {
		t.Run(m.entry.dir, func(t *testing.T) {
			ctx := t.Context()
			release, ns := "rel-"+m.entry.dir, "chart-"+m.entry.dir
			r := renderChart(t, release, ns, m, nil)
			dep := only[appsv1.Deployment](t, r, "Deployment")
			mwcName := only[admissionv1.MutatingWebhookConfiguration](t, r, "MutatingWebhookConfiguration").Name

			// helm install --create-namespace, then the objects.
			if err := env.CreateNamespace(ctx, ns, nil); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				env.Kubectl.RunStdin(context.Background(), strings.NewReader(r.yaml), "delete", "--ignore-not-found", "--wait=false", "-f", "-")
			})
			res := env.Kubectl.RunStdin(ctx, strings.NewReader(r.yaml), "apply", "--server-side", "--field-manager=helm", "--validate=strict", "-f", "-")
			if !res.OK() {
				t.Fatalf("the render does not apply:\n%s", res)
			}
			if strings.Contains(res.Stderr, "Warning") {
				t.Errorf("the apiserver warns:\n%s", res.Stderr)
			}
			if got := strings.Count(res.Stdout, "serverside-applied"); got != len(r.docs) {
				t.Errorf("%d objects applied, %d rendered:\n%s", got, len(r.docs), res.Stdout)
			}

			// The Service as an ExternalName for localhost; the installed
			// configuration calls it on this machine's port.
			ports, err := harness.FreePorts(3)
			if err != nil {
				t.Fatal(err)
			}
			svcName, svcNS := webhookService(t, only[admissionv1.MutatingWebhookConfiguration](t, r, "MutatingWebhookConfiguration"))
			svc := &corev1.Service{}
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: svcNS, Name: svcName}, svc); err != nil {
				t.Fatalf("the webhook Service was not installed: %v", err)
			}
			external := &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: svc.Name, Namespace: svc.Namespace, Labels: svc.Labels},
				Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "localhost", Ports: svc.Spec.Ports},
			}
			if err := env.Client.Delete(ctx, svc); err != nil {
				t.Fatal(err)
			}
			if err := harness.Eventually(ctx, "the ExternalName Service to be created", func(ctx context.Context) (bool, error) {
				err := env.Client.Create(ctx, external.DeepCopy())
				return err == nil, err
			}); err != nil {
				t.Fatal(err)
			}
			mwc := &admissionv1.MutatingWebhookConfiguration{}
			if err := env.Client.Get(ctx, client.ObjectKey{Name: mwcName}, mwc); err != nil {
				t.Fatal(err)
			}
			for i := range mwc.Webhooks {
				mwc.Webhooks[i].ClientConfig.Service.Port = ptrInt32(int32(ports[0]))
			}
			if err := env.Client.Update(ctx, mwc); err != nil {
				t.Fatal(err)
			}

			// What the pod runs, as the release's service account.
			dir := t.TempDir()
			certDir := filepath.Join(dir, "tls")
			args := localArgs(effectiveArgsIn(t, dep, ns), ports, certDir)
			kubeconfig := filepath.Join(dir, "kubeconfig")
			if err := env.WriteServiceAccountKubeconfig(kubeconfig, ns, dep.Spec.Template.Spec.ServiceAccountName); err != nil {
				t.Fatal(err)
			}
			args = append(args, "--host=127.0.0.1", "--kubeconfig="+kubeconfig)
			var caPEM []byte
			if !m.entry.selfManaged {
				caPEM = actAsCertManager(t, ns, mwcName, certDir)
			}
			if args[0] != "serve" {
				t.Fatalf("the container runs %q, want serve", args[0])
			}
			// A Rollout admitted before the server runs (fail-open): the
			// healer the container args start labels it.
			apps, optedIn, optedOut := ns+"-apps", ns+"-enabled", ns+"-disabled"
			inject, injectLabels := optedIn, map[string]string{harness.InjectLabel: harness.InjectEnabled}
			if !m.entry.optIn {
				inject, injectLabels = apps, nil
			}
			if err := env.CreateNamespace(ctx, inject, injectLabels); err != nil {
				t.Fatal(err)
			}
			before := harness.ProbeRollout(inject, "before-serve")
			if err := env.Client.Create(ctx, before); err != nil {
				t.Fatal(err)
			}
			if v, _, _ := unstructured.NestedMap(before.Object, "spec", "strategy", "canary", "stableMetadata"); v != nil {
				t.Fatalf("a Rollout was labelled before the server ran")
			}
			proc, err := harness.StartServeProcess(bin, args, "127.0.0.1:"+strconv.Itoa(ports[2]), filepath.Join(dir, "log"), "KUBECONFIG="+kubeconfig)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := proc.Stop(); err != nil {
					t.Error(err)
				}
				if t.Failed() {
					b, _ := os.ReadFile(proc.LogPath)
					t.Logf("canary-tagger log:\n%s", tailLines(string(b), 40))
				}
			})
			if err := proc.WaitReady(ctx, 90*time.Second); err != nil {
				t.Fatalf("never ready: %v", err)
			}

			// The caBundle of both webhooks is the CA the serving certificate chains to.
			if m.entry.selfManaged {
				sec := &corev1.Secret{}
				if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: mustArg(t, args, "tls-secret")}, sec); err != nil {
					t.Fatalf("self-managed TLS made no Secret in the release namespace: %v", err)
				}
				caPEM = sec.Data[certs.CAFile]
			}
			if err := harness.Eventually(ctx, "every caBundle to be the CA", func(ctx context.Context) (bool, error) {
				if err := env.Client.Get(ctx, client.ObjectKey{Name: mwcName}, mwc); err != nil {
					return false, err
				}
				for _, w := range mwc.Webhooks {
					if !bytes.Equal(w.ClientConfig.CABundle, caPEM) {
						return false, fmt.Errorf("webhook %s caBundle is not the CA (%d bytes)", w.Name, len(w.ClientConfig.CABundle))
					}
				}
				return len(caPEM) > 0, nil
			}); err != nil {
				t.Fatal(err)
			}

			// Rollouts are injected through the installed webhook where the mode says.
			for name, lbls := range map[string]map[string]string{
				apps: nil, optedIn: {harness.InjectLabel: harness.InjectEnabled}, optedOut: {harness.InjectLabel: harness.InjectDisabled},
			} {
				if err := env.CreateNamespace(ctx, name, lbls); err != nil {
					t.Fatal(err)
				}
			}
			want := map[string]bool{apps: !m.entry.optIn, optedIn: true, optedOut: false, ns: false}
			if err := webhooktest.Poll(ctx, "Rollouts in "+inject+" to be injected", 60*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
				if err := proc.Exited(); err != nil {
					return false, webhooktest.StopPolling(err)
				}
				ok, err := env.ProbeInjects(ctx, inject)
				if err == nil && !ok {
					err = fmt.Errorf("a Rollout in %s is not injected", inject)
				}
				return ok, err
			}); err != nil {
				t.Fatal(err)
			}
			for name, w := range want {
				if got, err := env.ProbeInjects(ctx, name); err != nil || got != w {
					t.Errorf("a Rollout in namespace %s: injected %t (%v), want %t", name, got, err, w)
				}
			}
			// The Rollout admitted before the server ran is healed.
			if err := harness.Eventually(ctx, "the healer's effect", func(ctx context.Context) (bool, error) {
				r, err := env.GetRollout(ctx, inject, "before-serve")
				if err != nil {
					return false, err
				}
				v, _, _ := unstructured.NestedString(r.Object, "spec", "strategy", "canary", "stableMetadata", "labels", config.DefaultLabelKey)
				return v == config.DefaultStableValue, fmt.Errorf("%s/before-serve not healed", inject)
			}); err != nil {
				t.Error(err)
			}
			// The agent-pod webhook patches a Datadog Agent pod.
			pod := agentPod(apps)
			if err := env.Client.Create(ctx, pod, client.DryRunAll); err != nil {
				t.Fatal(err)
			}
			if pod.Annotations[agentpod.StatusAnnotation] == "" {
				t.Errorf("an agent pod came back without %s: the agent webhook was not called", agentpod.StatusAnnotation)
			}
			if err := env.Client.Delete(context.Background(), mwc); err != nil && !apierrors.IsNotFound(err) {
				t.Error(err)
			}
		})
	}
}

func ptrInt32(v int32) *int32 { return &v }

// effectiveArgsIn is effectiveArgs with $(POD_NAMESPACE) the namespace the
// pod would run in (the render leaves it to the apiserver's defaulting).
func effectiveArgsIn(t *testing.T, dep *appsv1.Deployment, ns string) []string {
	t.Helper()
	d := dep.DeepCopy()
	d.Namespace = ns
	return effectiveArgs(t, d)
}

// localArgs moves the rendered container args' ports and certificate
// directory to this machine: webhook, metrics and health on ports[0..2].
func localArgs(args []string, ports []int, certDir string) []string {
	var out []string
	for _, a := range args {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		switch name {
		case "port":
			a = "--port=" + strconv.Itoa(ports[0])
		case "metrics-bind-address":
			a = "--metrics-bind-address=127.0.0.1:" + strconv.Itoa(ports[1])
		case "health-probe-bind-address":
			a = "--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(ports[2])
		case "cert-dir":
			a = "--cert-dir=" + certDir
		}
		out = append(out, a)
	}
	return out
}

// actAsCertManager does cert-manager's part for the installed configuration:
// it follows cert-manager.io/inject-ca-from to the serving Certificate as
// stored, issues a certificate for its dnsNames into the Certificate's
// Secret (and into certDir, as the kubelet mounts it), and writes the CA
// into every webhook's caBundle, as the CA injector does. It returns the CA.
func actAsCertManager(t *testing.T, ns, mwcName, certDir string) []byte {
	t.Helper()
	ctx := t.Context()
	mwc := &admissionv1.MutatingWebhookConfiguration{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: mwcName}, mwc); err != nil {
		t.Fatal(err)
	}
	certNS, certName, ok := strings.Cut(mwc.Annotations[injectCAFrom], "/")
	if !ok || certNS != ns {
		t.Fatalf("%s=%q does not name a Certificate in the release namespace %s", injectCAFrom, mwc.Annotations[injectCAFrom], ns)
	}
	res := env.Kubectl.Run(ctx, "get", "certificates.cert-manager.io", "-n", certNS, certName, "-o", "yaml")
	if !res.OK() {
		t.Fatalf("the Certificate %s/%s named by %s is not installed: %s", certNS, certName, injectCAFrom, res)
	}
	var cert cmv1.Certificate
	if err := yaml.Unmarshal([]byte(res.Stdout), &cert); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		t.Fatal(err)
	}
	caPEM, err := certs.WriteSelfSigned(certDir, cert.Spec.DNSNames, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: cert.Spec.SecretName, Namespace: certNS},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{},
	}
	for _, f := range []string{certs.CertFile, certs.KeyFile, certs.CAFile} {
		b, err := os.ReadFile(filepath.Join(certDir, f))
		if err != nil {
			t.Fatal(err)
		}
		sec.Data[f] = b
	}
	if err := env.Client.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	for i := range mwc.Webhooks {
		mwc.Webhooks[i].ClientConfig.CABundle = caPEM
	}
	if err := env.Client.Update(ctx, mwc, client.FieldOwner("cainjector")); err != nil {
		t.Fatal(err)
	}
	return caPEM
}
