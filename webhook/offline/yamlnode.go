package offline

import (
	"fmt"

	yaml "go.yaml.in/yaml/v3"
)

// located is a node found by path, with what holds it.
type located struct {
	node   *yaml.Node
	parent *yaml.Node // nil for the root
	key    *yaml.Node // the key node when parent is a mapping
	index  int        // position of node in parent.Content
}

// lookup follows a path of keys and indexes from the document's root node.
// It refuses paths through aliases and merge keys ("<<"): the decoded object
// then holds values that are written elsewhere in the document, and editing
// them in place would change more than the rule did.
func lookup(root *yaml.Node, path []any) (located, error) {
	loc := located{node: root, index: -1}
	for _, p := range path {
		n := loc.node
		if n.Kind == yaml.AliasNode {
			return loc, fmt.Errorf("an alias (*%s) is on the edited path", n.Value)
		}
		switch k := p.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return loc, fmt.Errorf("%v: expected a mapping", path)
			}
			found := -1
			merge := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				key := n.Content[i]
				if key.Kind == yaml.ScalarNode && key.Value == k {
					found = i // the last one wins, as when decoding
				}
				if key.Kind == yaml.ScalarNode && key.Value == "<<" && key.Style == 0 {
					merge = true
				}
			}
			if found < 0 {
				if merge {
					return loc, fmt.Errorf("key %q comes from a merge key (<<)", k)
				}
				return loc, fmt.Errorf("key %q not found at %v", k, path)
			}
			loc = located{node: n.Content[found+1], parent: n, key: n.Content[found], index: found + 1}
		case int:
			if n.Kind != yaml.SequenceNode || k >= len(n.Content) {
				return loc, fmt.Errorf("%v: expected a sequence of more than %d entries", path, k)
			}
			loc = located{node: n.Content[k], parent: n, index: k}
		}
	}
	if loc.node.Kind == yaml.AliasNode {
		return loc, fmt.Errorf("an alias (*%s) is on the edited path", loc.node.Value)
	}
	return loc, nil
}

// docRoot parses one YAML document and returns its root node.
func docRoot(src []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, fmt.Errorf("not a single YAML document")
	}
	return doc.Content[0], nil
}

// layout is how a document indents nested blocks, learnt from the document
// so that inserted lines look like their neighbours.
type layout struct {
	mapIndent int // a nested mapping's keys, relative to its key
	seqIndent int // a sequence's dashes, relative to its key (0: "key:\n- a", as kubectl writes)
}

func learnLayout(root *yaml.Node) layout {
	l := layout{mapIndent: 2, seqIndent: 0}
	var maps, seqs map[int]int = map[int]int{}, map[int]int{}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode && n.Style&yaml.FlowStyle == 0 {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if v.Line <= k.Line || v.Style&yaml.FlowStyle != 0 {
					continue
				}
				switch v.Kind {
				case yaml.MappingNode:
					maps[v.Column-k.Column]++
				case yaml.SequenceNode:
					seqs[v.Column-k.Column]++
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(root)
	l.mapIndent = mostCommon(maps, l.mapIndent)
	l.seqIndent = mostCommon(seqs, l.seqIndent)
	if l.mapIndent <= 0 {
		l.mapIndent = 2
	}
	if l.seqIndent < 0 {
		l.seqIndent = 0
	}
	return l
}

func mostCommon(counts map[int]int, def int) int {
	best, n := def, 0
	for v, c := range counts {
		if c > n || (c == n && v < best) {
			best, n = v, c
		}
	}
	return best
}

// maxLine is the last line on which a node of the subtree starts.
func maxLine(n *yaml.Node) int {
	m := n.Line
	for _, c := range n.Content {
		if l := maxLine(c); l > m {
			m = l
		}
	}
	return m
}
