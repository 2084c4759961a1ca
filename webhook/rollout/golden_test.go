package rollout_test

import (
	"errors"
	"flag"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
	"github.com/canary-tagger/canary-tagger/webhook/internal/obj/objtest"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
	"github.com/canary-tagger/canary-tagger/webhook/rollout"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.yaml from the rules' output")

// goldenOutcomes is what each testdata input must give, checked besides the
// golden file so that -update cannot silently accept a wrong outcome.
var goldenOutcomes = map[string]outcome.Outcome{
	"bluegreen":                    outcome.Skipped,
	"canary-already-labelled":      outcome.Present,
	"canary-basic":                 outcome.Injected,
	"canary-partial-metadata":      outcome.Injected,
	"canary-unknown-fields":        outcome.Injected,
	"canary-without-steps":         outcome.Skipped,
	"conflict-selector-expression": outcome.Conflict,
	"conflict-template-label":      outcome.Conflict,
	"deleting":                     outcome.Skipped,
	"opted-out":                    outcome.Skipped,
	"steps-wrong-type":             outcome.Skipped,
	"workloadref":                  outcome.Injected,
	"workloadref-conflict":         outcome.Conflict,
	"workloadref-unresolved":       outcome.Injected,
}

// golden is the content of a testdata/*.golden.yaml file.
type golden struct {
	Outcome  outcome.Outcome `json:"outcome"`
	Reason   rollout.Reason  `json:"reason,omitempty"`
	Detail   string          `json:"detail,omitempty"`
	Warnings []string        `json:"warnings,omitempty"`
	Added    []string        `json:"added,omitempty"`
	Changed  bool            `json:"changed"`
	Output   map[string]any  `json:"output"`
}

// docsResolver resolves a workloadRef from the other documents of the same
// file, as `mutate` does (contract 2.2).
func docsResolver(docs []objtest.Doc) rollout.TemplateLabels {
	return func(ref rollout.WorkloadRef) (map[string]string, error) {
		for _, d := range docs {
			av, _ := obj.String(d.Object, "apiVersion")
			if av != ref.APIVersion || d.Kind() != ref.Kind || d.Name() != ref.Name {
				continue
			}
			l, _ := obj.Lookup(d.Object, "spec", "template", "metadata", "labels")
			labels := map[string]string{}
			for k, v := range l.(map[string]any) {
				labels[k], _ = v.(string)
			}
			return labels, nil
		}
		return nil, errors.New("not found in the input")
	}
}

func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, path := range inputs {
		if strings.HasSuffix(path, ".golden.yaml") {
			continue
		}
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		seen++
		t.Run(name, func(t *testing.T) {
			docs, err := objtest.Docs(path)
			if err != nil {
				t.Fatal(err)
			}
			in := docs[0].Object
			before := objtest.CopyObject(in)
			resolve := docsResolver(docs[1:])
			ops, res := rollout.Mutate(in, defaults, resolve)
			if !reflect.DeepEqual(in, before) {
				t.Fatal("the rule modified its input")
			}
			out, err := objtest.Apply(in, ops)
			if err != nil {
				t.Fatal(err)
			}
			want, ok := goldenOutcomes[name]
			if !ok {
				t.Fatalf("add %s to goldenOutcomes", name)
			}
			if res.Outcome != want {
				t.Errorf("outcome %s (%s %s), want %s", res.Outcome, res.Reason, res.Detail, want)
			}
			checkIdempotent(t, out, defaults, resolve)
			g := golden{
				Outcome: res.Outcome, Reason: res.Reason, Detail: res.Detail, Warnings: res.Warnings, Added: res.Added,
				Changed: !reflect.DeepEqual(in, out), Output: out,
			}
			msg, err := objtest.Golden(strings.TrimSuffix(path, ".yaml")+".golden.yaml", g, *update)
			if err != nil {
				t.Fatal(err)
			}
			if msg != "" {
				t.Error(msg)
			}
		})
	}
	if seen != len(goldenOutcomes) {
		t.Errorf("%d inputs in testdata, %d in goldenOutcomes", seen, len(goldenOutcomes))
	}
}
