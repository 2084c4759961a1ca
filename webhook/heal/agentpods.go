package heal

import (
	"context"
	"fmt"
	"sort"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/canary-tagger/canary-tagger/webhook/agentpod"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
)

// AgentPods: the agent-pod webhook is called on CREATE of pods.
var AgentPods = Resource{
	GroupVersionResource: schema.GroupVersionResource{Version: "v1", Resource: "pods"},
	Operations:           []admissionv1.OperationType{admissionv1.Create},
}

// agentPodPass finds Agent pods the agent-pod rule would still inject and
// restarts the workloads that own them: a running pod's environment cannot
// be changed, its replacement is admitted through the webhook.
type agentPodPass struct {
	h *Healer
	// warned holds, per workload, the resourceVersion a "not restarted"
	// Warning Event was sent for: one per version per process.
	warned map[types.UID]string
}

func (p *agentPodPass) kind() string { return kindPod }

func (p *agentPodPass) run(ctx context.Context, rep *Report) error {
	h := p.h
	scope, err := h.scope(ctx, rep, AgentPods)
	if err != nil || !scope.Heals() {
		return err
	}
	namespaces, err := h.namespacesIn(ctx, rep, scope)
	if err != nil {
		return err
	}
	owners := ownerCache{}
	stale := map[workloadKey]*staleWorkload{}
	pods := h.dynamic.Resource(AgentPods.GroupVersionResource)
	err = eachPage(ctx, h, rep, func(ctx context.Context, opts metav1.ListOptions) (*unstructured.UnstructuredList, error) {
		opts.LabelSelector = scope.Objects.String()
		return pods.List(ctx, opts)
	}, func(list *unstructured.UnstructuredList) {
		for i := range list.Items {
			pod := &list.Items[i]
			rep.Listed++
			if !namespaces[pod.GetNamespace()] || pod.GetDeletionTimestamp() != nil || finished(pod) {
				continue
			}
			rep.InScope++
			// The pod's current spec, not its admission, decides: the
			// rule says what the webhook would add to a new pod like it.
			_, res := agentpod.MutatePod(pod.Object, h.opts.AgentPodRules)
			rep.count(res.Outcome)
			if res.Outcome != outcome.Injected {
				continue // mapped, or left alone on purpose: a restart would change nothing
			}
			key, err := owners.workloadOf(ctx, p.h, rep, pod)
			if err != nil {
				h.log.Info("not restarting the owner of an Agent pod without the mapping", "namespace", pod.GetNamespace(), "pod", pod.GetName(), "reason", err.Error())
				continue
			}
			w := stale[key]
			if w == nil {
				w = &staleWorkload{key: key}
				stale[key] = w
			}
			w.pods = append(w.pods, pod.GetName())
			if t := pod.GetCreationTimestamp(); w.newestPod.Before(&t) {
				w.newestPod = t
			}
		}
	})
	if err != nil {
		return err
	}
	keys := make([]workloadKey, 0, len(stale))
	for k := range stale {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	warned := map[types.UID]string{}
	for _, k := range keys {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.restart(ctx, rep, stale[k], warned)
	}
	p.warned = warned
	return nil
}

// finished pods are never replaced by their controller's rollout.
func finished(pod *unstructured.Unstructured) bool {
	phase, _, _ := unstructured.NestedString(pod.Object, "status", "phase")
	return phase == "Succeeded" || phase == "Failed"
}

// workloadKey names the DaemonSet or Deployment that owns Agent pods.
type workloadKey struct {
	Kind, Namespace, Name string
}

func (k workloadKey) String() string { return fmt.Sprintf("%s %s/%s", k.Kind, k.Namespace, k.Name) }

// staleWorkload is a workload with pods the rule would still inject.
type staleWorkload struct {
	key       workloadKey
	pods      []string
	newestPod metav1.Time
}

// ownerCache resolves pods to their DaemonSet or Deployment, one GET per
// ReplicaSet per pass.
type ownerCache map[string]ownerLookup

type ownerLookup struct {
	key workloadKey
	err error
}

// workloadOf is the pod's controller if a DaemonSet, or its ReplicaSet's
// controller if a Deployment; anything else cannot be restarted as
// `kubectl rollout restart` does.
func (c ownerCache) workloadOf(ctx context.Context, h *Healer, rep *Report, pod *unstructured.Unstructured) (workloadKey, error) {
	ref := metav1.GetControllerOf(pod)
	switch {
	case ref == nil:
		return workloadKey{}, fmt.Errorf("no controller")
	case ref.Kind == "DaemonSet" && groupOf(ref.APIVersion) == "apps":
		return workloadKey{"DaemonSet", pod.GetNamespace(), ref.Name}, nil
	case ref.Kind != "ReplicaSet" || groupOf(ref.APIVersion) != "apps":
		return workloadKey{}, fmt.Errorf("controlled by %s %s, which canary-tagger does not restart", ref.Kind, ref.Name)
	}
	id := pod.GetNamespace() + "/" + ref.Name
	if found, ok := c[id]; ok {
		return found.key, found.err
	}
	rep.request(verbGet)
	rs, err := h.kube.AppsV1().ReplicaSets(pod.GetNamespace()).Get(ctx, ref.Name, metav1.GetOptions{})
	var found ownerLookup
	if err != nil {
		found.err = fmt.Errorf("ReplicaSet %s: %w", ref.Name, err)
		c[id] = found
		return found.key, found.err
	}
	switch owner := metav1.GetControllerOf(rs); {
	case owner == nil || owner.Kind != "Deployment" || groupOf(owner.APIVersion) != "apps":
		found.err = fmt.Errorf("ReplicaSet %s is not controlled by a Deployment", ref.Name)
	default:
		found.key = workloadKey{"Deployment", pod.GetNamespace(), owner.Name}
	}
	c[id] = found
	return found.key, found.err
}

func groupOf(apiVersion string) string {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return ""
	}
	return gv.Group
}
