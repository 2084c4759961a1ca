package offline

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	syaml "sigs.k8s.io/yaml"

	"github.com/canary-tagger/canary-tagger/webhook/agentpod"
	"github.com/canary-tagger/canary-tagger/webhook/datadogagent"
	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
	"github.com/canary-tagger/canary-tagger/webhook/rollout"
)

// Process splits and decodes every input, applies the rules to each object
// (and to each object of a List), and applies the operations they return to
// the document. If any document cannot be parsed it returns an error naming
// every such document and no result: nothing may be written then (contract 7).
func Process(inputs []Input, opts Options) (*Result, error) {
	docs := parse(inputs)
	var errs []error
	for _, d := range docs {
		if d.parseErr != nil {
			errs = append(errs, d.parseErr)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	res := &Result{Docs: docs}
	res.apply(opts, indexWorkloads(docs))
	return res, nil
}

// parse splits every input into its documents and decodes them; a document
// that does not parse keeps its error in parseErr.
func parse(inputs []Input) []*Document {
	var docs []*Document
	for i, in := range inputs {
		for _, d := range split(in.Name, in.Data) {
			d.input = i
			d.parseErr = d.decode()
			docs = append(docs, d)
		}
	}
	return docs
}

// apply runs the rules on the result's documents and writes their changes.
func (res *Result) apply(opts Options, wl workloads) {
	for _, d := range res.Docs {
		if d.obj == nil {
			continue
		}
		at := Note{Source: d.Source, Index: d.Index, Item: -1}
		ops, notes := documentOps(d.obj, at, opts, wl)
		res.Notes = append(res.Notes, notes...)
		if len(ops) == 0 {
			continue
		}
		out, err := d.patched(ops)
		if err != nil {
			d.Unwritten = true
			at.Kind, at.Name, at.Warning = kindOf(d.obj), nameOf(d.obj), true
			at.Text = "the change could not be written into this document, left as is: " + err.Error()
			res.Notes = append(res.Notes, at)
			continue
		}
		d.Out, d.Changed = out, !bytes.Equal(out, d.Raw)
	}
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
func (d *Document) decode() (failure *ParseError) {
	defer func() {
		if p := recover(); p != nil {
			failure = &ParseError{Source: d.Source, Index: d.Index, DocLine: d.Line, Msg: fmt.Sprintf("parser failure: %v", p)}
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
		d.obj, d.objJSON = m, b
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
	d.obj, d.objJSON = m, j
	return nil
}

// documentOps applies the rules to a document's object, or to each object in
// the items of a List (v1 List or any *List kind), and returns their
// operations with paths from the document's root.
func documentOps(o map[string]any, at Note, opts Options, wl workloads) ([]jsonpatch.Operation, []Note) {
	items, isList := o["items"].([]any)
	if !isList || !strings.HasSuffix(kindOf(o), "List") {
		return objectOps(o, at, opts, wl)
	}
	var ops []jsonpatch.Operation
	var notes []Note
	for i, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			continue
		}
		at.Item = i
		itemOps, n := objectOps(m, at, opts, wl)
		notes = append(notes, n...)
		for _, op := range itemOps {
			op.Path = "/items/" + strconv.Itoa(i) + op.Path
			ops = append(ops, op)
		}
	}
	return ops, notes
}

// objectOps calls the rule for the object's kind.
func objectOps(o map[string]any, at Note, opts Options, wl workloads) ([]jsonpatch.Operation, []Note) {
	at.Kind, at.Name = kindOf(o), nameOf(o)
	switch at.Kind {
	case rollout.Kind:
		ops, r := rollout.Mutate(o, opts.Rollout, wl.templateLabels(o))
		return ops, notes(at, r.Summary())
	case "Pod":
		ops, r := agentpod.MutatePod(o, opts.AgentPod)
		return ops, notes(at, r.Summary())
	case "DaemonSet", "ExtendedDaemonSet", "Deployment":
		ops, r := agentpod.MutateWorkload(o, opts.AgentPod)
		return ops, notes(at, r.Summary())
	case datadogagent.Kind: // the rule checks the group (datadoghq.com) and version
		ops, r := datadogagent.Mutate(o, datadogagent.Options{LabelKey: opts.AgentPod.LabelKey, TagName: opts.AgentPod.TagName})
		return ops, notes(at, r.Summary())
	}
	return nil, nil
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
