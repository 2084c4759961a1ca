package datadogagent

import (
	"fmt"

	"github.com/canary-tagger/canary-tagger/webhook/outcome"
)

// Summary is the result in the words every shell uses. An object that is
// not a DatadogAgent is quiet; a DatadogAgent of another version is not.
func (r Result) Summary() outcome.Summary {
	s := outcome.Summary{
		Outcome:  r.Outcome,
		Reason:   string(r.Reason),
		Added:    r.Added,
		Warnings: r.Warnings,
		Quiet:    r.Reason == ReasonNotDatadogAgent,
	}
	if r.Detail != "" {
		s.Reason += ": " + r.Detail
	}
	if r.Outcome == outcome.Present {
		s.Reason = fmt.Sprintf("spec.global.podLabelsAsTags already maps the label to %s", r.Tag)
	}
	return s
}
