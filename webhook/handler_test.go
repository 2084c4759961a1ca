package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/canary-tagger/canary-tagger/webhook/rollout"
)

// TestReviewLogLine: one JSON line per review with what an operator needs
// to find it (contract 5).
func TestReviewLogLine(t *testing.T) {
	var buf bytes.Buffer
	o := testOptions(t, fakeAPIServer(t, nil).URL)
	o.Logger = zap.New(zap.WriteTo(&buf)) // production defaults: JSON
	postReview(t, webhookMux(t, o), RolloutPath, readFile(t, filepath.Join(goldenDir, "rollout-conflict-template.request.json")))

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one log line, got %d:\n%s", len(lines), buf.String())
	}
	var entry map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &entry); err != nil {
		t.Fatalf("not JSON: %v: %s", err, lines[0])
	}
	for k, want := range map[string]string{
		"uid": "00000000-0000-4000-8000-000000000006", "webhook": "rollout", "kind": "Rollout", "namespace": "shop",
		"name": "web", "operation": "CREATE", "outcome": "conflict",
		"reason": `label key in pod template labels: "role" in spec.template.metadata.labels`,
	} {
		if entry[k] != want {
			t.Errorf("%s = %v, want %q", k, entry[k], want)
		}
	}
}

// TestOutOfScopeRequests: requests the webhooks do not mutate are admitted
// unchanged, without reading the object.
func TestOutOfScopeRequests(t *testing.T) {
	mux := webhookMux(t, testOptions(t, "http://127.0.0.1:1"))
	for _, tc := range []struct {
		path, golden string
		edit         func(*admissionv1.AdmissionRequest)
	}{
		{RolloutPath, "rollout-seed-create", func(r *admissionv1.AdmissionRequest) {
			r.Operation, r.Object.Raw = admissionv1.Delete, nil
		}},
		{AgentPodPath, "agent-pod-valuefrom", func(r *admissionv1.AdmissionRequest) { r.Operation = admissionv1.Update }},
		{AgentPodPath, "agent-pod-valuefrom", func(r *admissionv1.AdmissionRequest) { r.SubResource = "ephemeralcontainers" }},
		{AgentPodPath, "rollout-seed-create", func(*admissionv1.AdmissionRequest) {}}, // a Rollout sent to the pod webhook
	} {
		var review admissionv1.AdmissionReview
		if err := json.Unmarshal(readFile(t, filepath.Join(goldenDir, tc.golden+".request.json")), &review); err != nil {
			t.Fatal(err)
		}
		tc.edit(review.Request)
		body, _ := json.Marshal(review)
		r := postReview(t, mux, tc.path, body)
		if !r.Allowed || len(r.Patch) > 0 || r.AuditAnnotations["outcome"] != "skipped" {
			t.Errorf("%s %s: allowed=%v patch=%s audit=%v", tc.path, review.Request.Operation, r.Allowed, r.Patch, r.AuditAnnotations)
		}
	}
}

// labelsFor runs the workloadRef reader for namespace "shop".
func labelsFor(w *workloadRefs, apiVersion, kind, name string) (map[string]string, error) {
	return w.templateLabels(context.Background(), "shop")(rollout.WorkloadRef{APIVersion: apiVersion, Kind: kind, Name: name})
}

func fakeConfig(url string) func() (*rest.Config, error) {
	return func() (*rest.Config, error) { return &rest.Config{Host: url}, nil }
}

func TestWorkloadRefKinds(t *testing.T) {
	var paths []string
	api := fakeAPIServer(t, func(r *http.Request) { paths = append(paths, r.URL.Path) })
	w := newWorkloadRefs(true, fakeConfig(api.URL))
	for _, tc := range []struct {
		apiVersion, kind, name, path string
		role                         bool
	}{
		{"apps/v1", "Deployment", "web-role", "/apis/apps/v1/namespaces/shop/deployments/web-role", true},
		{"apps/v1", "ReplicaSet", "web-rs", "/apis/apps/v1/namespaces/shop/replicasets/web-rs", false},
		{"v1", "PodTemplate", "web-pt", "/api/v1/namespaces/shop/podtemplates/web-pt", true},
	} {
		paths = nil
		labels, err := labelsFor(w, tc.apiVersion, tc.kind, tc.name)
		if err != nil {
			t.Errorf("%s: %v", tc.kind, err)
			continue
		}
		if _, has := labels["role"]; has != tc.role || labels["app"] != "web" {
			t.Errorf("%s: labels %v", tc.kind, labels)
		}
		if len(paths) != 1 || paths[0] != tc.path {
			t.Errorf("%s: requests %v, want one GET of %s", tc.kind, paths, tc.path)
		}
	}
	paths = nil
	for _, ref := range [][3]string{{"apps/v1", "StatefulSet", "web"}, {"argoproj.io/v1alpha1", "Rollout", "web"}, {"apps/v1", "Deployment", ""}, {"a/b/c", "Deployment", "web"}} {
		if _, err := labelsFor(w, ref[0], ref[1], ref[2]); err == nil {
			t.Errorf("%v: no error", ref)
		}
	}
	if len(paths) > 0 {
		t.Errorf("unsupported references were requested: %v", paths)
	}
}

func TestWorkloadRefDisabled(t *testing.T) {
	called := false
	w := newWorkloadRefs(false, func() (*rest.Config, error) { called = true; return nil, errors.New("unused") })
	_, err := labelsFor(w, "apps/v1", "Deployment", "web")
	if err == nil || err.Error() != "workloadRef check disabled" {
		t.Errorf("err = %v", err)
	}
	if called {
		t.Error("disabled check built a client")
	}
	// End to end: the user is told, and the Rollout is injected.
	o := testOptions(t, "http://127.0.0.1:1")
	o.CheckWorkloadRef = false
	r := postReview(t, webhookMux(t, o), RolloutPath, readFile(t, filepath.Join(goldenDir, "rollout-workloadref-conflict.request.json")))
	if len(r.Patch) == 0 || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "not checked") || !strings.Contains(r.Warnings[0], "workloadRef check disabled") {
		t.Errorf("patch=%s warnings=%q", r.Patch, r.Warnings)
	}
}

// TestWorkloadRefWithoutCluster: no kubeconfig → injected with a "not
// checked" warning; the client is retried after a failure, not forever
// broken.
func TestWorkloadRefWithoutCluster(t *testing.T) {
	api := fakeAPIServer(t, nil)
	var calls atomic.Int32
	w := newWorkloadRefs(true, func() (*rest.Config, error) {
		if calls.Add(1) == 1 {
			return nil, errors.New("invalid configuration: no configuration has been provided")
		}
		return &rest.Config{Host: api.URL}, nil
	})
	w.retryAfter = time.Hour
	if _, err := labelsFor(w, "apps/v1", "Deployment", "web"); err == nil || !strings.Contains(err.Error(), "no Kubernetes API access") {
		t.Fatalf("err = %v", err)
	}
	if _, err := labelsFor(w, "apps/v1", "Deployment", "web"); err == nil || calls.Load() != 1 {
		t.Fatalf("retried within retryAfter (calls %d, err %v)", calls.Load(), err)
	}
	w.retryAfter = 0
	if _, err := labelsFor(w, "apps/v1", "Deployment", "web"); err != nil {
		t.Fatalf("after retry: %v", err)
	}
	if _, err := labelsFor(w, "apps/v1", "Deployment", "web"); err != nil || calls.Load() != 2 {
		t.Fatalf("client not kept (calls %d, err %v)", calls.Load(), err)
	}

	o := testOptions(t, "")
	o.RESTConfig = func() (*rest.Config, error) { return nil, errors.New("no configuration has been provided") }
	r := postReview(t, webhookMux(t, o), RolloutPath, readFile(t, filepath.Join(goldenDir, "rollout-workloadref.request.json")))
	if len(r.Patch) == 0 || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "not checked") {
		t.Errorf("patch=%s warnings=%q", r.Patch, r.Warnings)
	}
}

// TestWorkloadRefTimeout: a slow apiserver cannot hold a review past the
// timeout, even with a request context that never ends.
func TestWorkloadRefTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	api := fakeAPIServer(t, func(*http.Request) { <-release })
	w := newWorkloadRefs(true, fakeConfig(api.URL))
	w.timeout = 100 * time.Millisecond
	start := time.Now()
	if _, err := labelsFor(w, "apps/v1", "Deployment", "web"); err == nil {
		t.Fatal("no error from a hung apiserver")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}
