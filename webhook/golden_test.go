package webhook

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/canary-tagger/canary-tagger/webhook/agentpod"
	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
	"github.com/canary-tagger/canary-tagger/webhook/rollout"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.response.json and *.patch.json")

const goldenDir = "testdata/golden"

// helmFixture is a Datadog Helm chart render shared by the whole project; it
// lives outside the repository and is read, never copied.
var helmFixture = filepath.Join("..", "test", "testdata", "datadog-helm", "pod-labels-as-tags.yaml")

// TestGolden posts each testdata/golden/<case>.request.json (plus requests
// built at test time) through the real HTTP handlers and compares the
// AdmissionReview answer with <case>.response.json (patch left out) and the
// decoded JSON Patch with <case>.patch.json (ops sorted by path: the patch
// library emits map keys in random order). A patch must turn the submitted
// object into the rule's output, and a second review of that output must
// yield no patch (reinvocationPolicy: IfNeeded).
func TestGolden(t *testing.T) {
	srv := newTestWebhookServer(t, testOptions(t, fakeAPIServer(t, nil).URL))
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.request.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden requests: %v", err)
	}
	cases := map[string][]byte{"agent-pod-helm-chart": helmChartPodReview(t)}
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
			resp := postReview(t, srv.URL+path, body)
			patch := decodePatch(t, resp.Patch)
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
			p, err := jsonpatch.DecodePatch(resp.Patch0)
			if err != nil {
				t.Fatal(err)
			}
			out, err := p.Apply(in)
			if err != nil {
				t.Fatalf("patch does not apply to the submitted object: %v", err)
			}
			if want := ruleOutput(t, path, in); !jsonEqual(t, out, want) {
				t.Errorf("patched object differs from the rule's output\n got: %s\nwant: %s", out, want)
			}

			review.Request.Object.Raw = out
			again, err := json.Marshal(review)
			if err != nil {
				t.Fatal(err)
			}
			if r := postReview(t, srv.URL+path, again); len(r.Patch0) > 0 || !r.Allowed {
				t.Errorf("second review of the patched object: allowed=%v patch %s", r.Allowed, r.Patch0)
			}
		})
	}
}

// reviewResponse is an AdmissionResponse with the raw patch kept aside.
type reviewResponse struct {
	admissionv1.AdmissionResponse
	Patch0 []byte `json:"-"`
}

func postReview(t *testing.T, url string, body []byte) *reviewResponse {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, b)
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(b, &review); err != nil || review.Response == nil {
		t.Fatalf("not an AdmissionReview response (%v): %s", err, b)
	}
	return &reviewResponse{AdmissionResponse: *review.Response, Patch0: review.Response.Patch}
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
	sort.SliceStable(patch, func(i, j int) bool { return patch[i]["path"].(string) < patch[j]["path"].(string) })
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

// ruleOutput is what the rule makes of the submitted object, with the
// workloads the fake API server knows.
func ruleOutput(t *testing.T, path string, raw []byte) []byte {
	t.Helper()
	in, err := obj.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	rules := testRules(t)
	var out map[string]any
	if path == RolloutPath {
		out, _ = rollout.Mutate(in, rules.Rollout, func(ref rollout.WorkloadRef) (map[string]string, error) {
			if labels, ok := fakeWorkloads["deployments/"+ref.Name]; ok {
				return labels, nil
			}
			return nil, errors.New("not found")
		})
	} else {
		out, _ = agentpod.MutatePod(in, rules.AgentPod)
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// helmChartPodReview builds the CREATE review of a pod of the agent
// DaemonSet in the Helm chart render, as the DaemonSet controller creates it.
func helmChartPodReview(t *testing.T) []byte {
	t.Helper()
	f, err := os.Open(helmFixture)
	if err != nil {
		t.Fatalf("shared fixture: %v", err)
	}
	defer f.Close()
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
	for {
		doc, err := r.Read()
		if err == io.EOF {
			t.Fatalf("no DaemonSet in %s", helmFixture)
		} else if err != nil {
			t.Fatal(err)
		}
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			t.Fatal(err)
		}
		var ds struct {
			Kind     string
			Metadata struct{ Name, Namespace string }
			Spec     struct {
				Template struct {
					Metadata map[string]any
					Spec     json.RawMessage
				}
			}
		}
		if err := json.Unmarshal(j, &ds); err != nil || ds.Kind != "DaemonSet" {
			continue
		}
		meta := ds.Spec.Template.Metadata
		delete(meta, "name")
		meta["generateName"] = ds.Metadata.Name + "-"
		meta["namespace"] = ds.Metadata.Namespace
		meta["ownerReferences"] = []any{map[string]any{
			"apiVersion": "apps/v1", "kind": "DaemonSet", "name": ds.Metadata.Name,
			"uid": "0f5ad0e4-3c8b-4f5e-a0b1-5a7d1e2c3b4a", "controller": true, "blockOwnerDeletion": true,
		}}
		pod, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": ds.Spec.Template.Spec})
		if err != nil {
			t.Fatal(err)
		}
		review := admissionv1.AdmissionReview{Request: &admissionv1.AdmissionRequest{
			UID:       "00000000-0000-4000-8000-0000000000aa",
			Namespace: ds.Metadata.Namespace,
			Operation: admissionv1.Create,
		}}
		review.APIVersion, review.Kind = "admission.k8s.io/v1", "AdmissionReview"
		review.Request.Kind.Version, review.Request.Kind.Kind = "v1", "Pod"
		review.Request.Resource.Version, review.Request.Resource.Resource = "v1", "pods"
		review.Request.Object.Raw = pod
		b, err := json.Marshal(review)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}
