package offline

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	syaml "sigs.k8s.io/yaml"

	"github.com/canary-tagger/canary-tagger/webhook/config"
)

// items of the ResourceLists below: a Rollout with canary steps (and the
// annotations kpt sets), an agent DaemonSet, a Rollout whose workloadRef
// template holds the label key (a conflict), a ConfigMap.
const krmItems = `items:
- apiVersion: argoproj.io/v1alpha1
  kind: Rollout
  metadata:
    name: web
    namespace: shop
    annotations:
      internal.config.kubernetes.io/path: apps/web.yaml
      internal.config.kubernetes.io/index: '1'
  spec:
    # twenty, then a pause
    strategy:
      canary:
        steps:
        - setWeight: 20
        - pause: {}
- apiVersion: apps/v1
  kind: DaemonSet
  metadata:
    name: datadog
    annotations:
      config.kubernetes.io/path: datadog.yaml
  spec:
    template:
      metadata:
        labels:
          agent.datadoghq.com/component: agent
      spec:
        containers:
        - name: agent
          image: agent:7
- apiVersion: argoproj.io/v1alpha1
  kind: Rollout
  metadata:
    name: ref
  spec:
    workloadRef: {apiVersion: apps/v1, kind: Deployment, name: base}
    strategy: {canary: {steps: [{pause: {}}]}}
- apiVersion: apps/v1
  kind: Deployment
  metadata:
    name: base
  spec:
    template:
      metadata:
        labels: {role: web}
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: plain
`

const krmHead = "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\n"

func functionConfig(data string) string {
	return "functionConfig:\n  apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: canary-tagger\n" + data
}

// listOf decodes a ResourceList (or List) into its items and results.
func listOf(t *testing.T, text string) (items []any, results []map[string]any) {
	t.Helper()
	var rl struct {
		Items   []any            `json:"items"`
		Results []map[string]any `json:"results"`
	}
	if err := syaml.Unmarshal([]byte(text), &rl); err != nil {
		t.Fatalf("output does not decode: %v\n%s", err, text)
	}
	return rl.Items, rl.Results
}

// asList is the items as a v1 List, mutate's stream input.
func asList(items string) string { return "apiVersion: v1\nkind: List\n" + items }

// TestFunctionMutatesItems: a ResourceList on stdin gets its items mutated
// exactly as the same objects in a List (the stream path), and results
// that say what the report says, with each item's identity and file.
func TestFunctionMutatesItems(t *testing.T) {
	in := krmHead + krmItems
	code, out, stderr := runCommand(t, Command{}, in)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.HasPrefix(out, krmHead+"items:\n") || !strings.Contains(out, "    # twenty, then a pause\n") {
		t.Errorf("not the ResourceList it came as, with its comments:\n%s", out)
	}
	items, results := listOf(t, out)
	code, listOut, listStderr := runCommand(t, Command{}, asList(krmItems))
	if code != 0 {
		t.Fatalf("as a List: exit %d: %s", code, listStderr)
	}
	wantItems, _ := listOf(t, listOut)
	if !reflect.DeepEqual(items, wantItems) {
		t.Errorf("items differ from mutate's on the same List:\n%s\nwant:\n%s", out, listOut)
	}
	if strings.Contains(out, "DD_KUBERNETES_POD_LABELS_AS_TAGS") == false || !strings.Contains(out, "role: canary") {
		t.Errorf("items not mutated:\n%s", out)
	}

	want := []map[string]any{{
		"message": "injected stableMetadata.labels.role=stable, canaryMetadata.labels.role=canary", "severity": "info",
		"resourceRef": map[string]any{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "web", "namespace": "shop"},
		"file":        map[string]any{"path": "apps/web.yaml", "index": float64(1)},
	}, {
		"message": "injected (agent: injected)", "severity": "info",
		"resourceRef": map[string]any{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "datadog"},
		"file":        map[string]any{"path": "datadog.yaml", "index": float64(0)},
	}, {
		"severity":    "warning",
		"resourceRef": map[string]any{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "ref"},
	}, {
		"severity":    "warning",
		"resourceRef": map[string]any{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "ref"},
	}}
	if len(results) != len(want) {
		t.Fatalf("%d results, want %d:\n%s", len(results), len(want), out)
	}
	// The results are the report's lines, in order: same text, same objects.
	notes := strings.Split(strings.TrimSpace(stderr), "\n")
	if len(notes) != len(results) {
		t.Fatalf("%d report lines, %d results:\n%s", len(notes), len(results), stderr)
	}
	for i, r := range results {
		if _, hasMessage := want[i]["message"]; !hasMessage {
			want[i]["message"] = r["message"]
		}
		if !reflect.DeepEqual(r, want[i]) {
			t.Errorf("result %d:\n%v\nwant\n%v", i, r, want[i])
		}
		msg, _ := r["message"].(string)
		if msg == "" || !strings.HasSuffix(notes[i], msg) {
			t.Errorf("result %d says %q, the report %q", i, msg, notes[i])
		}
	}
	if !strings.HasPrefix(results[2]["message"].(string), "conflict: ") {
		t.Errorf("the workloadRef conflict is not result 2: %v", results[2])
	}

	// Idempotent: the answer, as a new call, changes no item and says
	// "present" for what is there; the earlier results are kept.
	code, again, stderr := runCommand(t, Command{}, out)
	if code != 0 {
		t.Fatalf("second call: exit %d: %s", code, stderr)
	}
	againItems, againResults := listOf(t, again)
	if !reflect.DeepEqual(againItems, items) || len(againResults) != 2*len(results) || !reflect.DeepEqual(againResults[:len(results)], results) {
		t.Errorf("second call: items changed or earlier results lost:\n%s", again)
	}
	if !strings.Contains(again, "message: present (stableMetadata and canaryMetadata already have the label)") {
		t.Errorf("second call does not say present:\n%s", again)
	}
}

// TestFunctionConfig: the functionConfig ConfigMap's data sets the settings
// over the flags, as the flags would.
func TestFunctionConfig(t *testing.T) {
	data := "  data:\n    labelKey: track\n    stableValue: main\n    tagName: kube_track\n    blueGreen: \"true\"\n    agentSelector: app=datadog\n"
	items := krmItems + `- apiVersion: argoproj.io/v1alpha1
  kind: Rollout
  metadata: {name: bg}
  spec: {strategy: {blueGreen: {activeService: a, previewService: p}}}
- apiVersion: apps/v1
  kind: DaemonSet
  metadata: {name: app-datadog}
  spec: {template: {metadata: {labels: {app: datadog}}, spec: {containers: [{name: agent}]}}}
`
	code, out, stderr := runCommand(t, Command{Settings: withCanary("next")}, krmHead+items+functionConfig(data))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// The same as the flags: --canary-value from the command line, the rest
	// from the data.
	flags := config.Flags{LabelKey: "track", StableValue: "main", CanaryValue: "next", TagName: "kube_track", BlueGreen: true, AgentSelector: "app=datadog"}
	code, listOut, listStderr := runCommand(t, Command{Settings: flags}, asList(items))
	if code != 0 {
		t.Fatalf("as a List with the flags: exit %d: %s", code, listStderr)
	}
	got, _ := listOf(t, out)
	want, _ := listOf(t, listOut)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("items differ from mutate's with the same flags:\n%s\nwant:\n%s", out, listOut)
	}
	for _, s := range []string{"track: main", "track: next", `{"track":"kube_track"}`, "activeMetadata:"} {
		if !strings.Contains(out, s) {
			t.Errorf("the settings did not take effect, no %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "role: canary") || strings.Contains(out, `"role"`) {
		t.Errorf("the default label is still used:\n%s", out)
	}
}

func withCanary(v string) config.Flags {
	f := settings
	f.CanaryValue = v
	return f
}

// TestFunctionConfigInvalid: a bad setting is a result of severity error,
// exit code 1, the items as they came.
func TestFunctionConfigInvalid(t *testing.T) {
	for _, c := range []struct{ name, functionConfig, msg string }{
		{"bad label key", functionConfig("  data:\n    labelKey: not a key\n"), `data.labelKey="not a key": not a valid label key`},
		{"same values", functionConfig("  data:\n    canaryValue: stable\n"), `data.stableValue and data.canaryValue are both "stable"`},
		{"bad selector", functionConfig("  data:\n    agentSelector: 'app in ('\n"), "data.agentSelector"},
		{"bad boolean", functionConfig("  data:\n    blueGreen: maybe\n"), `data.blueGreen="maybe": not true or false`},
		{"unknown key", functionConfig("  data:\n    label-key: role\n"), "data.label-key: not a setting"},
		{"not a string", functionConfig("  data:\n    blueGreen: true\n"), "data.blueGreen is a boolean"},
		{"data not a map", functionConfig("  data: [labelKey]\n"), "data is an array"},
		{"not a ConfigMap", "functionConfig:\n  apiVersion: example.com/v1\n  kind: Settings\n  metadata: {name: s}\n", `functionConfig is a "Settings"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := krmHead + krmItems + c.functionConfig
			code, out, stderr := runCommand(t, Command{}, in)
			if code != 1 || !strings.Contains(stderr, c.msg) {
				t.Errorf("exit %d, stderr %q; want 1 and a message containing %q", code, stderr, c.msg)
			}
			items, results := listOf(t, out)
			inItems, _ := listOf(t, in)
			if !reflect.DeepEqual(items, inItems) {
				t.Errorf("items changed:\n%s", out)
			}
			if len(results) != 1 || results[0]["severity"] != "error" || !strings.Contains(results[0]["message"].(string), c.msg) {
				t.Fatalf("results %v; want one error saying %q", results, c.msg)
			}
			if ref, _ := results[0]["resourceRef"].(map[string]any); ref["kind"] == nil || ref["name"] == nil {
				t.Errorf("the error does not name the functionConfig: %v", results[0])
			}
		})
	}
}

// TestFunctionAnswers: what is not a KRM call, or has nothing to say, is
// answered as before.
func TestFunctionAnswers(t *testing.T) {
	nothing := krmHead + "items:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: plain\n" + functionConfig("  data: {labelKey: track}\n")
	if code, out, stderr := runCommand(t, Command{}, nothing); code != 0 || out != nothing || stderr != "" {
		t.Errorf("nothing to do: exit %d, stderr %q, output changed:\n%s", code, stderr, out)
	}
	// v1beta1, the specification's earlier version.
	beta := strings.Replace(krmHead, "/v1\n", "/v1beta1\n", 1) + krmItems
	if code, out, _ := runCommand(t, Command{}, beta); code != 0 || !strings.Contains(out, "results:\n") {
		t.Errorf("v1beta1: exit %d, no results:\n%s", code, out)
	}
	// JSON in, JSON out.
	var rl map[string]any
	if err := syaml.Unmarshal([]byte(krmHead+krmItems), &rl); err != nil {
		t.Fatal(err)
	}
	j, _ := json.Marshal(rl)
	code, out, _ := runCommand(t, Command{}, string(j))
	var answer map[string]any
	if err := json.Unmarshal([]byte(out), &answer); code != 0 || err != nil || answer["results"] == nil {
		t.Errorf("JSON: exit %d, %v, answer:\n%s", code, err, out)
	}
	// Results that are not a list are left as they are.
	odd := krmHead + krmItems + "results: {name: earlier}\n"
	code, out, stderr := runCommand(t, Command{}, odd)
	if _, results := listOfRaw(t, out); code != 0 || !strings.Contains(out, "results: {name: earlier}") || results != nil || !strings.Contains(stderr, "results are left as they are") {
		t.Errorf("odd results: exit %d, stderr %q, output:\n%s", code, stderr, out)
	}
	if !strings.Contains(out, "role: canary") {
		t.Errorf("odd results: items not mutated:\n%s", out)
	}
	// With --check, or from a file, or among other documents, a
	// ResourceList is a List as before: no results.
	if code, out, _ := runCommand(t, Command{Check: true}, krmHead+krmItems); code != 1 || out != "" {
		t.Errorf("--check: exit %d, stdout %q", code, out)
	}
	if code, out, _ := runCommand(t, Command{}, krmHead+krmItems+"---\nkind: ConfigMap\n"); code != 0 || strings.Contains(out, "results:") || !strings.Contains(out, "role: canary") {
		t.Errorf("among other documents: exit %d:\n%s", code, out)
	}
}

// listOfRaw is listOf for an answer whose results may be anything.
func listOfRaw(t *testing.T, text string) ([]any, []any) {
	t.Helper()
	var rl map[string]any
	if err := syaml.Unmarshal([]byte(text), &rl); err != nil {
		t.Fatal(err)
	}
	items, _ := rl["items"].([]any)
	results, _ := rl["results"].([]any)
	return items, results
}
