package datadogagent

// Where the Operator's other settings win over spec.global.podLabelsAsTags,
// or hold a mapping it would hide (the precedence is in the package doc).

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	syaml "sigs.k8s.io/yaml"

	"github.com/canary-tagger/canary-tagger/webhook/agentpod"
	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
)

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
	r := eachEntry(ov.(map[string]any), "spec.override", func(at string, c map[string]any) *Result {
		switch envFrom, found, _, ok := obj.List(c, "envFrom"); {
		case !ok:
			return stop(unexpected(at+".envFrom", found))
		case len(envFrom) > 0:
			return stop(skip(ReasonEnvFrom, at+".envFrom"))
		}
		confs, k := obj.Lookup(c, "customConfigurations")
		switch k {
		case obj.Absent, obj.Null:
			return nil
		case obj.Other:
			return stop(unexpected(at+".customConfigurations", confs))
		}
		for _, file := range configFiles {
			if r, left := configFile(confs.(map[string]any), at+".customConfigurations", file, opts); left {
				return &r
			}
		}
		return nil
	})
	if r != nil {
		return *r, true
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
		r := eachEntry(ov.(map[string]any), "spec.override", func(at string, c map[string]any) *Result {
			lists = append(lists, list{at + ".env", c, []string{"env"}})
			switch cs, k := obj.Lookup(c, "containers"); k {
			case obj.Other:
				return stop(unexpected(at+".containers", cs))
			case obj.Map:
				return eachEntry(cs.(map[string]any), at+".containers", func(at string, cm map[string]any) *Result {
					lists = append(lists, list{at + ".env", cm, []string{"env"}})
					return nil
				})
			}
			return nil
		})
		if r != nil {
			return r
		}
	}
	for _, l := range lists {
		env, found, _, ok := obj.List(l.from, l.path...)
		if !ok {
			return stop(unexpected(l.at, found))
		}
		for i, e := range env {
			em, ok := e.(map[string]any)
			if !ok {
				return stop(unexpected(fmt.Sprintf("%s[%d]", l.at, i), e))
			}
			if f(fmt.Sprintf("%s[%d]", l.at, i), em) {
				return nil
			}
		}
	}
	return nil
}

// eachEntry calls f on each entry of m (at is m's path) in key order,
// skipping nulls, until f returns a Result; an entry that is not a map is
// one.
func eachEntry(m map[string]any, at string, f func(at string, entry map[string]any) *Result) *Result {
	for _, name := range slices.Sorted(maps.Keys(m)) {
		if m[name] == nil {
			continue
		}
		entry, ok := m[name].(map[string]any)
		if !ok {
			return stop(unexpected(at+"."+name, m[name]))
		}
		if r := f(at+"."+name, entry); r != nil {
			return r
		}
	}
	return nil
}

// stop is r as eachEntry's and eachEnv's callers return it.
func stop(r Result) *Result { return &r }
