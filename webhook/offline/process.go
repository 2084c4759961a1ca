package offline

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	syaml "sigs.k8s.io/yaml"

	"github.com/canary-tagger/canary-tagger/webhook/agentpod"
	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
	"github.com/canary-tagger/canary-tagger/webhook/rollout"
)

// Process splits and decodes every input, applies the rules to each object
// (and to each object of a List), and writes each change back into its
// document. If any document cannot be parsed it returns an error naming
// every such document and no result: nothing may be written then (contract 7).
func Process(inputs []Input, opts Options) (*Result, error) {
	res := &Result{}
	var errs []error
	for _, in := range inputs {
		for _, d := range split(in.Name, in.Data) {
			if err := d.decode(); err != nil {
				errs = append(errs, err)
			}
			res.Docs = append(res.Docs, d)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	wl := indexWorkloads(res.Docs)
	for _, d := range res.Docs {
		if d.obj == nil {
			continue
		}
		out, notes := mutateDoc(d, opts, wl)
		res.Notes = append(res.Notes, notes...)
		if reflect.DeepEqual(out, d.obj) {
			continue
		}
		at := Note{Source: d.Source, Index: d.Index, Item: -1, Kind: kindOf(d.obj), Name: nameOf(d.obj), Warning: true}
		how, err := d.write(out)
		if err != nil {
			d.Unwritten = true
			at.Text = "the change could not be written into this document, left as is: " + err.Error()
			res.Notes = append(res.Notes, at)
		} else if how != "" {
			at.Text = how
			res.Notes = append(res.Notes, at)
		}
	}
	return res, nil
}

// ParseError is a document that is neither YAML nor JSON.
type ParseError struct {
	Source string
	Index  int
	// Line is the line of the error in the source, 0 if the parser did not
	// say; DocLine is where the document starts.
	Line, DocLine int
	Msg           string
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: document %d: %s", e.Source, e.Line, e.Index, e.Msg)
	}
	return fmt.Sprintf("%s: document %d (from line %d): %s", e.Source, e.Index, e.DocLine, e.Msg)
}

var yamlErrLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

// decode reads the document the way kubectl does (sigs.k8s.io/yaml, YAML
// 1.1 semantics) so that the rules see what the apiserver will get.
func (d *Document) decode() (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &ParseError{Source: d.Source, Index: d.Index, DocLine: d.Line, Msg: fmt.Sprintf("parser failure: %v", p)}
		}
	}()
	if d.Format == FormatJSON {
		b := d.Raw[d.body:d.bodyEnd]
		if b[0] != '{' {
			return nil // valid JSON, not an object: passed through
		}
		m, err := obj.Decode(b)
		if err != nil {
			return &ParseError{Source: d.Source, Index: d.Index, DocLine: d.Line, Msg: err.Error()}
		}
		d.obj = m
		return nil
	}
	if len(bytes.TrimSpace(d.Raw[d.body:])) == 0 {
		return nil // empty document
	}
	j, err := syaml.YAMLToJSON(d.Raw)
	if err != nil {
		pe := &ParseError{Source: d.Source, Index: d.Index, DocLine: d.Line, Msg: err.Error()}
		if m := yamlErrLine.FindStringSubmatch(pe.Msg); m != nil {
			l, _ := strconv.Atoi(m[1])
			pe.Line = d.Line + l - 1
			pe.Msg = "yaml: " + pe.Msg[len(m[0]):]
		}
		return pe
	}
	if len(j) == 0 || j[0] != '{' {
		return nil // a scalar, a list or null: passed through
	}
	m, err := obj.Decode(j)
	if err != nil {
		return &ParseError{Source: d.Source, Index: d.Index, DocLine: d.Line, Msg: err.Error()}
	}
	d.obj = m
	return nil
}

// write puts the rules' output into the document's text and checks that the
// new text decodes to exactly that output. how is non-empty when the
// document had to be re-encoded rather than edited in place.
func (d *Document) write(out map[string]any) (how string, err error) {
	defer func() {
		if p := recover(); p != nil { // a parser bug must not lose the stream
			how, err = "", fmt.Errorf("internal error: %v", p)
		}
	}()
	edits, err := diff(d.obj, out)
	if err != nil {
		return "", err
	}
	if d.Format == FormatJSON {
		b, err := rewriteJSON(d.Raw[d.body:d.bodyEnd], edits)
		if err == nil {
			var got map[string]any
			if got, err = obj.Decode(b); err == nil {
				err = same(got, out)
			}
		}
		if err != nil {
			return "", err
		}
		d.setOut(d.Raw[:d.body], b, d.Raw[d.bodyEnd:])
		return "", nil
	}
	b, err := splice(d.Raw, edits)
	if err == nil {
		err = verify(b, out)
	}
	if err == nil {
		d.setOut(b)
		return "", nil
	}
	b, err2 := reencode(d.Raw, d.body, edits)
	if err2 == nil {
		err2 = verify(b, out)
	}
	if err2 != nil {
		return "", fmt.Errorf("%v; re-encoding: %v", err, err2)
	}
	d.setOut(b)
	return "re-encoded, layout normalised (could not edit in place: " + err.Error() + ")", nil
}

func (d *Document) setOut(parts ...[]byte) {
	d.Out = bytes.Join(parts, nil)
	d.Changed = true
}

// verify decodes a rewritten YAML document as decode did and compares it
// with the rule's output.
func verify(b []byte, want map[string]any) error {
	j, err := syaml.YAMLToJSON(b)
	if err != nil {
		return fmt.Errorf("rewritten document does not parse: %v", err)
	}
	got, err := obj.Decode(j)
	if err != nil {
		return fmt.Errorf("rewritten document: %v", err)
	}
	return same(got, want)
}

func same(got, want map[string]any) error {
	if !reflect.DeepEqual(got, want) {
		return errors.New("rewritten document differs from the rule's output")
	}
	return nil
}

// mutateDoc applies the rules to a document's object, or to each object in
// the items of a List (v1 List or any *List kind).
func mutateDoc(d *Document, opts Options, wl workloads) (map[string]any, []Note) {
	at := Note{Source: d.Source, Index: d.Index, Item: -1}
	items, isList := d.obj["items"].([]any)
	if kind := kindOf(d.obj); !isList || !strings.HasSuffix(kind, "List") {
		return mutateObject(d.obj, at, opts, wl)
	}
	var notes []Note
	var newItems []any
	for i, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			continue
		}
		at.Item = i
		out, n := mutateObject(m, at, opts, wl)
		notes = append(notes, n...)
		if !reflect.DeepEqual(out, m) {
			if newItems == nil {
				newItems = append([]any(nil), items...)
			}
			newItems[i] = out
		}
	}
	if newItems == nil {
		return d.obj, notes
	}
	out := obj.CopyMap(d.obj)
	out["items"] = newItems
	return out, notes
}

// mutateObject calls the rule for the object's kind.
func mutateObject(o map[string]any, at Note, opts Options, wl workloads) (map[string]any, []Note) {
	at.Kind, at.Name = kindOf(o), nameOf(o)
	switch at.Kind {
	case rollout.Kind:
		out, r := rollout.Mutate(o, opts.Rollout, wl.templateLabels(o))
		return out, rolloutNotes(at, r)
	case "Pod":
		out, r := agentpod.MutatePod(o, opts.AgentPod)
		return out, agentNotes(at, r)
	case "DaemonSet":
		out, r := agentpod.MutateDaemonSet(o, opts.AgentPod)
		return out, agentNotes(at, r)
	}
	return o, nil
}

func kindOf(o map[string]any) string {
	k, _ := obj.String(o, "kind")
	return k
}

func nameOf(o map[string]any) string {
	if n, _ := obj.String(o, "metadata", "name"); n != "" {
		return n
	}
	if g, _ := obj.String(o, "metadata", "generateName"); g != "" {
		return g + "*"
	}
	return "(no name)"
}
