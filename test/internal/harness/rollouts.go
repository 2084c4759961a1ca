package harness

import (
	"encoding/json"
	"os"

	jsonpatch5 "github.com/evanphx/json-patch/v5"
	"sigs.k8s.io/yaml"

	"github.com/canary-tagger/canary-tagger/webhook/rollout"
)

// RolloutShape is the seed Rollout in one of the shapes contract 2 tells apart.
type RolloutShape struct {
	Name   string
	Object map[string]any
}

// RolloutShapes are the seed Rollout (SeedRolloutPath) in every shape of
// contract 2.1 to 2.5 for the label key: metadata absent, partial, null or
// the user's; the key in the selector or the template; opted out; no steps;
// blue-green. None has a workloadRef (a webhook and a policy differ there).
func RolloutShapes(repo, key string) ([]RolloutShape, error) {
	data, err := os.ReadFile(SeedRolloutPath(repo))
	if err != nil {
		return nil, err
	}
	var seed map[string]any
	if err := yaml.Unmarshal(data, &seed); err != nil {
		return nil, err
	}
	// The paths the shapes change; each returns the map at that path of a copy.
	canary := func(o map[string]any) map[string]any { return dig(o, "spec", "strategy", "canary") }
	labels := func(kv ...string) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	blueGreen := func(o map[string]any) map[string]any {
		bg := map[string]any{"activeService": "demo", "previewService": "demo-preview", "autoPromotionEnabled": false}
		dig(o, "spec")["strategy"] = map[string]any{"blueGreen": bg}
		return bg
	}
	shapes := []struct {
		name   string
		change func(o map[string]any)
	}{
		{"no metadata", func(map[string]any) {}},
		{"stable side with annotations only", func(o map[string]any) {
			canary(o)["stableMetadata"] = map[string]any{"annotations": labels("example.com/owner", "team-a")}
		}},
		{"labels without the key", func(o map[string]any) {
			canary(o)["stableMetadata"] = map[string]any{"labels": labels("tier", "web")}
			canary(o)["canaryMetadata"] = map[string]any{"labels": labels("tier", "web")}
		}},
		{"the user's value on one side", func(o map[string]any) {
			canary(o)["stableMetadata"] = map[string]any{"labels": labels(key, "prod-stable")}
		}},
		{"the user's values on both sides", func(o map[string]any) {
			canary(o)["stableMetadata"] = map[string]any{"labels": labels(key, "prod-stable", "tier", "web")}
			canary(o)["canaryMetadata"] = map[string]any{"labels": labels(key, "prod-canary")}
		}},
		{"null side and null labels", func(o map[string]any) {
			canary(o)["stableMetadata"] = nil
			canary(o)["canaryMetadata"] = map[string]any{"labels": nil, "annotations": labels("example.com/owner", "team-a")}
		}},
		{"key in selector.matchLabels", func(o map[string]any) {
			dig(o, "spec", "selector", "matchLabels")[key] = "web"
			dig(o, "spec", "template", "metadata", "labels")[key] = "web"
		}},
		{"key in selector.matchExpressions", func(o map[string]any) {
			dig(o, "spec", "selector")["matchExpressions"] = []any{map[string]any{"key": key, "operator": "DoesNotExist"}}
		}},
		{"key in the pod template", func(o map[string]any) {
			dig(o, "spec", "template", "metadata", "labels")[key] = "web"
		}},
		{"opted out", func(o map[string]any) {
			dig(o, "metadata", "annotations")[rollout.OptOutAnnotation] = "false"
		}},
		{"opt-out annotation not false", func(o map[string]any) {
			dig(o, "metadata", "annotations")[rollout.OptOutAnnotation] = "true"
		}},
		{"canary without steps", func(o map[string]any) { delete(canary(o), "steps") }},
		{"canary with no steps", func(o map[string]any) { canary(o)["steps"] = []any{} }},
		{"blue-green", func(o map[string]any) { blueGreen(o) }},
		{"blue-green with the user's preview value", func(o map[string]any) {
			blueGreen(o)["previewMetadata"] = map[string]any{"labels": labels(key, "preview")}
		}},
		{"blue-green with the key in the pod template", func(o map[string]any) {
			blueGreen(o)
			dig(o, "spec", "template", "metadata", "labels")[key] = "web"
		}},
	}
	out := make([]RolloutShape, 0, len(shapes))
	for _, s := range shapes {
		o, err := jsonCopy(seed)
		if err != nil {
			return nil, err
		}
		s.change(o)
		out = append(out, RolloutShape{Name: s.name, Object: o})
	}
	return out, nil
}

// dig returns the map at path in o, creating missing maps on the way.
func dig(o map[string]any, path ...string) map[string]any {
	for _, k := range path {
		next, ok := o[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			o[k] = next
		}
		o = next
	}
	return o
}

// jsonCopy is a deep copy of o with JSON's types (numbers become float64).
func jsonCopy(o map[string]any) (map[string]any, error) {
	b, err := json.Marshal(o)
	if err != nil {
		return nil, err
	}
	var c map[string]any
	return c, json.Unmarshal(b, &c)
}

// RuleResult is what the Rollout rule makes of o without a workloadRef
// reader: o with the rule's operations applied (evanphx/json-patch, as
// `mutate` applies them), and its warnings.
func RuleResult(o map[string]any, opts rollout.Options) (map[string]any, []string, error) {
	ops, res := rollout.Mutate(o, opts, nil)
	doc, err := json.Marshal(o)
	if err != nil {
		return nil, nil, err
	}
	if len(ops) > 0 {
		patch, err := json.Marshal(ops)
		if err != nil {
			return nil, nil, err
		}
		p, err := jsonpatch5.DecodePatch(patch)
		if err != nil {
			return nil, nil, err
		}
		if doc, err = p.Apply(doc); err != nil {
			return nil, nil, err
		}
	}
	var out map[string]any
	return out, res.Warnings, json.Unmarshal(doc, &out)
}
