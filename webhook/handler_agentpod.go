package webhook

import (
	"context"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/canary-tagger/canary-tagger/webhook/agentpod"
	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
)

var podsResource = schema.GroupResource{Resource: "pods"}

// agentPodHandler serves /mutate-agent-pod (contract 3): CREATE of pods only.
// The agent reads its environment at start-up, so changing a running pod
// (UPDATE) would mean nothing, and the apiserver forbids it anyway.
type agentPodHandler struct {
	opts agentpod.Options
	rec  recorder
}

func (h *agentPodHandler) Handle(_ context.Context, req admission.Request) admission.Response {
	in, resp, done := h.rec.admit(req, podsResource, admissionv1.Create)
	if done {
		return resp
	}
	ops, res := agentpod.MutatePod(in, h.opts)
	d := decision{Summary: res.Summary()}
	d.generateName, _ = obj.String(in, "metadata", "generateName")
	return h.rec.finish(req, d, admission.Patched("", ops...))
}
