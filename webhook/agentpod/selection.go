package agentpod

import (
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
)

// templateKinds are the workloads whose pod template MutateWorkload handles.
var templateKinds = map[string]bool{"DaemonSet": true, "ExtendedDaemonSet": true, "Deployment": true}

// matches says whether the labels at path select an agent; labels of an
// unexpected type leave the object alone.
func matches(o map[string]any, path []string, sel labels.Selector) (Result, bool) {
	v, k, at := obj.Find(o, path...)
	set := labels.Set{}
	switch k {
	case obj.Map:
		for key, val := range v.(map[string]any) {
			s, ok := val.(string)
			if !ok {
				return unexpectedPod(strings.Join(path, ".")+"."+key, val), false
			}
			set[key] = s
		}
	case obj.Other:
		return unexpectedPod(strings.Join(at, "."), v), false
	}
	if sel == nil || !sel.Matches(set) {
		return skip(ReasonNotAgent, ""), false
	}
	return Result{}, true
}

// agentControllers are the owners of Agent pods: node Agents (DaemonSet, or
// the Datadog Operator's ExtendedDaemonSet through its replica sets), and
// Cluster Agents and Checks Runners (Deployment, through a ReplicaSet).
var agentControllers = map[string]string{
	"DaemonSet":                   "apps",
	"ReplicaSet":                  "apps",
	"ExtendedDaemonSetReplicaSet": "datadoghq.com",
}

// ownedByAgentController says whether an owner of the pod is one of agentControllers.
func ownedByAgentController(o map[string]any) bool {
	refs, _, _, _ := obj.List(o, "metadata", "ownerReferences")
	for _, r := range refs {
		m, _ := r.(map[string]any)
		kind, _ := m["kind"].(string)
		apiVersion, _ := m["apiVersion"].(string)
		if group, ok := agentControllers[kind]; ok && strings.HasPrefix(apiVersion, group+"/") {
			return true
		}
	}
	return false
}
