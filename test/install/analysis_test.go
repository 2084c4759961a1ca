package install

import (
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// TestAnalysisTemplatesApply renders manifests/analysis with the kubectl we
// build and applies it server-side, with strict field validation, to the
// apiserver that holds the real Argo Rollouts CRDs: both
// ClusterAnalysisTemplates are schema-valid, and what is stored still says
// what the templates rely on (a field the CRD did not know would be refused
// or pruned).
func TestAnalysisTemplatesApply(t *testing.T) {
	r := render(t, "analysis")
	var names []string
	for _, d := range r.docs {
		if d.APIVersion != "argoproj.io/v1alpha1" || d.Kind != "ClusterAnalysisTemplate" {
			t.Errorf("manifests/analysis renders %s %s %s: only ClusterAnalysisTemplates belong there", d.APIVersion, d.Kind, d.Name)
		}
		names = append(names, d.Name)
	}
	if strings.Join(names, ",") != "canary-tagger-error-ratio,canary-tagger-latency" {
		t.Fatalf("rendered %v, want canary-tagger-error-ratio and canary-tagger-latency", names)
	}

	dir := filepath.Join(env.Repo, "manifests", "analysis")
	res := env.Kubectl.Run(t.Context(), "apply", "--server-side", "--field-manager=canary-tagger-test", "--validate=strict", "-k", dir)
	if !res.OK() {
		t.Fatalf("the templates do not apply:\n%s", res)
	}
	if strings.Contains(res.Stderr, "Warning") {
		t.Errorf("the apiserver warns:\n%s", res.Stderr)
	}
	t.Cleanup(func() { env.Kubectl.Run(t.Context(), "delete", "-k", dir, "--ignore-not-found") })

	for _, d := range r.docs {
		res := env.Kubectl.Run(t.Context(), "get", "clusteranalysistemplate", d.Name, "-o", "yaml")
		if !res.OK() {
			t.Fatalf("reading %s back: %s", d.Name, res)
		}
		stored := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(res.Stdout), &stored.Object); err != nil {
			t.Fatal(err)
		}
		metrics, _, _ := unstructured.NestedSlice(stored.Object, "spec", "metrics")
		if len(metrics) != 1 {
			t.Fatalf("%s: %d metrics stored, want 1", d.Name, len(metrics))
		}
		m := metrics[0].(map[string]any)
		str := func(path ...string) string {
			v, _, _ := unstructured.NestedFieldNoCopy(m, path...)
			if v == nil {
				return ""
			}
			if s, ok := v.(string); ok {
				return s
			}
			b, _ := yaml.Marshal(v)
			return strings.TrimSpace(string(b))
		}
		want := map[string]string{
			"provider.datadog.apiVersion": "v2",
			"consecutiveErrorLimit":       "1",
			"failureLimit":                "0",
			"inconclusiveLimit":           "0",
			"count":                       "{{args.count}}",
			"interval":                    "{{args.interval}}",
			"provider.datadog.interval":   "{{args.window}}",
		}
		switch d.Name {
		case "canary-tagger-error-ratio":
			want["provider.datadog.aggregator"] = "sum"
		case "canary-tagger-latency":
			want["provider.datadog.aggregator"] = "percentile"
		}
		for path, v := range want {
			if got := str(strings.Split(path, ".")...); got != v {
				t.Errorf("%s: stored %s = %q, want %q", d.Name, path, got, v)
			}
		}
		for _, cond := range []string{"successCondition", "failureCondition"} {
			// isNil makes no data Inconclusive; default() lets the condition
			// compile at all when the result is nil (Argo type-checks it
			// with the nil result: a bare `result <= x` is an Error).
			if c := str(cond); !strings.Contains(c, "!isNil(result) && default(result, 0) ") {
				t.Errorf("%s: %s %q does not handle a nil result", d.Name, cond, c)
			}
		}
		queries, _, _ := unstructured.NestedStringMap(m, "provider", "datadog", "queries")
		formula := str("provider", "datadog", "formula")
		if len(queries) < 2 || formula == "" {
			t.Fatalf("%s: queries %v formula %q", d.Name, queries, formula)
		}
		roles := map[string]int{}
		for name, q := range queries {
			if !strings.Contains(formula, name) {
				t.Errorf("%s: query %s is not in the formula", d.Name, name)
			}
			if strings.Contains(q, "trace.") {
				t.Errorf("%s: query %s uses a trace.* metric, which never carries pod labels", d.Name, name)
			}
			// No Datadog template variables: {{…}} is Argo's, and only args.
			for _, ref := range strings.Split(q, "{{")[1:] {
				if !strings.HasPrefix(ref, "args.") {
					t.Errorf("%s: query %s has {{%s, which Argo would take for an argument", d.Name, name, ref)
				}
			}
			switch {
			case strings.Contains(q, "{{args.tag-name}}:{{args.canary-value}}"):
				roles["canary"]++
			case strings.Contains(q, "{{args.tag-name}}:{{args.stable-value}}"):
				roles["stable"]++
			default:
				t.Errorf("%s: query %s is not filtered by the role tag: %s", d.Name, name, q)
			}
			if strings.Contains(q, " by ") {
				t.Errorf("%s: query %s groups: only the first group would be read", d.Name, name)
			}
		}
		if roles["canary"] == 0 || roles["canary"] != roles["stable"] {
			t.Errorf("%s: %d canary and %d stable queries", d.Name, roles["canary"], roles["stable"])
		}
	}
}
