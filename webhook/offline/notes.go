package offline

import (
	"fmt"
	"strings"

	"github.com/canary-tagger/canary-tagger/webhook/agentpod"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
	"github.com/canary-tagger/canary-tagger/webhook/rollout"
)

// Note is one line of the report on stderr:
//
//	<source>:<doc index> [items[i] ]<Kind>/<name>: <text>
//
// Only documents worth a look get one: changed ones, conflicts, agent
// templates (which get no status annotation, so this is where their
// per-container result is shown), and skips the user should act on.
type Note struct {
	Source  string
	Index   int
	Item    int // index in a List's items, -1 otherwise
	Kind    string
	Name    string
	Outcome outcome.Outcome // empty for warnings
	Warning bool
	Text    string
}

func (n Note) String() string {
	loc := fmt.Sprintf("%s:%d ", n.Source, n.Index)
	if n.Item >= 0 {
		loc += fmt.Sprintf("items[%d] ", n.Item)
	}
	if n.Warning {
		return loc + n.Kind + "/" + n.Name + ": warning: " + n.Text
	}
	return loc + n.Kind + "/" + n.Name + ": " + n.Text
}

func rolloutNotes(at Note, r rollout.Result) []Note {
	main := at
	main.Outcome = r.Outcome
	switch r.Outcome {
	case outcome.Injected:
		added := make([]string, len(r.Added))
		for i, a := range r.Added {
			added[i] = strings.TrimPrefix(a, "spec.strategy.canary.")
		}
		main.Text = "injected " + strings.Join(added, ", ")
	case outcome.Present:
		main.Text = "present (stableMetadata and canaryMetadata already have the label)"
	case outcome.Conflict:
		main.Text = "conflict: " + r.Detail
	default:
		// Out of scope (blue-green, no steps, opted out, being deleted) is
		// not news; a field of an unexpected type is.
		if r.Reason != rollout.ReasonUnexpectedType {
			return nil
		}
		main.Text = "skipped: " + r.Detail
	}
	notes := []Note{main}
	for _, w := range r.Warnings {
		wn := at
		wn.Warning = true
		wn.Text = strings.TrimPrefix(w, "canary-tagger: ")
		notes = append(notes, wn)
	}
	return notes
}

func agentNotes(at Note, r agentpod.Result) []Note {
	switch r.Reason {
	case agentpod.ReasonNotPod, agentpod.ReasonNotWorkload, agentpod.ReasonNotAgent, agentpod.ReasonNotOwned:
		return nil // not an agent: quiet
	case agentpod.ReasonNone:
		at.Outcome = r.Outcome
		at.Text = fmt.Sprintf("%s (%s)", r.Outcome, r.Status())
	default:
		at.Outcome = r.Outcome
		at.Text = "skipped: " + string(r.Reason)
		if r.Detail != "" {
			at.Text += " (" + r.Detail + ")"
		}
	}
	return []Note{at}
}
