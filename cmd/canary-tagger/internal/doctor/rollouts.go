package doctor

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/canary-tagger/canary-tagger/webhook"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
	"github.com/canary-tagger/canary-tagger/webhook/rollout"
)

var (
	rolloutGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}
	podGVR     = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
)

// hashLabel is the label Argo Rollouts puts on a ReplicaSet's pods.
const hashLabel = "rollouts-pod-template-hash"

// reappliedAnnotation is set by the suggested fix for a Rollout the webhook
// never saw: any update goes through the webhook, which then injects.
const reappliedAnnotation = "canary-tagger.io/reapplied-at"

// checkRollouts runs the Rollout rule on every Rollout as stored: a canary
// Rollout in scope that the rule would still change was created before the
// install or while the webhook was down; a conflict is reported with the
// rule's reason. Then the promoted-canary check (argo-rollouts #4944).
func (d *doctor) checkRollouts(ctx context.Context) {
	list, err := d.dyn.Resource(rolloutGVR).Namespace(d.opts.Namespace).List(ctx, listOptions(""))
	if apierrors.IsNotFound(err) {
		d.add(Finding{Check: CheckRollout, Status: Info, Message: "the Argo Rollouts CRD (rollouts.argoproj.io) is not installed: no Rollout to check"})
		return
	}
	if err != nil {
		d.errorf(CheckRollout, "", err, "listing Rollouts")
		return
	}
	labelled, outOfScope := 0, 0
	for i := range list.Items {
		r := &list.Items[i]
		obj := "rollout/" + r.GetNamespace() + "/" + r.GetName()
		_, res := rollout.Mutate(r.Object, d.opts.Rules.Rollout, d.templateLabels(ctx, r.GetNamespace()))
		summary := res.Summary()
		inScope := d.inScope(d.wh.rollouts, r.GetNamespace(), r.GetLabels())
		switch {
		case res.Outcome == outcome.Present:
			labelled++
		case !inScope:
			if res.Outcome == outcome.Injected {
				outOfScope++
			}
		case res.Outcome == outcome.Injected:
			d.add(Finding{Check: CheckRollout, Status: Action, Object: obj,
				Message: fmt.Sprintf("canary Rollout without the %q label in its ephemeral metadata: created before canary-tagger was installed or while the webhook was down; any update goes through the webhook and adds it", d.opts.Rules.Rollout.LabelKey),
				Items:   summary.Added,
				Fix: []string{
					fmt.Sprintf("kubectl -n %s annotate rollout %s %s=%s --overwrite   # or re-apply its manifest", r.GetNamespace(), r.GetName(), reappliedAnnotation, d.opts.Now().UTC().Format("2006-01-02T15.04.05Z")),
				}})
		case res.Outcome == outcome.Conflict:
			d.add(Finding{Check: CheckRollout, Status: Action, Object: obj,
				Message: "skipped by the webhook because of a conflict: " + strings.Join(summary.Warnings, "; "),
				Reason:  summary.Reason,
				Fix: []string{
					fmt.Sprintf("# remove %q from %s, or run canary-tagger with another --label-key; or, to leave this Rollout unlabelled:", d.opts.Rules.Rollout.LabelKey, conflictWhere(res)),
					fmt.Sprintf("kubectl -n %s annotate rollout %s %s=false", r.GetNamespace(), r.GetName(), rollout.OptOutAnnotation),
				}})
		case res.Outcome == outcome.Skipped && res.Reason == rollout.ReasonUnexpectedType:
			d.add(Finding{Check: CheckRollout, Status: Action, Object: obj,
				Message: "skipped by the webhook: a field has an unexpected type",
				Reason:  summary.Reason,
				Fix:     []string{fmt.Sprintf("kubectl -n %s edit rollout %s   # %s", r.GetNamespace(), r.GetName(), res.Detail)}})
		}
	}
	msg := fmt.Sprintf("%d canary Rollout(s) carry the %q label in their ephemeral metadata", labelled, d.opts.Rules.Rollout.LabelKey)
	if outOfScope > 0 {
		msg += fmt.Sprintf("; %d in namespaces the webhook does not cover are left as they are", outOfScope)
	}
	d.add(Finding{Check: CheckRollout, Status: OK, Message: msg})
	d.checkPromoted(ctx, list.Items)
}

func joinReason(reason, detail string) string {
	if detail == "" {
		return reason
	}
	return reason + ": " + detail
}

func conflictWhere(res rollout.Result) string {
	switch res.Reason {
	case rollout.ReasonKeyInSelector:
		return "spec.selector"
	case rollout.ReasonKeyInTemplate:
		return "spec.template.metadata.labels"
	case rollout.ReasonKeyInWorkloadRef:
		return "the workloadRef's pod template labels"
	}
	return "where it is used"
}

// templateLabels reads a workloadRef's pod template labels (GET) as the
// server does, so the rule sees the same conflicts.
func (d *doctor) templateLabels(ctx context.Context, ns string) rollout.TemplateLabels {
	return func(ref rollout.WorkloadRef) (map[string]string, error) {
		return webhook.WorkloadTemplateLabels(ctx, func() (dynamic.Interface, error) { return d.dyn, nil }, ns, ref)
	}
}

// checkPromoted finds pods of a fully promoted canary Rollout (stable =
// current pod hash, Healthy) that still carry the canary value: Argo
// Rollouts did not relabel them (argo-rollouts #4944), and Datadog counts
// stable traffic as canary.
func (d *doctor) checkPromoted(ctx context.Context, rollouts []unstructured.Unstructured) {
	key := d.opts.Rules.Rollout.LabelKey
	promoted, stale := 0, 0
	for i := range rollouts {
		r := &rollouts[i]
		canaryValue, ok, _ := unstructured.NestedString(r.Object, "spec", "strategy", "canary", "canaryMetadata", "labels", key)
		if !ok || canaryValue == "" {
			continue // Argo Rollouts puts no such label on its pods
		}
		stableValue, _, _ := unstructured.NestedString(r.Object, "spec", "strategy", "canary", "stableMetadata", "labels", key)
		stableRS, _, _ := unstructured.NestedString(r.Object, "status", "stableRS")
		current, _, _ := unstructured.NestedString(r.Object, "status", "currentPodHash")
		phase, _, _ := unstructured.NestedString(r.Object, "status", "phase")
		if stableRS == "" || stableRS != current || phase != "Healthy" {
			continue
		}
		promoted++
		sel := labels.Set{key: canaryValue, hashLabel: stableRS}.AsSelector()
		pods, err := d.dyn.Resource(podGVR).Namespace(r.GetNamespace()).List(ctx, listOptions(sel.String()))
		if err != nil {
			d.errorf(CheckPromoted, "rollout/"+r.GetNamespace()+"/"+r.GetName(), err, "listing its pods labelled %s", sel)
			continue
		}
		rolloutSel := rolloutSelector(r)
		var names []string
		for _, p := range pods.Items {
			if p.GetDeletionTimestamp() != nil || !rolloutSel.Matches(labels.Set(p.GetLabels())) {
				continue
			}
			names = append(names, p.GetName())
		}
		if len(names) == 0 {
			continue
		}
		stale++
		fix := fmt.Sprintf("kubectl -n %s label pods -l %s %s=%s --overwrite", r.GetNamespace(), shellQuote(sel.String()), key, stableValue)
		if stableValue == "" {
			fix = fmt.Sprintf("kubectl -n %s label pods -l %s %s-", r.GetNamespace(), shellQuote(sel.String()), key)
		}
		d.add(Finding{Check: CheckPromoted, Status: Action, Object: "rollout/" + r.GetNamespace() + "/" + r.GetName(),
			Message: fmt.Sprintf("fully promoted (stable %s, Healthy) but %d pod(s) still labelled %s=%s: Argo Rollouts did not relabel them (argo-rollouts #4944), and Datadog counts them as canary", stableRS, len(names), key, canaryValue),
			Items:   names,
			Fix:     []string{fix}})
	}
	if stale == 0 {
		d.add(Finding{Check: CheckPromoted, Status: OK, Message: fmt.Sprintf("no pod labelled canary on a fully promoted Rollout (%d promoted)", promoted)})
	}
}

// rolloutSelector is spec.selector, or nothing-excluded when it cannot be read.
func rolloutSelector(r *unstructured.Unstructured) labels.Selector {
	m, ok, _ := unstructured.NestedMap(r.Object, "spec", "selector")
	if !ok {
		return labels.Everything()
	}
	var ls metav1.LabelSelector
	if err := fromUnstructured(m, &ls); err != nil {
		return labels.Everything()
	}
	sel, err := metav1.LabelSelectorAsSelector(&ls)
	if err != nil {
		return labels.Everything()
	}
	return sel
}
