package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// maxReviewBytes is controller-runtime's own limit; larger bodies are left to
// it (it answers 413).
const maxReviewBytes = 7 << 20

// checkEnvelope answers 400 (SPEC 7) to a body that is not an AdmissionReview
// with a request. controller-runtime decodes any JSON object into its review
// type, whatever its apiVersion and kind (measured: admission.k8s.io/v2, or a
// Pod, get an answer), and would hand the handler an empty request. Answering
// here also counts and logs these reviews as outcome "error". The answer has
// controller-runtime's shape for a bad body: HTTP 200, an AdmissionReview with
// allowed=false and status code 400.
func checkEnvelope(next http.Handler, rec recorder) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		var err error
		if r.Body != nil {
			body, err = io.ReadAll(io.LimitReader(r.Body, maxReviewBytes+1))
			if err != nil || len(body) > maxReviewBytes {
				// Unreadable or too large: controller-runtime says so.
				r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
				next.ServeHTTP(w, r)
				return
			}
		}
		apiVersion, kind, uid, hasRequest, err := readEnvelope(body)
		switch {
		case len(body) == 0:
			err = errors.New("request body is empty")
		case err != nil:
			err = fmt.Errorf("not a JSON AdmissionReview: %w", err)
		case kind != "AdmissionReview" || (apiVersion != "admission.k8s.io/v1" && apiVersion != "admission.k8s.io/v1beta1"):
			err = fmt.Errorf("expected an admission.k8s.io/v1 AdmissionReview, got apiVersion %q kind %q", apiVersion, kind)
		case !hasRequest:
			err = errors.New("AdmissionReview has no request")
		case uid == "":
			err = errors.New("AdmissionReview request has no uid")
		}
		if err == nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
			next.ServeHTTP(w, r)
			return
		}
		var req admission.Request
		req.UID = types.UID(uid)
		resp := rec.malformed(req, "", err)
		resp.UID = req.UID
		review := admissionv1.AdmissionReview{Response: &resp.AdmissionResponse}
		review.APIVersion, review.Kind = "admission.k8s.io/v1", "AdmissionReview"
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(review)
	})
}

// readEnvelope reads the top-level apiVersion and kind and request.uid,
// skipping other values, and stops as soon as it has all three. The apiserver
// writes them first, so this reads a few dozen bytes of the body instead of
// all of it; controller-runtime's decoder still validates the whole body.
func readEnvelope(body []byte) (apiVersion, kind, uid string, hasRequest bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "", "", "", false, errors.New("not a JSON object")
	}
	done := func() bool { return apiVersion != "" && kind != "" && uid != "" }
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return "", "", "", false, err
		}
		switch kt {
		case "apiVersion":
			err = dec.Decode(&apiVersion)
		case "kind":
			err = dec.Decode(&kind)
		case "request":
			hasRequest, err = readRequestUID(dec, &uid, func() bool { return apiVersion != "" && kind != "" })
		default:
			err = dec.Decode(&json.RawMessage{})
		}
		if err != nil {
			return "", "", "", false, fmt.Errorf("%v: %w", kt, err)
		}
		if done() {
			return apiVersion, kind, uid, hasRequest, nil
		}
	}
	if _, err := dec.Token(); err != nil {
		return "", "", "", false, err
	}
	return apiVersion, kind, uid, hasRequest, nil
}

// readRequestUID reads the request object up to its uid. If the caller has
// all it needs by then (enough), it stops there; otherwise it skips the rest
// of the object. A null request is no request.
func readRequestUID(dec *json.Decoder, uid *string, enough func() bool) (bool, error) {
	t, err := dec.Token()
	if err != nil || t == nil {
		return false, err
	}
	if t != json.Delim('{') {
		return false, errors.New("request is not an object")
	}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return true, err
		}
		if kt == "uid" {
			if err := dec.Decode(uid); err != nil {
				return true, err
			}
			if *uid != "" && enough() {
				return true, nil
			}
			continue
		}
		if err := dec.Decode(&json.RawMessage{}); err != nil {
			return true, err
		}
	}
	_, err = dec.Token() // the closing brace
	return true, err
}
