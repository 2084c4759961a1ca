package offline

import (
	"fmt"
	"io"
	"slices"
	"strconv"

	"gomodules.xyz/jsonpatch/v2"

	"github.com/canary-tagger/canary-tagger/webhook/config"
	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
)

// A KRM function call (the KRM Functions Specification, as kustomize, kpt
// and others run exec functions): a ResourceList on stdin, answered on
// stdout by the same ResourceList with its items mutated and results
// saying what the report says.
const resourceListKind = "ResourceList"

var resourceListVersions = []string{"config.kubernetes.io/v1", "config.kubernetes.io/v1beta1"}

// Annotations an orchestrator may set on an item: the file it comes from
// and its position there (the internal. ones are the current names).
var (
	pathAnnotations  = []string{"internal.config.kubernetes.io/path", "config.kubernetes.io/path"}
	indexAnnotations = []string{"internal.config.kubernetes.io/index", "config.kubernetes.io/index"}
)

// resourceList is the ResourceList of a KRM function call — stdin holding
// one document, a ResourceList — or nil.
func resourceList(c Command, inputs []Input) *Document {
	readsStdin := len(c.Files) == 0 || len(c.Files) == 1 && c.Files[0] == "-"
	if !readsStdin || len(inputs) != 1 {
		return nil
	}
	var found *Document
	for _, d := range split(inputs[0].Name, inputs[0].Data) {
		if d.decode() != nil {
			return nil // reported by the stream's own path
		}
		if d.obj == nil {
			continue
		}
		if found != nil {
			return nil // a stream of documents, not a call
		}
		found = d
	}
	if found == nil || kindOf(found.obj) != resourceListKind {
		return nil
	}
	if v, _ := obj.String(found.obj, "apiVersion"); !slices.Contains(resourceListVersions, v) {
		return nil
	}
	return found
}

// result is one entry of a ResourceList's results: the specification's
// fields canary-tagger fills.
type result struct {
	Message     string       `json:"message" yaml:"message"`
	Severity    string       `json:"severity" yaml:"severity"`
	ResourceRef *resourceRef `json:"resourceRef,omitempty" yaml:"resourceRef,omitempty"`
	File        *fileRef     `json:"file,omitempty" yaml:"file,omitempty"`
}

type resourceRef struct {
	APIVersion string `json:"apiVersion" yaml:"apiVersion"`
	Kind       string `json:"kind" yaml:"kind"`
	Name       string `json:"name" yaml:"name"`
	Namespace  string `json:"namespace,omitempty" yaml:"namespace,omitempty"`
}

type fileRef struct {
	Path  string `json:"path" yaml:"path"`
	Index int    `json:"index" yaml:"index"`
}

const (
	severityInfo    = "info"
	severityWarning = "warning"
	severityError   = "error"
)

// function answers a KRM function call. Settings come from the flags and
// the functionConfig; invalid ones are a result of severity error and exit
// code 1, the items left as they are (the specification's failure).
func (c Command) function(d *Document, stdout, stderr io.Writer) int {
	code := 0
	var ops []jsonpatch.Operation
	var results []result
	rules, err := functionSettings(d.obj, c.Settings)
	if err != nil {
		fmt.Fprintf(stderr, "canary-tagger mutate: %v\n", err)
		failure := result{Message: err.Error(), Severity: severityError}
		if fc, ok := d.obj["functionConfig"].(map[string]any); ok {
			failure.ResourceRef, failure.File = references(fc)
		}
		results = append(results, failure)
		code = 1
	} else {
		at := Note{Source: d.Source, Index: d.Index, Item: -1}
		var notes []Note
		ops, notes = documentOps(d.obj, at, Options{Rollout: rules.Rollout, AgentPod: rules.AgentPod}, indexWorkloads([]*Document{d}))
		(&Result{Notes: notes}).printNotes(stderr)
		results = resultsOf(d.obj, notes)
	}
	add, err := resultOps(d.obj, results)
	if err != nil {
		fmt.Fprintf(stderr, "canary-tagger mutate: the ResourceList's results are left as they are (%v): canary-tagger's are the report above\n", err)
	}
	out, err := d.answer(append(ops, add...))
	if err != nil && len(ops) > 0 {
		msg := "the change could not be written into the ResourceList, its items are left as they are: " + err.Error()
		fmt.Fprintf(stderr, "canary-tagger mutate: %s\n", msg)
		add, _ = resultOps(d.obj, append(results, result{Message: msg, Severity: severityWarning}))
		out, err = d.answer(add)
	}
	if err != nil {
		fmt.Fprintf(stderr, "canary-tagger mutate: the results could not be written into the ResourceList (%v); they are the report above\n", err)
		out = d.Raw
	}
	if _, err := stdout.Write(out); err != nil {
		fmt.Fprintf(stderr, "canary-tagger mutate: writing the output: %v\n", err)
		return 2
	}
	return code
}

// answer is the ResourceList with the operations applied; byte for byte the
// input when there are none.
func (d *Document) answer(ops []jsonpatch.Operation) ([]byte, error) {
	if len(ops) == 0 {
		return d.Raw, nil
	}
	return d.patched(ops)
}

// functionSettings are the flags with what the functionConfig, a
// ConfigMap, sets in its data.
func functionSettings(rl map[string]any, flags config.Flags) (config.Rules, error) {
	fc, k := obj.Lookup(rl, "functionConfig")
	switch k {
	case obj.Absent, obj.Null:
		return flags.Validate()
	case obj.Other:
		return config.Rules{}, fmt.Errorf("functionConfig is %s; canary-tagger reads its settings from a ConfigMap", obj.TypeName(fc))
	}
	m := fc.(map[string]any)
	if kind := kindOf(m); kind != "ConfigMap" {
		return config.Rules{}, fmt.Errorf("functionConfig is a %q; canary-tagger reads its settings from a ConfigMap's data", kind)
	}
	data, k := obj.Lookup(m, "data")
	settings := map[string]string{}
	switch k {
	case obj.Other:
		return config.Rules{}, fmt.Errorf("functionConfig ConfigMap/%s: data is %s, not a map of strings", nameOf(m), obj.TypeName(data))
	case obj.Map:
		for key, v := range data.(map[string]any) {
			s, ok := v.(string)
			if !ok {
				return config.Rules{}, fmt.Errorf("functionConfig ConfigMap/%s: data.%s is %s; ConfigMap values are strings (quote it)", nameOf(m), key, obj.TypeName(v))
			}
			settings[key] = s
		}
	}
	rules, err := config.ValidateData(flags, settings)
	if err != nil {
		return config.Rules{}, fmt.Errorf("functionConfig ConfigMap/%s: %w", nameOf(m), err)
	}
	return rules, nil
}

// resultsOf turns the report's notes on the items into results.
func resultsOf(rl map[string]any, notes []Note) []result {
	items, _ := rl["items"].([]any)
	var results []result
	for _, n := range notes {
		r := result{Message: n.Text, Severity: severity(n)}
		if n.Item >= 0 && n.Item < len(items) {
			if item, ok := items[n.Item].(map[string]any); ok {
				r.ResourceRef, r.File = references(item)
			}
		}
		results = append(results, r)
	}
	return results
}

func severity(n Note) string {
	switch {
	case n.Outcome == outcome.Error:
		return severityError
	case n.Warning, n.Outcome == outcome.Conflict, n.Outcome == outcome.Skipped:
		return severityWarning // a skip the report shows is one to act on
	}
	return severityInfo
}

// references name an item: its identity, and the file it comes from when
// the orchestrator said so.
func references(item map[string]any) (*resourceRef, *fileRef) {
	ref := &resourceRef{Kind: kindOf(item)}
	ref.APIVersion, _ = obj.String(item, "apiVersion")
	ref.Name, _ = obj.String(item, "metadata", "name")
	ref.Namespace, _ = obj.String(item, "metadata", "namespace")
	annotation := func(keys []string) (string, bool) {
		for _, k := range keys {
			if v, ok := obj.String(item, "metadata", "annotations", k); ok {
				return v, true
			}
		}
		return "", false
	}
	path, ok := annotation(pathAnnotations)
	if !ok {
		return ref, nil
	}
	file := &fileRef{Path: path}
	if v, ok := annotation(indexAnnotations); ok {
		file.Index, _ = strconv.Atoi(v)
	}
	return ref, file
}

// resultOps add the results after those the ResourceList already has (an
// earlier function's). Results that are not a list are not replaced.
func resultOps(rl map[string]any, results []result) ([]jsonpatch.Operation, error) {
	if len(results) == 0 {
		return nil, nil
	}
	switch had := rl["results"].(type) {
	case nil:
		return []jsonpatch.Operation{{Operation: "add", Path: "/results", Value: results}}, nil
	case []any:
		ops := make([]jsonpatch.Operation, len(results))
		for i, r := range results {
			ops[i] = jsonpatch.Operation{Operation: "add", Path: "/results/-", Value: r}
		}
		return ops, nil
	default:
		return nil, fmt.Errorf("its results are %s, not a list", obj.TypeName(had))
	}
}
