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
		var env struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Request    *struct {
				UID types.UID `json:"uid"`
			} `json:"request"`
		}
		err = json.Unmarshal(body, &env)
		switch {
		case len(body) == 0:
			err = errors.New("request body is empty")
		case err != nil:
			err = fmt.Errorf("not a JSON AdmissionReview: %w", err)
		case env.Kind != "AdmissionReview" || (env.APIVersion != "admission.k8s.io/v1" && env.APIVersion != "admission.k8s.io/v1beta1"):
			err = fmt.Errorf("expected an admission.k8s.io/v1 AdmissionReview, got apiVersion %q kind %q", env.APIVersion, env.Kind)
		case env.Request == nil:
			err = errors.New("AdmissionReview has no request")
		case env.Request.UID == "":
			err = errors.New("AdmissionReview request has no uid")
		}
		if err == nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
			next.ServeHTTP(w, r)
			return
		}
		var req admission.Request
		if env.Request != nil {
			req.UID = env.Request.UID
		}
		resp := rec.malformed(req, "", err)
		resp.UID = req.UID
		review := admissionv1.AdmissionReview{Response: &resp.AdmissionResponse}
		review.APIVersion, review.Kind = "admission.k8s.io/v1", "AdmissionReview"
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(review)
	})
}
