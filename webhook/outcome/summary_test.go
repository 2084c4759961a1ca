package outcome_test

import (
	"testing"

	"github.com/canary-tagger/canary-tagger/webhook/outcome"
)

func TestSummaryString(t *testing.T) {
	cases := []struct {
		summary outcome.Summary
		want    string
	}{
		{outcome.Summary{Outcome: outcome.Injected, Added: []string{"stableMetadata.labels.role=stable", "canaryMetadata.labels.role=canary"}},
			"injected stableMetadata.labels.role=stable, canaryMetadata.labels.role=canary"},
		{outcome.Summary{Outcome: outcome.Present, Reason: "activeMetadata and previewMetadata already have the label"},
			"present (activeMetadata and previewMetadata already have the label)"},
		{outcome.Summary{Outcome: outcome.Injected, Added: []string{"agent"}, Reason: "agent: injected; trace-agent: present (kube_role)"},
			"injected (agent: injected; trace-agent: present (kube_role))"},
		{outcome.Summary{Outcome: outcome.Conflict, Reason: `label key in spec.selector: "role" in spec.selector.matchLabels`},
			`conflict: label key in spec.selector: "role" in spec.selector.matchLabels`},
		{outcome.Summary{Outcome: outcome.Skipped, Reason: "no containers"}, "skipped: no containers"},
		{outcome.Summary{Outcome: outcome.Error, Reason: "request.object is not a valid JSON object"}, "error: request.object is not a valid JSON object"},
		{outcome.Summary{Outcome: outcome.Skipped}, "skipped"},
	}
	for _, c := range cases {
		if got := c.summary.String(); got != c.want {
			t.Errorf("%+v: got %q, want %q", c.summary, got, c.want)
		}
	}
}
