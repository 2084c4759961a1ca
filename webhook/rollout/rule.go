// Package rollout is the Rollout rule (contract 2): give a canary Rollout's
// ephemeral metadata a role label for stable and canary pods, unless the user
// already did, the key would clash, or the Rollout is out of scope.
//
// The rule works on unstructured JSON (no Argo Rollouts Go types) so that no
// field it does not own can change, and it never modifies its input: the maps
// on the changed path are copied, everything else is shared.
package rollout

import (
	"fmt"
	"strings"

	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
)

// Group and Kind of the objects this rule handles.
const (
	Group = "argoproj.io"
	Kind  = "Rollout"
)

// OptOutAnnotation with the value "false" leaves a Rollout untouched (contract 1).
const OptOutAnnotation = "canary-tagger.io/inject"

// Options are the label key and values to inject (contract 1 flags).
type Options struct {
	LabelKey    string
	StableValue string
	CanaryValue string
}

// Reason says why a Rollout was left untouched. Values are stable: they appear
// in metrics-adjacent logs, warnings and the CLI report.
type Reason string

const (
	ReasonNone             Reason = ""
	ReasonNotRollout       Reason = "not a Rollout"
	ReasonNoCanary         Reason = "no canary strategy"
	ReasonNoSteps          Reason = "canary strategy without steps"
	ReasonDeleting         Reason = "being deleted"
	ReasonOptedOut         Reason = "opted out by annotation"
	ReasonUnexpectedType   Reason = "field of unexpected type"
	ReasonKeyInSelector    Reason = "label key in spec.selector"
	ReasonKeyInTemplate    Reason = "label key in pod template labels"
	ReasonKeyInWorkloadRef Reason = "label key in workloadRef template labels"
)

// WorkloadRef is spec.workloadRef of a Rollout.
type WorkloadRef struct {
	APIVersion string
	Kind       string
	Name       string
}

func (r WorkloadRef) String() string { return r.Kind + "/" + r.Name }

// TemplateLabels returns the pod template labels of the workload a Rollout
// references. An error (or a nil function) means "could not be read": the
// rule then injects and warns that the template was not checked (contract 2.2).
type TemplateLabels func(ref WorkloadRef) (map[string]string, error)

// Result is what the rule decided, for metrics, logs, warnings and reports.
type Result struct {
	Outcome outcome.Outcome
	Reason  Reason
	// Detail names the field or key behind Reason, e.g. "spec.strategy.canary.steps is a string".
	Detail string
	// Warnings are for the user (AdmissionResponse.Warnings, CLI stderr).
	Warnings []string
	// Added lists what was injected, as "path=value".
	Added []string
}

var sides = []struct {
	field string
	value func(Options) string
}{
	{"stableMetadata", func(o Options) string { return o.StableValue }},
	{"canaryMetadata", func(o Options) string { return o.CanaryValue }},
}

// Reads is what Mutate reads of a Rollout, for a server that decodes only
// that (obj.Shape): not managedFields, the pod template's spec nor status,
// the bulk of a Rollout. The tests run every case on both the whole and the
// shaped object. (name, namespace and generateName are for the webhook's log.)
var Reads = obj.Shape{
	"apiVersion": nil, "kind": nil,
	"metadata": {"name": nil, "namespace": nil, "generateName": nil, "annotations": nil, "deletionTimestamp": nil},
	"spec":     {"strategy": nil, "selector": nil, "workloadRef": nil, "template": {"metadata": nil}},
}

// Mutate applies contract 2 to a Rollout. It returns the object to admit (the
// input itself when nothing changes) and what it decided.
func Mutate(o map[string]any, opts Options, templateLabels TemplateLabels) (map[string]any, Result) {
	if !isRollout(o) {
		return o, skip(ReasonNotRollout, "")
	}
	if v, k, at := obj.Find(o, "metadata", "deletionTimestamp"); len(at) == 2 && k != obj.Absent && k != obj.Null && v != "" {
		return o, skip(ReasonDeleting, "")
	}
	if v, _ := obj.String(o, "metadata", "annotations", OptOutAnnotation); v == "false" {
		return o, skip(ReasonOptedOut, OptOutAnnotation+`: "false"`)
	}

	canary, k, at := obj.Find(o, "spec", "strategy", "canary")
	switch k {
	case obj.Absent, obj.Null:
		return o, skip(ReasonNoCanary, "")
	case obj.Other:
		return o, unexpected(at, canary)
	}
	switch steps, k := obj.Lookup(canary.(map[string]any), "steps"); k {
	case obj.Absent, obj.Null:
		return o, skip(ReasonNoSteps, "")
	default:
		if s, ok := steps.([]any); !ok {
			return o, unexpected([]string{"spec", "strategy", "canary", "steps"}, steps)
		} else if len(s) == 0 {
			return o, skip(ReasonNoSteps, "")
		}
	}

	key := opts.LabelKey
	if r, done := checkConflicts(o, key); done {
		return o, r
	}

	// notChecked is said only if something is injected: a Rollout that
	// already has both labels is not changed, so there is nothing to warn about.
	var notChecked []string
	if ref, k, at := obj.Find(o, "spec", "workloadRef"); k == obj.Map {
		wr := workloadRef(ref.(map[string]any))
		var labels map[string]string
		var err error
		if templateLabels == nil {
			err = fmt.Errorf("no way to read it")
		} else {
			labels, err = templateLabels(wr)
		}
		if err != nil {
			notChecked = append(notChecked, fmt.Sprintf(
				"canary-tagger: workloadRef %s not checked for label %q (%v); injected anyway", wr, key, err))
		} else if _, clash := labels[key]; clash {
			return o, conflict(ReasonKeyInWorkloadRef, key, fmt.Sprintf("workloadRef %s template", wr), templateWhy)
		}
	} else if k == obj.Other {
		return o, unexpected(at, ref)
	}

	// Decide per side before copying anything: a field of an unexpected type
	// on either side leaves the whole object alone.
	type plan struct{ metaAbsent, labelsAbsent, add bool }
	var plans [2]plan
	for i, s := range sides {
		path := []string{"spec", "strategy", "canary", s.field}
		meta, k := obj.Lookup(canary.(map[string]any), s.field)
		switch k {
		case obj.Absent, obj.Null:
			plans[i] = plan{metaAbsent: true, add: true}
			continue
		case obj.Other:
			return o, unexpected(path, meta)
		}
		labels, k := obj.Lookup(meta.(map[string]any), "labels")
		switch k {
		case obj.Absent, obj.Null:
			plans[i] = plan{labelsAbsent: true, add: true}
		case obj.Other:
			return o, unexpected(append(path, "labels"), labels)
		case obj.Map:
			_, has := labels.(map[string]any)[key]
			plans[i] = plan{add: !has}
		}
	}
	if !plans[0].add && !plans[1].add {
		return o, Result{Outcome: outcome.Present}
	}

	res := Result{Outcome: outcome.Injected, Warnings: notChecked}
	out := obj.CopyMap(o)
	spec := obj.CopyMap(out["spec"].(map[string]any))
	out["spec"] = spec
	strategy := obj.CopyMap(spec["strategy"].(map[string]any))
	spec["strategy"] = strategy
	canaryOut := obj.CopyMap(canary.(map[string]any))
	strategy["canary"] = canaryOut
	for i, s := range sides {
		p := plans[i]
		if !p.add {
			continue
		}
		value := s.value(opts)
		switch {
		case p.metaAbsent:
			canaryOut[s.field] = map[string]any{"labels": map[string]any{key: value}}
		case p.labelsAbsent:
			meta := obj.CopyMap(canaryOut[s.field].(map[string]any))
			meta["labels"] = map[string]any{key: value}
			canaryOut[s.field] = meta
		default:
			meta := obj.CopyMap(canaryOut[s.field].(map[string]any))
			labels := obj.CopyMap(meta["labels"].(map[string]any))
			labels[key] = value
			meta["labels"] = labels
			canaryOut[s.field] = meta
		}
		res.Added = append(res.Added, fmt.Sprintf("spec.strategy.canary.%s.labels.%s=%s", s.field, key, value))
	}
	return out, res
}

// checkConflicts applies contract 2.2 to the Rollout's own selector and template.
func checkConflicts(o map[string]any, key string) (Result, bool) {
	ml, k, at := obj.Find(o, "spec", "selector", "matchLabels")
	switch k {
	case obj.Map:
		if _, has := ml.(map[string]any)[key]; has {
			return conflict(ReasonKeyInSelector, key, "spec.selector.matchLabels", selectorWhy), true
		}
	case obj.Other:
		return unexpected(at, ml), true
	}
	me, k, at := obj.Find(o, "spec", "selector", "matchExpressions")
	switch k {
	case obj.Map, obj.Other:
		exprs, ok := me.([]any)
		if !ok {
			return unexpected(at, me), true
		}
		for i, e := range exprs {
			em, ok := e.(map[string]any)
			if !ok {
				return unexpected([]string{"spec", "selector", fmt.Sprintf("matchExpressions[%d]", i)}, e), true
			}
			if em["key"] == key {
				return conflict(ReasonKeyInSelector, key, "spec.selector.matchExpressions", selectorWhy), true
			}
		}
	}
	tl, k, at := obj.Find(o, "spec", "template", "metadata", "labels")
	switch k {
	case obj.Map:
		if _, has := tl.(map[string]any)[key]; has {
			return conflict(ReasonKeyInTemplate, key, "spec.template.metadata.labels", templateWhy), true
		}
	case obj.Other:
		return unexpected(at, tl), true
	}
	return Result{}, false
}

const (
	// Kept short: the apiserver may truncate warnings over 256 characters.
	selectorWhy = "Argo Rollouts would reject ReplicaSet updates (argo-rollouts #3351)"
	templateWhy = "Argo Rollouts removes it on promotion and Services selecting on it lose pods (argo-rollouts #2916)"
)

func conflict(r Reason, key, where, why string) Result {
	return Result{
		Outcome: outcome.Conflict,
		Reason:  r,
		Detail:  fmt.Sprintf("%q in %s", key, where),
		Warnings: []string{fmt.Sprintf(
			"canary-tagger: label %q not injected: already used in %s; %s",
			key, where, why)},
	}
}

func skip(r Reason, detail string) Result {
	return Result{Outcome: outcome.Skipped, Reason: r, Detail: detail}
}

// unexpected leaves the object alone because the field at path has the wrong type.
func unexpected(path []string, v any) Result {
	want := "an object"
	if last := path[len(path)-1]; last == "steps" || last == "matchExpressions" {
		want = "an array"
	}
	return skip(ReasonUnexpectedType, fmt.Sprintf("%s is %s, expected %s; left alone", strings.Join(path, "."), obj.TypeName(v), want))
}

func isRollout(o map[string]any) bool {
	kind, _ := obj.String(o, "kind")
	apiVersion, _ := obj.String(o, "apiVersion")
	group, _, _ := strings.Cut(apiVersion, "/")
	return kind == Kind && group == Group
}

func workloadRef(m map[string]any) WorkloadRef {
	s := func(k string) string { v, _ := m[k].(string); return v }
	return WorkloadRef{APIVersion: s("apiVersion"), Kind: s("kind"), Name: s("name")}
}
