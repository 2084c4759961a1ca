package offline

import (
	"bytes"
	"strings"
	"testing"

	"github.com/canary-tagger/canary-tagger/webhook/config"
)

// defaults are the rules' options with the contract 1 defaults.
func defaults(t *testing.T) Options {
	t.Helper()
	f := config.Flags{
		LabelKey: config.DefaultLabelKey, StableValue: config.DefaultStableValue, CanaryValue: config.DefaultCanaryValue,
		TagName: config.DefaultTagName, AgentSelector: config.DefaultAgentSelector,
	}
	r, err := f.Validate()
	if err != nil {
		t.Fatal(err)
	}
	return Options{Rollout: r.Rollout, AgentPod: r.AgentPod}
}

// run processes the inputs and returns the stream written and the report.
func run(t *testing.T, inputs ...Input) (*Result, string, []string) {
	t.Helper()
	res, err := Process(inputs, defaults(t))
	if err != nil {
		t.Fatalf("Process: %v", err)
	}
	var b bytes.Buffer
	if _, err := res.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	var notes []string
	for _, n := range res.Notes {
		notes = append(notes, n.String())
	}
	return res, b.String(), notes
}

func one(s string) Input { return Input{Name: "in.yaml", Data: []byte(s)} }

// assertWritten checks a run's output against want and how many documents
// it changed.
func assertWritten(t *testing.T, res *Result, out, want string, changed int) {
	t.Helper()
	if out != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
	if res.Changed() != changed {
		t.Errorf("Changed() = %d, want %d", res.Changed(), changed)
	}
}

// injectedMetadata is what the rollout rule appends to a canary strategy in
// block style with two-space indentation, the strategy's keys at indent.
func injectedMetadata(indent string) string {
	return indent + "canaryMetadata:\n" +
		indent + "  labels:\n" +
		indent + "    role: canary\n" +
		indent + "stableMetadata:\n" +
		indent + "  labels:\n" +
		indent + "    role: stable\n"
}

// assertIdempotent checks that mutate applied to its own output changes nothing.
func assertIdempotent(t *testing.T, out string) {
	t.Helper()
	res, again, _ := run(t, one(out))
	if again != out || res.Changed() != 0 {
		t.Errorf("not idempotent: second run changed %d documents:\n%s", res.Changed(), again)
	}
}

func assertNotes(t *testing.T, got []string, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("report has %d lines, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i, w := range want {
		if !strings.Contains(got[i], w) {
			t.Errorf("report line %d = %q, want it to contain %q", i, got[i], w)
		}
	}
}
