package offline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	jsonpatch5 "github.com/evanphx/json-patch/v5"
	"gomodules.xyz/jsonpatch/v2"
	syaml "sigs.k8s.io/yaml"

	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
)

// patched applies the rule's operations to the document's text and returns
// the new text, after checking that it decodes, as kubectl would decode it,
// to the operations applied to the decoded object.
func (d *Document) patched(ops []jsonpatch.Operation) (out []byte, err error) {
	defer func() {
		if p := recover(); p != nil { // a library bug must not lose the stream
			out, err = nil, fmt.Errorf("internal error: %v", p)
		}
	}()
	patch, err := toPatch(ops)
	if err != nil {
		return nil, err
	}
	wantJSON, err := patch.ApplyWithOptions(d.objJSON, applyOptions())
	if err != nil {
		return nil, fmt.Errorf("the operations do not apply to the object: %w", err)
	}
	want, err := obj.Decode(wantJSON)
	if err != nil {
		return nil, err
	}
	var got map[string]any
	if d.Format == FormatJSON {
		body, err := patch.ApplyIndentWithOptions(d.Raw[d.body:d.bodyEnd], "  ", applyOptions())
		if err != nil {
			return nil, err
		}
		if got, err = obj.Decode(body); err != nil {
			return nil, fmt.Errorf("patched document: %w", err)
		}
		out = bytes.Join([][]byte{d.Raw[:d.body], body, d.Raw[d.bodyEnd:]}, nil)
	} else {
		if out, err = patchYAML(d.Raw, d.body, ops); err != nil {
			return nil, err
		}
		j, err := syaml.YAMLToJSON(out)
		if err != nil {
			return nil, fmt.Errorf("patched document does not parse: %w", err)
		}
		if got, err = obj.Decode(j); err != nil {
			return nil, fmt.Errorf("patched document: %w", err)
		}
	}
	if !reflect.DeepEqual(got, want) {
		return nil, errors.New("the patched document does not decode to the patched object")
	}
	return out, nil
}

// applyOptions are evanphx/json-patch's defaults, with strings written as
// they were typed ("<&>", not "\u003c&\u003e").
func applyOptions() *jsonpatch5.ApplyOptions {
	o := jsonpatch5.NewApplyOptions()
	o.EscapeHTML = false
	return o
}

// toPatch converts the rule's operations for evanphx/json-patch. Values are
// encoded without HTML escaping, so that new strings read as they are.
func toPatch(ops []jsonpatch.Operation) (jsonpatch5.Patch, error) {
	type operation struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value any    `json:"value"`
	}
	list := make([]operation, len(ops))
	for i, op := range ops {
		list[i] = operation{op.Operation, op.Path, op.Value}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(list); err != nil {
		return nil, err
	}
	return jsonpatch5.DecodePatch(b.Bytes())
}
