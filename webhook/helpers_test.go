package webhook

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/canary-tagger/canary-tagger/webhook/config"
)

func TestMain(m *testing.M) {
	// controller-runtime's own messages; without a logger it complains.
	logf.SetLogger(logr.Discard())
	os.Exit(m.Run())
}

func testRules(t *testing.T) config.Rules {
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

// newTestWebhookServer serves the handlers Run registers, over plain HTTP.
func newTestWebhookServer(t *testing.T, o Options) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	for path, wh := range newWebhooks(o) {
		mux.Handle(path, wh)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
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
