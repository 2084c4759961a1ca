package offline

import (
	"fmt"
	"strings"

	"github.com/canary-tagger/canary-tagger/webhook/outcome"
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

// notes are the report's lines on one object: what the rule did, then its
// warnings; none when the result is not news.
func notes(at Note, s outcome.Summary) []Note {
	if s.Quiet {
		return nil
	}
	main := at
	main.Outcome, main.Text = s.Outcome, s.String()
	notes := []Note{main}
	for _, w := range s.Warnings {
		wn := at
		wn.Warning = true
		wn.Text = strings.TrimPrefix(w, "canary-tagger: ") // the report is canary-tagger's own
		notes = append(notes, wn)
	}
	return notes
}
