package webhook

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.response.json and *.patch.json")

const goldenDir = "testdata/golden"

// helmFixture is a Datadog Helm chart render (test/testdata/datadog-helm).
var helmFixture = filepath.Join("..", "test", "testdata", "datadog-helm", "pod-labels-as-tags.yaml")

// TestGolden posts each testdata/golden/<case>.request.json (plus requests
// built at test time) through the real HTTP handlers and compares the
// AdmissionReview answer with <case>.response.json (patch left out) and the
// decoded JSON Patch with <case>.patch.json. The patch must apply to the
// submitted object, and a second review of the patched object must yield no
// patch (reinvocationPolicy: IfNeeded).
func TestGolden(t *testing.T) {
	mux := webhookMux(t, testOptions(t, fakeAPIServer(t, nil).URL))
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.request.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden requests: %v", err)
	}
	cases := map[string][]byte{"agent-pod-helm-chart": helmChartReview(t)}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cases[strings.TrimSuffix(filepath.Base(f), ".request.json")] = b
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			path := RolloutPath
			if strings.HasPrefix(name, "agent-pod-") {
				path = AgentPodPath
			}
			resp := postReview(t, mux, path, body)
			rawPatch := resp.Patch
			patch := decodePatch(t, rawPatch)
			resp.Patch = nil
			checkGolden(t, name+".response.json", resp)
			checkGolden(t, name+".patch.json", patch)
			if len(patch) == 0 {
				return
			}

			var review admissionv1.AdmissionReview
			if err := json.Unmarshal(body, &review); err != nil {
				t.Fatal(err)
			}
			in := review.Request.Object.Raw
			if path == RolloutPath {
				for _, op := range patch {
					if op["op"] != "add" {
						t.Errorf("Rollout patch has a %v operation: %v (contract 2.4: add only)", op["op"], op)
					}
				}
			}
			p, err := jsonpatch.DecodePatch(rawPatch)
			if err != nil {
				t.Fatal(err)
			}
			out, err := p.Apply(in)
			if err != nil {
				t.Fatalf("patch does not apply to the submitted object: %v", err)
			}

			review.Request.Object.Raw = out
			again, err := json.Marshal(review)
			if err != nil {
				t.Fatal(err)
			}
			if r := postReview(t, mux, path, again); len(r.Patch) > 0 || !r.Allowed {
				t.Errorf("second review of the patched object: allowed=%v patch %s", r.Allowed, r.Patch)
			}
		})
	}
}

func decodePatch(t *testing.T, raw []byte) []map[string]any {
	t.Helper()
	patch := []map[string]any{}
	if len(raw) == 0 {
		return patch
	}
	if err := json.Unmarshal(raw, &patch); err != nil {
		t.Fatalf("patch is not JSON: %v: %s", err, raw)
	}
	return patch
}

// checkGolden compares v, as indented JSON, with a golden file (or writes it
// with -update).
func checkGolden(t *testing.T, file string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join(goldenDir, file)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./webhook -run TestGolden -update)", err)
	}
	if !jsonEqual(t, got, want) {
		t.Errorf("%s differs (go test ./webhook -run TestGolden -update to accept)\n got: %s\nwant: %s", file, got, want)
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%v: %s", err, a)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return reflect.DeepEqual(x, y)
}

// helmChartReview is the CREATE review of a pod of the agent DaemonSet in
// the Helm chart render with podLabelsAsTags set.
func helmChartReview(tb testing.TB) []byte {
	return reviewOf(tb, AgentPodPath, helmAgentPod(tb, "pod-labels-as-tags.yaml"))
}
