// Package offline is the manifest-stream engine behind `canary-tagger mutate`
// (contract 6): it applies the webhook's rules to the Kubernetes objects of a YAML
// or JSON stream and writes the same stream back.
//
// It never re-implements a rule. Each document is decoded the way kubectl
// decodes it (sigs.k8s.io/yaml), handed to rollout.Mutate or agentpod.Mutate*,
// and the difference between the rule's input and output is written back into
// the document's own text:
//
//   - a document the rules leave alone is written back byte-for-byte;
//   - a changed YAML document is edited in place: the new keys, list entries
//     or values are spliced into the original bytes at the positions yaml.v3
//     reports, so comments, key order, quoting, blank lines and indentation of
//     everything else are kept (see splice.go). If splicing is not possible
//     (anchors on the edited path, a multi-line scalar to replace, ...), the
//     document is re-encoded from its yaml.v3 node tree instead (comments and
//     key order kept, layout normalised);
//   - a changed JSON document is re-encoded as JSON, indent 2, key order kept.
//
// Every rewritten document is decoded again and compared with the rule's
// output, so what is written is exactly what the webhook would have admitted.
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
	// Unwritten is set when the rules changed the object but the change
	// could not be written back into the document (it is then left as is).
	Unwritten bool

	// body is where the object starts within Raw (after a "---" line and
	// leading comments for YAML, the opening brace for JSON), for JSON
	// documents the end of the value; obj is the decoded object, nil for
	// empty documents and documents that are not objects.
	body, bodyEnd int
	obj           map[string]any
}

// Result is the processed stream.
type Result struct {
	Docs  []*Document
	Notes []Note
}

// Changed counts documents the rules change (written or not).
func (r *Result) Changed() int {
	n := 0
	for _, d := range r.Docs {
		if d.Changed || d.Unwritten {
			n++
		}
	}
	return n
}
