package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
)

// crDecode reads body as controller-runtime's admission.Webhook does: the
// request its handler would get, and the apiVersion of its answer; ok is
// false if it refused the body.
func crDecode(body []byte) (apiVersion string, req admission.Request, ok bool) {
	wh := &admission.Webhook{Handler: admission.HandlerFunc(func(_ context.Context, r admission.Request) admission.Response {
		req, ok = r, true
		return admission.Allowed("")
	})}
	httpReq := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	httpReq.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	wh.ServeHTTP(w, httpReq)
	var answer struct {
		APIVersion string `json:"apiVersion"`
	}
	_ = json.Unmarshal(w.Body.Bytes(), &answer)
	return answer.APIVersion, req, ok
}

// checkReview fails unless decodeReview reads body as controller-runtime
// does: the same request (request.object decoded as obj.Decode would) and
// answer apiVersion, or both refuse it. decodeReview is stricter on purpose in
// two ways: it refuses what is not JSON (controller-runtime also reads YAML),
// and valid JSON that is not a review it answers (notAReview).
func checkReview(t *testing.T, body []byte) {
	t.Helper()
	apiVersion, req, err := decodeReview(body, nil)
	if !json.Valid(body) {
		if err == nil {
			t.Fatalf("%.300q: not JSON, but accepted", body)
		}
		return
	}
	wantAPIVersion, want, ok := crDecode(body)
	var nar notAReview
	switch {
	case errors.As(err, &nar):
		if !ok {
			t.Fatalf("%.300q: refused as %q, but controller-runtime finds it invalid", body, err)
		}
		return
	case err != nil && ok:
		t.Fatalf("%.300q: refused (%v), controller-runtime accepts it", body, err)
	case err != nil:
		return
	case !ok:
		t.Fatalf("%.300q: accepted, controller-runtime refuses it", body)
	case apiVersion != wantAPIVersion:
		t.Fatalf("%.300q: answers as %q, controller-runtime as %q", body, apiVersion, wantAPIVersion)
	}
	// The decoded object must be what obj.Decode makes of the raw bytes.
	if u, isU := req.Object.Object.(*unstructured.Unstructured); isU {
		m, derr := obj.Decode(req.Object.Raw)
		if derr != nil || !reflect.DeepEqual(u.Object, m) {
			t.Fatalf("%.300q: request.object decoded as %v, obj.Decode gives %v (%v)", body, u.Object, m, derr)
		}
		req.Object.Object = nil
	}
	if !reflect.DeepEqual(req.AdmissionRequest, want.AdmissionRequest) {
		g, _ := json.Marshal(req.AdmissionRequest)
		w, _ := json.Marshal(want.AdmissionRequest)
		t.Fatalf("%.300q:\n got  %s\n want %s", body, g, w)
	}
}

// reviewBodies are review bodies to compare on: the golden requests, the
// fuzz seeds of FuzzHandler, and edge cases of the review's own fields.
func reviewBodies(tb testing.TB) [][]byte {
	tb.Helper()
	files, _ := filepath.Glob("testdata/golden/*.request.json")
	if len(files) < 10 {
		tb.Fatalf("found %d golden requests", len(files))
	}
	var out [][]byte
	for _, f := range files {
		out = append(out, readFile(tb, f))
	}
	seed := evReview(tb, RolloutPath, evSeed(tb))
	edit := func(old, new string) []byte {
		if !bytes.Contains(seed, []byte(old)) {
			tb.Fatalf("seed review has no %q", old)
		}
		return bytes.Replace(seed, []byte(old), []byte(new), 1)
	}
	uid := `"uid":"` + evUID + `"`
	out = append(out, seed,
		evReview(tb, AgentPodPath, evOperatorPod()),
		edit(`"apiVersion":"admission.k8s.io/v1"`, `"apiVersion":"admission.k8s.io/v1beta1"`),
		edit(`"apiVersion":"admission.k8s.io/v1"`, `"apiVersion":null`),
		edit(`"apiVersion":"admission.k8s.io/v1"`, `"apiVersion":5`),
		edit(`"kind":"AdmissionReview"`, `"kind":"Pod"`),
		edit(uid, `"uid":null`),
		edit(uid, `"uid":7`),
		edit(uid, uid+`,"uid":"second"`),
		edit(uid, uid+`,"userInfo":{"username":"a","groups":["x",null],"extra":{"k":["v"],"n":null}}`),
		edit(uid, uid+`,"userInfo":{"username":"a","groups":null,"extra":null}`),
		edit(uid, uid+`,"userInfo":{"extra":{"k":["v"]},"extra":{"j":[]}}`),
		edit(uid, uid+`,"userInfo":{"groups":[1]}`),
		edit(uid, uid+`,"userInfo":[]`),
		edit(uid, uid+`,"requestKind":{"group":"g","version":"v","kind":"K"},"requestResource":null,"requestSubResource":"s"`),
		edit(uid, uid+`,"requestKind":{"group":"g"},"requestKind":{"kind":"K"}`),
		edit(uid, uid+`,"requestResource":{"resource":5}`),
		edit(uid, uid+`,"kind":null,"resource":{"group":null}`),
		edit(uid, uid+`,"dryRun":true,"dryRun":null`),
		edit(uid, uid+`,"dryRun":"true"`),
		edit(uid, uid+`,"oldObject":{"a":1},"options":{"kind":"CreateOptions"},"oldObject":null`),
		edit(uid, uid+`,"object":null`),
		edit(uid, uid+`,"object":"text"`),
		edit(uid, uid+`,"operation":"DELETE","name":null,"namespace":"x","subResource":"status"`),
		edit(uid, uid+`,"unknownField":{"deep":[1,{"x":null}]}`),
		edit(`"request":{`, `"response":{"allowed":true},"request":{`),
		edit(`"request":{`, `"request":null,"request":{`),
		edit(`"request":{`, `"request":{"name":"first"},"request":null,"request":{`),
		edit(`"request":{`, `"Request":{`),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":null}`),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1"}} x`),
		[]byte(`{"request":{"uid":"1"}}`),
		[]byte(`[]`), []byte(`null`), []byte(`{`), []byte(``),
	)
	return out
}

func TestDecodeReviewMatchesControllerRuntime(t *testing.T) {
	for _, body := range reviewBodies(t) {
		checkReview(t, body)
	}
	for _, c := range evHTTPCases() {
		// Methods, content types and sizes are checked before decoding (TestBadInputHTTP).
		if c.method == "" && c.contentType == "" && c.want != evTooLarge {
			checkReview(t, c.body(t))
		}
	}
}

func FuzzDecodeReview(f *testing.F) {
	for _, body := range reviewBodies(f) {
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) >= maxReviewBytes {
			return // refused before decoding, as controller-runtime does (TestBadInputHTTP)
		}
		checkReview(t, body)
	})
}

// TestDecodeReviewErrorsNameTheField: a wrong type says where it is.
func TestDecodeReviewErrorsNameTheField(t *testing.T) {
	seed := string(evReview(t, RolloutPath, evSeed(t)))
	for old, want := range map[string]string{
		`"uid":"` + evUID + `"`:     `request.uid: expected a string, got a number`,
		`"operation":"CREATE"`:      `request.operation: expected a string, got an object`,
		`"resource":"rollouts"`:     `request.resource.resource: expected a string, got an array`,
		`"apiVersion":"argoproj.io`: `request.object: invalid character`,
	} {
		bad := strings.Replace(seed, old, map[string]string{
			`"uid":"` + evUID + `"`:     `"uid":1`,
			`"operation":"CREATE"`:      `"operation":{}`,
			`"resource":"rollouts"`:     `"resource":[]`,
			`"apiVersion":"argoproj.io`: `"apiVersion":"argoproj.io"x`,
		}[old], 1)
		if bad == seed {
			t.Fatalf("seed review has no %s", old)
		}
		if _, _, err := decodeReview([]byte(bad), nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", old, err, want)
		}
	}
}

// wholeMux is evMux with request.object decoded whole, as before shapes.
func wholeMux(tb testing.TB) *http.ServeMux {
	tb.Helper()
	mux := http.NewServeMux()
	for path, wh := range newWebhooks(Options{Rules: evRules(tb), Logger: logr.Discard()}) {
		wh.(*reviewHandler).reads = nil
		mux.Handle(path, wh)
	}
	return mux
}

// checkShapedMatchesWhole: the answer (HTTP status and body, byte for byte)
// is the same whether request.object is decoded whole or as the rule's shape.
func checkShapedMatchesWhole(t *testing.T, shaped, whole http.Handler, path string, body []byte) {
	t.Helper()
	a := evServe(shaped, http.MethodPost, path, "application/json", body)
	b := evServe(whole, http.MethodPost, path, "application/json", body)
	if a.HTTPStatus != b.HTTPStatus || !bytes.Equal(a.Raw, b.Raw) {
		t.Fatalf("%s %.300q:\nshaped %d %s\nwhole  %d %s", path, body, a.HTTPStatus, a.Raw, b.HTTPStatus, b.Raw)
	}
}

// shapeBodies are reviews for both webhooks: the review edge cases, the
// golden requests, and agent pods from the Helm renders.
func shapeBodies(tb testing.TB) [][]byte {
	bodies := reviewBodies(tb)
	for _, file := range []string{"default.yaml", "pod-labels-as-tags.yaml", "role-already-mapped.yaml"} {
		bodies = append(bodies, evReview(tb, AgentPodPath, evHelmPod(tb, file)))
	}
	return append(bodies, evReview(tb, RolloutPath, evUnknownFields(tb)))
}

func TestShapedMatchesWhole(t *testing.T) {
	shaped, whole := evMux(t, logr.Discard()), wholeMux(t)
	for _, body := range shapeBodies(t) {
		for _, path := range []string{RolloutPath, AgentPodPath} {
			checkShapedMatchesWhole(t, shaped, whole, path, body)
		}
	}
}

func FuzzShapedMatchesWhole(f *testing.F) {
	for _, body := range shapeBodies(f) {
		f.Add(uint8(0), body)
		f.Add(uint8(1), body)
	}
	shaped, whole := evMux(f, logr.Discard()), wholeMux(f)
	f.Fuzz(func(t *testing.T, sel uint8, body []byte) {
		path := RolloutPath
		if sel%2 == 1 {
			path = AgentPodPath
		}
		checkShapedMatchesWhole(t, shaped, whole, path, body)
	})
}
