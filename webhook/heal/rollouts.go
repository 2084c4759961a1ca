package heal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/canary-tagger/canary-tagger/webhook"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
	"github.com/canary-tagger/canary-tagger/webhook/rollout"
)

// Event reasons and action of the Rollout pass.
const (
	ReasonHealed        = "Healed"
	ReasonLabelConflict = "LabelConflict"
	actionHeal          = "Heal"
)

// healedWhy is the Event's "why": the healer only writes what the webhook
// would have written, so the object reached the apiserver without it.
const healedWhy = "admitted without canary-tagger's webhook (unreachable at the time, or the Rollout predates the install)"

// rolloutPass heals Rollouts the Rollout webhook is called for.
type rolloutPass struct {
	h *Healer
	// warned holds, per Rollout, the resourceVersion its conflict Event was
	// sent for: one Event per version per process, not one per pass.
	warned map[types.UID]string
}

func (p *rolloutPass) kind() string { return kindRollout }

func (p *rolloutPass) run(ctx context.Context, rep *Report) error {
	h := p.h
	scope, err := h.scope(ctx, rep, Rollouts)
	if err != nil {
		return err
	}
	if !scope.Heals() {
		p.warned = nil
		return nil
	}
	namespaces, err := h.namespacesIn(ctx, rep, scope)
	if err != nil {
		return err
	}
	seen := map[types.UID]string{}
	rollouts := h.dynamic.Resource(Rollouts.GroupVersionResource)
	err = eachPage(ctx, h, rep, func(ctx context.Context, opts metav1.ListOptions) (*unstructured.UnstructuredList, error) {
		opts.LabelSelector = scope.Objects.String()
		return rollouts.List(ctx, opts)
	}, func(list *unstructured.UnstructuredList) {
		for i := range list.Items {
			r := &list.Items[i]
			rep.Listed++
			if _, in := namespaces[r.GetNamespace()]; !in {
				continue
			}
			rep.InScope++
			p.heal(ctx, rep, rollouts, r, seen)
		}
	})
	if err != nil {
		// An incomplete pass forgets nothing it had warned about.
		for uid, rv := range p.warned {
			if _, ok := seen[uid]; !ok {
				seen[uid] = rv
			}
		}
	}
	p.warned = seen
	return err
}

// heal asks the rule about one Rollout and writes what it adds.
func (p *rolloutPass) heal(ctx context.Context, rep *Report, rollouts dynamic.NamespaceableResourceInterface, r *unstructured.Unstructured, warned map[types.UID]string) {
	h := p.h
	ops, res := p.decide(ctx, rep, r)
	sum := res.Summary()
	log := h.log.WithValues("kind", kindRollout, "namespace", r.GetNamespace(), "name", r.GetName(), "resourceVersion", r.GetResourceVersion())
	switch {
	case len(ops) > 0:
		switch err := p.patch(ctx, rep, rollouts, r, ops); {
		case err == nil:
			note := "added " + strings.Join(sum.Added, ", ") + ": " + healedWhy
			if len(sum.Warnings) > 0 {
				note += "; " + strings.Join(sum.Warnings, "; ")
			}
			h.recorder.Eventf(r, nil, corev1.EventTypeNormal, ReasonHealed, actionHeal, "%s", note)
			log.Info("healed", "injected", sum.Added, "warnings", sum.Warnings)
		case ctx.Err() != nil:
			return // stopping: not an outcome
		case errors.Is(err, errSuperseded):
			// Changed since it was listed: the next pass sees the new object.
			rep.Superseded++
			log.V(1).Info("not healed: changed since listed")
			return
		default:
			res.Outcome = outcome.Error
			log.Error(err, "healing")
		}
	case res.Outcome == outcome.Conflict:
		if p.warned[r.GetUID()] != r.GetResourceVersion() {
			h.recorder.Eventf(r, nil, corev1.EventTypeWarning, ReasonLabelConflict, actionHeal, "%s", strings.Join(sum.Warnings, "; "))
			log.Info("not healed", "reason", sum.Reason)
		}
		warned[r.GetUID()] = r.GetResourceVersion()
	}
	rep.count(res.Outcome)
}

// errNotRead: the first decision is made without reading a workloadRef.
var errNotRead = errors.New("not read")

// decide is rollout.Mutate with the webhook's options and workloadRef
// reader. The workloadRef template is read (one GET) only when the rule
// would add something: a Rollout that is already labelled costs no request.
func (p *rolloutPass) decide(ctx context.Context, rep *Report, r *unstructured.Unstructured) ([]jsonpatch.Operation, rollout.Result) {
	h := p.h
	asked := false
	ops, res := rollout.Mutate(r.Object, h.opts.Rules, func(rollout.WorkloadRef) (map[string]string, error) {
		asked = true
		return nil, errNotRead
	})
	if !asked || len(ops) == 0 {
		return ops, res
	}
	return rollout.Mutate(r.Object, h.opts.Rules, func(ref rollout.WorkloadRef) (map[string]string, error) {
		if !h.opts.CheckWorkloadRef {
			return nil, errors.New("workloadRef check disabled") // as the webhook says it
		}
		rep.request(verbGet)
		return webhook.WorkloadTemplateLabels(ctx, h.dynamicClient, r.GetNamespace(), ref)
	})
}

// errSuperseded: the object changed between the LIST and the PATCH.
var errSuperseded = errors.New("superseded")

// patch sends the rule's add operations behind a test of the resourceVersion
// the rule decided on, so that a concurrent write is never overwritten.
func (p *rolloutPass) patch(ctx context.Context, rep *Report, rollouts dynamic.NamespaceableResourceInterface, r *unstructured.Unstructured, ops []jsonpatch.Operation) error {
	guarded := append([]jsonpatch.Operation{{Operation: "test", Path: "/metadata/resourceVersion", Value: r.GetResourceVersion()}}, ops...)
	body, err := json.Marshal(guarded)
	if err != nil {
		return err
	}
	rep.request(verbPatch)
	rep.Patches++
	client := rollouts.Namespace(r.GetNamespace())
	_, err = client.Patch(ctx, r.GetName(), types.JSONPatchType, body, metav1.PatchOptions{FieldManager: FieldManager})
	switch {
	case err == nil:
		return nil
	case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		return fmt.Errorf("%w: %v", errSuperseded, err)
	case apierrors.IsInvalid(err):
		// A failed test and a result the CRD's schema refuses are both 422,
		// and the apiserver keeps the JSON Patch library's message to
		// itself: the object's current version tells them apart (a rare
		// GET, only after a refused write).
		rep.request(verbGet)
		now, getErr := client.Get(ctx, r.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(getErr) || getErr == nil && now.GetResourceVersion() != r.GetResourceVersion() {
			return fmt.Errorf("%w: %v", errSuperseded, err)
		}
	}
	return err
}
