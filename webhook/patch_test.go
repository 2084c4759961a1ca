package webhook

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/go-logr/logr/funcr"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/canary-tagger/canary-tagger/webhook/agentpod"
	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
	"github.com/canary-tagger/canary-tagger/webhook/rollout"
)

// TestTreePatchMatchesPatchResponseFromRaw: on every golden object, the
// patch built from the rule's copy-on-write trees turns the submitted object
// into the same object as admission.PatchResponseFromRaw's patch does.
func TestTreePatchMatchesPatchResponseFromRaw(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.request.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden requests: %v", err)
	}
	compared := 0
	for _, f := range files {
		var review admissionv1.AdmissionReview
		if err := json.Unmarshal(readFile(t, f), &review); err != nil || review.Request == nil {
			continue // the malformed-body cases
		}
		if checkTreePatch(t, filepath.Base(f), review.Request.Object.Raw) {
			compared++
		}
	}
	if compared < 5 {
		t.Fatalf("only %d golden objects were changed by a rule: the comparison proves little", compared)
	}
}

// FuzzTreePatch: the same comparison on arbitrary objects.
func FuzzTreePatch(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(goldenDir, "*.request.json"))
	for _, file := range files {
		var review admissionv1.AdmissionReview
		if b, err := os.ReadFile(file); err == nil && json.Unmarshal(b, &review) == nil && review.Request != nil {
			f.Add([]byte(review.Request.Object.Raw))
		}
	}
	f.Add([]byte(`{"kind":"Rollout","apiVersion":"argoproj.io/v1alpha1","spec":{"strategy":{"canary":{"steps":[{}],"stableMetadata":null,"canaryMetadata":{"labels":null}}}}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkTreePatch(t, "fuzz", raw)
	})
}

// checkTreePatch runs both rules on raw and compares the two patches'
// results; it reports whether a rule changed the object.
func checkTreePatch(t *testing.T, name string, raw []byte) bool {
	t.Helper()
	in, err := obj.Decode(raw)
	if err != nil {
		return false
	}
	rules := testRules(t)
	noRef := func(rollout.WorkloadRef) (map[string]string, error) { return nil, os.ErrNotExist }
	changed := false
	for _, out := range []map[string]any{
		first(rollout.Mutate(in, rules.Rollout, noRef)),
		first(agentpod.MutatePod(in, rules.AgentPod)),
	} {
		if len(treePatch(in, in)) != 0 {
			t.Fatalf("%s: an object diffed with itself gives a patch", name)
		}
		ops := treePatch(in, out)
		if len(ops) == 0 {
			continue
		}
		changed = true
		b, err := json.Marshal(out)
		if err != nil {
			t.Fatal(err)
		}
		ref := admission.PatchResponseFromRaw(raw, b)
		got, want := applyOps(t, raw, ops), applyOps(t, raw, ref.Patches)
		if !jsonEqual(t, got, want) {
			t.Fatalf("%s: tree patch and PatchResponseFromRaw differ\n tree: %s\n  ref: %s", name, got, want)
		}
		for _, op := range ops {
			if op.Operation != "add" && !strings.HasSuffix(op.Path, "/value") {
				t.Errorf("%s: %s %s: the rules only add fields and rewrite an env value", name, op.Operation, op.Path)
			}
		}
	}
	return changed
}

func first[T, U any](a T, _ U) T { return a }

func applyOps(t *testing.T, raw []byte, ops any) []byte {
	t.Helper()
	b, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	p, err := jsonpatch.DecodePatch(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("patch %s does not apply: %v", b, err)
	}
	return out
}

// TestRunRuleWholeObjectWhenShapeLeaks: a rule whose output carries a member
// its shape did not decode gets the whole object instead, and the log says so.
func TestRunRuleWholeObjectWhenShapeLeaks(t *testing.T) {
	raw := []byte(`{"kind":"X","spec":{"a":{"b":1}}}`)
	shaped, err := obj.DecodeShape(raw, obj.Shape{"kind": nil})
	if err != nil || shaped["spec"] != obj.Skipped {
		t.Fatalf("shaped decode: %v %v", shaped, err)
	}
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		Object: runtime.RawExtension{Raw: raw, Object: &unstructured.Unstructured{Object: shaped}}}}
	copySpec := func(in map[string]any) (map[string]any, int) {
		out := obj.CopyMap(in)
		out["copy"] = in["spec"]
		return out, len(in)
	}
	var logged []string
	log := funcr.New(func(prefix, args string) { logged = append(logged, args) }, funcr.Options{})
	_, ops, _, err := runRule(req, log, copySpec)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(ops)
	if want := `[{"op":"add","path":"/copy","value":{"a":{"b":1}}}]`; string(got) != want {
		t.Errorf("ops %s, want %s", got, want)
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "did not decode") {
		t.Errorf("logged %q", logged)
	}
	// A rule that stays within its shape: no second run, nothing logged.
	logged = nil
	if _, ops, _, err = runRule(req, log, func(in map[string]any) (map[string]any, int) {
		out := obj.CopyMap(in)
		out["kind"] = "Y"
		return out, 0
	}); err != nil || len(ops) != 1 || len(logged) != 0 {
		t.Errorf("ops %v, err %v, logged %q", ops, err, logged)
	}
}
