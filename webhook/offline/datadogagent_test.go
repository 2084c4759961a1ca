package offline

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const ddaHead = `# The Datadog Operator's Agent
apiVersion: datadoghq.com/v2alpha1
kind: DatadogAgent
metadata:
  name: datadog # the one DatadogAgent
  namespace: datadog
spec:
`

// TestDatadogAgent: the mapping is merged into spec.global.podLabelsAsTags
// (created where absent) with the document's comments and layout; a
// DatadogAgent that would lose a mapping is written back byte for byte
// and the report says why.
func TestDatadogAgent(t *testing.T) {
	cases := []struct{ name, in, want, note string }{{
		name: "merged into podLabelsAsTags, comments kept",
		in:   ddaHead + "  global:\n    site: datadoghq.eu # EU\n    podLabelsAsTags:\n      # the app's name\n      app: kube_app\n  features:\n    apm: {enabled: true}\n",
		want: ddaHead + "  global:\n    site: datadoghq.eu # EU\n    podLabelsAsTags:\n      # the app's name\n      app: kube_app\n      role: kube_role\n  features:\n    apm: {enabled: true}\n",
		note: "in.yaml:1 DatadogAgent/datadog: injected spec.global.podLabelsAsTags.role=kube_role",
	}, {
		name: "podLabelsAsTags created",
		in:   ddaHead + "  global:\n    site: datadoghq.com # US1\n",
		want: ddaHead + "  global:\n    site: datadoghq.com # US1\n    podLabelsAsTags:\n      role: kube_role\n",
		note: "in.yaml:1 DatadogAgent/datadog: injected spec.global.podLabelsAsTags.role=kube_role",
	}, {
		name: "flow style",
		in:   ddaHead + "  global: {podLabelsAsTags: {app: kube_app}}\n",
		want: ddaHead + "  global: {podLabelsAsTags: {app: kube_app, role: kube_role}}\n",
		note: "injected spec.global.podLabelsAsTags.role=kube_role",
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, out, notes := run(t, inYAML(c.in))
			assertWritten(t, res, out, c.want, 1)
			assertNotes(t, notes, c.note)
			assertIdempotent(t, out)
		})
	}

	unchanged := []struct{ name, in, note string }{{
		name: "role already mapped",
		in:   ddaHead + "  global:\n    podLabelsAsTags:\n      role: team_role # ours\n",
		note: "in.yaml:1 DatadogAgent/datadog: present (spec.global.podLabelsAsTags already maps the label to team_role)",
	}, {
		name: "custom datadog.yaml, no podLabelsAsTags",
		in:   ddaHead + "  override:\n    nodeAgent:\n      customConfigurations:\n        datadog.yaml:\n          configData: |\n            kubernetes_pod_labels_as_tags:\n              app: kube_app\n",
		note: `in.yaml:1 DatadogAgent/datadog: skipped: a custom Datadog config maps pod labels and the DD_KUBERNETES_POD_LABELS_AS_TAGS the Operator sets for spec.global.podLabelsAsTags would replace them: spec.override.nodeAgent.customConfigurations[datadog.yaml] maps {"app":"kube_app"}`,
	}, {
		name: "override env",
		in:   ddaHead + "  override:\n    nodeAgent:\n      env:\n      - name: DD_KUBERNETES_POD_LABELS_AS_TAGS\n        value: '{\"team\":\"team\"}'\n",
		note: "in.yaml:1 DatadogAgent/datadog: skipped: an override sets DD_KUBERNETES_POD_LABELS_AS_TAGS, which wins over spec.global.podLabelsAsTags: the mapping would not reach that component: spec.override.nodeAgent.env[0]",
	}, {
		name: "v1alpha1",
		in:   strings.Replace(ddaHead, "v2alpha1", "v1alpha1", 1) + "  agent: {}\n",
		note: `in.yaml:1 DatadogAgent/datadog: skipped: not a datadoghq.com/v2alpha1 DatadogAgent: apiVersion is "datadoghq.com/v1alpha1"`,
	}, {
		name: "malformed",
		in:   ddaHead + "  global:\n    podLabelsAsTags: [role]\n",
		note: "in.yaml:1 DatadogAgent/datadog: skipped: field of unexpected type: spec.global.podLabelsAsTags is an array",
	}}
	for _, c := range unchanged {
		t.Run(c.name, func(t *testing.T) {
			res, out, notes := run(t, inYAML(c.in))
			assertWritten(t, res, out, c.in, 0)
			assertNotes(t, notes, c.note)
		})
	}

	t.Run("another group is not ours", func(t *testing.T) {
		in := strings.Replace(ddaHead, "datadoghq.com/v2alpha1", "example.com/v1", 1) + "  global: {}\n"
		res, out, notes := run(t, inYAML(in))
		assertWritten(t, res, out, in, 0)
		assertNotes(t, notes)
	})
}

// TestDatadogAgentOperatorInputs: the DatadogAgents of the Operator
// renders (test/testdata/datadog-operator/inputs) through the command:
// --check names those that would change and exits 1; mutate writes them
// with their comments, and leaves custom-config-without-env.yaml as it is,
// saying why.
func TestDatadogAgentOperatorInputs(t *testing.T) {
	dir := "../../test/testdata/datadog-operator/inputs"
	code, out, stderr := runCommand(t, Command{Files: []string{dir}, Check: true}, "")
	for _, f := range []string{"custom-config-with-env.yaml", "default.yaml", "pod-labels-as-tags.yaml"} {
		if !strings.Contains(stderr, filepath.Join(dir, f)+": 1 of 1 document would change\n") {
			t.Errorf("--check does not list %s:\n%s", f, stderr)
		}
	}
	if code != 1 || out != "" || strings.Contains(stderr, "custom-config-without-env.yaml: 1 of 1") || !strings.HasSuffix(stderr, "canary-tagger mutate --check: 3 of 4 documents would change\n") {
		t.Errorf("--check: exit %d, stdout %q, stderr:\n%s", code, out, stderr)
	}

	without := filepath.Join(dir, "custom-config-without-env.yaml")
	raw, err := os.ReadFile(without)
	if err != nil {
		t.Fatal(err)
	}
	code, out, stderr = runCommand(t, Command{Files: []string{without}}, "")
	if code != 0 || out != string(raw) {
		t.Errorf("exit %d; the document should be written back byte for byte:\n%s", code, out)
	}
	if !strings.Contains(stderr, "DatadogAgent/datadog: skipped: a custom Datadog config maps pod labels") {
		t.Errorf("the report does not say why:\n%s", stderr)
	}

	with := filepath.Join(dir, "custom-config-with-env.yaml")
	raw, err = os.ReadFile(with)
	if err != nil {
		t.Fatal(err)
	}
	code, out, stderr = runCommand(t, Command{Files: []string{with}}, "")
	want := strings.Replace(string(raw), "    podLabelsAsTags:\n      app: kube_app\n", "    podLabelsAsTags:\n      app: kube_app\n      role: kube_role\n", 1)
	if code != 0 || out != want {
		t.Errorf("exit %d, got:\n%s\nwant:\n%s\n%s", code, out, want, stderr)
	}
}

// TestFunctionDatadogAgent: as a KRM function, the DatadogAgent item is
// mutated and the results carry what the report says, the reason of a
// DatadogAgent left alone included.
func TestFunctionDatadogAgent(t *testing.T) {
	items := `items:
- apiVersion: datadoghq.com/v2alpha1
  kind: DatadogAgent
  metadata:
    name: datadog
    namespace: datadog
    annotations:
      internal.config.kubernetes.io/path: datadog/agent.yaml
  spec:
    global:
      # pod labels
      podLabelsAsTags: {app: kube_app}
- apiVersion: datadoghq.com/v2alpha1
  kind: DatadogAgent
  metadata:
    name: custom
  spec:
    override:
      nodeAgent:
        customConfigurations:
          datadog.yaml:
            configMap: {name: my-datadog-yaml}
`
	code, out, stderr := runCommand(t, Command{}, krmHead+items)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "      # pod labels\n      podLabelsAsTags: {app: kube_app, role: kube_role}\n") {
		t.Errorf("item not mutated, or its comment lost:\n%s", out)
	}
	_, results := listOf(t, out)
	want := []map[string]any{{
		"message": "injected spec.global.podLabelsAsTags.role=kube_role", "severity": "info",
		"resourceRef": map[string]any{"apiVersion": "datadoghq.com/v2alpha1", "kind": "DatadogAgent", "name": "datadog", "namespace": "datadog"},
		"file":        map[string]any{"path": "datadog/agent.yaml", "index": float64(0)},
	}, {
		"severity":    "warning",
		"resourceRef": map[string]any{"apiVersion": "datadoghq.com/v2alpha1", "kind": "DatadogAgent", "name": "custom"},
	}}
	if len(results) != len(want) {
		t.Fatalf("%d results, want %d:\n%s", len(results), len(want), out)
	}
	msg, _ := results[1]["message"].(string)
	if !strings.HasPrefix(msg, "skipped: a custom Datadog config maps pod labels") || !strings.Contains(msg, `ConfigMap "my-datadog-yaml"`) {
		t.Errorf("result 1 does not say why: %q", msg)
	}
	want[1]["message"] = msg
	notes := strings.Split(strings.TrimSpace(stderr), "\n")
	for i, r := range results {
		if !reflect.DeepEqual(r, want[i]) {
			t.Errorf("result %d:\n%v\nwant\n%v", i, r, want[i])
		}
		if m, _ := r["message"].(string); i >= len(notes) || !strings.HasSuffix(notes[i], m) {
			t.Errorf("result %d says %q, the report %q", i, m, notes)
		}
	}
}
