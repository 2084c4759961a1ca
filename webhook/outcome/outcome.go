// Package outcome names what canary-tagger did with one object. The same values
// label the metrics, the logs, the audit annotations and the CLI's report, so
// they are a closed set of constants rather than strings built at call sites.
package outcome

// Outcome is the result of applying one rule to one object.
type Outcome string

const (
	// Injected: the object was changed (at least one label or mapping added).
	Injected Outcome = "injected"
	// Present: nothing to add, the user already set what canary-tagger would.
	Present Outcome = "present"
	// Conflict: the label key clashes with the object (contract 2.2); untouched, with a warning.
	Conflict Outcome = "conflict"
	// Skipped: out of scope or opted out; untouched.
	Skipped Outcome = "skipped"
	// Error: the request could not be handled (malformed input).
	Error Outcome = "error"
)

// All lists every outcome, so metrics can be initialised to zero for each.
var All = []Outcome{Injected, Present, Conflict, Skipped, Error}
