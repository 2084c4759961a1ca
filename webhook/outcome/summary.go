package outcome

import "strings"

// Summary is what one rule did to one object, in the words every shell uses
// (the webhook's warnings, audit annotations and log line, mutate's report,
// doctor, the healer). Each rule's Result has a Summary method.
type Summary struct {
	Outcome Outcome
	// Added is what was added, short and readable: "canaryMetadata.labels.role=canary",
	// "previewMetadata.labels.role=canary"; for agent pods, the names of the
	// containers that got the mapping.
	Added []string
	// Reason is why nothing was added (skip, conflict, unexpected type, or
	// what is already there), with its detail; for agent pods, the status of
	// each container.
	Reason string
	// Warnings are for the user: admission warnings, mutate's warnings, the
	// healer's Events.
	Warnings []string
	// Quiet means not news (not a Rollout, out of scope, not an agent pod):
	// mutate prints no note.
	Quiet bool
}

// String is the summary in one line: "injected canaryMetadata.labels.role=canary, ...",
// "present (stableMetadata and canaryMetadata already have the label)",
// "injected (agent: injected; trace-agent: present (kube_role))",
// "conflict: ...", "skipped: ...".
//
// What was done (injected, present) is followed by its explanation in
// parentheses; what was left alone (conflict, skipped, error) by its reason
// after a colon.
func (s Summary) String() string {
	text := string(s.Outcome)
	switch {
	case s.Reason == "" && len(s.Added) > 0:
		return text + " " + strings.Join(s.Added, ", ")
	case s.Reason == "":
		return text
	case s.Outcome == Injected || s.Outcome == Present:
		return text + " (" + s.Reason + ")"
	}
	return text + ": " + s.Reason
}
