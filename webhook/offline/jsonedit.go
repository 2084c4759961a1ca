package offline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// A changed JSON document is re-encoded (indent 2) from an ordered tree, so
// that keys keep their input order and numbers their exact text.
type jnode struct {
	kind byte // '{', '[' or 0 for a scalar
	keys []string
	vals []*jnode // object values, or array entries
	raw  string   // a scalar's JSON text
}

func rewriteJSON(src []byte, edits []edit) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.UseNumber()
	root, err := readJSON(dec)
	if err != nil {
		return nil, err
	}
	for _, e := range edits {
		n, parent, idx, err := root.lookup(e.path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e, err)
		}
		switch e.op {
		case opAdd:
			if n.kind != '{' {
				return nil, fmt.Errorf("%s: not an object", e)
			}
			for i, k := range e.keys {
				n.keys = append(n.keys, k)
				n.vals = append(n.vals, jsonOf(e.vals[i]))
			}
		case opAppend:
			if n.kind != '[' {
				return nil, fmt.Errorf("%s: not an array", e)
			}
			for _, it := range e.items {
				n.vals = append(n.vals, jsonOf(it))
			}
		case opReplace:
			if parent == nil {
				return nil, fmt.Errorf("%s: cannot replace the root", e)
			}
			parent.vals[idx] = jsonOf(e.val)
		}
	}
	var b bytes.Buffer
	root.write(&b, "")
	return b.Bytes(), nil
}

func readJSON(dec *json.Decoder) (*jnode, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		n := &jnode{kind: byte(t)}
		for dec.More() {
			if n.kind == '{' {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				n.keys = append(n.keys, k.(string))
			}
			v, err := readJSON(dec)
			if err != nil {
				return nil, err
			}
			n.vals = append(n.vals, v)
		}
		if _, err := dec.Token(); err != nil && err != io.EOF { // the closing delimiter
			return nil, err
		}
		return n, nil
	default:
		return jsonOf(t), nil
	}
}

func (n *jnode) lookup(path []any) (cur, parent *jnode, idx int, err error) {
	cur, idx = n, -1
	for _, p := range path {
		parent = cur
		switch k := p.(type) {
		case string:
			idx = -1
			for i, key := range cur.keys {
				if cur.kind == '{' && key == k {
					idx = i // the last one wins, as in encoding/json
				}
			}
		case int:
			idx = -1
			if cur.kind == '[' && k < len(cur.vals) {
				idx = k
			}
		}
		if idx < 0 {
			return nil, nil, 0, fmt.Errorf("%v not found", path)
		}
		cur = cur.vals[idx]
	}
	return cur, parent, idx, nil
}

// jsonOf builds the node of a decoded value; maps get sorted keys.
func jsonOf(v any) *jnode {
	switch x := v.(type) {
	case map[string]any:
		n := &jnode{kind: '{'}
		for _, k := range sortedKeys(x) {
			n.keys = append(n.keys, k)
			n.vals = append(n.vals, jsonOf(x[k]))
		}
		return n
	case []any:
		n := &jnode{kind: '['}
		for _, it := range x {
			n.vals = append(n.vals, jsonOf(it))
		}
		return n
	case string:
		return &jnode{raw: jsonString(x)}
	case json.Number:
		return &jnode{raw: x.String()}
	default:
		b, _ := json.Marshal(x)
		return &jnode{raw: string(b)}
	}
}

func (n *jnode) write(b *bytes.Buffer, ind string) {
	if n.kind == 0 {
		b.WriteString(n.raw)
		return
	}
	closer := "]"
	if n.kind == '{' {
		closer = "}"
	}
	b.WriteByte(n.kind)
	if len(n.vals) == 0 {
		b.WriteString(closer)
		return
	}
	inner := ind + "  "
	for i, v := range n.vals {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n" + inner)
		if n.kind == '{' {
			b.WriteString(jsonString(n.keys[i]) + ": ")
		}
		v.write(b, inner)
	}
	b.WriteString("\n" + ind + closer)
}
