package webhook

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/go-logr/logr"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/canary-tagger/canary-tagger/webhook/outcome"
)

// decision is what a handler did with one review: the single source for the
// response's warnings and audit annotations, the log line and the metric.
type decision struct {
	outcome      outcome.Outcome
	reason       string   // why the object was left as it is, or per-container status
	injected     []string // what was added
	warnings     []string
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
	resp.Warnings = append(resp.Warnings, d.warnings...)
	// Audit annotation keys get the webhook's name as prefix from the
	// apiserver, so they must be valid names without a domain.
	resp.AuditAnnotations = map[string]string{"outcome": string(d.outcome)}
	if d.reason != "" {
		resp.AuditAnnotations["reason"] = d.reason
	}
	if len(d.injected) > 0 {
		resp.AuditAnnotations["injected"] = strings.Join(d.injected, ", ")
	}
	reviewsTotal.WithLabelValues(r.webhook, string(d.outcome)).Inc()

	name := req.Name
	if name == "" {
		name = d.generateName
	}
	kv := []any{
		"uid", req.UID, "webhook", r.webhook, "kind", req.Kind.Kind, "namespace", req.Namespace,
		"name", name, "operation", req.Operation, "outcome", d.outcome, "reason", d.reason,
	}
	if len(d.injected) > 0 {
		kv = append(kv, "injected", d.injected)
	}
	if len(d.warnings) > 0 {
		kv = append(kv, "warnings", d.warnings)
	}
	if req.DryRun != nil && *req.DryRun {
		kv = append(kv, "dryRun", true)
	}
	r.log.Info("admission review", kv...)
	return resp
}

// malformed answers a review whose what (the envelope, or request.object)
// is unusable: the caller's mistake, so 400 (SPEC 7), never a 500.
func (r recorder) malformed(req admission.Request, what string, err error) admission.Response {
	if what != "" {
		err = fmt.Errorf("%s: %w", what, err)
	}
	return r.finish(req, decision{outcome: outcome.Error, reason: err.Error()},
		admission.Errored(http.StatusBadRequest, err))
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

// patchResponse admits the object; when the rule returned a new object, with
// the JSON Patch from the submitted bytes to it. The patch is computed from
// req.Object.Raw, so fields the webhook does not own cannot change.
func patchResponse(raw []byte, in, out map[string]any) admission.Response {
	if reflect.ValueOf(in).UnsafePointer() == reflect.ValueOf(out).UnsafePointer() {
		return admission.Allowed("")
	}
	b, err := json.Marshal(out)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	resp := admission.PatchResponseFromRaw(raw, b)
	addOverNull(in, resp.Patches)
	return resp
}

// addOverNull turns "replace" of a null member into "add" (RFC 6902 "add" on
// an existing member replaces it, so the effect is identical). The rules only
// ever fill in absent or null fields, and SPEC 2.4 promises add-only patches,
// but the diff reports `stableMetadata: null` → object as a replace.
func addOverNull(in map[string]any, ops []jsonpatch.JsonPatchOperation) {
	for i := range ops {
		if ops[i].Operation != "replace" {
			continue
		}
		if v, ok := pointer(in, ops[i].Path); ok && v == nil {
			ops[i].Operation = "add"
		}
	}
}

// pointer resolves an RFC 6901 JSON pointer in a decoded object.
func pointer(doc any, ptr string) (any, bool) {
	if ptr == "" {
		return doc, true
	}
	if !strings.HasPrefix(ptr, "/") {
		return nil, false
	}
	cur := doc
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[tok]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}
