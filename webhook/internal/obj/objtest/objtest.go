// Package objtest holds helpers for the rules' tests: reading YAML documents
// as the rules see them (JSON decoded by obj.Decode), deep copies to prove the
// rules do not modify their input, applying their patches, and golden files.
// It is imported by tests only.
package objtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"

	jsonpatch5 "github.com/evanphx/json-patch/v5"
	"github.com/go-openapi/jsonpointer"
	"github.com/google/go-cmp/cmp"
	"gomodules.xyz/jsonpatch/v2"
	"sigs.k8s.io/yaml"

	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
)

// YAML decodes one YAML (or JSON) document into a JSON object, numbers kept
// as json.Number, exactly as the webhook decodes an admitted object.
func YAML(doc string) (map[string]any, error) {
	j, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		return nil, err
	}
	return obj.Decode(j)
}

// MustYAML is YAML that panics on error, for table literals.
func MustYAML(doc string) map[string]any {
	m, err := YAML(doc)
	if err != nil {
		panic(fmt.Sprintf("bad test YAML %q: %v", doc, err))
	}
	return m
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// Docs reads a multi-document YAML file. Empty (or comment-only) documents
// are dropped; Index is the document's position among all of them (from 0).
func Docs(path string) ([]Doc, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var docs []Doc
	for i, part := range docSep.Split(string(raw), -1) {
		j, err := yaml.YAMLToJSON([]byte(part))
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %v", path, i, err)
		}
		if bytes.Equal(bytes.TrimSpace(j), []byte("null")) {
			continue
		}
		m, err := obj.Decode(j)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %v", path, i, err)
		}
		docs = append(docs, Doc{Index: i, Object: m, JSON: j})
	}
	return docs, nil
}

// OnlyDoc reads a YAML file that must hold exactly one document.
func OnlyDoc(path string) (Doc, error) {
	docs, err := Docs(path)
	if err != nil {
		return Doc{}, err
	}
	if len(docs) != 1 {
		return Doc{}, fmt.Errorf("%s: %d documents, want 1", path, len(docs))
	}
	return docs[0], nil
}

// Doc is one document of a YAML stream.
type Doc struct {
	Index  int
	Object map[string]any
	JSON   []byte
}

// Kind and Name of the document, for messages.
func (d Doc) Kind() string { s, _ := obj.String(d.Object, "kind"); return s }
func (d Doc) Name() string { s, _ := obj.String(d.Object, "metadata", "name"); return s }

// DeepCopy copies JSON maps and slices recursively (scalars are immutable).
func DeepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		c := make(map[string]any, len(t))
		for k, e := range t {
			c[k] = DeepCopy(e)
		}
		return c
	case []any:
		c := make([]any, len(t))
		for i, e := range t {
			c[i] = DeepCopy(e)
		}
		return c
	default:
		return v
	}
}

// CopyObject is DeepCopy for an object.
func CopyObject(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	return DeepCopy(m).(map[string]any)
}

// Leaves lists every leaf of v by JSON pointer (RFC 6901): scalars, nulls,
// and empty objects and arrays (so that replacing one is seen).
func Leaves(v any) map[string]any {
	out := map[string]any{}
	var walk func(p string, v any)
	walk = func(p string, v any) {
		switch t := v.(type) {
		case map[string]any:
			if len(t) == 0 {
				out[p] = t
			}
			for k, e := range t {
				walk(p+"/"+jsonpointer.Escape(k), e)
			}
		case []any:
			if len(t) == 0 {
				out[p] = t
			}
			for i, e := range t {
				walk(p+"/"+strconv.Itoa(i), e)
			}
		default:
			out[p] = v
		}
	}
	walk("", v)
	return out
}

// IsEmpty reports whether v is null, {} or [].
func IsEmpty(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case map[string]any:
		return len(t) == 0
	case []any:
		return len(t) == 0
	}
	return false
}

// JSON encodes v (map keys sorted, so equal objects give equal bytes).
func JSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// Golden compares got (marshalled to YAML) with the file at path, or writes
// it there when update is set. It returns a non-empty message on mismatch.
func Golden(path string, got any, update bool) (string, error) {
	b, err := yaml.Marshal(got)
	if err != nil {
		return "", err
	}
	if update {
		return "", os.WriteFile(path, b, 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%v (run the test with -update to create it)", err)
	}
	if !bytes.Equal(want, b) {
		return fmt.Sprintf("%s differs from the rule's output (run with -update to accept, then review the diff; -want +got):\n%s", path, cmp.Diff(string(want), string(b))), nil
	}
	return "", nil
}

// Apply applies JSON Patch operations to a copy of in, with the library the
// tests use as the apiserver's stand-in, and returns the patched object.
func Apply(in map[string]any, ops []jsonpatch.Operation) (map[string]any, error) {
	if len(ops) == 0 {
		return CopyObject(in), nil
	}
	patch, err := jsonpatch5.DecodePatch(JSON(ops))
	if err != nil {
		return nil, err
	}
	out, err := patch.Apply(JSON(in))
	if err != nil {
		return nil, err
	}
	return obj.Decode(out)
}
