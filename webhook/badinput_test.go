package webhook

// TestBadInputHTTP is the HTTP half of the bad-input catalogue
// (docs/bad-inputs.md): each case goes through the real server (Run, TLS on
// 127.0.0.1) and has one expected outcome. Whatever the outcome, the answer
// is never a 5xx and any patch passes checkPatch (add-only where it must
// be, applies cleanly, idempotent).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
)

// badInputWant is the expected outcome of a bad input.
type badInputWant int

const (
	wantBadRequest badInputWant = iota // allowed=false, status code 400
	wantTooLarge                       // allowed=false, status code 413
	wantUnchanged                      // allowed, no patch
	wantPatched                        // allowed, a patch that passes checkPatch
)

func (w badInputWant) String() string {
	return [...]string{"400", "413", "allowed, unchanged", "allowed, patched"}[w]
}

type httpBadInput struct {
	name        string // as listed in docs/bad-inputs.md
	path        string // default RolloutPath
	method      string // default POST
	contentType string // default application/json; "-" for none
	body        func(t *testing.T) []byte
	want        badInputWant
	// check inspects the answer further (the patched object for wantPatched).
	check func(t *testing.T, res reviewAnswer, patched map[string]any)
}

func sendOverTLS(t *testing.T, c *http.Client, method, url, contentType string, body []byte) reviewAnswer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "-" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("request failed: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	res := reviewAnswer{HTTPStatus: resp.StatusCode, Raw: raw}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(raw, &review); err == nil && review.Response != nil {
		res.Review = &review
	}
	return res
}

// Object builders for the catalogue.

func seedWith(t *testing.T, edit func(m map[string]any)) map[string]any {
	m := seedRollout(t)
	edit(m)
	return m
}

func canaryWith(m map[string]any) map[string]any {
	return m["spec"].(map[string]any)["strategy"].(map[string]any)["canary"].(map[string]any)
}

func agentPodWith(containers ...any) map[string]any {
	return map[string]any{"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"generateName": "datadog-agent-", "namespace": "datadog",
			"labels": map[string]any{"agent.datadoghq.com/component": "agent"},
			"ownerReferences": []any{map[string]any{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "datadog-agent",
				"uid": "6a0b5a9e-1f3c-4f7e-8a2b-9c0d1e2f3a4b", "controller": true}}},
		"spec": map[string]any{"containers": containers}}
}

func agentContainer(name string, env ...any) map[string]any {
	c := map[string]any{"name": name, "image": "gcr.io/datadoghq/agent:7.81.1"}
	if env != nil {
		c["env"] = env
	}
	return c
}

func envEntry(name, value string) map[string]any { return map[string]any{"name": name, "value": value} }

// rawReview is a review whose object is the given raw JSON text.
func rawReview(t *testing.T, path, object string) []byte {
	return reviewOf(t, path, json.RawMessage(object))
}

func statusOf(patched map[string]any) string {
	s, _ := patched["metadata"].(map[string]any)["annotations"].(map[string]any)["canary-tagger.io/status"].(string)
	return s
}

func envValue(t *testing.T, patched map[string]any, container int) string {
	t.Helper()
	c := patched["spec"].(map[string]any)["containers"].([]any)[container].(map[string]any)
	env, _ := c["env"].([]any)
	for i := len(env) - 1; i >= 0; i-- {
		if e, _ := env[i].(map[string]any); e["name"] == "DD_KUBERNETES_POD_LABELS_AS_TAGS" {
			v, _ := e["value"].(string)
			return v
		}
	}
	return ""
}

func stableLabel(patched map[string]any) any {
	l, _ := canaryWith(patched)["stableMetadata"].(map[string]any)["labels"].(map[string]any)
	return l["role"]
}

func nestedJSON(depth int) string {
	return strings.Repeat("[", depth) + strings.Repeat("]", depth)
}

func httpBadInputs() []httpBadInput {
	seedReview := func(t *testing.T) []byte { return reviewOf(t, RolloutPath, seedRollout(t)) }
	injected := func(t *testing.T, _ reviewAnswer, patched map[string]any) {
		if v := stableLabel(patched); v != "stable" {
			t.Errorf("stableMetadata.labels.role = %v, want stable", v)
		}
	}
	return []httpBadInput{
		// --- the envelope: not an AdmissionReview ---
		{name: "empty body", body: func(*testing.T) []byte { return nil }, want: wantBadRequest},
		{name: "truncated review (first half of the seed's)", body: func(t *testing.T) []byte { b := seedReview(t); return b[:len(b)/2] }, want: wantBadRequest},
		{name: "YAML instead of JSON", body: func(*testing.T) []byte {
			return []byte("apiVersion: admission.k8s.io/v1\nkind: AdmissionReview\nrequest:\n  uid: x\n")
		}, want: wantUnchanged},
		{name: "JSON array", body: func(*testing.T) []byte { return []byte(`[{"kind":"AdmissionReview"}]`) }, want: wantBadRequest},
		{name: "JSON null", body: func(*testing.T) []byte { return []byte(`null`) }, want: wantBadRequest},
		{name: "JSON string", body: func(*testing.T) []byte { return []byte(`"AdmissionReview"`) }, want: wantBadRequest},
		{name: "trailing data after the review", body: func(t *testing.T) []byte { return append(seedReview(t), []byte(`{"x":1}`)...) }, want: wantBadRequest},
		{name: "UTF-8 byte order mark before the review", body: func(t *testing.T) []byte { return append([]byte("\xef\xbb\xbf"), seedReview(t)...) }, want: wantPatched},
		{name: "Content-Type text/plain", contentType: "text/plain", body: seedReview, want: wantBadRequest},
		{name: "no Content-Type", contentType: "-", body: seedReview, want: wantBadRequest},
		{name: "GET without a body", method: http.MethodGet, body: func(*testing.T) []byte { return nil }, want: wantBadRequest},
		{name: "AdmissionReview without request", body: func(*testing.T) []byte {
			return []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`)
		}, want: wantBadRequest},
		{name: "request without uid", body: func(t *testing.T) []byte {
			return bytes.Replace(seedReview(t), []byte(`"uid":"0e8f3c5a-1b2d-4e6f-8a9b-0c1d2e3f4a5b"`), []byte(`"uid":null`), 1)
		}, want: wantBadRequest},
		{name: "apiVersion admission.k8s.io/v2", body: func(t *testing.T) []byte {
			return bytes.Replace(seedReview(t), []byte(`admission.k8s.io/v1`), []byte(`admission.k8s.io/v2`), 1)
		}, want: wantPatched},
		{name: "a Rollout posted instead of a review", body: func(*testing.T) []byte { return []byte(seedRolloutJSON) }, want: wantBadRequest},
		{name: "AdmissionReview carrying a response", body: func(t *testing.T) []byte {
			return bytes.Replace(seedReview(t), []byte(`"request":{`), []byte(`"response":{"uid":"x","allowed":true},"request":{`), 1)
		}, want: wantPatched},
		{name: "v1beta1 AdmissionReview (older apiservers)", body: func(t *testing.T) []byte {
			return bytes.Replace(seedReview(t), []byte(`admission.k8s.io/v1`), []byte(`admission.k8s.io/v1beta1`), 1)
		}, want: wantPatched, check: func(t *testing.T, res reviewAnswer, _ map[string]any) {
			if res.Review.APIVersion != "admission.k8s.io/v1beta1" {
				t.Errorf("answered as %s, want admission.k8s.io/v1beta1", res.Review.APIVersion)
			}
		}},
		{name: "body over 7 MiB (controller-runtime's limit)", body: func(t *testing.T) []byte {
			return reviewOf(t, RolloutPath, seedWith(t, func(m map[string]any) {
				m["metadata"].(map[string]any)["annotations"] = map[string]any{"big": strings.Repeat("x", 8<<20)}
			}))
		}, want: wantTooLarge},
		{name: "JSON nested 20 000 deep (past the decoders' 10 000 limit)", body: func(t *testing.T) []byte {
			b := rawReview(t, RolloutPath, `{"apiVersion":"argoproj.io/v1alpha1","kind":"Rollout","spec":{"x":"NESTED"}}`)
			return bytes.Replace(b, []byte(`"NESTED"`), []byte(nestedJSON(20000)), 1)
		}, want: wantBadRequest},
		// --- the object is not an object ---
		{name: "request.object is a string", body: func(t *testing.T) []byte { return rawReview(t, RolloutPath, `"Rollout"`) }, want: wantBadRequest},
		{name: "request.object is an array", body: func(t *testing.T) []byte { return rawReview(t, RolloutPath, `[`+seedRolloutJSON+`]`) }, want: wantBadRequest},
		{name: "request.object is null on CREATE", body: func(t *testing.T) []byte { return rawReview(t, RolloutPath, `null`) }, want: wantBadRequest},
		{name: "number out of float64 range in an unknown field (1e400)", body: func(t *testing.T) []byte {
			return rawReview(t, RolloutPath, strings.Replace(seedRolloutJSON, `"replicas":5`, `"replicas":5,"futureRatio":1e400`, 1))
		}, want: wantPatched, check: injected},
		// --- null everywhere ---
		{name: "every request field null", body: func(*testing.T) []byte {
			return []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":null,"resource":null,"requestKind":null,"name":null,"namespace":null,"operation":null,"userInfo":null,"object":null,"oldObject":null,"dryRun":null,"options":null}}`)
		}, want: wantUnchanged},
		{name: "Rollout with metadata, spec and status null", body: func(t *testing.T) []byte {
			return rawReview(t, RolloutPath, `{"apiVersion":"argoproj.io/v1alpha1","kind":"Rollout","metadata":null,"spec":null,"status":null}`)
		}, want: wantUnchanged},
		{name: "null stableMetadata, null labels and annotations in canaryMetadata", body: func(t *testing.T) []byte {
			return reviewOf(t, RolloutPath, seedWith(t, func(m map[string]any) {
				canaryWith(m)["stableMetadata"] = nil
				canaryWith(m)["canaryMetadata"] = map[string]any{"labels": nil, "annotations": nil}
			}))
		}, want: wantPatched, check: func(t *testing.T, _ reviewAnswer, patched map[string]any) {
			injected(t, reviewAnswer{}, patched)
			if cm := canaryWith(patched)["canaryMetadata"].(map[string]any); cm["annotations"] != nil || cm["labels"].(map[string]any)["role"] != "canary" {
				t.Errorf("canaryMetadata = %v, want labels.role=canary and annotations still null", cm)
			}
		}},
		// --- fields of unexpected types: left alone, never repaired ---
		{name: `steps: "x"`, body: func(t *testing.T) []byte {
			return reviewOf(t, RolloutPath, seedWith(t, func(m map[string]any) { canaryWith(m)["steps"] = "x" }))
		}, want: wantUnchanged},
		{name: "stableMetadata.labels: []", body: func(t *testing.T) []byte {
			return reviewOf(t, RolloutPath, seedWith(t, func(m map[string]any) {
				canaryWith(m)["stableMetadata"] = map[string]any{"labels": []any{}}
			}))
		}, want: wantUnchanged},
		{name: `selector.matchLabels: "role"`, body: func(t *testing.T) []byte {
			return reviewOf(t, RolloutPath, seedWith(t, func(m map[string]any) {
				m["spec"].(map[string]any)["selector"] = map[string]any{"matchLabels": "role"}
			}))
		}, want: wantUnchanged},
		{name: "template.metadata.labels: 42", body: func(t *testing.T) []byte {
			return reviewOf(t, RolloutPath, seedWith(t, func(m map[string]any) {
				m["spec"].(map[string]any)["template"].(map[string]any)["metadata"] = map[string]any{"labels": 42}
			}))
		}, want: wantUnchanged},
		{name: "agent container with env: {}", path: AgentPodPath, body: func(t *testing.T) []byte {
			c := agentContainer("agent")
			c["env"] = map[string]any{}
			return reviewOf(t, AgentPodPath, agentPodWith(c, agentContainer("trace-agent")))
		}, want: wantPatched, check: func(t *testing.T, _ reviewAnswer, patched map[string]any) {
			if c := patched["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any); fmt.Sprint(c["env"]) != "map[]" {
				t.Errorf("env: {} was changed to %v", c["env"])
			}
			if s := statusOf(patched); !strings.Contains(s, "agent: skipped") || !strings.Contains(s, "trace-agent: injected") {
				t.Errorf("status annotation %q: want agent skipped, trace-agent injected", s)
			}
		}},
		{name: "agent pod with spec.containers: {}", path: AgentPodPath, body: func(t *testing.T) []byte {
			p := agentPodWith()
			p["spec"] = map[string]any{"containers": map[string]any{"agent": map[string]any{}}}
			return reviewOf(t, AgentPodPath, p)
		}, want: wantUnchanged},
		{name: `agent pod with ownerReferences: "x"`, path: AgentPodPath, body: func(t *testing.T) []byte {
			p := agentPodWith(agentContainer("agent"))
			p["metadata"].(map[string]any)["ownerReferences"] = "x"
			return reviewOf(t, AgentPodPath, p)
		}, want: wantUnchanged},
		{name: "agent pod with metadata.labels: []", path: AgentPodPath, body: func(t *testing.T) []byte {
			p := agentPodWith(agentContainer("agent"))
			p["metadata"].(map[string]any)["labels"] = []any{}
			return reviewOf(t, AgentPodPath, p)
		}, want: wantUnchanged},
		{name: "DD_KUBERNETES_POD_LABELS_AS_TAGS that is not JSON", path: AgentPodPath, body: func(t *testing.T) []byte {
			return reviewOf(t, AgentPodPath, agentPodWith(agentContainer("agent", envEntry("DD_KUBERNETES_POD_LABELS_AS_TAGS", "app:kube_app"))))
		}, want: wantPatched, check: func(t *testing.T, _ reviewAnswer, patched map[string]any) {
			if v := envValue(t, patched, 0); v != "app:kube_app" {
				t.Errorf("value rewritten to %q", v)
			}
			if s := statusOf(patched); !strings.Contains(s, "skipped") || !strings.Contains(s, "no pod label becomes a tag") {
				t.Errorf("status annotation %q does not say the agent drops the value", s)
			}
		}},
		// --- wrong kinds: allowed unchanged ---
		{name: "a Pod sent to /mutate-rollout", body: func(t *testing.T) []byte {
			b := reviewOf(t, AgentPodPath, operatorAgentPod())
			return b
		}, want: wantUnchanged},
		{name: "a Rollout sent to /mutate-agent-pod", path: AgentPodPath, body: seedReview, want: wantUnchanged},
		{name: "rollouts request whose object is a ConfigMap", body: func(t *testing.T) []byte {
			return rawReview(t, RolloutPath, `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"demo"},"data":{"steps":"x"}}`)
		}, want: wantUnchanged},
		{name: "rollouts/status subresource", body: func(t *testing.T) []byte {
			var m map[string]any
			_ = json.Unmarshal(seedReview(t), &m)
			m["request"].(map[string]any)["subResource"] = "status"
			b, _ := json.Marshal(m)
			return b
		}, want: wantUnchanged},
		{name: "DELETE with object null", body: func(t *testing.T) []byte {
			var m map[string]any
			_ = json.Unmarshal(reviewWithOperation(t, RolloutPath, "DELETE", nil), &m)
			m["request"].(map[string]any)["oldObject"] = seedRollout(t)
			b, _ := json.Marshal(m)
			return b
		}, want: wantUnchanged},
		// --- duplicate keys and invalid UTF-8 ---
		{name: "duplicate key in the object (spec twice: last wins, as in the apiserver)", body: func(t *testing.T) []byte {
			return rawReview(t, RolloutPath, strings.Replace(seedRolloutJSON, `"spec":{`, `"spec":{"strategy":null},"spec":{`, 1))
		}, want: wantPatched, check: injected},
		{name: "duplicate key inside DD_KUBERNETES_POD_LABELS_AS_TAGS", path: AgentPodPath, body: func(t *testing.T) []byte {
			return reviewOf(t, AgentPodPath, agentPodWith(agentContainer("agent", envEntry("DD_KUBERNETES_POD_LABELS_AS_TAGS", `{"app":"a","app":"b"}`))))
		}, want: wantPatched, check: func(t *testing.T, _ reviewAnswer, patched map[string]any) {
			if v := envValue(t, patched, 0); v != `{"app":"a","app":"b"}` {
				t.Errorf("value rewritten to %q", v)
			}
			if s := statusOf(patched); !strings.Contains(s, "agent: skipped") || !strings.Contains(s, "duplicate") {
				t.Errorf("status annotation %q does not report the duplicate key", s)
			}
		}},
		{name: "invalid UTF-8 in a label value of the Rollout", body: func(t *testing.T) []byte {
			return rawReview(t, RolloutPath, strings.Replace(seedRolloutJSON, `"labels":{"app":"demo"}`, "\"labels\":{\"app\":\"demo\xff\xfe\"}", 1))
		}, want: wantPatched, check: injected},
		{name: "invalid UTF-8 inside DD_KUBERNETES_POD_LABELS_AS_TAGS", path: AgentPodPath, body: func(t *testing.T) []byte {
			b := reviewOf(t, AgentPodPath, agentPodWith(agentContainer("agent", envEntry("DD_KUBERNETES_POD_LABELS_AS_TAGS", `{"app":"kube_appXX"}`))))
			return bytes.Replace(b, []byte("kube_appXX"), []byte("kube_app\xff\xfe"), 1)
		}, want: wantPatched},
		// --- large but legal ---
		{name: "3 MiB Rollout (one large annotation)", body: func(t *testing.T) []byte {
			return reviewOf(t, RolloutPath, seedWith(t, func(m map[string]any) {
				m["metadata"].(map[string]any)["annotations"] = map[string]any{"big": strings.Repeat("x", 3<<20)}
			}))
		}, want: wantPatched, check: injected},
		{name: "JSON nested 5 000 deep in an unknown field", body: func(t *testing.T) []byte {
			return rawReview(t, RolloutPath, strings.Replace(seedRolloutJSON, `"replicas":5`, `"replicas":5,"future":`+nestedJSON(5000), 1))
		}, want: wantPatched, check: injected},
		{name: "10 000 canary steps", body: func(t *testing.T) []byte {
			steps := make([]any, 10000)
			for i := range steps {
				steps[i] = map[string]any{"setWeight": i % 100}
			}
			return reviewOf(t, RolloutPath, seedWith(t, func(m map[string]any) { canaryWith(m)["steps"] = steps }))
		}, want: wantPatched, check: injected},
		{name: "10 000 env entries in an agent container", path: AgentPodPath, body: func(t *testing.T) []byte {
			env := make([]any, 10000)
			for i := range env {
				env[i] = envEntry(fmt.Sprintf("VAR_%05d", i), "x")
			}
			return reviewOf(t, AgentPodPath, agentPodWith(agentContainer("agent", env...)))
		}, want: wantPatched, check: func(t *testing.T, res reviewAnswer, patched map[string]any) {
			if v := envValue(t, patched, 0); v != `{"role":"kube_role"}` {
				t.Errorf("value %q", v)
			}
			if n := len(res.resp().Patch); n > 4096 {
				t.Errorf("patch is %d bytes for one appended entry and an annotation", n)
			}
		}},
		{name: "10 000 containers in an agent pod", path: AgentPodPath, body: func(t *testing.T) []byte {
			return reviewOf(t, AgentPodPath, agentPodWith(manyContainers("agent-%05d", 10000)...))
		}, want: wantPatched, check: annotationsFit},
		{name: "10 000 containers with 63-character names (the longest allowed)", path: AgentPodPath, body: func(t *testing.T) []byte {
			return reviewOf(t, AgentPodPath, agentPodWith(manyContainers("agent-%05d-"+strings.Repeat("x", 51), 10000)...))
		}, want: wantPatched, check: annotationsFit},
	}
}

func manyContainers(nameFormat string, n int) []any {
	cs := make([]any, n)
	for i := range cs {
		cs[i] = agentContainer(fmt.Sprintf(nameFormat, i))
	}
	return cs
}

// annotationsFit: the apiserver validates the pod after admission and
// refuses annotations over 256 KiB in total, so the status annotation must
// never turn an admissible pod into one that is refused.
func annotationsFit(t *testing.T, _ reviewAnswer, patched map[string]any) {
	total := 0
	for k, v := range patched["metadata"].(map[string]any)["annotations"].(map[string]any) {
		s, _ := v.(string)
		total += len(k) + len(s)
	}
	if total > 256<<10 {
		t.Errorf("annotations total %d bytes > 262144, the apiserver's limit (TotalAnnotationSizeLimitB): the mutated pod would be rejected", total)
	}
	n := len(patched["spec"].(map[string]any)["containers"].([]any))
	if v := envValue(t, patched, n-1); v != `{"role":"kube_role"}` {
		t.Errorf("last container's value %q", v)
	}
}

// TestBadInputHTTP runs the catalogue through Run over TLS on loopback.
func TestBadInputHTTP(t *testing.T) {
	o := testOptions(t, "http://127.0.0.1:1")
	o.CheckWorkloadRef = false
	s := startServer(t, o)
	s.waitReady(t)
	url, c := s.webhook, s.client
	for _, tc := range httpBadInputs() {
		t.Run(tc.name, func(t *testing.T) {
			path, method, ct := tc.path, tc.method, tc.contentType
			if path == "" {
				path = RolloutPath
			}
			if method == "" {
				method = http.MethodPost
			}
			if ct == "" {
				ct = "application/json"
			}
			body := tc.body(t)
			start := time.Now()
			res := sendOverTLS(t, c, method, url+path, ct, body)
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("answered in %s", d.Round(time.Millisecond))
			}
			if res.HTTPStatus >= 500 || res.Code() >= 500 {
				t.Fatalf("want %s, got a 5xx: %s", tc.want, res)
			}
			resp := res.resp()
			if resp == nil {
				t.Fatalf("want %s, got no AdmissionReview: %s", tc.want, res)
			}
			switch tc.want {
			case wantBadRequest, wantTooLarge:
				want := http.StatusBadRequest
				if tc.want == wantTooLarge {
					want = http.StatusRequestEntityTooLarge
				}
				if resp.Allowed || res.Code() != want {
					t.Fatalf("want %s, got allowed=%v code %d: %s", tc.want, resp.Allowed, res.Code(), res)
				}
				if resp.Result == nil || resp.Result.Message == "" {
					t.Errorf("no message says what is wrong: %s", res)
				}
				if tc.check != nil {
					tc.check(t, res, nil)
				}
			case wantUnchanged:
				if !resp.Allowed || len(resp.Patch) > 0 {
					t.Fatalf("want %s, got allowed=%v patch %s: %s", tc.want, resp.Allowed, resp.Patch, res)
				}
				if tc.check != nil {
					tc.check(t, res, nil)
				}
			case wantPatched:
				if !resp.Allowed || len(resp.Patch) == 0 {
					t.Fatalf("want %s, got allowed=%v code %d patch %q: %s", tc.want, resp.Allowed, res.Code(), resp.Patch, res)
				}
				req, ok := requestOf(body)
				if !ok {
					t.Fatal("the body does not decode as a review")
				}
				out, err := checkPatch(path, req.Object.Raw, resp.Patch)
				if err != nil {
					t.Fatalf("%v\npatch: %.1000s", err, resp.Patch)
				}
				var patched map[string]any
				dec := json.NewDecoder(bytes.NewReader(out))
				dec.UseNumber()
				if err := dec.Decode(&patched); err != nil {
					t.Fatal(err)
				}
				if tc.check != nil {
					tc.check(t, res, patched)
				}
			}
		})
	}
}

// TestBadInputDocs keeps docs/bad-inputs.md in step with the catalogue.
func TestBadInputDocs(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "bad-inputs.md"))
	if err != nil {
		t.Fatalf("docs/bad-inputs.md: %v", err)
	}
	for _, tc := range httpBadInputs() {
		row := regexp.MustCompile(`(?m)^\| *H\d+ *\| *` + regexp.QuoteMeta(catalogueName(tc.name)) + " *(\\(`[^`]*`\\))? *\\|")
		if !row.Match(doc) {
			t.Errorf("docs/bad-inputs.md has no HTTP row for %q", tc.name)
		}
	}
}

// catalogueName is a case name as written in a Markdown table cell.
func catalogueName(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
