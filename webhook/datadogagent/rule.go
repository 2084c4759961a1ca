// Package datadogagent is the DatadogAgent rule (contract 6.1): merge the
// role label's mapping into a Datadog Operator DatadogAgent's
// spec.global.podLabelsAsTags, from which the Operator sets
// DD_KUBERNETES_POD_LABELS_AS_TAGS on every Agent container, unless the
// Agent would then lose a mapping it has, or the mapping would not reach
// every component.
//
// Like the other rules it reads unstructured JSON (no Operator Go types),
// returns add-only JSON Patch operations for `mutate` to apply, and leaves
// fields of unexpected types alone. The precedence it relies on is the
// Operator's (v1.31.2): global settings first (spec.global.env, then
// podLabelsAsTags, each replacing a variable of the same name), then the
// component override's env and its containers' env, which replace them
// (internal/controller/datadogagent/global/global.go applyGlobalSettings,
// override/podtemplatespec.go PodTemplateSpec, override/container.go
// Container, merger/envvars.go DefaultEnvVarMergeFunction).
package datadogagent

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/go-openapi/jsonpointer"
	"gomodules.xyz/jsonpatch/v2"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/canary-tagger/canary-tagger/webhook/agentpod"
	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
)

// Group, Version and Kind of the objects this rule handles.
const (
	Group   = "datadoghq.com"
	Version = "v2alpha1"
	Kind    = "DatadogAgent"
)

// Options are the label key and the tag it maps to (contract 1).
type Options struct {
	LabelKey string
	TagName  string
}

// Reason says why a DatadogAgent was left untouched.
type Reason string

const (
	ReasonNone            Reason = ""
	ReasonNotDatadogAgent Reason = "not a DatadogAgent"
	ReasonVersion         Reason = "not a " + Group + "/" + Version + " DatadogAgent"
	ReasonUnexpectedType  Reason = "field of unexpected type"
	// A component's env wins over the global variable: the mapping would
	// not reach that component's Agents.
	ReasonOverrideEnv Reason = "an override sets " + agentpod.EnvName + ", which wins over spec.global.podLabelsAsTags: the mapping would not reach that component"
	// spec.global.podLabelsAsTags replaces spec.global.env's variable.
	ReasonGlobalEnv Reason = "spec.global.env sets " + agentpod.EnvName + " and spec.global.podLabelsAsTags would replace it"
	// The variable the Operator sets replaces a config file's whole
	// kubernetes_pod_labels_as_tags map (docs/agent-config.md).
	ReasonConfigFile Reason = "a custom Datadog config maps pod labels and the " + agentpod.EnvName + " the Operator sets for spec.global.podLabelsAsTags would replace them"
	// An env entry wins over envFrom (Kubernetes): the source's variable
	// would be hidden.
	ReasonEnvFrom Reason = "an override's envFrom may set " + agentpod.EnvName + " and the variable the Operator sets for spec.global.podLabelsAsTags would override it"
	// The resources mapping of the key wins over podLabelsAsTags.
	ReasonResourcesMapKey Reason = agentpod.ResourcesEnvName + " maps this label for pods and wins over spec.global.podLabelsAsTags"
)

// Result is what the rule decided, in words: Summary.
type Result struct {
	Outcome outcome.Outcome
	Reason  Reason
	// Detail names the field behind Reason and what to do instead.
	Detail string
	// Tag is the tag the label key already maps to (Present).
	Tag string
	// Added is what was added, "spec.global.podLabelsAsTags.role=kube_role".
	Added []string
	// Warnings are for the user.
	Warnings []string
}

// podLabelsAsTags is where the Operator's users map pod labels.
var podLabelsAsTags = []string{"spec", "global", "podLabelsAsTags"}

// configFiles are the custom config files the Agent (datadog.yaml) and the
// Cluster Agent (datadog-cluster.yaml) read kubernetes_pod_labels_as_tags from.
var configFiles = []string{"datadog.yaml", "datadog-cluster.yaml"}

// Mutate applies the rule to a DatadogAgent. It does not modify o.
func Mutate(o map[string]any, opts Options) ([]jsonpatch.Operation, Result) {
	if k, _ := obj.String(o, "kind"); k != Kind {
		return nil, skip(ReasonNotDatadogAgent, "")
	}
	av, _ := obj.String(o, "apiVersion")
	gv, err := schema.ParseGroupVersion(av)
	switch {
	case err != nil || gv.Group != Group:
		return nil, skip(ReasonNotDatadogAgent, "")
	case gv.Version != Version:
		return nil, skip(ReasonVersion, fmt.Sprintf("apiVersion is %q; the Operator serves %s/%s", av, Group, Version))
	}
	for i := range podLabelsAsTags {
		if v, k := obj.Lookup(o, podLabelsAsTags[:i+1]...); k == obj.Other {
			return nil, unexpected(strings.Join(podLabelsAsTags[:i+1], "."), v)
		}
	}
	current, k := obj.Lookup(o, podLabelsAsTags...)
	hasGlobal := k == obj.Map
	mapping := map[string]string{}
	if hasGlobal {
		for key, v := range current.(map[string]any) {
			s, ok := v.(string)
			if !ok {
				return nil, unexpected("spec.global.podLabelsAsTags."+key, v)
			}
			mapping[key] = s
		}
		if tag, ok := agentpod.Mapped(mapping, opts.LabelKey); ok {
			return nil, Result{Outcome: outcome.Present, Tag: tag}
		}
	}
	if r, left := resources(o, opts); left {
		return nil, r
	}
	if r, left := globalEnv(o, hasGlobal, opts); left {
		return nil, r
	}
	if r, left := overrides(o, hasGlobal, opts); left {
		return nil, r
	}

	res := Result{Outcome: outcome.Injected, Added: []string{"spec.global.podLabelsAsTags." + opts.LabelKey + "=" + opts.TagName}}
	for _, key := range slices.Sorted(maps.Keys(mapping)) {
		if mapping[key] == opts.TagName {
			res.Warnings = append(res.Warnings, fmt.Sprintf("spec.global.podLabelsAsTags maps %q to %s too: a pod with both labels gets two %s tags", key, opts.TagName, opts.TagName))
		}
	}
	return []jsonpatch.Operation{addOp(o, opts)}, res
}

// addOp adds the mapping at the first missing level of
// spec.global.podLabelsAsTags (absent or null), or the key to the map.
func addOp(o map[string]any, opts Options) jsonpatch.Operation {
	var value any = opts.TagName
	for i := range podLabelsAsTags {
		if _, k := obj.Lookup(o, podLabelsAsTags[:i+1]...); k != obj.Map {
			value = map[string]any{opts.LabelKey: opts.TagName}
			for j := len(podLabelsAsTags) - 1; j > i; j-- {
				value = map[string]any{podLabelsAsTags[j]: value}
			}
			return jsonpatch.NewOperation("add", "/"+strings.Join(podLabelsAsTags[:i+1], "/"), value)
		}
	}
	return jsonpatch.NewOperation("add", "/"+strings.Join(podLabelsAsTags, "/")+"/"+jsonpointer.Escape(opts.LabelKey), value)
}

func skip(r Reason, detail string) Result {
	return Result{Outcome: outcome.Skipped, Reason: r, Detail: detail}
}

func unexpected(path string, v any) Result {
	return skip(ReasonUnexpectedType, path+" is "+obj.TypeName(v))
}
