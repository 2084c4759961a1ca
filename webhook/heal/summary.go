package heal

import (
	"strings"

	"github.com/canary-tagger/canary-tagger/webhook/outcome"
	"github.com/canary-tagger/canary-tagger/webhook/rollout"
)

// ruleSummary stands in for outcome.Summary (issue 17, same fields), which
// is not on this branch yet. At the merge, ruleSummary becomes
// outcome.Summary and summarize(res) becomes res.Summary().
type ruleSummary struct {
	Outcome  outcome.Outcome
	Added    []string
	Reason   string
	Warnings []string
	Quiet    bool
}

func (s ruleSummary) String() string {
	switch {
	case len(s.Added) > 0:
		return string(s.Outcome) + ": " + strings.Join(s.Added, ", ")
	case s.Reason != "":
		return string(s.Outcome) + ": " + s.Reason
	}
	return string(s.Outcome)
}

// summarize is the one place the healer turns a rule result into words.
func summarize(res rollout.Result) ruleSummary {
	s := ruleSummary{Outcome: res.Outcome, Added: res.Added, Reason: string(res.Reason), Warnings: res.Warnings}
	if res.Detail != "" {
		s.Reason += ": " + res.Detail
	}
	s.Quiet = res.Outcome == outcome.Present || res.Outcome == outcome.Skipped
	return s
}
