// Package agentpod is the Datadog Agent pod rule (contract 3): make every
// container of a node Agent, Cluster Agent or Cluster Checks Runner pod map
// the role label to a tag in DD_KUBERNETES_POD_LABELS_AS_TAGS, keeping every
// mapping the Agent had, and say per container what it did in the pod's
// status annotation.
//
// Like the Rollout rule it reads unstructured JSON, returns JSON Patch
// operations (for the webhook and for `mutate`), and leaves fields of
// unexpected types alone.
package agentpod

import (
	"strings"

	"github.com/go-openapi/jsonpointer"
	"gomodules.xyz/jsonpatch/v2"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
)

// EnvName is the agent's variable: a JSON object, pod label → tag name.
const EnvName = "DD_KUBERNETES_POD_LABELS_AS_TAGS"

// ResourcesEnvName maps labels of several resource kinds; for pods it is
// merged with EnvName key by key, and wins on a shared key (Agent 7.58+,
// docs/agent-config.md).
const ResourcesEnvName = "DD_KUBERNETES_RESOURCES_LABELS_AS_TAGS"

// StatusAnnotation records per container what canary-tagger did (contract 3.5).
const StatusAnnotation = "canary-tagger.io/status"

// Options are the label key, the tag it maps to, and which pods are agents.
type Options struct {
	LabelKey string
	TagName  string
	Selector labels.Selector
}

// Reason says why a pod, or one container, was left untouched.
type Reason string

const (
	ReasonNone           Reason = ""
	ReasonNotPod         Reason = "not a Pod"
	ReasonNotWorkload    Reason = "not a DaemonSet, ExtendedDaemonSet or Deployment"
	ReasonNotAgent       Reason = "labels do not match the agent selector"
	ReasonNotOwned       Reason = "not owned by a DaemonSet, ExtendedDaemonSet or ReplicaSet"
	ReasonNoContainers   Reason = "no containers"
	ReasonUnexpectedType Reason = "field of unexpected type"
	// Container-level reasons. They are shown in the status annotation, so
	// they are short, say what the user should look at, and contain no ";"
	// (the annotation's separator between containers).
	ReasonValueFrom     Reason = "valueFrom: value not visible to the webhook"
	ReasonEnvFrom       Reason = "envFrom may set " + EnvName + " and an added env entry would override it"
	ReasonInvalidJSON   Reason = "value is not a JSON object of strings: the agent drops it whole, no pod label becomes a tag"
	ReasonDuplicateKeys Reason = "value has duplicate keys"
	// An added variable replaces the whole kubernetes_pod_labels_as_tags
	// map of a datadog.yaml (docs/agent-config.md): the user's tags would go.
	ReasonConfigFile Reason = "a mounted Datadog config may map pod labels and an added " + EnvName + " would replace them"
	// The resources variable's mapping of the key wins over ours.
	ReasonResourcesMapKey Reason = ResourcesEnvName + " maps this label for pods and wins over " + EnvName
)

// Result is what the rule decided.
type Result struct {
	Outcome outcome.Outcome
	// Reason and Detail say why the whole object was left alone.
	Reason     Reason
	Detail     string
	Containers []Container
}

// MutatePod applies contract 3 to a Pod: agent pods owned by a DaemonSet,
// an ExtendedDaemonSet or (Cluster Agent, Checks Runner) a ReplicaSet get
// the mapping and the status annotation. An existing status annotation is kept:
// the apiserver may call the webhook again on its own output
// (reinvocationPolicy: IfNeeded), and the first record is the true one.
func MutatePod(o map[string]any, opts Options) ([]jsonpatch.Operation, Result) {
	if k, _ := obj.String(o, "kind"); k != "Pod" {
		return nil, skip(ReasonNotPod, "")
	}
	if r, ok := matches(o, []string{"metadata", "labels"}, opts.Selector); !ok {
		return nil, r
	}
	if !ownedByAgentController(o) {
		return nil, skip(ReasonNotOwned, "")
	}
	spec, k := obj.Lookup(o, "spec")
	if k != obj.Map {
		return nil, unexpectedPod("spec", spec)
	}
	ops, res := mutatePodSpec(spec.(map[string]any), "/spec", opts)
	if res.Reason != ReasonNone { // the spec as a whole was left alone
		return nil, res
	}
	// The status annotation, unless the user's metadata makes that impossible.
	status := res.Status()
	switch ann, k := obj.Lookup(o, "metadata", "annotations"); k {
	case obj.Absent, obj.Null:
		if _, mk := obj.Lookup(o, "metadata"); mk == obj.Map {
			ops = append(ops, jsonpatch.NewOperation("add", "/metadata/annotations", map[string]any{StatusAnnotation: status}))
		}
	case obj.Map:
		if _, has := ann.(map[string]any)[StatusAnnotation]; !has {
			ops = append(ops, jsonpatch.NewOperation("add", "/metadata/annotations/"+jsonpointer.Escape(StatusAnnotation), status))
		}
	}
	return ops, res
}

// MutateWorkload applies contract 3 to the pod template of a DaemonSet,
// ExtendedDaemonSet or Deployment whose template matches the selector
// (contract 6, for manifests). No status annotation is written: it would
// change the template and restart the agents for nothing.
func MutateWorkload(o map[string]any, opts Options) ([]jsonpatch.Operation, Result) {
	if k, _ := obj.String(o, "kind"); !templateKinds[k] {
		return nil, skip(ReasonNotWorkload, "")
	}
	if r, ok := matches(o, []string{"spec", "template", "metadata", "labels"}, opts.Selector); !ok {
		return nil, r
	}
	ps, k, at := obj.Find(o, "spec", "template", "spec")
	if k != obj.Map {
		return nil, unexpectedPod(strings.Join(at, "."), ps)
	}
	return mutatePodSpec(ps.(map[string]any), "/spec/template/spec", opts)
}

func skip(r Reason, detail string) Result {
	return Result{Outcome: outcome.Skipped, Reason: r, Detail: detail}
}

func unexpectedPod(path string, v any) Result {
	return skip(ReasonUnexpectedType, path+" is "+obj.TypeName(v))
}
