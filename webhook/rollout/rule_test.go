package rollout_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"gomodules.xyz/jsonpatch/v2"

	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
	"github.com/canary-tagger/canary-tagger/webhook/internal/obj/objtest"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
	"github.com/canary-tagger/canary-tagger/webhook/rollout"
)

var defaults = rollout.Options{LabelKey: "role", StableValue: "stable", CanaryValue: "canary"}

var withBlueGreen = rollout.Options{LabelKey: "role", StableValue: "stable", CanaryValue: "canary", BlueGreen: true}

// blueGreenSpec is a blue-green Rollout spec with extra blueGreen fields.
func blueGreenSpec(fields string) string {
	return `{replicas: 2, selector: {matchLabels: {app: web}}, template: {metadata: {labels: {app: web}}, spec: {containers: [{name: web, image: "nginx:1.27"}]}}, ` +
		`strategy: {blueGreen: {activeService: web, previewService: web-preview` + fields + `}}}`
}

// rolloutDoc builds a Rollout from extra metadata fields (may be empty) and a spec, in
// YAML flow style.
func rolloutDoc(meta, spec string) string {
	if meta != "" {
		meta = ", " + meta
	}
	return `{apiVersion: argoproj.io/v1alpha1, kind: Rollout, metadata: {name: web, namespace: shop` + meta + `}, spec: ` + spec + `}`
}

// canarySpec is a usual Rollout spec with the given spec.strategy.canary fields.
func canarySpec(canary string) string {
	return canarySpecWith(`matchLabels: {app: web}`, `{app: web}`, canary)
}

// canarySpecWith is canarySpec with a chosen selector and template labels.
func canarySpecWith(selector, templateLabels, canary string) string {
	return `{replicas: 3, selector: {` + selector + `}, template: {metadata: {labels: ` + templateLabels +
		`}, spec: {containers: [{name: web, image: "nginx:1.27"}]}}, strategy: {canary: {` + canary + `}}}`
}

// workloadRefSpec is a Rollout spec with a workloadRef and the given canary fields.
func workloadRefSpec(canary string) string {
	return `{replicas: 3, selector: {matchLabels: {app: web}}, workloadRef: {apiVersion: apps/v1, kind: Deployment, name: web}, strategy: {canary: {` + canary + `}}}`
}

const (
	steps    = `steps: [{setWeight: 20}, {pause: {}}]`
	injected = steps + `, stableMetadata: {labels: {role: stable}}, canaryMetadata: {labels: {role: canary}}`
)

var wantRef = rollout.WorkloadRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}

// resolver returns labels for the referenced workload, and fails the test (by
// panicking) if it is asked about another one.
func resolver(labels map[string]string, err error) rollout.TemplateLabels {
	return func(ref rollout.WorkloadRef) (map[string]string, error) {
		if ref != wantRef {
			panic(fmt.Sprintf("resolver asked for %+v, want %+v", ref, wantRef))
		}
		return labels, err
	}
}

// neverCalled is a resolver the rule must not call.
func neverCalled(ref rollout.WorkloadRef) (map[string]string, error) {
	panic("resolver called for " + ref.String())
}

var errForbidden = errors.New(`deployments.apps "web" is forbidden`)

type tcase struct {
	name     string
	in       string
	opts     *rollout.Options
	resolver rollout.TemplateLabels
	outcome  outcome.Outcome
	reason   rollout.Reason
	detail   string   // substring of Result.Detail
	warnings []string // each a substring of the single warning; nil: no warning
	want     string   // expected output; "" means unchanged
}

var cases = []tcase{
	// contract 2.1: out of scope.
	{name: "2.1 no strategy", in: rolloutDoc("", `{replicas: 1}`), outcome: outcome.Skipped, reason: rollout.ReasonNoCanary},
	{name: "2.1 spec null", in: rolloutDoc("", `null`), outcome: outcome.Skipped, reason: rollout.ReasonNoCanary},
	{name: "2.1 canary absent", in: rolloutDoc("", `{strategy: {}}`), outcome: outcome.Skipped, reason: rollout.ReasonNoCanary},
	{name: "2.1 strategy null", in: rolloutDoc("", `{strategy: null}`), outcome: outcome.Skipped, reason: rollout.ReasonNoCanary},
	{name: "2.1 canary null", in: rolloutDoc("", `{strategy: {canary: null}}`), outcome: outcome.Skipped, reason: rollout.ReasonNoCanary},
	{name: "2.1 blue-green, --blue-green off", in: rolloutDoc("", `{strategy: {blueGreen: {activeService: web, previewService: web-preview}}}`), outcome: outcome.Skipped, reason: rollout.ReasonBlueGreenOff},

	// contract 2.5: blue-green, with --blue-green.
	{name: "2.5 blue-green: preview gets the canary value, active the stable value", in: rolloutDoc("", blueGreenSpec(``)), opts: &withBlueGreen,
		outcome: outcome.Injected, want: rolloutDoc("", blueGreenSpec(`, activeMetadata: {labels: {role: stable}}, previewMetadata: {labels: {role: canary}}`))},
	{name: "2.5 blue-green: the user's values win, other labels kept", in: rolloutDoc("", blueGreenSpec(`, activeMetadata: {labels: {role: blue}}, previewMetadata: {annotations: {a: b}, labels: {team: t}}`)), opts: &withBlueGreen,
		outcome: outcome.Injected, want: rolloutDoc("", blueGreenSpec(`, activeMetadata: {labels: {role: blue}}, previewMetadata: {annotations: {a: b}, labels: {team: t, role: canary}}`))},
	{name: "2.5 blue-green: already labelled", in: rolloutDoc("", blueGreenSpec(`, activeMetadata: {labels: {role: stable}}, previewMetadata: {labels: {role: canary}}`)), opts: &withBlueGreen,
		outcome: outcome.Present},
	{name: "2.5 blue-green: key in the selector", in: rolloutDoc("", `{selector: {matchLabels: {app: web, role: x}}, strategy: {blueGreen: {activeService: web}}}`), opts: &withBlueGreen,
		outcome: outcome.Conflict, reason: rollout.ReasonKeyInSelector, warnings: []string{`label "role"`, "argo-rollouts #3351"}},
	{name: "2.5 blue-green: key in the template", in: rolloutDoc("", `{template: {metadata: {labels: {role: x}}}, strategy: {blueGreen: {activeService: web}}}`), opts: &withBlueGreen,
		outcome: outcome.Conflict, reason: rollout.ReasonKeyInTemplate, warnings: []string{`label "role"`, "argo-rollouts #2916"}},
	{name: "2.5 blue-green: previewMetadata of the wrong type", in: rolloutDoc("", blueGreenSpec(`, previewMetadata: []`)), opts: &withBlueGreen,
		outcome: outcome.Skipped, reason: rollout.ReasonUnexpectedType, detail: "spec.strategy.blueGreen.previewMetadata is an array"},
	{name: "2.5 blueGreen of the wrong type", in: rolloutDoc("", `{strategy: {blueGreen: "x"}}`), opts: &withBlueGreen,
		outcome: outcome.Skipped, reason: rollout.ReasonUnexpectedType, detail: "spec.strategy.blueGreen is a string"},
	{name: "2.5 a canary with steps is handled as a canary with --blue-green", in: rolloutDoc("", canarySpec(steps)), opts: &withBlueGreen,
		outcome: outcome.Injected, want: rolloutDoc("", canarySpec(injected))},
	{name: "2.1 steps absent", in: rolloutDoc("", canarySpec(`maxSurge: 1`)), outcome: outcome.Skipped, reason: rollout.ReasonNoSteps},
	{name: "2.1 canary empty", in: rolloutDoc("", canarySpec(``)), outcome: outcome.Skipped, reason: rollout.ReasonNoSteps},
	{name: "2.1 steps null", in: rolloutDoc("", canarySpec(`steps: null`)), outcome: outcome.Skipped, reason: rollout.ReasonNoSteps},
	{name: "2.1 steps empty", in: rolloutDoc("", canarySpec(`steps: []`)), outcome: outcome.Skipped, reason: rollout.ReasonNoSteps},
	{name: "2.1 steps empty with metadata absent", in: rolloutDoc("", canarySpec(`steps: [], stableMetadata: {labels: {}}`)), outcome: outcome.Skipped, reason: rollout.ReasonNoSteps},
	{name: "2.1 deletionTimestamp set", in: rolloutDoc(`deletionTimestamp: "2026-01-02T03:04:05Z"`, canarySpec(steps)), outcome: outcome.Skipped, reason: rollout.ReasonDeleting},
	{name: "2.1 deletionTimestamp null", in: rolloutDoc(`deletionTimestamp: null`, canarySpec(steps)), outcome: outcome.Injected,
		want: rolloutDoc(`deletionTimestamp: null`, canarySpec(injected))},
	{name: "2.1 opted out", in: rolloutDoc(`annotations: {canary-tagger.io/inject: "false"}`, canarySpec(steps)), outcome: outcome.Skipped, reason: rollout.ReasonOptedOut,
		detail: `canary-tagger.io/inject: "false"`},
	{name: "2.1 inject true is not an opt-out", in: rolloutDoc(`annotations: {canary-tagger.io/inject: "true"}`, canarySpec(steps)), outcome: outcome.Injected,
		want: rolloutDoc(`annotations: {canary-tagger.io/inject: "true"}`, canarySpec(injected))},
	{name: "2.1 other annotations", in: rolloutDoc(`annotations: {note: "false"}`, canarySpec(steps)), outcome: outcome.Injected,
		want: rolloutDoc(`annotations: {note: "false"}`, canarySpec(injected))},
	{name: "2.1 annotations of the wrong type are not an opt-out", in: rolloutDoc(`annotations: "false"`, canarySpec(steps)), outcome: outcome.Injected,
		want: rolloutDoc(`annotations: "false"`, canarySpec(injected))},
	{name: "2.1 metadata of the wrong type is not a deletion", in: `{apiVersion: argoproj.io/v1alpha1, kind: Rollout, metadata: "deletionTimestamp", spec: ` + canarySpec(steps) + `}`,
		outcome: outcome.Injected, want: `{apiVersion: argoproj.io/v1alpha1, kind: Rollout, metadata: "deletionTimestamp", spec: ` + canarySpec(injected) + `}`},
	{name: "not a Rollout: kind", in: `{apiVersion: apps/v1, kind: Deployment, metadata: {name: web}, spec: {strategy: {canary: {steps: [{setWeight: 1}]}}}}`,
		outcome: outcome.Skipped, reason: rollout.ReasonNotRollout},
	{name: "not a Rollout: group", in: `{apiVersion: example.com/v1, kind: Rollout, metadata: {name: web}, spec: {strategy: {canary: {steps: [{setWeight: 1}]}}}}`,
		outcome: outcome.Skipped, reason: rollout.ReasonNotRollout},

	// contract 7: fields of unexpected types are left alone, with the field named.
	{name: "7 steps string", in: rolloutDoc("", canarySpec(`steps: "x"`)), outcome: outcome.Skipped, reason: rollout.ReasonUnexpectedType,
		detail: "spec.strategy.canary.steps is a string, expected an array"},
	{name: "7 steps object", in: rolloutDoc("", canarySpec(`steps: {setWeight: 1}`)), outcome: outcome.Skipped, reason: rollout.ReasonUnexpectedType,
		detail: "spec.strategy.canary.steps is an object, expected an array"},
	{name: "7 canary string", in: rolloutDoc("", `{strategy: {canary: "x"}}`), outcome: outcome.Skipped, reason: rollout.ReasonUnexpectedType,
		detail: "spec.strategy.canary is a string"},
	{name: "7 strategy array", in: rolloutDoc("", `{strategy: []}`), outcome: outcome.Skipped, reason: rollout.ReasonUnexpectedType,
		detail: "spec.strategy is an array"},
	{name: "7 spec string", in: rolloutDoc("", `"x"`), outcome: outcome.Skipped, reason: rollout.ReasonUnexpectedType,
		detail: "spec is a string"},
	{name: "7 stableMetadata string", in: rolloutDoc("", canarySpec(steps+`, stableMetadata: "x"`)), outcome: outcome.Skipped, reason: rollout.ReasonUnexpectedType,
		detail: "spec.strategy.canary.stableMetadata is a string, expected an object"},
	{name: "7 canaryMetadata array", in: rolloutDoc("", canarySpec(steps+`, canaryMetadata: []`)), outcome: outcome.Skipped, reason: rollout.ReasonUnexpectedType,
		detail: "spec.strategy.canary.canaryMetadata is an array"},
	{name: "7 stable labels array", in: rolloutDoc("", canarySpec(steps+`, stableMetadata: {labels: []}`)), outcome: outcome.Skipped, reason: rollout.ReasonUnexpectedType,
		detail: "spec.strategy.canary.stableMetadata.labels is an array, expected an object"},
	{name: "7 canary labels string, stable side not added either", in: rolloutDoc("", canarySpec(steps+`, canaryMetadata: {labels: "role=canary"}`)), outcome: outcome.Skipped, reason: rollout.ReasonUnexpectedType,
		detail: "spec.strategy.canary.canaryMetadata.labels is a string"},
	{name: "7 matchExpressions object", in: rolloutDoc("", canarySpecWith(`matchExpressions: {key: app}`, `{app: web}`, steps)), outcome: outcome.Skipped, reason: rollout.ReasonUnexpectedType,
		detail: "spec.selector.matchExpressions is an object, expected an array"},
	{name: "7 matchExpressions entry string", in: rolloutDoc("", canarySpecWith(`matchExpressions: ["role"]`, `{app: web}`, steps)), outcome: outcome.Skipped, reason: rollout.ReasonUnexpectedType,
		detail: "spec.selector.matchExpressions[0] is a string"},
	{name: "7 matchLabels array", in: rolloutDoc("", canarySpecWith(`matchLabels: []`, `{app: web}`, steps)), outcome: outcome.Skipped, reason: rollout.ReasonUnexpectedType,
		detail: "spec.selector.matchLabels is an array, expected an object"},
	{name: "7 selector string", in: rolloutDoc("", `{selector: "app=web", strategy: {canary: {`+steps+`}}}`), outcome: outcome.Skipped, reason: rollout.ReasonUnexpectedType,
		detail: "spec.selector is a string, expected an object"},
	{name: "7 template labels array", in: rolloutDoc("", canarySpecWith(`matchLabels: {app: web}`, `[]`, steps)), outcome: outcome.Skipped, reason: rollout.ReasonUnexpectedType,
		detail: "spec.template.metadata.labels is an array"},
	{name: "7 workloadRef string", in: rolloutDoc("", `{workloadRef: "Deployment/web", strategy: {canary: {`+steps+`}}}`), resolver: neverCalled,
		outcome: outcome.Skipped, reason: rollout.ReasonUnexpectedType, detail: "spec.workloadRef is a string"},

	// contract 2.2: conflicts.
	{name: "2.2 key in matchLabels", in: rolloutDoc("", canarySpecWith(`matchLabels: {app: web, role: web}`, `{app: web, role: web}`, steps)),
		outcome: outcome.Conflict, reason: rollout.ReasonKeyInSelector, detail: `"role" in spec.selector.matchLabels`,
		warnings: []string{`label "role"`, "spec.selector.matchLabels", "reject ReplicaSet updates", "argo-rollouts #3351"}},
	{name: "2.2 key in matchExpressions", in: rolloutDoc("", canarySpecWith(`matchExpressions: [{key: app, operator: In, values: [web]}, {key: role, operator: Exists}]`, `{app: web}`, steps)),
		outcome: outcome.Conflict, reason: rollout.ReasonKeyInSelector, detail: `"role" in spec.selector.matchExpressions`,
		warnings: []string{`label "role"`, "spec.selector.matchExpressions", "argo-rollouts #3351"}},
	{name: "2.2 other keys in matchExpressions", in: rolloutDoc("", canarySpecWith(`matchExpressions: [{key: app, operator: In, values: [web]}]`, `{app: web}`, steps)),
		outcome: outcome.Injected, want: rolloutDoc("", canarySpecWith(`matchExpressions: [{key: app, operator: In, values: [web]}]`, `{app: web}`, injected))},
	{name: "2.2 matchExpressions null", in: rolloutDoc("", canarySpecWith(`matchLabels: {app: web}, matchExpressions: null`, `{app: web}`, steps)),
		outcome: outcome.Injected, want: rolloutDoc("", canarySpecWith(`matchLabels: {app: web}, matchExpressions: null`, `{app: web}`, injected))},
	{name: "2.2 key in template labels", in: rolloutDoc("", canarySpecWith(`matchLabels: {app: web}`, `{app: web, role: web}`, steps)),
		outcome: outcome.Conflict, reason: rollout.ReasonKeyInTemplate, detail: `"role" in spec.template.metadata.labels`,
		warnings: []string{`label "role"`, "spec.template.metadata.labels", "removes it on promotion", "lose pods", "argo-rollouts #2916"}},
	{name: "2.2 key in template labels and metadata already set", in: rolloutDoc("", canarySpecWith(`matchLabels: {app: web}`, `{role: x}`, injected)),
		outcome: outcome.Conflict, reason: rollout.ReasonKeyInTemplate, warnings: []string{`label "role"`, "argo-rollouts #2916"}},
	{name: "2.2 label keys are case-sensitive", in: rolloutDoc("", canarySpecWith(`matchLabels: {app: web, Role: x}`, `{app: web, Role: x}`, steps)),
		outcome: outcome.Injected, want: rolloutDoc("", canarySpecWith(`matchLabels: {app: web, Role: x}`, `{app: web, Role: x}`, injected))},
	{name: "2.2 template labels null", in: rolloutDoc("", canarySpecWith(`matchLabels: {app: web}`, `null`, steps)),
		outcome: outcome.Injected, want: rolloutDoc("", canarySpecWith(`matchLabels: {app: web}`, `null`, injected))},
	{name: "2.2 workloadRef, no resolver", in: rolloutDoc("", workloadRefSpec(steps)), outcome: outcome.Injected, want: rolloutDoc("", workloadRefSpec(injected)),
		warnings: []string{"workloadRef Deployment/web", "not checked", `label "role"`, "injected anyway"}},
	{name: "2.2 workloadRef, resolver error", in: rolloutDoc("", workloadRefSpec(steps)), resolver: resolver(nil, errForbidden), outcome: outcome.Injected, want: rolloutDoc("", workloadRefSpec(injected)),
		warnings: []string{"workloadRef Deployment/web", "not checked", `label "role"`, errForbidden.Error()}},
	{name: "2.2 workloadRef with the key", in: rolloutDoc("", workloadRefSpec(steps)), resolver: resolver(map[string]string{"app": "web", "role": "x"}, nil),
		outcome: outcome.Conflict, reason: rollout.ReasonKeyInWorkloadRef, detail: `"role" in workloadRef Deployment/web template`,
		warnings: []string{`label "role"`, "workloadRef Deployment/web", "argo-rollouts #2916"}},
	{name: "2.2 workloadRef without the key", in: rolloutDoc("", workloadRefSpec(steps)), resolver: resolver(map[string]string{"app": "web"}, nil),
		outcome: outcome.Injected, want: rolloutDoc("", workloadRefSpec(injected))},
	{name: "2.2 workloadRef with no labels", in: rolloutDoc("", workloadRefSpec(steps)), resolver: resolver(nil, nil),
		outcome: outcome.Injected, want: rolloutDoc("", workloadRefSpec(injected))},
	{name: "2.2 workloadRef unreadable but nothing to add", in: rolloutDoc("", workloadRefSpec(injected)), resolver: resolver(nil, errForbidden),
		outcome: outcome.Present},
	{name: "2.2 workloadRef null", in: rolloutDoc("", `{workloadRef: null, strategy: {canary: {`+steps+`}}}`), resolver: neverCalled,
		outcome: outcome.Injected, want: rolloutDoc("", `{workloadRef: null, strategy: {canary: {`+injected+`}}}`)},
	{name: "2.2 selector checked before workloadRef", in: rolloutDoc("", `{selector: {matchLabels: {role: x}}, workloadRef: {apiVersion: apps/v1, kind: Deployment, name: web}, strategy: {canary: {`+steps+`}}}`),
		resolver: neverCalled, outcome: outcome.Conflict, reason: rollout.ReasonKeyInSelector, warnings: []string{`label "role"`, "spec.selector.matchLabels"}},

	// contract 2.3: per side.
	{name: "2.3 both absent", in: rolloutDoc("", canarySpec(steps)), outcome: outcome.Injected, want: rolloutDoc("", canarySpec(injected))},
	{name: "2.3 both null", in: rolloutDoc("", canarySpec(steps+`, stableMetadata: null, canaryMetadata: null`)), outcome: outcome.Injected, want: rolloutDoc("", canarySpec(injected))},
	{name: "2.3 annotations kept, labels added", in: rolloutDoc("", canarySpec(steps+`, stableMetadata: {annotations: {a: "1"}}, canaryMetadata: {annotations: {b: "2"}, x-extra: true}`)),
		outcome: outcome.Injected,
		want:    rolloutDoc("", canarySpec(steps+`, stableMetadata: {annotations: {a: "1"}, labels: {role: stable}}, canaryMetadata: {annotations: {b: "2"}, x-extra: true, labels: {role: canary}}`))},
	{name: "2.3 labels null", in: rolloutDoc("", canarySpec(steps+`, stableMetadata: {labels: null}, canaryMetadata: {labels: null, annotations: null}`)),
		outcome: outcome.Injected, want: rolloutDoc("", canarySpec(steps+`, stableMetadata: {labels: {role: stable}}, canaryMetadata: {labels: {role: canary}, annotations: null}`))},
	{name: "2.3 labels empty", in: rolloutDoc("", canarySpec(steps+`, stableMetadata: {labels: {}}, canaryMetadata: {labels: {}}`)), outcome: outcome.Injected, want: rolloutDoc("", canarySpec(injected))},
	{name: "2.3 other labels kept", in: rolloutDoc("", canarySpec(steps+`, stableMetadata: {labels: {track: s}}, canaryMetadata: {labels: {track: c, team: t}}`)),
		outcome: outcome.Injected, want: rolloutDoc("", canarySpec(steps+`, stableMetadata: {labels: {track: s, role: stable}}, canaryMetadata: {labels: {track: c, team: t, role: canary}}`))},
	{name: "2.3 user's value wins on one side", in: rolloutDoc("", canarySpec(steps+`, stableMetadata: {labels: {role: blue}}`)),
		outcome: outcome.Injected, want: rolloutDoc("", canarySpec(steps+`, stableMetadata: {labels: {role: blue}}, canaryMetadata: {labels: {role: canary}}`))},
	{name: "2.3 user's values win on both sides", in: rolloutDoc("", canarySpec(steps+`, stableMetadata: {labels: {role: blue}}, canaryMetadata: {labels: {role: green}}`)),
		outcome: outcome.Present},
	{name: "2.3 any value of the key counts", in: rolloutDoc("", canarySpec(steps+`, stableMetadata: {labels: {role: ""}}, canaryMetadata: {labels: {role: 5}}`)),
		outcome: outcome.Present},
	{name: "2.3 already injected", in: rolloutDoc("", canarySpec(injected)), outcome: outcome.Present},
	{name: "2.3 custom options", in: rolloutDoc("", canarySpecWith(`matchLabels: {app: web, role: web}`, `{app: web, role: web}`, steps)),
		opts:    &rollout.Options{LabelKey: "canary-tagger.io/track", StableValue: "old", CanaryValue: "new"},
		outcome: outcome.Injected,
		want: rolloutDoc("", canarySpecWith(`matchLabels: {app: web, role: web}`, `{app: web, role: web}`,
			steps+`, stableMetadata: {labels: {canary-tagger.io/track: old}}, canaryMetadata: {labels: {canary-tagger.io/track: new}}`))},
	{name: "2.3 custom options, key in template", in: rolloutDoc("", canarySpecWith(`matchLabels: {app: web}`, `{app: web, tier: x}`, steps)),
		opts:    &rollout.Options{LabelKey: "tier", StableValue: "old", CanaryValue: "new"},
		outcome: outcome.Conflict, reason: rollout.ReasonKeyInTemplate, warnings: []string{`label "tier"`}},
	{name: "2.3 fields the webhook does not own are kept", in: unknownFields(steps), outcome: outcome.Injected, want: unknownFields(injected)},
}

// unknownFields is a Rollout full of fields the rule must carry over exactly,
// including numbers that a float64 round-trip would change.
func unknownFields(canary string) string {
	return rolloutDoc(`uid: 0b3c, resourceVersion: "12", generation: 12345678901234567890, labels: {app: web}, finalizers: [x], managedFields: [{manager: kubectl, fieldsV1: {f:spec: {}}}]`,
		`{replicas: 3, revisionHistoryLimit: 0, progressDeadlineSeconds: 1.50, minReadySeconds: 1e3, paused: false, x-future-field: {nested: [1, "2", null, {a: []}]},
		  selector: {matchLabels: {app: web}}, template: {metadata: {labels: {app: web}, annotations: {a: b}}, spec: {containers: [{name: web, image: nginx, resources: {limits: {cpu: 500m}}}]}},
		  strategy: {canary: {`+canary+`, maxSurge: "25%", maxUnavailable: 0, trafficRouting: {nginx: {stableIngress: web}}, analysis: {templates: [{templateName: success-rate}], startingStep: 2}, dynamicStableScale: true}}}`)
}

func (c tcase) options() rollout.Options {
	if c.opts != nil {
		return *c.opts
	}
	return defaults
}

func TestMutate(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := objtest.MustYAML(c.in)
			before := objtest.CopyObject(in)
			ops, res := rollout.Mutate(in, c.options(), c.resolver)

			if !reflect.DeepEqual(in, before) {
				t.Fatalf("the rule modified its input:\n got %s\nwant %s", objtest.JSON(in), objtest.JSON(before))
			}
			if res.Outcome != c.outcome || res.Reason != c.reason {
				t.Errorf("result = %s/%q (%s), want %s/%q", res.Outcome, res.Reason, res.Detail, c.outcome, c.reason)
			}
			if !strings.Contains(res.Detail, c.detail) {
				t.Errorf("detail = %q, want it to contain %q", res.Detail, c.detail)
			}
			checkWarnings(t, res.Warnings, c.warnings)
			checkAddOnly(t, ops)

			out, err := objtest.Apply(in, ops)
			if err != nil {
				t.Fatalf("patch %s does not apply: %v", objtest.JSON(ops), err)
			}
			want := in
			if c.want != "" {
				want = objtest.MustYAML(c.want)
			}
			if !reflect.DeepEqual(out, want) {
				t.Errorf("output:\n got %s\nwant %s", objtest.JSON(out), objtest.JSON(want))
			}
			if injected := len(ops) > 0; injected != (res.Outcome == outcome.Injected) || injected != (len(res.Added) > 0) {
				t.Errorf("outcome %s, %d operations, Added %q", res.Outcome, len(ops), res.Added)
			}
			checkIdempotent(t, out, c.options(), c.resolver)
		})
	}
}

// checkAddOnly: contract 2.4, only "add" operations, only on the two sides'
// metadata (a member present as null is set by "add" too).
func checkAddOnly(t *testing.T, ops []jsonpatch.Operation) {
	t.Helper()
	for _, op := range ops {
		onSide := false
		for _, side := range sidePaths {
			onSide = onSide || strings.HasPrefix(op.Path, side)
		}
		if op.Operation != "add" || !onSide {
			t.Errorf("operation %s: contract 2.4 allows only adds under the ephemeral metadata", op.Json())
		}
	}
}

// sidePaths are the ephemeral metadata fields the rule may add to.
var sidePaths = []string{"/spec/strategy/canary/stableMetadata", "/spec/strategy/canary/canaryMetadata",
	"/spec/strategy/blueGreen/activeMetadata", "/spec/strategy/blueGreen/previewMetadata"}

func checkWarnings(t *testing.T, got []string, want []string) {
	t.Helper()
	if want == nil {
		if len(got) != 0 {
			t.Errorf("unexpected warnings %q", got)
		}
		return
	}
	if len(got) != 1 {
		t.Fatalf("warnings = %q, want exactly one", got)
	}
	// The apiserver may truncate warnings longer than 256 characters.
	if len(got[0]) > 256 {
		t.Errorf("warning is %d characters, more than the 256 the apiserver keeps: %q", len(got[0]), got[0])
	}
	for _, w := range want {
		if !strings.Contains(got[0], w) {
			t.Errorf("warning %q does not contain %q", got[0], w)
		}
	}
}

// checkIdempotent applies the rule to its own output: nothing more to add.
func checkIdempotent(t *testing.T, out map[string]any, opts rollout.Options, r rollout.TemplateLabels) {
	t.Helper()
	if ops, res := rollout.Mutate(out, opts, r); len(ops) != 0 || res.Outcome == outcome.Injected || len(res.Added) != 0 {
		t.Errorf("second application: outcome %s, operations %s, added %q", res.Outcome, objtest.JSON(ops), res.Added)
	}
}

// TestAdded checks the Result.Added report of an injection.
func TestAdded(t *testing.T) {
	in := objtest.MustYAML(rolloutDoc("", canarySpec(steps+`, stableMetadata: {labels: {role: blue}}`)))
	_, res := rollout.Mutate(in, defaults, nil)
	want := []string{"spec.strategy.canary.canaryMetadata.labels.role=canary"}
	if !reflect.DeepEqual(res.Added, want) {
		t.Errorf("Added = %q, want %q", res.Added, want)
	}
}

// TestNumbersKept: numbers the webhook does not own keep their exact text
// through decoding and patching (json.Number; a float64 round-trip would
// rewrite them).
func TestNumbersKept(t *testing.T) {
	raw := `{"apiVersion":"argoproj.io/v1alpha1","kind":"Rollout","metadata":{"name":"web","generation":12345678901234567890},` +
		`"spec":{"replicas":3,"x":1.50,"y":1e3,"z":-0.0,"strategy":{"canary":{"steps":[{"setWeight":20.0}]}}}}`
	in, err := obj.Decode([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	ops, res := rollout.Mutate(in, defaults, nil)
	if res.Outcome != outcome.Injected {
		t.Fatalf("outcome %s", res.Outcome)
	}
	out, err := objtest.Apply(in, ops)
	if err != nil {
		t.Fatal(err)
	}
	got := string(objtest.JSON(out))
	for _, n := range []string{`12345678901234567890`, `"x":1.50`, `"y":1e3`, `"z":-0.0`, `"setWeight":20.0`} {
		if !strings.Contains(got, n) {
			t.Errorf("output %s lost %s", got, n)
		}
	}
}
