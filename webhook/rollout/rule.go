// Package rollout is the Rollout rule (contract 2): give a canary Rollout's
// ephemeral metadata a role label for stable and canary pods, unless the user
// already did, the key would clash, or the Rollout is out of scope.
//
// The rule reads unstructured JSON (no Argo Rollouts Go types, so no field it
// does not own can change) and returns JSON Patch operations: the webhook
// sends them to the apiserver, `mutate` applies them to the manifest.
package rollout

import (
	"fmt"
	"strings"

	"github.com/go-openapi/jsonpointer"
	"gomodules.xyz/jsonpatch/v2"

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
	// BlueGreen labels blue-green Rollouts too: the preview side with the
	// canary value, the active side with the stable value.
	BlueGreen bool
}

// Reason says why a Rollout was left untouched. Values are stable: they appear
// in metrics-adjacent logs, warnings and the CLI report.
type Reason string

const (
	ReasonNotRollout       Reason = "not a Rollout"
	ReasonNoCanary         Reason = "no canary strategy"
	ReasonBlueGreenOff     Reason = "blue-green strategy (--blue-green is off)"
	ReasonNoSteps          Reason = "canary strategy without steps"
	ReasonDeleting         Reason = "being deleted"
	ReasonOptedOut         Reason = "opted out by annotation"
	ReasonUnexpectedType   Reason = "field of unexpected type"
	ReasonKeyInSelector    Reason = "label key in spec.selector"
	ReasonKeyInTemplate    Reason = "label key in pod template labels"
	ReasonKeyInWorkloadRef Reason = "label key in workloadRef template labels"
)

// Result is what the rule decided, for metrics, logs, warnings and reports
// (in words: Summary).
type Result struct {
	Outcome outcome.Outcome
	// Strategy is the strategy field handled, "canary" or "blueGreen"; empty
	// when the Rollout was left alone before one was found.
	Strategy string
	Reason   Reason
	// Detail names the field or key behind Reason, e.g. "spec.strategy.canary.steps is a string".
	Detail string
	// Warnings are for the user (AdmissionResponse.Warnings, CLI stderr).
	Warnings []string
	// Added lists what was injected, as "path=value" with the full path.
	Added []string
}

// side is one ephemeral metadata field of a strategy and its label value.
type side struct {
	field string
	value func(Options) string
}

func stable(o Options) string { return o.StableValue }
func canary(o Options) string { return o.CanaryValue }

var (
	canarySides    = []side{{"stableMetadata", stable}, {"canaryMetadata", canary}}
	blueGreenSides = []side{{"activeMetadata", stable}, {"previewMetadata", canary}}
)

// Mutate applies contract 2 to a Rollout: a canary with steps, or, with
// Options.BlueGreen, a blue-green Rollout. It never modifies o; the
// operations it returns are all "add" (contract 2.4) and none when nothing
// is to change.
func Mutate(o map[string]any, opts Options, templateLabels TemplateLabels) ([]jsonpatch.Operation, Result) {
	if !isRollout(o) {
		return nil, skip(ReasonNotRollout, "")
	}
	if v, k, at := obj.Find(o, "metadata", "deletionTimestamp"); len(at) == 2 && k != obj.Absent && k != obj.Null && v != "" {
		return nil, skip(ReasonDeleting, "")
	}
	if v, _ := obj.String(o, "metadata", "annotations", OptOutAnnotation); v == "false" {
		return nil, skip(ReasonOptedOut, OptOutAnnotation+`: "false"`)
	}

	strategy, sides, res, done := findStrategy(o, opts)
	if done {
		return nil, res
	}
	ops, res := inject(o, strategy, sides, opts, templateLabels)
	res.Strategy = strategy.field
	return ops, res
}

// inject applies contracts 2.2 and 2.3 to the sides of the strategy found.
func inject(o map[string]any, strategy strategyObject, sides []side, opts Options, templateLabels TemplateLabels) ([]jsonpatch.Operation, Result) {
	key := opts.LabelKey
	if r, done := checkConflicts(o, key); done {
		return nil, r
	}
	notChecked, r, done := checkWorkloadRef(o, key, templateLabels)
	if done {
		return nil, r
	}

	// Every side is checked before any operation is made: a field of an
	// unexpected type on either side leaves the whole object alone.
	var ops []jsonpatch.Operation
	var added []string
	for _, s := range sides {
		path := []string{"spec", "strategy", strategy.field, s.field}
		pointer := "/spec/strategy/" + strategy.field + "/" + s.field
		value := s.value(opts)
		meta, k := obj.Lookup(strategy.object, s.field)
		switch k {
		case obj.Absent, obj.Null:
			ops = append(ops, jsonpatch.NewOperation("add", pointer, map[string]any{"labels": map[string]any{key: value}}))
		case obj.Other:
			return nil, unexpected(path, meta)
		case obj.Map:
			labels, k := obj.Lookup(meta.(map[string]any), "labels")
			switch k {
			case obj.Absent, obj.Null:
				ops = append(ops, jsonpatch.NewOperation("add", pointer+"/labels", map[string]any{key: value}))
			case obj.Other:
				return nil, unexpected(append(path, "labels"), labels)
			case obj.Map:
				if _, has := labels.(map[string]any)[key]; has {
					continue
				}
				ops = append(ops, jsonpatch.NewOperation("add", pointer+"/labels/"+jsonpointer.Escape(key), value))
			}
		}
		added = append(added, fmt.Sprintf("spec.strategy.%s.%s.labels.%s=%s", strategy.field, s.field, key, value))
	}
	if len(ops) == 0 {
		return nil, Result{Outcome: outcome.Present}
	}
	return ops, Result{Outcome: outcome.Injected, Warnings: notChecked, Added: added}
}

// checkWorkloadRef applies contract 2.2 to the pod template of the workload
// spec.workloadRef names. A template that cannot be read is a warning,
// notChecked, said only if something is injected: a Rollout that already
// has both labels is not changed, so there is nothing to warn about.
func checkWorkloadRef(o map[string]any, key string, templateLabels TemplateLabels) (notChecked []string, r Result, done bool) {
	ref, k, at := obj.Find(o, "spec", "workloadRef")
	switch k {
	case obj.Other:
		return nil, unexpected(at, ref), true
	case obj.Absent, obj.Null:
		return nil, Result{}, false
	}
	wr := workloadRef(ref.(map[string]any))
	var labels map[string]string
	var err error
	if templateLabels == nil {
		err = fmt.Errorf("no way to read it")
	} else {
		labels, err = templateLabels(wr)
	}
	if err != nil {
		return []string{fmt.Sprintf("canary-tagger: workloadRef %s not checked for label %q (%v); injected anyway", wr, key, err)}, Result{}, false
	}
	if _, clash := labels[key]; clash {
		return nil, conflict(ReasonKeyInWorkloadRef, key, fmt.Sprintf("workloadRef %s template", wr), templateWhy), true
	}
	return nil, Result{}, false
}

// strategyObject is spec.strategy.canary or spec.strategy.blueGreen.
type strategyObject struct {
	field  string
	object map[string]any
}

// findStrategy finds the strategy the rule handles (contract 2.1), or says
// why there is none.
func findStrategy(o map[string]any, opts Options) (strategyObject, []side, Result, bool) {
	none := strategyObject{}
	canaryStrategy, k, at := obj.Find(o, "spec", "strategy", "canary")
	switch k {
	case obj.Other:
		return none, nil, unexpected(at, canaryStrategy), true
	case obj.Absent, obj.Null:
		blueGreen, k, at := obj.Find(o, "spec", "strategy", "blueGreen")
		switch {
		case k == obj.Other:
			return none, nil, unexpected(at, blueGreen), true
		case k != obj.Map:
			return none, nil, skip(ReasonNoCanary, ""), true
		case !opts.BlueGreen:
			return none, nil, skip(ReasonBlueGreenOff, ""), true
		}
		return strategyObject{"blueGreen", blueGreen.(map[string]any)}, blueGreenSides, Result{}, false
	}
	steps, found, _, ok := obj.List(canaryStrategy.(map[string]any), "steps")
	switch {
	case !ok:
		return none, nil, unexpected([]string{"spec", "strategy", "canary", "steps"}, found), true
	case len(steps) == 0:
		return none, nil, skip(ReasonNoSteps, ""), true
	}
	return strategyObject{"canary", canaryStrategy.(map[string]any)}, canarySides, Result{}, false
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
	exprs, found, at, ok := obj.List(o, "spec", "selector", "matchExpressions")
	if !ok {
		return unexpected(at, found), true
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
