package offline

import (
	"bytes"
	"fmt"

	yaml "go.yaml.in/yaml/v3"
)

// reencode is the fallback when splice cannot place an edit: the edits are
// applied to the document's yaml.v3 node tree, which is encoded again with a
// 2-space indent. Key order, comments and scalar styles are kept; blank
// lines and the indentation of untouched blocks may change. Whatever came
// before the object (a "---" line, "# Source:" comments) is kept as is.
func reencode(src []byte, body int, edits []edit) ([]byte, error) {
	root, err := docRoot(src[body:])
	if err != nil {
		return nil, err
	}
	l := learnLayout(root)
	for _, e := range edits {
		loc, err := lookup(root, e.path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e, err)
		}
		n := loc.node
		switch e.op {
		case opAdd:
			if n.Kind != yaml.MappingNode {
				return nil, fmt.Errorf("%s: not a mapping", e)
			}
			for i, k := range e.keys {
				kn, vn := nodeOf(k), nodeOf(e.vals[i])
				if kn == nil || vn == nil {
					return nil, fmt.Errorf("%s: cannot encode", e)
				}
				n.Content = append(n.Content, kn, vn)
			}
		case opAppend:
			if n.Kind != yaml.SequenceNode {
				return nil, fmt.Errorf("%s: not a sequence", e)
			}
			for _, it := range e.items {
				vn := nodeOf(it)
				if vn == nil {
					return nil, fmt.Errorf("%s: cannot encode", e)
				}
				n.Content = append(n.Content, vn)
			}
		case opReplace:
			vn := nodeOf(e.val)
			if vn == nil || loc.parent == nil {
				return nil, fmt.Errorf("%s: cannot encode", e)
			}
			if vn.Kind == yaml.ScalarNode && n.Kind == yaml.ScalarNode && vn.Tag == "!!str" {
				vn.Style = n.Style &^ (yaml.LiteralStyle | yaml.FoldedStyle)
			}
			vn.LineComment = n.LineComment
			loc.parent.Content[loc.index] = vn
		}
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if l.seqIndent == 0 {
		enc.CompactSeqIndent()
	}
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	trimmed := bytes.TrimRight(src, " \t\r\n")
	out := append([]byte(nil), src[:body]...)
	out = append(out, bytes.TrimRight(b.Bytes(), "\n")...)
	return append(out, src[len(trimmed):]...), nil
}

// nodeOf builds the node of a value the rules add (maps get sorted keys).
func nodeOf(v any) *yaml.Node {
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		return nil
	}
	return &n
}
