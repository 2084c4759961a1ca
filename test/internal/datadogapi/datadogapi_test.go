package datadogapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/canary-tagger/canary-tagger/test/internal/harness"
)

// post sends a v2 scalar request the way Argo Rollouts' provider does: a
// body without Content-Length (so chunked), the two key headers, times in
// milliseconds, aggregator and data_source on every query.
func post(t *testing.T, url string, queries map[string]string, formula, aggregator string) (int, []byte) {
	t.Helper()
	var qs []map[string]string
	for name, q := range queries {
		qs = append(qs, map[string]string{"aggregator": aggregator, "data_source": "metrics", "name": name, "query": q})
	}
	formulas := []map[string]string{}
	if formula != "" {
		formulas = append(formulas, map[string]string{"formula": formula})
	}
	now := time.Now().Unix()
	body, err := json.Marshal(map[string]any{"data": map[string]any{
		"type": "scalar_request",
		"attributes": map[string]any{
			"from": (now - 300) * 1000, "to": now * 1000, "queries": qs, "formulas": formulas,
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return send(t, http.MethodPost, url+ScalarPath, io.NopCloser(bytes.NewReader(body)), true)
}

func send(t *testing.T, method, url string, body io.ReadCloser, keys bool) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if keys {
		req.Header.Set("DD-API-KEY", "api")
		req.Header.Set("DD-APPLICATION-KEY", "app")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

// firstValue reads the answer as the provider does: columns[0].values[0].
func firstValue(t *testing.T, body []byte) *float64 {
	t.Helper()
	var res struct {
		Data struct {
			Attributes struct {
				Columns []struct{ Values []*float64 }
			}
			Errors string
		}
	}
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatalf("answer is not JSON: %v\n%s", err, body)
	}
	if res.Data.Errors != "" {
		t.Fatalf("answer has errors: %s", res.Data.Errors)
	}
	cols := res.Data.Attributes.Columns
	if len(cols) != 1 || len(cols[0].Values) != 1 {
		t.Fatalf("want one column with one value, got %s", body)
	}
	return cols[0].Values[0]
}

func ratioQueries(filter string) map[string]string {
	q := func(metric, role string) string {
		return fmt.Sprintf("sum:%s{service:shop,%s:%s}.as_count()", metric, filter, role)
	}
	return map[string]string{
		"canary_errors":   "default_zero(" + q("http.errors", "canary") + ")",
		"canary_requests": q("http.requests", "canary"),
		"stable_errors":   "default_zero(" + q("http.errors", "stable") + ")",
		"stable_requests": q("http.requests", "stable"),
	}
}

const ratioFormula = "canary_errors / canary_requests - stable_errors / stable_requests"

func TestAnswersFromTheTableByRole(t *testing.T) {
	s := Start(Scenario{Values: map[Series]float64{
		{"http.errors", "canary"}: 30, {"http.requests", "canary"}: 100,
		{"http.errors", "stable"}: 2, {"http.requests", "stable"}: 200,
	}})
	defer s.Close()

	status, body := post(t, s.URL(), ratioQueries("kube_role"), ratioFormula, "sum")
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	v := firstValue(t, body)
	if v == nil || math.Abs(*v-(0.30-0.01)) > 1e-12 {
		t.Fatalf("value %v, want 0.29", v)
	}

	reqs := s.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests recorded, want 1", len(reqs))
	}
	r := reqs[0]
	if !r.Chunked {
		t.Error("the request had a Content-Length; the provider's has none")
	}
	if r.APIKey != "api" || r.AppKey != "app" || r.Type != "scalar_request" || r.Formula != ratioFormula {
		t.Errorf("recorded %+v", r)
	}
	if got := r.Window(); got != 5*time.Minute {
		t.Errorf("window %s, want 5m", got)
	}
	if got, want := r.Roles(), []string{"canary", "stable"}; !reflect.DeepEqual(got, want) {
		t.Errorf("roles %v, want %v", got, want)
	}
	for _, q := range r.Queries {
		if q.Aggregator != "sum" || q.DataSource != "metrics" || q.Space != "sum" {
			t.Errorf("query %s: aggregator %q data_source %q space %q", q.Name, q.Aggregator, q.DataSource, q.Space)
		}
		if want := []string{"service:shop", "kube_role:" + q.Role}; !reflect.DeepEqual(q.Filters, want) {
			t.Errorf("query %s: filters %v, want %v", q.Name, q.Filters, want)
		}
		if q.Value == nil {
			t.Errorf("query %s: no value recorded", q.Name)
		}
	}
}

func TestNoDataIsNull(t *testing.T) {
	cases := []struct {
		name   string
		values map[Series]float64
		want   *float64
	}{
		{"no errors anywhere: default_zero gives 0", map[Series]float64{
			{"http.requests", "canary"}: 10, {"http.requests", "stable"}: 10}, ptr(0)},
		{"no canary requests: null", map[Series]float64{
			{"http.errors", "stable"}: 1, {"http.requests", "stable"}: 10}, nil},
		{"canary requests 0: division by zero, null", map[Series]float64{
			{"http.requests", "canary"}: 0, {"http.requests", "stable"}: 10}, nil},
		{"nothing at all: null", nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := Start(Scenario{Values: c.values})
			defer s.Close()
			status, body := post(t, s.URL(), ratioQueries("kube_role"), ratioFormula, "sum")
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, body)
			}
			got := firstValue(t, body)
			if (got == nil) != (c.want == nil) || (got != nil && *got != *c.want) {
				t.Fatalf("value %s, want %s (body %s)", show(got), show(c.want), body)
			}
			if !bytes.Contains(body, []byte(`"values":[`)) {
				t.Errorf("no values array in %s", body)
			}
		})
	}
}

func TestQueryWithoutFormula(t *testing.T) {
	s := Start(Scenario{Values: map[Series]float64{{"http.request.duration", "canary"}: 0.25}})
	defer s.Close()
	status, body := post(t, s.URL(), map[string]string{"query": "p95:http.request.duration{kube_role:canary}"}, "", "percentile")
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	if v := firstValue(t, body); v == nil || *v != 0.25 {
		t.Fatalf("value %s, want 0.25", show(v))
	}
	if q := s.Requests()[0].Queries[0]; q.Space != "p95" || q.Aggregator != "percentile" || q.Role != "canary" {
		t.Errorf("recorded %+v", q)
	}
}

func TestEvalFormula(t *testing.T) {
	vals := map[string]*float64{"a": ptr(6), "b": ptr(3), "c": ptr(0.5), "none": nil, "zero": ptr(0)}
	ok := []struct {
		formula string
		want    *float64
	}{
		{"a / b", ptr(2)},
		{"a - b * c", ptr(4.5)},
		{"(a - b) * c", ptr(1.5)},
		{"-a + b", ptr(-3)},
		{"a / b / 2", ptr(1)},
		{"a + 1.5", ptr(7.5)},
		{"1 + 1", ptr(2)},
		{"a / zero", nil},
		{"zero / zero", nil},
		{"a + none", nil},
	}
	for _, c := range ok {
		got, err := EvalFormula(c.formula, vals)
		if err != nil {
			t.Errorf("%s: %v", c.formula, err)
			continue
		}
		if (got == nil) != (c.want == nil) || (got != nil && math.Abs(*got-*c.want) > 1e-12) {
			t.Errorf("%s = %s, want %s", c.formula, show(got), show(c.want))
		}
	}
	for _, bad := range []string{"a / unknown", "abs(a)", "a > b", "a ** 2", "a % b", "a == b", `"x"`, "a.b", "a /", ""} {
		if got, err := EvalFormula(bad, vals); err == nil {
			t.Errorf("%q: accepted (value %s)", bad, show(got))
		}
	}
}

func TestRefusesWhatDatadogWouldNotAnswer(t *testing.T) {
	s := Start(Scenario{Values: map[Series]float64{{"m", "canary"}: 1}})
	defer s.Close()
	cases := []struct {
		name    string
		queries map[string]string
		formula string
		status  int
	}{
		{"no role filter", map[string]string{"q": "sum:m{service:shop}"}, "", 400},
		{"role filter twice", map[string]string{"q": "sum:m{kube_role:canary,kube_role:stable}"}, "", 400},
		{"an unresolved Argo argument", map[string]string{"q": "sum:m{kube_role:{{args.canary-value}}}"}, "", 400},
		{"two queries, no formula", map[string]string{"a": "sum:m{kube_role:canary}", "b": "sum:m{kube_role:stable}"}, "", 400},
		{"formula naming an unknown query", map[string]string{"a": "sum:m{kube_role:canary}"}, "a / b", 400},
		{"not a query", map[string]string{"a": "m"}, "", 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := post(t, s.URL(), c.queries, c.formula, "sum")
			if status != c.status {
				t.Fatalf("status %d, want %d: %s", status, c.status, body)
			}
			if status != 200 && !bytes.Contains(body, []byte(`"errors"`)) {
				t.Errorf("refusal without errors: %s", body)
			}
		})
	}
	if status, _ := send(t, http.MethodPost, s.URL()+ScalarPath, io.NopCloser(strings.NewReader("{}")), false); status != http.StatusForbidden {
		t.Errorf("no keys: status %d, want 403", status)
	}
	if status, _ := send(t, http.MethodGet, s.URL()+"/api/v1/query?query=x", nil, true); status != http.StatusNotFound {
		t.Errorf("v1: status %d, want 404 (no template uses it)", status)
	}
	if status, _ := send(t, http.MethodPost, s.URL()+ScalarPath, io.NopCloser(strings.NewReader("not json")), true); status != http.StatusBadRequest {
		t.Errorf("garbage request: status %d, want 400", status)
	}
	if got := len(s.Requests()); got != len(cases)+3 {
		t.Errorf("%d requests recorded, want %d: refused ones are recorded too", got, len(cases)+3)
	}
}

func TestScenarioFaults(t *testing.T) {
	queries := map[string]string{"q": "sum:m{kube_role:canary}"}
	s := Start(Scenario{Status: http.StatusInternalServerError})
	defer s.Close()
	if status, body := post(t, s.URL(), queries, "", "sum"); status != 500 || !bytes.Contains(body, []byte("errors")) {
		t.Errorf("status %d body %s, want 500 with errors", status, body)
	}
	s.SetScenario(Scenario{Body: "<html>not json"})
	if status, body := post(t, s.URL(), queries, "", "sum"); status != 200 || string(body) != "<html>not json" {
		t.Errorf("status %d body %q, want the garbage verbatim", status, body)
	}
	s.SetScenario(Scenario{Values: map[Series]float64{{"m", "canary"}: 4}})
	if status, body := post(t, s.URL(), queries, "", "sum"); status != 200 || *firstValue(t, body) != 4 {
		t.Errorf("status %d body %s, want 4", status, body)
	}
	if n := len(s.RequestsSince(2)); n != 1 {
		t.Errorf("RequestsSince(2): %d, want 1", n)
	}
}

// TestShippedTemplates resolves each template of manifests/analysis with its
// default arguments, as Argo Rollouts does ({{args.name}} replaced), and
// sends its queries: the stand-in must understand every one, each filtered on
// exactly one role, and the formula must name them.
func TestShippedTemplates(t *testing.T) {
	repo, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(repo, "manifests", "analysis", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		seen++
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var tmpl struct {
				Spec struct {
					Args []struct {
						Name  string
						Value *string
					}
					Metrics []struct {
						Provider struct {
							Datadog struct {
								APIVersion string `json:"apiVersion"`
								Aggregator string
								Queries    map[string]string
								Formula    string
							}
						}
					}
				}
			}
			if err := yaml.UnmarshalStrict(onlyKnown(t, raw), &tmpl); err != nil {
				t.Fatal(err)
			}
			args := map[string]string{"service": "shop"}
			for _, a := range tmpl.Spec.Args {
				if a.Value != nil {
					args[a.Name] = *a.Value
				}
			}
			resolve := func(s string) string {
				return regexp.MustCompile(`\{\{\s*args\.([a-z-]+)\s*\}\}`).ReplaceAllStringFunc(s, func(m string) string {
					name := regexp.MustCompile(`args\.([a-z-]+)`).FindStringSubmatch(m)[1]
					v, ok := args[name]
					if !ok {
						t.Fatalf("argument %s has no default and is not set by the test", name)
					}
					return v
				})
			}
			if len(tmpl.Spec.Metrics) == 0 {
				t.Fatal("no metrics")
			}
			s := Start(Scenario{})
			defer s.Close()
			for _, m := range tmpl.Spec.Metrics {
				dd := m.Provider.Datadog
				if dd.APIVersion != "v2" {
					t.Errorf("apiVersion %q: queries, formula and aggregator need v2", dd.APIVersion)
				}
				queries := map[string]string{}
				for name, q := range dd.Queries {
					queries[name] = resolve(q)
				}
				status, body := post(t, s.URL(), queries, resolve(dd.Formula), dd.Aggregator)
				if status != http.StatusOK {
					t.Fatalf("status %d: %s", status, body)
				}
			}
			for _, r := range s.Requests() {
				if got := r.Roles(); !reflect.DeepEqual(got, []string{"canary", "stable"}) {
					t.Errorf("roles %v, want [canary stable]", got)
				}
				for _, q := range r.Queries {
					if !strings.Contains(r.Formula, q.Name) {
						t.Errorf("query %s is not in the formula %q", q.Name, r.Formula)
					}
				}
			}
		})
	}
	if seen != 2 {
		t.Errorf("%d templates in manifests/analysis, want 2", seen)
	}
}

// onlyKnown drops the template's metadata and the metric fields this test
// does not read, so UnmarshalStrict only checks the provider part.
func onlyKnown(t *testing.T, raw []byte) []byte {
	t.Helper()
	var obj map[string]any
	if err := yaml.Unmarshal(raw, &obj); err != nil {
		t.Fatal(err)
	}
	spec := obj["spec"].(map[string]any)
	metrics := spec["metrics"].([]any)
	for i, m := range metrics {
		mm := m.(map[string]any)
		metrics[i] = map[string]any{"provider": mm["provider"]}
		dd := mm["provider"].(map[string]any)["datadog"].(map[string]any)
		delete(dd, "interval")
	}
	out, err := yaml.Marshal(map[string]any{"spec": map[string]any{"args": spec["args"], "metrics": metrics}})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func ptr(f float64) *float64 { return &f }

func show(f *float64) string {
	if f == nil {
		return "null"
	}
	return fmt.Sprint(*f)
}
