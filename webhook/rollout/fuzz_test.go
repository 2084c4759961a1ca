package rollout_test

import (
	"errors"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/go-openapi/jsonpointer"

	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
	"github.com/canary-tagger/canary-tagger/webhook/internal/obj/objtest"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
	"github.com/canary-tagger/canary-tagger/webhook/rollout"
)

// fuzzResolver picks the workloadRef resolver from a fuzzed byte: none, an
// error, labels with the key, labels without it.
func fuzzResolver(mode uint8, key string) rollout.TemplateLabels {
	switch mode % 4 {
	case 1:
		return func(rollout.WorkloadRef) (map[string]string, error) { return nil, errors.New("forbidden") }
	case 2:
		return func(rollout.WorkloadRef) (map[string]string, error) { return map[string]string{key: "x"}, nil }
	case 3:
		return func(rollout.WorkloadRef) (map[string]string, error) { return map[string]string{"app": "web"}, nil }
	}
	return nil
}

// FuzzMutate: for any JSON object, the rule never panics, never modifies its
// input, is idempotent, and only adds the label under
// spec.strategy.canary.{stable,canary}Metadata.labels (replacing at most a
// null or empty object on that path).
func FuzzMutate(f *testing.F) {
	for _, c := range cases {
		f.Add(objtest.JSON(objtest.MustYAML(c.in)), uint8(0))
		f.Add(objtest.JSON(objtest.MustYAML(c.in)), uint8(1))
	}
	inputs, _ := filepath.Glob("testdata/*.yaml")
	for _, p := range inputs {
		if docs, err := objtest.Docs(p); err == nil && !strings.HasSuffix(p, ".golden.yaml") {
			f.Add(docs[0].JSON, uint8(2))
			f.Add(docs[0].JSON, uint8(3))
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte, mode uint8) {
		in, err := obj.Decode(raw)
		if err != nil {
			return
		}
		opts := defaults
		if mode&4 != 0 {
			opts = rollout.Options{LabelKey: "canary-tagger.io/track", StableValue: "old", CanaryValue: "new", BlueGreen: true}
		}
		resolve := fuzzResolver(mode, opts.LabelKey)
		before := objtest.CopyObject(in)
		ops, res := rollout.Mutate(in, opts, resolve)
		if !reflect.DeepEqual(in, before) {
			t.Fatalf("input modified")
		}
		out, err := objtest.Apply(in, ops)
		if err != nil {
			t.Fatalf("patch %s does not apply: %v", objtest.JSON(ops), err)
		}
		checkOnlyAdds(t, in, out, opts)
		changed := !reflect.DeepEqual(in, out)
		if changed != (res.Outcome == outcome.Injected) {
			t.Fatalf("outcome %s, changed %v", res.Outcome, changed)
		}
		switch res.Outcome {
		case outcome.Skipped, outcome.Conflict:
			if res.Reason == "" {
				t.Fatalf("%s without a reason", res.Outcome)
			}
		case outcome.Present:
			checkBothSides(t, in, opts, "present")
			fallthrough
		case outcome.Injected:
			if res.Reason != "" {
				t.Fatalf("%s with reason %q", res.Outcome, res.Reason)
			}
		default:
			t.Fatalf("outcome %q", res.Outcome)
		}
		if (res.Outcome == outcome.Conflict) != (len(res.Warnings) == 1 && res.Reason != "") {
			t.Fatalf("outcome %s with warnings %q", res.Outcome, res.Warnings)
		}
		if s := res.Summary(); s.Outcome != res.Outcome || !strings.HasPrefix(s.String(), string(res.Outcome)) ||
			s.Quiet && res.Outcome != outcome.Skipped || (len(s.Added) > 0) != (res.Outcome == outcome.Injected) {
			t.Fatalf("summary %+v (%q) of %+v", s, s, res)
		}
		if again, res2 := rollout.Mutate(out, opts, resolve); len(again) != 0 || res2.Outcome == outcome.Injected {
			t.Fatalf("not idempotent: %s then %s %s\n%s", res.Outcome, res2.Outcome, objtest.JSON(again), objtest.JSON(out))
		}
		if changed {
			checkBothSides(t, out, opts, "injected")
		}
	})
}

// checkBothSides: both sides of the strategy the rule handled carry the key.
func checkBothSides(t *testing.T, o map[string]any, opts rollout.Options, what string) {
	t.Helper()
	strategy, sides := "canary", []string{"stableMetadata", "canaryMetadata"}
	if _, k := obj.Lookup(o, "spec", "strategy", "canary"); k != obj.Map {
		strategy, sides = "blueGreen", []string{"activeMetadata", "previewMetadata"}
	}
	for _, side := range sides {
		if _, k := obj.Lookup(o, "spec", "strategy", strategy, side, "labels", opts.LabelKey); k == obj.Absent {
			t.Fatalf("%s, but %s.%s has no %s", what, strategy, side, opts.LabelKey)
		}
	}
}

// checkOnlyAdds compares every leaf: those of the input are in the output
// unchanged (except a null or empty object on a side's path, the strategy
// object included, which the labels fill); the new ones are exactly the
// side labels.
func checkOnlyAdds(t *testing.T, in, out map[string]any, opts rollout.Options) {
	t.Helper()
	li, lo := objtest.Leaves(in), objtest.Leaves(out)
	for p, v := range li {
		if w, ok := lo[p]; ok && reflect.DeepEqual(v, w) {
			continue
		}
		ok := false
		for _, side := range sidePaths {
			if (p == path.Dir(side) || p == side || p == side+"/labels") && objtest.IsEmpty(v) {
				if _, isList := v.([]any); !isList {
					ok = true
				}
			}
		}
		if !ok {
			t.Fatalf("input leaf %s = %v changed or lost (output %s)", p, v, objtest.JSON(out))
		}
	}
	key := "/labels/" + jsonpointer.Escape(opts.LabelKey)
	want := map[string]string{
		"/spec/strategy/canary/stableMetadata" + key: opts.StableValue, "/spec/strategy/canary/canaryMetadata" + key: opts.CanaryValue,
		"/spec/strategy/blueGreen/activeMetadata" + key: opts.StableValue, "/spec/strategy/blueGreen/previewMetadata" + key: opts.CanaryValue,
	}
	for p, v := range lo {
		if _, ok := li[p]; ok {
			continue
		}
		if w, ok := want[p]; !ok || v != w {
			t.Fatalf("new leaf %s = %v", p, v)
		}
	}
}
