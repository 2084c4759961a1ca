package rollout_test

// BenchmarkMutate measures the Rollout rule alone (no decoding, no patch) on
// the shapes the load generator sends. Compare runs with benchstat:
//
//	go test -run '^$' -bench BenchmarkMutate -benchmem -count 10 ./webhook/rollout > new.txt
//	benchstat old.txt new.txt

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
	"github.com/canary-tagger/canary-tagger/webhook/rollout"
)

var benchOpts = rollout.Options{LabelKey: "role", StableValue: "stable", CanaryValue: "canary"}

// benchSeedRollout is the seed's Rollout as the apiserver sends it on CREATE:
// 5 replicas, steps setWeight 20 / pause / setWeight 50 / pause, image
// argoproj/demo:blue, no ephemeral metadata.
func benchSeedRollout() map[string]any {
	const seed = `{
 "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
 "metadata": {"name": "demo", "namespace": "default", "uid": "4b1c2a53-0d4f-4d61-9c7e-3d1f5b7a9e10",
  "generation": 1, "creationTimestamp": "2026-11-25T10:00:00Z",
  "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "argoproj.io/v1alpha1",
   "time": "2026-11-25T10:00:00Z", "fieldsType": "FieldsV1",
   "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}}},
    "f:spec": {".": {}, "f:replicas": {}, "f:revisionHistoryLimit": {}, "f:selector": {}, "f:strategy": {".": {}, "f:canary": {".": {}, "f:steps": {}}}, "f:template": {}}}}],
  "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"argoproj.io/v1alpha1\",\"kind\":\"Rollout\",\"metadata\":{\"annotations\":{},\"name\":\"demo\",\"namespace\":\"default\"},\"spec\":{\"replicas\":5,\"revisionHistoryLimit\":2,\"selector\":{\"matchLabels\":{\"app\":\"demo\"}},\"strategy\":{\"canary\":{\"steps\":[{\"setWeight\":20},{\"pause\":{}},{\"setWeight\":50},{\"pause\":{}}]}},\"template\":{\"metadata\":{\"labels\":{\"app\":\"demo\"}},\"spec\":{\"containers\":[{\"image\":\"argoproj/demo:blue\",\"name\":\"demo\",\"ports\":[{\"containerPort\":8080}]}]}}}}\n"}},
 "spec": {"replicas": 5, "revisionHistoryLimit": 2,
  "selector": {"matchLabels": {"app": "demo"}},
  "template": {"metadata": {"labels": {"app": "demo"}},
   "spec": {"containers": [{"name": "demo", "image": "argoproj/demo:blue", "ports": [{"containerPort": 8080, "protocol": "TCP"}]}]}},
  "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]}}}
}`
	m, err := obj.Decode([]byte(seed))
	if err != nil {
		panic(err)
	}
	return m
}

// benchUnknownFields is the seed with many fields canary-tagger does not know:
// 200 annotations, 100 unknown spec fields, 50 analysis templates, traffic
// routing, a status, and metadata on both sides that lacks the label.
func benchUnknownFields() map[string]any {
	m := benchSeedRollout()
	meta := m["metadata"].(map[string]any)
	ann := meta["annotations"].(map[string]any)
	for i := range 200 {
		ann[fmt.Sprintf("example.com/annotation-%03d", i)] = fmt.Sprintf("value %d with some length to it, like a checksum 0123456789abcdef", i)
	}
	spec := m["spec"].(map[string]any)
	for i := range 100 {
		spec[fmt.Sprintf("futureField%03d", i)] = map[string]any{"enabled": true, "n": json.Number(fmt.Sprint(i)), "list": []any{"a", "b", json.Number("1.5")}}
	}
	canary := spec["strategy"].(map[string]any)["canary"].(map[string]any)
	var analyses []any
	for i := range 50 {
		analyses = append(analyses, map[string]any{"templateName": fmt.Sprintf("t%d", i), "args": []any{map[string]any{"name": "svc", "value": "demo"}}})
	}
	canary["analysis"] = map[string]any{"templates": analyses, "startingStep": json.Number("2")}
	canary["trafficRouting"] = map[string]any{"nginx": map[string]any{"stableIngress": "demo", "additionalIngressAnnotations": map[string]any{"canary-by-header": "X-Canary"}}}
	canary["stableMetadata"] = map[string]any{"annotations": map[string]any{"team": "payments"}}
	canary["canaryMetadata"] = map[string]any{"labels": map[string]any{"track": "canary"}}
	m["status"] = map[string]any{"phase": "Healthy", "replicas": json.Number("5"), "conditions": []any{map[string]any{"type": "Available", "status": "True"}}}
	return m
}

func benchLabelled() map[string]any {
	m := benchSeedRollout()
	canary := m["spec"].(map[string]any)["strategy"].(map[string]any)["canary"].(map[string]any)
	canary["stableMetadata"] = map[string]any{"labels": map[string]any{"role": "stable"}}
	canary["canaryMetadata"] = map[string]any{"labels": map[string]any{"role": "canary"}}
	return m
}

func benchConflict() map[string]any {
	m := benchSeedRollout()
	labels := m["spec"].(map[string]any)["template"].(map[string]any)["metadata"].(map[string]any)["labels"].(map[string]any)
	labels["role"] = "web"
	return m
}

func BenchmarkMutate(b *testing.B) {
	for _, c := range []struct {
		name string
		obj  map[string]any
		want outcome.Outcome
	}{
		{"seed", benchSeedRollout(), outcome.Injected},
		{"unknown-fields", benchUnknownFields(), outcome.Injected},
		{"labelled", benchLabelled(), outcome.Present},
		{"conflict", benchConflict(), outcome.Conflict},
	} {
		b.Run(c.name, func(b *testing.B) {
			if _, r := rollout.Mutate(c.obj, benchOpts, nil); r.Outcome != c.want {
				b.Fatalf("outcome %q, want %q (%+v)", r.Outcome, c.want, r)
			}
			b.ReportAllocs()
			for b.Loop() {
				rollout.Mutate(c.obj, benchOpts, nil)
			}
		})
	}
}
