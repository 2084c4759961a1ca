package rollout

import (
	"strings"

	"github.com/canary-tagger/canary-tagger/webhook/outcome"
)

// Summary is the result in the words every shell uses. What was added is
// named from the strategy down ("canaryMetadata.labels.role=canary"); a
// Rollout out of scope is quiet, a field of an unexpected type is not.
func (r Result) Summary() outcome.Summary {
	s := outcome.Summary{
		Outcome:  r.Outcome,
		Reason:   string(r.Reason),
		Warnings: r.Warnings,
		Quiet:    r.Outcome == outcome.Skipped && r.Reason != ReasonUnexpectedType,
	}
	if r.Detail != "" {
		s.Reason += ": " + r.Detail
	}
	for _, a := range r.Added {
		s.Added = append(s.Added, strings.TrimPrefix(a, "spec.strategy."+r.Strategy+"."))
	}
	if r.Outcome == outcome.Present {
		s.Reason = strings.Join(r.sideFields(), " and ") + " already have the label"
	}
	return s
}

// sideFields are the ephemeral metadata fields of the strategy handled.
func (r Result) sideFields() []string {
	sides := canarySides
	if r.Strategy == "blueGreen" {
		sides = blueGreenSides
	}
	fields := make([]string, len(sides))
	for i, s := range sides {
		fields[i] = s.field
	}
	return fields
}
