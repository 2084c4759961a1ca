package offline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/go-openapi/jsonpointer"
	yaml "go.yaml.in/yaml/v3"
	"gomodules.xyz/jsonpatch/v2"
)

var byteOrderMark = []byte("\ufeff")

// patchYAML applies "add" and "replace" operations to a YAML document's
// yaml.v3 node tree and encodes the tree again (indent 2, sequences as
// kubectl writes them).
// What comes before the object (raw[:body]: a "---" line, comments, a byte
// order mark) and the line breaks after it are kept as they are.
func patchYAML(raw []byte, body int, ops []jsonpatch.Operation) ([]byte, error) {
	if bytes.HasPrefix(raw[body:], byteOrderMark) {
		body += len(byteOrderMark)
	}
	src := raw[body:]
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	// kubectl reads only the first document of a chunk ("a: 1\n...\nb: 2");
	// re-encoding it alone would drop the rest.
	if err := dec.Decode(new(yaml.Node)); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document between two --- lines")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, errors.New("not a single YAML document")
	}
	root := doc.Content[0]
	for _, op := range ops {
		if err := applyOperation(root, op); err != nil {
			return nil, fmt.Errorf("%s %s: %w", op.Operation, op.Path, err)
		}
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	enc.CompactSeqIndent()
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	text := bytes.TrimRight(b.Bytes(), "\n")
	if bytes.Contains(src, []byte("\r\n")) {
		text = bytes.ReplaceAll(text, []byte("\n"), []byte("\r\n"))
	}
	trailing := src[len(bytes.TrimRight(src, " \t\r\n")):]
	return bytes.Join([][]byte{raw[:body], text, trailing}, nil), nil
}

// applyOperation applies one RFC 6902 "add" or "replace" to the tree: the value is
// set on a mapping key (replacing the value of an existing key) or inserted
// into a sequence; "replace" needs the key or entry to exist and takes its
// place. The new node is yaml.v3's own encoding of the value.
func applyOperation(root *yaml.Node, op jsonpatch.Operation) error {
	replace := op.Operation == "replace"
	if op.Operation != "add" && !replace {
		return errors.New("only add and replace operations are applied")
	}
	pointer, err := jsonpointer.New(op.Path)
	if err != nil {
		return err
	}
	tokens := pointer.DecodedTokens()
	if len(tokens) == 0 {
		return errors.New("cannot replace the whole document")
	}
	value := &yaml.Node{}
	if err := value.Encode(op.Value); err != nil {
		return err
	}
	parent := root
	for _, token := range tokens[:len(tokens)-1] {
		if parent, err = editableChild(root, parent, token); err != nil {
			return err
		}
	}
	last := tokens[len(tokens)-1]
	var replaced **yaml.Node // the node the value takes the place of
	var key *yaml.Node
	switch parent.Kind {
	case yaml.MappingNode:
		if i := keyIndex(parent, last); i >= 0 {
			replaced, key = &parent.Content[i+1], parent.Content[i]
			break
		}
		if replace {
			return fmt.Errorf("no key %q to replace", last)
		}
		newKey := &yaml.Node{}
		if err := newKey.Encode(last); err != nil {
			return err
		}
		if n := len(parent.Content); n > 0 {
			keepAtEnd(parent.Content[n-2], newKey)
		}
		parent.Content = append(parent.Content, newKey, value)
		return nil
	case yaml.SequenceNode:
		limit := len(parent.Content) + 1 // add may append
		if replace {
			limit--
		}
		i := len(parent.Content)
		if last != "-" || replace {
			if i, err = index(last, limit); err != nil {
				return err
			}
		}
		if replace {
			replaced = &parent.Content[i]
			break
		}
		if n := len(parent.Content); i == n && n > 0 {
			keepAtEnd(parent.Content[n-1], value)
		}
		parent.Content = slices.Insert(parent.Content, i, value)
		return nil
	default:
		return fmt.Errorf("%q: the parent is not a mapping or a sequence", last)
	}
	unshareSubtree(root, *replaced) // its anchors go away with it
	takePlace(value, *replaced, key)
	*replaced = value
	return nil
}

// editableChild returns the node at token under parent, made safe to edit:
// an alias is replaced by a copy of its target, a key that comes from a
// merge key (<<) becomes the mapping's own (a copy, written after the <<,
// so that it wins), and an anchored node first has its aliases replaced by
// copies. An edit then changes this place only, never the other places that
// shared the node.
func editableChild(root, parent *yaml.Node, token string) (*yaml.Node, error) {
	var slot **yaml.Node
	switch parent.Kind {
	case yaml.MappingNode:
		i := keyIndex(parent, token)
		if i < 0 {
			merged := mergedValue(parent, token)
			if merged == nil {
				return nil, fmt.Errorf("no key %q", token)
			}
			key := &yaml.Node{}
			if err := key.Encode(token); err != nil {
				return nil, err
			}
			parent.Content = append(parent.Content, key, deepCopy(merged))
			i = len(parent.Content) - 2
		}
		slot = &parent.Content[i+1]
	case yaml.SequenceNode:
		i, err := index(token, len(parent.Content))
		if err != nil {
			return nil, err
		}
		slot = &parent.Content[i]
	default:
		return nil, fmt.Errorf("%q: not in a mapping or a sequence", token)
	}
	if (*slot).Kind == yaml.AliasNode {
		*slot = expanded(*slot)
	}
	if (*slot).Anchor != "" {
		unshare(root, *slot)
	}
	return *slot, nil
}

// keyIndex is the position in m.Content of the last key equal to token (the
// last one wins, as when the document is decoded), or -1.
func keyIndex(m *yaml.Node, token string) int {
	found := -1
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := resolved(m.Content[i]); k.Kind == yaml.ScalarNode && k.Value == token {
			found = i
		}
	}
	return found
}

// mergedValue is the value a merge key (<<) of m gives token, or nil. The
// merged mappings are searched in order, the first one that has it wins.
func mergedValue(m *yaml.Node, token string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i]; k.Kind != yaml.ScalarNode || k.Tag != "!!merge" {
			continue
		}
		sources := []*yaml.Node{resolved(m.Content[i+1])}
		if sources[0].Kind == yaml.SequenceNode {
			sources = sources[0].Content
		}
		for _, s := range sources {
			s = resolved(s)
			if s.Kind != yaml.MappingNode {
				continue
			}
			if j := keyIndex(s, token); j >= 0 {
				return s.Content[j+1]
			}
			if v := mergedValue(s, token); v != nil {
				return v
			}
		}
	}
	return nil
}

func resolved(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode {
		return n.Alias
	}
	return n
}

func index(token string, limit int) (int, error) {
	i, err := strconv.Atoi(token)
	if err != nil || i < 0 || i >= limit {
		return 0, fmt.Errorf("index %q out of range", token)
	}
	return i, nil
}

// unshare replaces every alias of target in the tree under n by a copy of
// target, so that target can be edited alone.
func unshare(n, target *yaml.Node) {
	for i, c := range n.Content {
		if c.Kind == yaml.AliasNode && c.Alias == target {
			n.Content[i] = expanded(c)
			continue
		}
		unshare(c, target)
	}
}

// unshareSubtree unshares every anchored node of the subtree at n.
func unshareSubtree(root, n *yaml.Node) {
	if n.Anchor != "" {
		unshare(root, n)
	}
	for _, c := range n.Content {
		unshareSubtree(root, c)
	}
}

// expanded is a copy of an alias's target, with the alias's comments.
func expanded(alias *yaml.Node) *yaml.Node {
	c := deepCopy(alias.Alias)
	c.HeadComment, c.LineComment, c.FootComment = alias.HeadComment, alias.LineComment, alias.FootComment
	return c
}

// deepCopy copies n without its anchors: a second definition of an anchor
// would take over the aliases that follow it. Aliases inside stay aliases.
func deepCopy(n *yaml.Node) *yaml.Node {
	c := *n
	c.Anchor = ""
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, child := range n.Content {
		c.Content[i] = deepCopy(child)
	}
	return &c
}

// keepAtEnd moves the foot comment of what was the last entry of a
// collection to the entry appended after it: such a comment closes the
// block ("# end of labels") and would otherwise end up between the two.
func keepAtEnd(last, appended *yaml.Node) {
	appended.FootComment, last.FootComment = last.FootComment, ""
}

// takePlace gives a new value the comments of the one it replaces and, from
// string to string, its quoting style. The line comment of a block
// collection under a key is the key's ("key: # comment"): yaml.v3 would
// write it on a line further down.
func takePlace(value, old, key *yaml.Node) {
	value.HeadComment, value.LineComment, value.FootComment = old.HeadComment, old.LineComment, old.FootComment
	block := (value.Kind == yaml.MappingNode || value.Kind == yaml.SequenceNode) && value.Style&yaml.FlowStyle == 0
	if block && key != nil && old.LineComment != "" {
		key.LineComment = strings.TrimSpace(key.LineComment + " " + old.LineComment)
		value.LineComment = ""
	}
	if value.Kind == yaml.ScalarNode && old.Kind == yaml.ScalarNode && value.Tag == "!!str" && old.Tag == "!!str" {
		value.Style = old.Style
	}
}
