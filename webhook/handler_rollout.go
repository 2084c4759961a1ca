package webhook

import (
	"context"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
	"github.com/canary-tagger/canary-tagger/webhook/rollout"
)

var rolloutsResource = schema.GroupResource{Group: rollout.Group, Resource: "rollouts"}

// rolloutHandler serves /mutate-rollout (contract 2): CREATE and UPDATE of
// rollouts, not rollouts/status. Dry runs need no special case: the only side
// effect is the workloadRef GET, a read.
type rolloutHandler struct {
	opts rollout.Options
	refs *workloadRefs
	rec  recorder
}

func (h *rolloutHandler) Handle(ctx context.Context, req admission.Request) admission.Response {
	in, resp, done := h.rec.admit(req, rolloutsResource, admissionv1.Create, admissionv1.Update)
	if done {
		return resp
	}
	ns := req.Namespace
	if ns == "" {
		ns, _ = obj.String(in, "metadata", "namespace")
	}
	ops, res := rollout.Mutate(in, h.opts, h.refs.templateLabels(ctx, ns))
	d := decision{Summary: res.Summary()}
	d.generateName, _ = obj.String(in, "metadata", "generateName")
	return h.rec.finish(req, d, admission.Patched("", ops...))
}
