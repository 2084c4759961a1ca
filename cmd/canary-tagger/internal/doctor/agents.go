package doctor

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/canary-tagger/canary-tagger/webhook/agentpod"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
)

// checkAgentPods runs the agent pod rule on every running Datadog Agent pod:
// a container the rule would still inject into started without the mapping
// (the pod was created before the webhook), and the Agent reads the variable
// only at start, so its DaemonSet (or Deployment) needs a restart.
func checkAgentPods(ctx context.Context, c *cluster, in inputs) []Finding {
	opts := c.opts.Rules.AgentPod
	selDesc := c.opts.Rules.AgentSelector
	// What the apiserver sends the webhook: every component it patches.
	if sel := in.registration.agentScope.Objects; !c.opts.AgentSelectorSet && sel != nil && !sel.Empty() {
		opts.Selector = sel
		selDesc = sel.String() + " (the agent webhook's objectSelector)"
	}
	pods, err := c.dyn.Resource(podGVR).Namespace(c.opts.Namespace).List(ctx, listOptions(opts.Selector.String()))
	if err != nil {
		return []Finding{errorFinding("", err, "listing Datadog Agent pods (%s)", selDesc)}
	}

	type workload struct {
		ns, ref    string // e.g. daemonset/datadog-agent
		pods       []string
		containers map[string]bool
		podLabels  map[string]string // of its first pod
	}
	var out []Finding
	missing := map[string]*workload{}
	var order []string
	checked, patched := 0, 0
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.GetDeletionTimestamp() != nil || !inScope(in.registration.agentScope, in.namespaces, p.GetNamespace(), p.GetLabels()) {
			continue
		}
		checked++
		_, res := agentpod.MutatePod(p.Object, opts)
		if res.Outcome == outcome.Skipped && len(res.Containers) == 0 {
			continue // not a pod the webhook patches (e.g. not owned by a DaemonSet)
		}
		patched++
		injected, found := containerFindings("pod/"+p.GetNamespace()+"/"+p.GetName(), res, opts)
		out = append(out, found...)
		if len(injected) == 0 {
			continue
		}
		ref := podWorkload(ctx, c, p)
		key := p.GetNamespace() + "/" + ref
		w := missing[key]
		if w == nil {
			w = &workload{ns: p.GetNamespace(), ref: ref, containers: map[string]bool{}, podLabels: p.GetLabels()}
			missing[key] = w
			order = append(order, key)
		}
		w.pods = append(w.pods, p.GetName())
		for _, name := range injected {
			w.containers[name] = true
		}
	}
	// Without the agent-pod webhook a restart brings the pods back as
	// they were: the mapping has to come from the Agent's configuration.
	webhook := in.registration.agents != nil
	for _, key := range order {
		w := missing[key]
		kind, name, _ := strings.Cut(w.ref, "/")
		why, fix := "created before canary-tagger, and the Agent reads it only at start", restartFix(w.ns, w.ref, w.pods)
		if within, heals := in.healing.restarts(in.namespaces[w.ns], w.podLabels, w.ref); heals && webhook {
			why += "; healing restarts it within " + within
			fix = healRestartFix(within, fix)
		}
		if !webhook {
			why, fix = "no agent-pod webhook is installed to add it, and the Agent's configuration does not set it", agentConfigFix(opts)
		}
		out = append(out, Finding{Status: Action, Object: kind + "/" + w.ns + "/" + name,
			Message: fmt.Sprintf("%d Datadog Agent pod(s) started without %q → %q in %s (containers %s): %s",
				len(w.pods), opts.LabelKey, opts.TagName, agentpod.EnvName, strings.Join(sortedKeys(w.containers), ", "), why),
			Items: w.pods,
			Fix:   fix})
	}
	if len(order) == 0 {
		msg := fmt.Sprintf("%d Datadog Agent pod(s) patched by the webhook map %q → %q", patched, opts.LabelKey, opts.TagName)
		if !webhook {
			msg = fmt.Sprintf("%d Datadog Agent pod(s) map %q → %q (from their own configuration: no agent-pod webhook is installed)", patched, opts.LabelKey, opts.TagName)
		}
		if checked == 0 {
			msg = "no Datadog Agent pod matches " + selDesc
		}
		out = append(out, Finding{Status: OK, Message: msg})
	}
	return out
}

// containerFindings is what the agent pod rule's result on one pod says:
// the containers it would still inject into (the pod started without the
// mapping), and a finding for each container it left alone.
func containerFindings(obj string, res agentpod.Result, opts agentpod.Options) (injected []string, out []Finding) {
	for _, c := range res.Containers {
		switch {
		case c.Action == agentpod.ActionInjected:
			injected = append(injected, c.Name)
		case c.Action == agentpod.ActionSkipped && (c.Reason == agentpod.ReasonInvalidJSON || c.Reason == agentpod.ReasonDuplicateKeys):
			out = append(out, Finding{Status: Action, Object: obj,
				Message: fmt.Sprintf("container %s: %s is unusable, so no pod label becomes a tag", c.Name, agentpod.EnvName),
				Reason:  joinReason(string(c.Reason), c.Detail),
				Fix:     agentEnvFix(c.Name)})
		case c.Action == agentpod.ActionSkipped:
			out = append(out, Finding{Status: Info, Object: obj,
				Message: fmt.Sprintf("container %s: left alone by the webhook; make sure %s maps %q there", c.Name, agentpod.EnvName, opts.LabelKey),
				Reason:  joinReason(string(c.Reason), c.Detail)})
		}
	}
	return injected, out
}

// podWorkload names what restarts a pod: its DaemonSet, the Deployment of
// its ReplicaSet, or the ReplicaSet, StatefulSet or ExtendedDaemonSet
// replica set itself; the pod when it has no controller.
func podWorkload(ctx context.Context, c *cluster, p *unstructured.Unstructured) string {
	owner := metav1.GetControllerOfNoCopy(p)
	if owner == nil {
		return "pod/" + p.GetName()
	}
	switch owner.Kind {
	case "DaemonSet":
		return "daemonset/" + owner.Name
	case "StatefulSet":
		return "statefulset/" + owner.Name
	case "ExtendedDaemonSetReplicaSet": // Datadog Operator
		return "extendeddaemonsetreplicaset/" + owner.Name
	case "ReplicaSet":
		// A ReplicaSet that cannot be read is named itself: restarting
		// its Deployment is the fix only if there is one.
		rs, err := c.core.AppsV1().ReplicaSets(p.GetNamespace()).Get(ctx, owner.Name, metav1.GetOptions{})
		if err == nil {
			if dep := metav1.GetControllerOfNoCopy(rs); dep != nil && dep.Kind == "Deployment" {
				return "deployment/" + dep.Name
			}
		}
		return "replicaset/" + owner.Name
	}
	return "pod/" + p.GetName()
}

func fromUnstructured(m map[string]any, out any) error {
	return runtime.DefaultUnstructuredConverter.FromUnstructured(m, out)
}
