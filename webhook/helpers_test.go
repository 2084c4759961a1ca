package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/canary-tagger/canary-tagger/webhook/config"
)

func TestMain(m *testing.M) {
	// controller-runtime's own messages; without a logger it complains.
	logf.SetLogger(logr.Discard())
	os.Exit(m.Run())
}

func testRules(t testing.TB) config.Rules {
	t.Helper()
	f := config.Flags{
		LabelKey: config.DefaultLabelKey, StableValue: config.DefaultStableValue, CanaryValue: config.DefaultCanaryValue,
		TagName: config.DefaultTagName, AgentSelector: config.DefaultAgentSelector,
	}
	r, err := f.Validate()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// testOptions are Options for tests, reading workloads from apiURL.
func testOptions(t *testing.T, apiURL string) Options {
	return Options{
		Rules:            testRules(t),
		CheckWorkloadRef: true,
		RESTConfig:       func() (*rest.Config, error) { return &rest.Config{Host: apiURL}, nil },
	}
}

// webhookMux serves the handlers exactly as Run registers them.
func webhookMux(tb testing.TB, o Options) *http.ServeMux {
	tb.Helper()
	mux := http.NewServeMux()
	for path, wh := range newWebhooks(o) {
		mux.Handle(path, wh)
	}
	return mux
}

// postReview sends a review to h and returns its response; anything but an
// AdmissionReview answer fails the test.
func postReview(tb testing.TB, h http.Handler, path string, body []byte) *admissionv1.AdmissionResponse {
	tb.Helper()
	res := serveRequest(h, http.MethodPost, path, "application/json", body)
	if res.HTTPStatus != http.StatusOK || res.resp() == nil {
		tb.Fatalf("not an AdmissionReview answer: %s", res)
	}
	return res.resp()
}

func readFile(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// fakeWorkloads are the workloads of namespace "shop" the fake API server
// knows, by resource/name, with their pod template labels.
var fakeWorkloads = map[string]map[string]string{
	"deployments/web":      {"app": "web"},
	"deployments/web-role": {"app": "web", "role": "frontend"},
	"replicasets/web-rs":   {"app": "web"},
	"podtemplates/web-pt":  {"app": "web", "role": "frontend"},
}

// fakeAPIServer answers GETs of fakeWorkloads like the apiserver. hook, if
// set, runs first (to block or count requests).
func fakeAPIServer(t *testing.T, hook func(*http.Request)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hook != nil {
			hook(r)
		}
		w.Header().Set("Content-Type", "application/json")
		p := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		// /apis/apps/v1/namespaces/shop/<resource>/<name> or /api/v1/namespaces/shop/<resource>/<name>
		if r.Method != http.MethodGet || len(p) < 5 || p[len(p)-4] != "namespaces" || p[len(p)-3] != "shop" {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`))
			return
		}
		resource, name := p[len(p)-2], p[len(p)-1]
		labels, ok := fakeWorkloads[resource+"/"+name]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404,` +
				`"message":"` + resource + ` \"` + name + `\" not found","details":{"name":"` + name + `","kind":"` + resource + `"}}`))
			return
		}
		tmpl := map[string]any{"metadata": map[string]any{"labels": labels}, "spec": map[string]any{}}
		o := map[string]any{"metadata": map[string]any{"name": name, "namespace": "shop"}}
		if resource == "podtemplates" {
			o["apiVersion"], o["kind"], o["template"] = "v1", "PodTemplate", tmpl
		} else {
			o["apiVersion"], o["kind"], o["spec"] = "apps/v1", map[string]string{"deployments": "Deployment", "replicasets": "ReplicaSet"}[resource], map[string]any{"template": tmpl}
		}
		_ = json.NewEncoder(w).Encode(o)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// helmFixtures is test/testdata/datadog-helm.
var helmFixtures = filepath.Join("..", "test", "testdata", "datadog-helm")

// seedRolloutJSON is the seed's Rollout (test/e2e/testdata/rollout.yaml) as the
// apiserver sends it on CREATE.
const seedRolloutJSON = `{"apiVersion":"argoproj.io/v1alpha1","kind":"Rollout",
"metadata":{"name":"demo","namespace":"default","uid":"4b1c2a53-0d4f-4d61-9c7e-3d1f5b7a9e10","generation":1,"creationTimestamp":"2026-11-25T10:00:00Z"},
"spec":{"replicas":5,"selector":{"matchLabels":{"app":"demo"}},
"template":{"metadata":{"labels":{"app":"demo"}},"spec":{"containers":[{"name":"demo","image":"argoproj/demo:blue","ports":[{"name":"http","containerPort":8080,"protocol":"TCP"}]}]}},
"strategy":{"canary":{"steps":[{"setWeight":20},{"pause":{}},{"setWeight":50},{"pause":{}}]}}}}`

func seedRollout(tb testing.TB) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(seedRolloutJSON), &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

// rolloutWithUnknownFields is the seed with many fields canary-tagger does not know.
func rolloutWithUnknownFields(tb testing.TB) map[string]any {
	m := seedRollout(tb)
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

// helmAgentPod is the pod the DaemonSet controller creates from the agent
// DaemonSet of a Helm chart render.
func helmAgentPod(tb testing.TB, file string) map[string]any {
	tb.Helper()
	raw := readFile(tb, filepath.Join(helmFixtures, file))
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

// operatorAgentPod is an agent pod shaped like the Datadog Operator's.
func operatorAgentPod() map[string]any {
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

// reviewUID is the uid of reviewOf's requests.
const reviewUID = "0e8f3c5a-1b2d-4e6f-8a9b-0c1d2e3f4a5b"

// reviewOf wraps an object (any JSON-marshalable value, or json.RawMessage)
// in an AdmissionReview v1 CREATE request for the webhook at path.
func reviewOf(tb testing.TB, path string, object any) []byte {
	tb.Helper()
	return reviewWithOperation(tb, path, "CREATE", object)
}

func reviewWithOperation(tb testing.TB, path, op string, object any) []byte {
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
		Request: &admissionv1.AdmissionRequest{UID: reviewUID, Kind: gvk, Resource: gvr,
			RequestKind: &gvk, RequestResource: &gvr, Namespace: ns, Operation: admissionv1.Operation(op),
			UserInfo: authenticationv1.UserInfo{Username: "kubernetes-admin"}, Object: runtime.RawExtension{Raw: raw}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// reviewAnswer is one answer of the handler.
type reviewAnswer struct {
	HTTPStatus int
	Raw        []byte
	Review     *admissionv1.AdmissionReview // nil when the answer is not one
}

func (r reviewAnswer) resp() *admissionv1.AdmissionResponse {
	if r.Review == nil {
		return nil
	}
	return r.Review.Response
}

// Code is the review's status code, or the HTTP status when there is no review status.
func (r reviewAnswer) Code() int {
	if resp := r.resp(); resp != nil && resp.Result != nil && resp.Result.Code != 0 {
		return int(resp.Result.Code)
	}
	if resp := r.resp(); resp != nil && resp.Allowed {
		return http.StatusOK
	}
	return r.HTTPStatus
}

func (r reviewAnswer) String() string {
	s := string(r.Raw)
	if len(s) > 600 {
		s = s[:600] + "…"
	}
	return fmt.Sprintf("HTTP %d: %s", r.HTTPStatus, s)
}

// serveRequest sends one request through h without a network.
func serveRequest(h http.Handler, method, path, contentType string, body []byte) reviewAnswer {
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
	res := reviewAnswer{HTTPStatus: w.Code, Raw: w.Body.Bytes()}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(res.Raw, &review); err == nil && review.Response != nil {
		res.Review = &review
	}
	return res
}

// requestOf decodes a body as controller-runtime's decoder does (JSON, or
// YAML, which also covers a leading byte order mark), to find the object the
// handler saw.
func requestOf(body []byte) (*admissionv1.AdmissionRequest, bool) {
	if !json.Valid(body) {
		j, err := yaml.YAMLToJSON(body)
		if err != nil {
			return nil, false
		}
		body = j
	}
	var review admissionv1.AdmissionReview
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(body, &review); err != nil || review.Request == nil {
		return nil, false
	}
	return review.Request, true
}
