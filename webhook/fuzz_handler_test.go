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

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/canary-tagger/canary-tagger/webhook/agentpod"
)

// checkPatch checks a patch against the object it applies to and returns
// the patched object. Rollout patches are add-only; agent-pod patches add, or
// replace the value of a DD_KUBERNETES_POD_LABELS_AS_TAGS entry with a JSON
// object that keeps every mapping and gains exactly the configured key. An add
// never overwrites an existing member and only appends to arrays.
func checkPatch(path string, object, patch []byte) ([]byte, error) {
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
		parent, last, err := parentOf(doc, op.Path)
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
				if err := onlyGainsRoleMapping("", *e.Value); err != nil {
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
			if err := onlyGainsRoleMapping(old, nv); err != nil {
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

// onlyGainsRoleMapping: nv is a JSON object of strings holding every entry of old
// (a JSON object of strings, or "") unchanged, plus "role": "kube_role".
func onlyGainsRoleMapping(old, nv string) error {
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

// parentOf resolves an RFC 6901 pointer to its parent container and last token.
func parentOf(doc any, pointer string) (any, string, error) {
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

// checkInvariants runs one body through h and checks the handler's contract.
func checkInvariants(t *testing.T, h http.Handler, path string, body []byte) reviewAnswer {
	t.Helper()
	res := serveRequest(h, http.MethodPost, path, "application/json", body)
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
	req, ok := requestOf(body)
	if !ok {
		t.Fatalf("a patch for a body that does not decode as an AdmissionReview: %s", res)
	}
	patched, err := checkPatch(path, req.Object.Raw, resp.Patch)
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
	res2 := serveRequest(h, http.MethodPost, path, "application/json", again)
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
	seed := seedRollout(f)
	add(RolloutPath, reviewOf(f, RolloutPath, seed))
	add(RolloutPath, reviewOf(f, RolloutPath, rolloutWithUnknownFields(f)))
	add(RolloutPath, reviewWithOperation(f, RolloutPath, "UPDATE", seed))
	add(RolloutPath, []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","resource":{"group":"argoproj.io","version":"v1alpha1","resource":"rollouts"},"operation":"CREATE","object":{"kind":"Rollout","apiVersion":"argoproj.io/v1alpha1","spec":{"strategy":{"canary":{"steps":[{}],"stableMetadata":{"labels":null},"canaryMetadata":{"labels":{"x":"y"}}}}}}}}`))
	add(RolloutPath, []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","resource":{"group":"argoproj.io","version":"v1alpha1","resource":"rollouts"},"operation":"CREATE","object":{"kind":"Rollout","apiVersion":"argoproj.io/v1alpha1","spec":{"strategy":{"canary":{"steps":"x"}}}}}}`))
	add(RolloutPath, []byte(`{"request":{"object":[]}}`))
	add(RolloutPath, []byte(`{`))
	add(AgentPodPath, reviewOf(f, AgentPodPath, operatorAgentPod()))
	add(AgentPodPath, []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","resource":{"version":"v1","resource":"pods"},"operation":"CREATE","object":{"kind":"Pod","metadata":{"labels":{"agent.datadoghq.com/component":"agent"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"DaemonSet"}]},"spec":{"containers":[{"name":"a","env":[{"name":"DD_KUBERNETES_POD_LABELS_AS_TAGS","value":"{\"*\":\"%%label%%\",\"App\":\"+app\"}"}]},{"name":"b","envFrom":[{}]},{"name":"c","env":{}}],"initContainers":[{"name":"init-config","env":[{"name":"DD_KUBERNETES_POD_LABELS_AS_TAGS","value":""}]}]}}}}`))
	for _, file := range []string{"default.yaml", "pod-labels-as-tags.yaml", "role-already-mapped.yaml"} {
		add(AgentPodPath, reviewOf(f, AgentPodPath, helmAgentPod(f, file)))
	}
	h := webhookMux(f, Options{Rules: testRules(f)})
	f.Fuzz(func(t *testing.T, sel uint8, body []byte) {
		path := RolloutPath
		if sel%2 == 1 {
			path = AgentPodPath
		}
		checkInvariants(t, h, path, body)
	})
}
