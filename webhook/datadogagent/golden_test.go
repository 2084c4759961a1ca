package datadogagent_test

import (
	"flag"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/canary-tagger/canary-tagger/webhook/datadogagent"
	"github.com/canary-tagger/canary-tagger/webhook/internal/obj/objtest"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.yaml from the rule's output")

// operatorInputs are the DatadogAgents the Operator renders in
// test/testdata/datadog-operator were made from.
const operatorInputs = "../../test/testdata/datadog-operator/inputs"

// goldenOutcomes is what each input must give, checked besides the golden
// file so that -update cannot silently accept a wrong outcome.
var goldenOutcomes = map[string]outcome.Outcome{
	"clash":                     outcome.Injected,
	"container-override-env":    outcome.Skipped,
	"global-env":                outcome.Skipped,
	"override-env":              outcome.Skipped,
	"role-already-mapped":       outcome.Present,
	"v1alpha1":                  outcome.Skipped,
	"custom-config-with-env":    outcome.Injected,
	"custom-config-without-env": outcome.Skipped,
	"default":                   outcome.Injected,
	"pod-labels-as-tags":        outcome.Injected,
}

type golden struct {
	Outcome  outcome.Outcome     `json:"outcome"`
	Reason   datadogagent.Reason `json:"reason,omitempty"`
	Detail   string              `json:"detail,omitempty"`
	Note     string              `json:"note"`
	Warnings []string            `json:"warnings,omitempty"`
	Changed  bool                `json:"changed"`
	Output   map[string]any      `json:"output,omitempty"`
}

// TestGolden runs testdata/*.yaml and the Operator render inputs against
// testdata/*.golden.yaml (the inputs' goldens under testdata/operator-inputs).
func TestGolden(t *testing.T) {
	local, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	inputs, err := filepath.Glob(filepath.Join(operatorInputs, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, path := range append(local, inputs...) {
		if strings.HasSuffix(path, ".golden.yaml") {
			continue
		}
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		goldenPath := filepath.Join("testdata", name+".golden.yaml")
		if strings.HasPrefix(path, operatorInputs) {
			goldenPath = filepath.Join("testdata", "operator-inputs", name+".golden.yaml")
		}
		seen++
		t.Run(name, func(t *testing.T) {
			doc, err := objtest.OnlyDoc(path)
			if err != nil {
				t.Fatal(err)
			}
			in := doc.Object
			out, res := run(t, in, defaults)
			want, ok := goldenOutcomes[name]
			if !ok {
				t.Fatalf("no expected outcome for %s in goldenOutcomes", name)
			}
			if res.Outcome != want {
				t.Errorf("outcome %s, want %s (%s)", res.Outcome, want, res.Summary())
			}
			changed := !reflect.DeepEqual(in, out)
			g := golden{Outcome: res.Outcome, Reason: res.Reason, Detail: res.Detail, Note: res.Summary().String(), Warnings: res.Warnings, Changed: changed}
			if changed {
				g.Output = out
			}
			msg, err := objtest.Golden(goldenPath, g, *update)
			if err != nil {
				t.Fatal(err)
			}
			if msg != "" {
				t.Error(msg)
			}
		})
	}
	if seen != len(goldenOutcomes) {
		t.Errorf("%d inputs, %d expected outcomes", seen, len(goldenOutcomes))
	}
}
