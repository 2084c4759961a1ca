package webhook

// FuzzHandler throws raw request bodies at the two webhooks as Run serves them
// (reading the review included) and checks, for every
// input: no panic; never a 5xx, neither as HTTP status nor as the review's
// status code; a body that is not JSON gets a 400; any patch applies cleanly
// to the submitted object, is add-only for Rollouts, and for agent pods only
// adds, or replaces a DD_KUBERNETES_POD_LABELS_AS_TAGS value with a JSON
// object that keeps every mapping and gains the one key; reviewing the
// patched object again gives no patch.
//
//	go test ./webhook -run '^$' -fuzz '^FuzzHandler$' -fuzztime 60s
//
// The helpers prefixed "ev" (evidence) are shared with bench_test.go and
// badinput_test.go.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"

	"github.com/canary-tagger/canary-tagger/webhook/agentpod"
	"github.com/canary-tagger/canary-tagger/webhook/config"
)

// evFixtures is test/testdata/datadog-helm.
var evFixtures = filepath.Join("..", "test", "testdata", "datadog-helm")

func evRules(tb testing.TB) config.Rules {
	tb.Helper()
	f := config.Flags{
		LabelKey: config.DefaultLabelKey, StableValue: config.DefaultStableValue, CanaryValue: config.DefaultCanaryValue,
		TagName: config.DefaultTagName, AgentSelector: config.DefaultAgentSelector,
	}
	r, err := f.Validate()
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// evMux serves the handlers exactly as Run registers them (no workloadRef
// lookups: there is no cluster), with the given logger.
func evMux(tb testing.TB, log logr.Logger) *http.ServeMux {
	tb.Helper()
	mux := http.NewServeMux()
	for path, wh := range newWebhooks(Options{Rules: evRules(tb), Logger: log}) {
		mux.Handle(path, wh)
	}
	return mux
}

// evSeedRollout is the seed's Rollout (test/e2e/testdata/rollout.yaml) as the
// apiserver sends it on CREATE.
const evSeedRollout = `{"apiVersion":"argoproj.io/v1alpha1","kind":"Rollout",
"metadata":{"name":"demo","namespace":"default","uid":"4b1c2a53-0d4f-4d61-9c7e-3d1f5b7a9e10","generation":1,"creationTimestamp":"2026-11-25T10:00:00Z"},
"spec":{"replicas":5,"selector":{"matchLabels":{"app":"demo"}},
"template":{"metadata":{"labels":{"app":"demo"}},"spec":{"containers":[{"name":"demo","image":"argoproj/demo:blue","ports":[{"name":"http","containerPort":8080,"protocol":"TCP"}]}]}},
"strategy":{"canary":{"steps":[{"setWeight":20},{"pause":{}},{"setWeight":50},{"pause":{}}]}}}}`

func evSeed(tb testing.TB) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(evSeedRollout), &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

// evUnknownFields is the seed with many fields canary-tagger does not know.
func evUnknownFields(tb testing.TB) map[string]any {
	m := evSeed(tb)
	ann := map[string]any{}
	for i := range 200 {
		ann[fmt.Sprintf("example.com/annotation-%03d", i)] = fmt.Sprintf("value %d, as long as a checksum: 0123456789abcdef0123456789abcdef", i)
	}
	m["metadata"].(map[string]any)["annotations"] = ann
	spec := m["spec"].(map[string]any)
	for i := range 100 {
		spec[fmt.Sprintf("futureField%03d", i)] = map[string]any{"enabled": true, "n": i, "ratio": 1.5, "list": []any{"a", "b", nil}}
	}
	canary := spec["strategy"].(map[string]any)["canary"].(map[string]any)
	canary["stableMetadata"] = map[string]any{"annotations": map[string]any{"team": "payments"}}
	canary["canaryMetadata"] = map[string]any{"labels": map[string]any{"track": "canary"}}
	m["status"] = map[string]any{"phase": "Healthy", "replicas": 5}
	return m
}

// evHelmPod is the pod the DaemonSet controller creates from the agent
// DaemonSet of a Helm chart render; the test is skipped without the fixtures.
func evHelmPod(tb testing.TB, file string) map[string]any {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join(evFixtures, file))
	if errors.Is(err, os.ErrNotExist) {
		tb.Skipf("shared fixture %s not found next to the repository", file)
	} else if err != nil {
		tb.Fatal(err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err == io.EOF {
			tb.Fatalf("no DaemonSet in %s", file)
		} else if err != nil {
			tb.Fatal(err)
		}
		if doc["kind"] != "DaemonSet" {
			continue
		}
		meta := doc["metadata"].(map[string]any)
		tmpl := doc["spec"].(map[string]any)["template"].(map[string]any)
		tmeta := tmpl["metadata"].(map[string]any)
		labels := map[string]any{"controller-revision-hash": "7d9f8c6b5", "pod-template-generation": "1"}
		for k, v := range tmeta["labels"].(map[string]any) {
			labels[k] = v
		}
		return map[string]any{"apiVersion": "v1", "kind": "Pod",
			"metadata": map[string]any{"generateName": meta["name"].(string) + "-", "namespace": meta["namespace"],
				"labels": labels, "annotations": tmeta["annotations"],
				"ownerReferences": []any{map[string]any{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": meta["name"],
					"uid": "0c7f4b0e-3b7a-4f5e-9d55-1a2b3c4d5e6f", "controller": true, "blockOwnerDeletion": true}}},
			"spec": tmpl["spec"]}
	}
}

// evOperatorPod is an agent pod shaped like the Datadog Operator's.
func evOperatorPod() map[string]any {
	ctr := func(name string) map[string]any {
		return map[string]any{"name": name, "image": "gcr.io/datadoghq/agent:7.81.1",
			"env": []any{
				map[string]any{"name": "DD_API_KEY", "valueFrom": map[string]any{"secretKeyRef": map[string]any{"name": "datadog-secret", "key": "api-key"}}},
				map[string]any{"name": "DD_CLUSTER_NAME", "value": "prod-eu-1"},
				map[string]any{"name": "DD_KUBERNETES_POD_LABELS_AS_TAGS", "value": `{"app":"kube_app"}`},
			},
			"volumeMounts": []any{map[string]any{"name": "config", "mountPath": "/etc/datadog-agent"}}}
	}
	return map[string]any{"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"generateName": "datadog-agent-", "namespace": "datadog",
			"labels": map[string]any{"agent.datadoghq.com/component": "agent", "agent.datadoghq.com/name": "datadog",
				"app.kubernetes.io/managed-by": "datadog-operator", "app.kubernetes.io/component": "agent"},
			"ownerReferences": []any{map[string]any{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "datadog-agent",
				"uid": "6a0b5a9e-1f3c-4f7e-8a2b-9c0d1e2f3a4b", "controller": true}}},
		"spec": map[string]any{"containers": []any{ctr("agent"), ctr("trace-agent"), ctr("process-agent")},
			"initContainers": []any{ctr("init-config")},
			"volumes":        []any{map[string]any{"name": "config", "emptyDir": map[string]any{}}}}}
}

// evUID is the uid of evReview's requests.
const evUID = "0e8f3c5a-1b2d-4e6f-8a9b-0c1d2e3f4a5b"

// evReview wraps an object (any JSON-marshalable value, or json.RawMessage)
// in an AdmissionReview v1 CREATE request for the webhook at path.
func evReview(tb testing.TB, path string, object any) []byte {
	tb.Helper()
	return evReviewOp(tb, path, "CREATE", object)
}

func evReviewOp(tb testing.TB, path, op string, object any) []byte {
	tb.Helper()
	gvk := metav1.GroupVersionKind{Group: "argoproj.io", Version: "v1alpha1", Kind: "Rollout"}
	gvr := metav1.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}
	ns := "default"
	if path == AgentPodPath {
		gvk = metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}
		gvr = metav1.GroupVersionResource{Version: "v1", Resource: "pods"}
		ns = "datadog"
	}
	var raw []byte
	if object != nil {
		var err error
		if raw, err = json.Marshal(object); err != nil {
			tb.Fatal(err)
		}
	}
	// The typed review: the apiserver's key order (uid first, object late).
	b, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: evUID, Kind: gvk, Resource: gvr,
			RequestKind: &gvk, RequestResource: &gvr, Namespace: ns, Operation: admissionv1.Operation(op),
			UserInfo: authenticationv1.UserInfo{Username: "kubernetes-admin"}, Object: runtime.RawExtension{Raw: raw}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// evResult is one answer of the handler.
type evResult struct {
	HTTPStatus int
	Raw        []byte
	Review     *admissionv1.AdmissionReview // nil when the answer is not one
}

func (r evResult) resp() *admissionv1.AdmissionResponse {
	if r.Review == nil {
		return nil
	}
	return r.Review.Response
}

// Code is the review's status code, or the HTTP status when there is no review status.
func (r evResult) Code() int {
	if resp := r.resp(); resp != nil && resp.Result != nil && resp.Result.Code != 0 {
		return int(resp.Result.Code)
	}
	if resp := r.resp(); resp != nil && resp.Allowed {
		return http.StatusOK
	}
	return r.HTTPStatus
}

func (r evResult) String() string {
	s := string(r.Raw)
	if len(s) > 600 {
		s = s[:600] + "…"
	}
	return fmt.Sprintf("HTTP %d: %s", r.HTTPStatus, s)
}

// evServe sends one request through h without a network.
func evServe(h http.Handler, method, path, contentType string, body []byte) evResult {
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	res := evResult{HTTPStatus: w.Code, Raw: w.Body.Bytes()}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(res.Raw, &review); err == nil && review.Response != nil {
		res.Review = &review
	}
	return res
}

// evDecodeRequest decodes a body the way controller-runtime does (case
// sensitive), to find the object the handler saw.
func evDecodeRequest(body []byte) (*admissionv1.AdmissionRequest, bool) {
	var review admissionv1.AdmissionReview
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(body, &review); err != nil || review.Request == nil {
		return nil, false
	}
	return review.Request, true
}

// evCheckPatch checks a patch against the object it applies to and returns
// the patched object. Rollout patches are add-only; agent-pod patches add, or
// replace the value of a DD_KUBERNETES_POD_LABELS_AS_TAGS entry with a JSON
// object that keeps every mapping and gains exactly the configured key. An add
// never overwrites an existing member and only appends to arrays.
func evCheckPatch(path string, object, patch []byte) ([]byte, error) {
	var ops []struct {
		Op    string          `json:"op"`
		Path  string          `json:"path"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(patch, &ops); err != nil {
		return nil, fmt.Errorf("patch is not a JSON Patch: %v", err)
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(object))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("object does not decode: %v", err)
	}
	for _, op := range ops {
		parent, last, err := evParent(doc, op.Path)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %v", op.Op, op.Path, err)
		}
		switch op.Op {
		case "add":
			// An added env entry (alone, or in an added env list) for the
			// variable holds exactly the one mapping.
			type envEntry struct {
				Name  string  `json:"name"`
				Value *string `json:"value"`
			}
			var entries []envEntry
			var one envEntry
			if json.Unmarshal(op.Value, &one) == nil {
				entries = append(entries, one)
			} else {
				_ = json.Unmarshal(op.Value, &entries)
			}
			for _, e := range entries {
				if e.Name != agentpod.EnvName {
					continue
				}
				if e.Value == nil {
					return nil, fmt.Errorf("add %s: a %s entry without a value", op.Path, agentpod.EnvName)
				}
				if err := evOnlyGainsKey("", *e.Value); err != nil {
					return nil, fmt.Errorf("add %s: %v", op.Path, err)
				}
			}
			switch p := parent.(type) {
			case map[string]any:
				// Adding over a null member is how the webhook fills a
				// `field: null` (contract 2.4 add-only); anything else must be new.
				if v, exists := p[last]; exists && v != nil {
					return nil, fmt.Errorf("add %s overwrites an existing field", op.Path)
				}
			case []any:
				if last != "-" && last != strconv.Itoa(len(p)) {
					return nil, fmt.Errorf("add %s inserts into an array of %d (shifts existing entries)", op.Path, len(p))
				}
			default:
				return nil, fmt.Errorf("add %s: parent is not an object or array", op.Path)
			}
		case "replace":
			if path != AgentPodPath || last != "value" {
				return nil, fmt.Errorf("replace %s: only the agent-pod webhook may replace, and only an env value", op.Path)
			}
			entry, _ := parent.(map[string]any)
			if entry["name"] != agentpod.EnvName {
				return nil, fmt.Errorf("replace %s: not the value of %s", op.Path, agentpod.EnvName)
			}
			old, _ := entry["value"].(string)
			var nv string
			if err := json.Unmarshal(op.Value, &nv); err != nil {
				return nil, fmt.Errorf("replace %s: new value is not a string", op.Path)
			}
			if err := evOnlyGainsKey(old, nv); err != nil {
				return nil, fmt.Errorf("replace %s: %v", op.Path, err)
			}
		default:
			return nil, fmt.Errorf("%s %s: operation not allowed", op.Op, op.Path)
		}
	}
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		return nil, fmt.Errorf("patch does not decode: %v", err)
	}
	out, err := p.Apply(object)
	if err != nil {
		return nil, fmt.Errorf("patch does not apply: %v", err)
	}
	return out, nil
}

// evOnlyGainsKey: nv is a JSON object of strings holding every entry of old
// (a JSON object of strings, or "") unchanged, plus "role": "kube_role".
func evOnlyGainsKey(old, nv string) error {
	var o, n map[string]string
	if old == "" {
		o = map[string]string{}
	} else if err := json.Unmarshal([]byte(old), &o); err != nil {
		return fmt.Errorf("the old value %q was not a JSON object of strings, yet it was rewritten", old)
	}
	if err := json.Unmarshal([]byte(nv), &n); err != nil {
		return fmt.Errorf("the new value %q is not a JSON object of strings", nv)
	}
	for k, v := range o {
		if n[k] != v {
			return fmt.Errorf("mapping %q: %q lost or changed in %q", k, v, nv)
		}
	}
	if len(n) != len(o)+1 || n["role"] != "kube_role" {
		return fmt.Errorf("%q → %q: expected exactly one added mapping role → kube_role", old, nv)
	}
	return nil
}

// evParent resolves an RFC 6901 pointer to its parent container and last token.
func evParent(doc any, pointer string) (any, string, error) {
	if !strings.HasPrefix(pointer, "/") {
		return nil, "", errors.New("not a JSON pointer")
	}
	toks := strings.Split(pointer[1:], "/")
	for i := range toks {
		toks[i] = strings.ReplaceAll(strings.ReplaceAll(toks[i], "~1", "/"), "~0", "~")
	}
	cur := doc
	for _, t := range toks[:len(toks)-1] {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[t]
			if !ok {
				return nil, "", fmt.Errorf("%q not found", t)
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(t)
			if err != nil || i < 0 || i >= len(c) {
				return nil, "", fmt.Errorf("bad index %q", t)
			}
			cur = c[i]
		default:
			return nil, "", fmt.Errorf("%q: not a container", t)
		}
	}
	return cur, toks[len(toks)-1], nil
}

// evCheckInvariants runs one body through h and checks the handler's contract.
func evCheckInvariants(t *testing.T, h http.Handler, path string, body []byte) evResult {
	t.Helper()
	res := evServe(h, http.MethodPost, path, "application/json", body)
	if res.HTTPStatus >= 500 {
		t.Fatalf("5xx for the caller's input: %s", res)
	}
	resp := res.resp()
	if resp == nil {
		if res.HTTPStatus >= 400 {
			return res // plain HTTP error (not a review): a 4xx is fine
		}
		t.Fatalf("answer is not an AdmissionReview response: %s", res)
	}
	if res.Code() >= 500 {
		t.Fatalf("review status %d for the caller's input: %s", res.Code(), res)
	}
	if !json.Valid(body) && (resp.Allowed || res.Code() != http.StatusBadRequest) {
		t.Fatalf("body is not JSON, want a 400 review; got allowed=%v code %d", resp.Allowed, res.Code())
	}
	if !resp.Allowed {
		if c := res.Code(); c < 400 || c >= 500 {
			t.Fatalf("denied with code %d: canary-tagger only denies malformed input (4xx): %s", c, res)
		}
		return res
	}
	if len(resp.Patch) == 0 {
		return res
	}
	req, ok := evDecodeRequest(body)
	if !ok {
		t.Fatalf("a patch for a body that does not decode as an AdmissionReview: %s", res)
	}
	patched, err := evCheckPatch(path, req.Object.Raw, resp.Patch)
	if err != nil {
		t.Fatalf("%v\npatch: %s\nobject: %.2000s", err, resp.Patch, req.Object.Raw)
	}
	// Idempotence: the webhook applied to its own output adds nothing.
	req.Object.Raw = patched
	again, err := json.Marshal(admissionv1.AdmissionReview{Request: req})
	if err != nil {
		t.Fatal(err)
	}
	again = bytes.Replace(again, []byte(`{"request"`), []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request"`), 1)
	res2 := evServe(h, http.MethodPost, path, "application/json", again)
	if r2 := res2.resp(); r2 == nil || !r2.Allowed || len(r2.Patch) > 0 {
		t.Fatalf("reviewing the patched object again: want allowed without patch, got %s\npatched object: %.2000s", res2, patched)
	}
	return res
}

func FuzzHandler(f *testing.F) {
	add := func(path string, body []byte) {
		sel := uint8(0)
		if path == AgentPodPath {
			sel = 1
		}
		f.Add(sel, body)
	}
	seed := evSeed(f)
	add(RolloutPath, evReview(f, RolloutPath, seed))
	add(RolloutPath, evReview(f, RolloutPath, evUnknownFields(f)))
	add(RolloutPath, evReviewOp(f, RolloutPath, "UPDATE", seed))
	add(RolloutPath, []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","resource":{"group":"argoproj.io","version":"v1alpha1","resource":"rollouts"},"operation":"CREATE","object":{"kind":"Rollout","apiVersion":"argoproj.io/v1alpha1","spec":{"strategy":{"canary":{"steps":[{}],"stableMetadata":{"labels":null},"canaryMetadata":{"labels":{"x":"y"}}}}}}}}`))
	add(RolloutPath, []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","resource":{"group":"argoproj.io","version":"v1alpha1","resource":"rollouts"},"operation":"CREATE","object":{"kind":"Rollout","apiVersion":"argoproj.io/v1alpha1","spec":{"strategy":{"canary":{"steps":"x"}}}}}}`))
	add(RolloutPath, []byte(`{"request":{"object":[]}}`))
	add(RolloutPath, []byte(`{`))
	add(AgentPodPath, evReview(f, AgentPodPath, evOperatorPod()))
	add(AgentPodPath, []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","resource":{"version":"v1","resource":"pods"},"operation":"CREATE","object":{"kind":"Pod","metadata":{"labels":{"agent.datadoghq.com/component":"agent"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"DaemonSet"}]},"spec":{"containers":[{"name":"a","env":[{"name":"DD_KUBERNETES_POD_LABELS_AS_TAGS","value":"{\"*\":\"%%label%%\",\"App\":\"+app\"}"}]},{"name":"b","envFrom":[{}]},{"name":"c","env":{}}],"initContainers":[{"name":"init-config","env":[{"name":"DD_KUBERNETES_POD_LABELS_AS_TAGS","value":""}]}]}}}}`))
	for _, file := range []string{"default.yaml", "pod-labels-as-tags.yaml", "role-already-mapped.yaml"} {
		if _, err := os.Stat(filepath.Join(evFixtures, file)); err == nil {
			add(AgentPodPath, evReview(f, AgentPodPath, evHelmPod(f, file)))
		}
	}
	h := evMux(f, logr.Discard())
	f.Fuzz(func(t *testing.T, sel uint8, body []byte) {
		path := RolloutPath
		if sel%2 == 1 {
			path = AgentPodPath
		}
		evCheckInvariants(t, h, path, body)
	})
}
