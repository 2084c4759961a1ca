// Package offline is the manifest-stream engine behind `canary-tagger mutate`
// (contract 6): it applies the webhook's rules to the Kubernetes objects of a YAML
// or JSON stream and writes the same stream back.
//
// It never re-implements a rule. Each document is decoded the way kubectl
// decodes it (sigs.k8s.io/yaml), handed to rollout.Mutate, agentpod.Mutate*
// or datadogagent.Mutate, and the JSON Patch operations the rule returns —
// the very operations the webhook sends to the apiserver — are applied to
// the document:
//
//   - a document the rules leave alone (no operation) is written back byte
//     for byte;
//   - a changed YAML document gets the operations on its yaml.v3 node tree,
//     which is encoded again: comments and key order are kept, the layout
//     (indentation, quoting, flow style, blank lines) is yaml.v3's. Whatever
//     comes before the object (a "---" line, "# Source:" comments) is kept as
//     is. An anchored node on an edited path is first unshared (its aliases
//     become copies), so that an edit never reaches another place;
//   - a changed JSON document gets the operations from evanphx/json-patch,
//     which keeps key order and the text of numbers (indent 2).
//
// Every changed document is decoded again, as kubectl would, and compared
// with the operations applied by evanphx/json-patch to the decoded object: a
// document that does not match is left as it was and reported.
//
// Command is a whole run of `mutate`: the stream on stdout, files written in
// place (-w), the --check report, or the answer to a KRM function call (a
// ResourceList on stdin, its results added by the same operations).
package offline

import (
	"github.com/canary-tagger/canary-tagger/webhook/agentpod"
	"github.com/canary-tagger/canary-tagger/webhook/rollout"
)

// Options are the rules' settings (config.Rules carries both).
type Options struct {
	Rollout  rollout.Options
	AgentPod agentpod.Options
}

// Input is one source of the stream: a file, or stdin.
type Input struct {
	// Name identifies the source in reports and errors ("stdin" for -).
	Name string
	Data []byte
}

// Format is how a document is written back when it changes.
type Format int

const (
	FormatYAML Format = iota
	FormatJSON
)

// Document is one document of a source, in order.
type Document struct {
	Source string
	// Index is the document's 1-based position in its source.
	Index int
	// Line is the 1-based line of the source where the document starts.
	Line   int
	Format Format
	// Raw is the document's exact input bytes (separator and leading comments
	// included); Out is what is written, Raw itself unless Changed.
	Raw     []byte
	Out     []byte
	Changed bool
	// Unwritten is set when the rules change the object but the change
	// could not be written into the document: it is then written back as it
	// was (not Changed), and the report says why.
	Unwritten bool

	// body is where the object starts within Raw (after a "---" line and
	// leading comments for YAML, the opening brace for JSON), for JSON
	// documents the end of the value; obj is the decoded object, nil for
	// empty documents and documents that are not objects, and objJSON the
	// JSON text it was decoded from.
	body, bodyEnd int
	obj           map[string]any
	objJSON       []byte
	// input is the position of the document's source among the inputs
	// (two -f of one file are two sources), parseErr why it does not parse.
	input    int
	parseErr *ParseError
}

// Result is the processed stream.
type Result struct {
	Docs  []*Document
	Notes []Note
	// Failed are the parse errors of the sources ProcessEach left out.
	Failed []*ParseError
}

// Changed counts the documents written differently from their input: what
// --check reports, so that it always agrees with what mutate writes.
func (r *Result) Changed() int {
	n := 0
	for _, d := range r.Docs {
		if d.Changed {
			n++
		}
	}
	return n
}
