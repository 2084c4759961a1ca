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

// rolloutList is the Rollouts in -n's scope, as stored.
type rolloutList struct {
	items []unstructured.Unstructured
	// listed is false when there is nothing to check: the CRD is not
	// installed (crdMissing) or listing failed (err).
	listed     bool
	crdMissing bool
	err        error
}

func loadRollouts(ctx context.Context, c *cluster, in *inputs) error {
	list, err := c.dyn.Resource(rolloutGVR).Namespace(c.opts.Namespace).List(ctx, listOptions(""))
	switch {
	case apierrors.IsNotFound(err):
		in.rollouts = rolloutList{crdMissing: true}
	case err != nil:
		in.rollouts = rolloutList{err: err}
	default:
		in.rollouts = rolloutList{items: list.Items, listed: true}
	}
	return nil
}

// checkRollouts runs the Rollout rule on every Rollout as stored: a canary
// Rollout in scope that the rule would still change was created before the
// install or while the webhook was down; a conflict is reported with the
// rule's reason. A Rollout the heal loop will label (checkHealing) is still
// a finding until it is labelled, with the wait first among its fixes.
func checkRollouts(ctx context.Context, c *cluster, in inputs) []Finding {
	switch {
	case in.rollouts.crdMissing:
		return []Finding{{Status: Info, Message: "the Argo Rollouts CRD (rollouts.argoproj.io) is not installed: no Rollout to check"}}
	case in.rollouts.err != nil:
		return []Finding{errorFinding("", in.rollouts.err, "listing Rollouts")}
	}
	var out []Finding
	_, _, rolloutScope, _ := in.registration.rolloutsAdmitted()
	policy := in.registration.rollouts == nil && in.registration.policy != nil
	labelled, outOfScope := 0, 0
	for i := range in.rollouts.items {
		r := &in.rollouts.items[i]
		_, res := rollout.Mutate(r.Object, c.opts.Rules.Rollout, templateLabels(ctx, c, r.GetNamespace()))
		switch {
		case res.Outcome == outcome.Present:
			labelled++
		case !inScope(rolloutScope, in.namespaces, r.GetNamespace(), r.GetLabels()):
			if res.Outcome == outcome.Injected {
				outOfScope++
			}
		default:
			if f, ok := rolloutFinding(c, r, res, policy); ok {
				// Only what the rule adds is healed: clashes, opt-outs and
				// fields of an unexpected type never are.
				if within, heals := in.healing.repairs(in.namespaces[r.GetNamespace()], r.GetLabels()); heals && res.Outcome == outcome.Injected {
					f.Message += "; healing repairs this within " + within
					f.Fix = healWaitFix(within, f.Fix)
				}
				out = append(out, f)
			}
		}
	}
	msg := fmt.Sprintf("%d canary Rollout(s) carry the %q label in their ephemeral metadata", labelled, c.opts.Rules.Rollout.LabelKey)
	if outOfScope > 0 {
		msg += fmt.Sprintf("; %d in namespaces canary-tagger does not cover are left as they are", outOfScope)
	}
	return append(out, Finding{Status: OK, Message: msg})
}

// rolloutFinding is what the Rollout rule's result on a Rollout in scope
// says needs doing, if anything.
// policy says the Rollouts are admitted by the admission policy
// (rollouts.admission=policy) rather than the webhook.
func rolloutFinding(c *cluster, r *unstructured.Unstructured, res rollout.Result, policy bool) (Finding, bool) {
	ns, name := r.GetNamespace(), r.GetName()
	obj := "rollout/" + ns + "/" + name
	key := c.opts.Rules.Rollout.LabelKey
	summary := res.Summary()
	by, missed := "the webhook", "created before canary-tagger was installed or while the webhook was down; any update goes through the webhook and adds it"
	if policy {
		by, missed = "the admission policy", "created before the admission policy was installed; any update goes through the policy, which adds it"
	}
	switch {
	case res.Outcome == outcome.Injected:
		return Finding{Status: Action, Object: obj,
			Message: fmt.Sprintf("canary Rollout without the %q label in its ephemeral metadata: %s", key, missed),
			Items:   summary.Added,
			Fix:     reapplyFix(ns, name, c.opts.Now())}, true
	case res.Outcome == outcome.Conflict:
		return Finding{Status: Action, Object: obj,
			Message: "skipped by " + by + " because of a conflict: " + strings.Join(summary.Warnings, "; "),
			Reason:  summary.Reason,
			Fix:     conflictFix(ns, name, key, res)}, true
	case res.Outcome == outcome.Skipped && res.Reason == rollout.ReasonUnexpectedType:
		return Finding{Status: Action, Object: obj,
			Message: "skipped by " + by + ": a field has an unexpected type",
			Reason:  summary.Reason,
			Fix:     editRolloutFix(ns, name, res.Detail)}, true
	}
	return Finding{}, false
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
func templateLabels(ctx context.Context, c *cluster, ns string) rollout.TemplateLabels {
	return func(ref rollout.WorkloadRef) (map[string]string, error) {
		return webhook.WorkloadTemplateLabels(ctx, func() (dynamic.Interface, error) { return c.dyn, nil }, ns, ref)
	}
}

// checkPromoted finds pods of a fully promoted canary Rollout (stable =
// current pod hash, Healthy) that still carry the canary value: Argo
// Rollouts did not relabel them (argo-rollouts #4944), and Datadog counts
// stable traffic as canary.
func checkPromoted(ctx context.Context, c *cluster, in inputs) []Finding {
	if !in.rollouts.listed {
		return nil // the rollout check says why
	}
	var out []Finding
	key := c.opts.Rules.Rollout.LabelKey
	promoted, stale := 0, 0
	for i := range in.rollouts.items {
		r := &in.rollouts.items[i]
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
		obj := "rollout/" + r.GetNamespace() + "/" + r.GetName()
		sel := labels.Set{key: canaryValue, hashLabel: stableRS}.AsSelector()
		pods, err := c.dyn.Resource(podGVR).Namespace(r.GetNamespace()).List(ctx, listOptions(sel.String()))
		if err != nil {
			out = append(out, errorFinding(obj, err, "listing its pods labelled %s", sel))
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
		out = append(out, Finding{Status: Action, Object: obj,
			Message: fmt.Sprintf("fully promoted (stable %s, Healthy) but %d pod(s) still labelled %s=%s: Argo Rollouts did not relabel them (argo-rollouts #4944), and Datadog counts them as canary", stableRS, len(names), key, canaryValue),
			Items:   names,
			Fix:     relabelFix(r.GetNamespace(), sel, key, stableValue)})
	}
	if stale == 0 {
		out = append(out, Finding{Status: OK, Message: fmt.Sprintf("no pod labelled canary on a fully promoted Rollout (%d promoted)", promoted)})
	}
	return out
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
