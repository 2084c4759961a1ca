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
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/go-openapi/jsonpointer"
	"gomodules.xyz/jsonpatch/v2"
	"k8s.io/apimachinery/pkg/runtime/schema"
	syaml "sigs.k8s.io/yaml"

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

// resources: spec.global.kubernetesResourcesLabelsAsTags (which the Operator
// sets as the resources variable, after spec.global.env), or a resources
// variable in spec.global.env or an override's env, that maps the key for
// pods: that mapping wins over ours, in the Agent.
func resources(o map[string]any, opts Options) (Result, bool) {
	fieldSet := false
	field, k := obj.Lookup(o, "spec", "global", "kubernetesResourcesLabelsAsTags")
	switch k {
	case obj.Other:
		return unexpected("spec.global.kubernetesResourcesLabelsAsTags", field), true
	case obj.Map:
		if fieldSet = len(field.(map[string]any)) > 0; fieldSet {
			b, err := json.Marshal(field)
			if err != nil {
				return unexpected("spec.global.kubernetesResourcesLabelsAsTags", field), true
			}
			if key, tag := agentpod.ResourcesMapping(string(b), opts.LabelKey); key != "" {
				return skip(ReasonResourcesMapKey, fmt.Sprintf("spec.global.kubernetesResourcesLabelsAsTags.pods: %q → %q", key, tag)), true
			}
		}
	}
	var found Result
	left := false
	err := eachEnv(o, func(at string, entry map[string]any) bool {
		if entry["name"] != agentpod.ResourcesEnvName || fieldSet && strings.HasPrefix(at, "spec.global.env[") {
			return false // the field replaces spec.global.env's variable
		}
		value, _ := entry["value"].(string)
		if key, tag := agentpod.ResourcesMapping(value, opts.LabelKey); key != "" {
			found, left = skip(ReasonResourcesMapKey, fmt.Sprintf("%s: pods: %q → %q", at, key, tag)), true
			return true
		}
		return false
	})
	if err != nil {
		return *err, true
	}
	return found, left
}

// globalEnv: with no spec.global.podLabelsAsTags, the variable set in
// spec.global.env is the mapping, and adding podLabelsAsTags would replace
// it (unless it maps nothing).
func globalEnv(o map[string]any, hasGlobal bool, opts Options) (Result, bool) {
	env, found, _, ok := obj.List(o, "spec", "global", "env")
	if !ok {
		return unexpected("spec.global.env", found), true
	}
	last := -1
	for i, e := range env {
		em, ok := e.(map[string]any)
		if !ok {
			return unexpected(fmt.Sprintf("spec.global.env[%d]", i), e), true
		}
		if em["name"] == agentpod.EnvName {
			last = i
		}
	}
	if last < 0 || hasGlobal {
		return Result{}, false
	}
	entry := env[last].(map[string]any)
	at := fmt.Sprintf("spec.global.env[%d]", last)
	if _, k := obj.Lookup(entry, "valueFrom"); k != obj.Absent && k != obj.Null {
		return skip(ReasonGlobalEnv, fmt.Sprintf("%s uses valueFrom, which mutate cannot read; add %q: %q to that value, or move that mapping to spec.global.podLabelsAsTags", at, opts.LabelKey, opts.TagName)), true
	}
	raw, _ := entry["value"].(string)
	if m, err := agentpod.ParseMapping(raw); err == nil && len(m) == 0 {
		return Result{}, false // maps nothing
	}
	return skip(ReasonGlobalEnv, fmt.Sprintf("%s is %q; add %q: %q to it, or move that mapping to spec.global.podLabelsAsTags", at, raw, opts.LabelKey, opts.TagName)), true
}

// overrides: a component's env (or one of its containers' env) that sets
// the variable wins over spec.global.podLabelsAsTags; with no
// podLabelsAsTags yet, a component's envFrom or custom datadog.yaml /
// datadog-cluster.yaml may hold the mapping the new variable would hide.
func overrides(o map[string]any, hasGlobal bool, opts Options) (Result, bool) {
	ov, k := obj.Lookup(o, "spec", "override")
	switch k {
	case obj.Absent, obj.Null:
		return Result{}, false
	case obj.Other:
		return unexpected("spec.override", ov), true
	}
	var found Result
	left := false
	err := eachEnv(o, func(at string, entry map[string]any) bool {
		if entry["name"] == agentpod.EnvName && strings.HasPrefix(at, "spec.override.") {
			found, left = skip(ReasonOverrideEnv, fmt.Sprintf("%s; add %q: %q to that value", at, opts.LabelKey, opts.TagName)), true
			return true
		}
		return false
	})
	switch {
	case err != nil:
		return *err, true
	case left:
		return found, true
	case hasGlobal: // the variable is already set: nothing more to hide
		return Result{}, false
	}
	components := ov.(map[string]any)
	for _, name := range slices.Sorted(maps.Keys(components)) {
		c, ok := components[name].(map[string]any)
		if components[name] == nil {
			continue
		}
		if !ok {
			return unexpected("spec.override."+name, components[name]), true
		}
		at := "spec.override." + name
		switch envFrom, found, _, ok := obj.List(c, "envFrom"); {
		case !ok:
			return unexpected(at+".envFrom", found), true
		case len(envFrom) > 0:
			return skip(ReasonEnvFrom, at+".envFrom"), true
		}
		confs, k := obj.Lookup(c, "customConfigurations")
		switch k {
		case obj.Absent, obj.Null:
			continue
		case obj.Other:
			return unexpected(at+".customConfigurations", confs), true
		}
		for _, file := range configFiles {
			if r, left := configFile(confs.(map[string]any), at+".customConfigurations", file, opts); left {
				return r, true
			}
		}
	}
	return Result{}, false
}

// configFile: a custom config file that maps pod labels (or may: one from a
// ConfigMap mutate cannot read, or one it cannot parse).
func configFile(confs map[string]any, at, file string, opts Options) (Result, bool) {
	conf, k := obj.Lookup(confs, file)
	at += "[" + file + "]"
	hint := fmt.Sprintf("add %q: %q to kubernetes_pod_labels_as_tags there, or move that whole map to spec.global.podLabelsAsTags with it", opts.LabelKey, opts.TagName)
	switch k {
	case obj.Absent, obj.Null:
		return Result{}, false
	case obj.Other:
		return unexpected(at, conf), true
	}
	if _, k := obj.Lookup(conf.(map[string]any), "configMap"); k != obj.Absent && k != obj.Null {
		name, _ := obj.String(conf.(map[string]any), "configMap", "name")
		return skip(ReasonConfigFile, fmt.Sprintf("%s comes from ConfigMap %q, which mutate cannot read; %s", at, name, hint)), true
	}
	data, k := obj.Lookup(conf.(map[string]any), "configData")
	if k == obj.Absent || k == obj.Null {
		return Result{}, false
	}
	text, ok := data.(string)
	if !ok {
		return unexpected(at+".configData", data), true
	}
	var settings map[string]any
	if err := syaml.Unmarshal([]byte(text), &settings); err != nil {
		return skip(ReasonConfigFile, fmt.Sprintf("%s.configData is not YAML mutate can read (%v); %s", at, err, hint)), true
	}
	for key, v := range settings {
		// The Agent's settings are case-insensitive.
		if strings.EqualFold(key, "kubernetes_pod_labels_as_tags") && !empty(v) {
			b, _ := json.Marshal(v)
			return skip(ReasonConfigFile, fmt.Sprintf("%s maps %s; %s", at, b, hint)), true
		}
	}
	return Result{}, false
}

// empty: a kubernetes_pod_labels_as_tags value that maps nothing.
func empty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		m, err := agentpod.ParseMapping(x)
		return err == nil && len(m) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

// eachEnv calls f on every env entry the Operator applies to Agent
// containers: spec.global.env, then each override's env and its
// containers' env, in a stable order, until f returns true. A field of
// an unexpected type on the way is returned as a Result.
func eachEnv(o map[string]any, f func(at string, entry map[string]any) bool) *Result {
	type list struct {
		at   string
		from map[string]any
		path []string
	}
	lists := []list{{"spec.global.env", o, []string{"spec", "global", "env"}}}
	if ov, k := obj.Lookup(o, "spec", "override"); k == obj.Map {
		components := ov.(map[string]any)
		for _, name := range slices.Sorted(maps.Keys(components)) {
			c, ok := components[name].(map[string]any)
			if components[name] == nil {
				continue
			}
			if !ok {
				r := unexpected("spec.override."+name, components[name])
				return &r
			}
			at := "spec.override." + name
			lists = append(lists, list{at + ".env", c, []string{"env"}})
			cs, k := obj.Lookup(c, "containers")
			switch k {
			case obj.Other:
				r := unexpected(at+".containers", cs)
				return &r
			case obj.Map:
				containers := cs.(map[string]any)
				for _, cn := range slices.Sorted(maps.Keys(containers)) {
					cm, ok := containers[cn].(map[string]any)
					if containers[cn] == nil {
						continue
					}
					if !ok {
						r := unexpected(at+".containers."+cn, containers[cn])
						return &r
					}
					lists = append(lists, list{at + ".containers." + cn + ".env", cm, []string{"env"}})
				}
			}
		}
	}
	for _, l := range lists {
		env, found, _, ok := obj.List(l.from, l.path...)
		if !ok {
			r := unexpected(l.at, found)
			return &r
		}
		for i, e := range env {
			em, ok := e.(map[string]any)
			if !ok {
				r := unexpected(fmt.Sprintf("%s[%d]", l.at, i), e)
				return &r
			}
			if f(fmt.Sprintf("%s[%d]", l.at, i), em) {
				return nil
			}
		}
	}
	return nil
}

func skip(r Reason, detail string) Result {
	return Result{Outcome: outcome.Skipped, Reason: r, Detail: detail}
}

func unexpected(path string, v any) Result {
	return skip(ReasonUnexpectedType, path+" is "+obj.TypeName(v))
}
