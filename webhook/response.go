package webhook

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
)

// decision is what a handler did with one review: the single source for the
// response's warnings and audit annotations, the log line and the metric.
type decision struct {
	outcome.Summary
	generateName string // logged as the name when the request has none (pods created by a controller)
}

// recorder finishes reviews for one webhook.
type recorder struct {
	webhook string // metric label
	log     logr.Logger
}

// finish adds warnings and audit annotations to resp, counts and logs the
// review (one line per review), and returns resp.
func (r recorder) finish(req admission.Request, d decision, resp admission.Response) admission.Response {
	resp.Warnings = append(resp.Warnings, d.Warnings...)
	// Audit annotation keys get the webhook's name as prefix from the
	// apiserver, so they must be valid names without a domain.
	resp.AuditAnnotations = map[string]string{"outcome": string(d.Outcome)}
	if d.Reason != "" {
		resp.AuditAnnotations["reason"] = d.Reason
	}
	if len(d.Added) > 0 {
		resp.AuditAnnotations["injected"] = strings.Join(d.Added, ", ")
	}
	reviewsTotal.WithLabelValues(r.webhook, string(d.Outcome)).Inc()

	name := req.Name
	if name == "" {
		name = d.generateName
	}
	kv := []any{
		"uid", req.UID, "webhook", r.webhook, "kind", req.Kind.Kind, "namespace", req.Namespace,
		"name", name, "operation", req.Operation, "outcome", d.Outcome, "reason", d.Reason,
	}
	if len(d.Added) > 0 {
		kv = append(kv, "injected", d.Added)
	}
	if len(d.Warnings) > 0 {
		kv = append(kv, "warnings", d.Warnings)
	}
	if req.DryRun != nil && *req.DryRun {
		kv = append(kv, "dryRun", true)
	}
	r.log.Info("admission review", kv...)
	return resp
}

// admit does what both handlers do first: it refuses a review without a
// request uid (contract 7: controller-runtime would hand over an empty
// request), admits unchanged a request the webhook does not mutate, and
// decodes request.object. done says resp is the answer.
func (r recorder) admit(req admission.Request, want schema.GroupResource, ops ...admissionv1.Operation) (
	in map[string]any, resp admission.Response, done bool) {
	if req.UID == "" {
		return nil, r.malformed(req, errors.New("AdmissionReview has no request or no request.uid")), true
	}
	if why := outOfScope(req, want, ops...); why != "" {
		return nil, r.finish(req, decision{Summary: outcome.Summary{Outcome: outcome.Skipped, Reason: why, Quiet: true}}, admission.Allowed("")), true
	}
	in, err := obj.Decode(req.Object.Raw)
	if err != nil {
		return nil, r.malformed(req, fmt.Errorf("request.object is not a valid JSON object: %w", err)), true
	}
	return in, admission.Response{}, false
}

// malformed answers a review that is unusable: the caller's mistake, so 400
// (contract 7), never a 500.
func (r recorder) malformed(req admission.Request, err error) admission.Response {
	return r.finish(req, decision{Summary: outcome.Summary{Outcome: outcome.Error, Reason: err.Error()}}, admission.Errored(http.StatusBadRequest, err))
}

// outOfScope says why a request is not one the webhook mutates (another
// resource, a subresource such as status, another operation), or "" when it is.
// Such requests are admitted unchanged: an unexpected kind is not an error.
func outOfScope(req admission.Request, want schema.GroupResource, ops ...admissionv1.Operation) string {
	switch {
	case req.Resource.Group != want.Group || req.Resource.Resource != want.Resource:
		return fmt.Sprintf("resource %q is not handled by this webhook", req.Resource.Resource+"."+req.Resource.Group)
	case req.SubResource != "":
		return fmt.Sprintf("subresource %q is not handled", req.SubResource)
	case !slices.Contains(ops, req.Operation):
		return fmt.Sprintf("operation %s is not handled", req.Operation)
	}
	return ""
}
