package offline

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"
)

// splice writes edits into a YAML document's own text. Only the inserted or
// replaced bytes differ from the input: comments, blank lines, quoting and
// indentation of everything else stay as they were. yaml.v3 gives each node
// its starting line and column; where a block ends is found from the
// indentation of the lines that follow it.
func splice(src []byte, edits []edit) ([]byte, error) {
	root, err := docRoot(src)
	if err != nil {
		return nil, err
	}
	t := &text{src: src, root: root, layout: learnLayout(root), nl: "\n"}
	if bytes.Contains(src, []byte("\r\n")) {
		t.nl = "\r\n"
	}
	t.lines = []int{0}
	for i, c := range src {
		if c == '\n' {
			t.lines = append(t.lines, i+1)
		}
	}
	var tes []textEdit
	for _, e := range edits {
		te, err := t.edit(e)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e, err)
		}
		te.depth = len(e.path)
		tes = append(tes, te)
	}
	// At one offset, the deeper edit goes first: it ends the inner block
	// before the outer block gets its new keys.
	sort.SliceStable(tes, func(i, j int) bool {
		if tes[i].start != tes[j].start {
			return tes[i].start < tes[j].start
		}
		return tes[i].depth > tes[j].depth
	})
	var out bytes.Buffer
	pos := 0
	for _, te := range tes {
		if te.start < pos {
			return nil, fmt.Errorf("overlapping edits")
		}
		out.Write(src[pos:te.start])
		out.WriteString(te.text)
		pos = te.end
	}
	out.Write(src[pos:])
	return out.Bytes(), nil
}

type textEdit struct {
	start, end int // bytes replaced (start == end: an insertion)
	text       string
	depth      int
}

type text struct {
	src    []byte
	lines  []int // offset of each line's first byte
	nl     string
	root   *yaml.Node
	layout layout
}

func (t *text) edit(e edit) (textEdit, error) {
	loc, err := lookup(t.root, e.path)
	if err != nil {
		return textEdit{}, err
	}
	n := loc.node
	switch e.op {
	case opAdd:
		if n.Kind != yaml.MappingNode {
			return textEdit{}, fmt.Errorf("not a mapping")
		}
		if n.Style&yaml.FlowStyle != 0 {
			parts := make([]string, len(e.keys))
			for i, k := range e.keys {
				parts[i] = flowScalar(k) + ": " + flowValue(e.vals[i])
			}
			return t.flowInsert(n, '{', '}', parts)
		}
		var lines []string
		for i, k := range e.keys {
			lines = append(lines, blockEntry(k, e.vals[i], t.layout)...)
		}
		col := n.Column - 1
		return t.blockInsert(n, col, false, indent(lines, col))
	case opAppend:
		if n.Kind != yaml.SequenceNode {
			return textEdit{}, fmt.Errorf("not a sequence")
		}
		if n.Style&yaml.FlowStyle != 0 {
			parts := make([]string, len(e.items))
			for i, it := range e.items {
				parts[i] = flowValue(it)
			}
			return t.flowInsert(n, '[', ']', parts)
		}
		// New entries copy the first entry's spacing after the dash.
		off := 2
		if first := n.Content[0]; first.Line == n.Line && first.Column > n.Column {
			off = first.Column - n.Column
		}
		var lines []string
		for _, it := range e.items {
			lines = append(lines, blockItem(it, off, t.layout)...)
		}
		col := n.Column - 1
		return t.blockInsert(n, col, true, indent(lines, col))
	default:
		return t.replace(loc, e.val)
	}
}

// offset converts yaml.v3's 1-based line and column (in characters) to a
// byte offset.
func (t *text) offset(line, col int) int {
	off := t.lines[line-1]
	for i := 1; i < col && off < len(t.src); i++ {
		_, w := utf8.DecodeRune(t.src[off:])
		off += w
	}
	return off
}

// lineText is line l (1-based) without its line break, and the offset of
// that line break (or of the end of the text).
func (t *text) lineText(l int) (string, int) {
	start := t.lines[l-1]
	end := len(t.src)
	if l < len(t.lines) {
		end = t.lines[l] - 1
	}
	if end > start && t.src[end-1] == '\r' {
		end--
	}
	return string(t.src[start:end]), end
}

// blockInsert adds lines after the last line of a block collection whose
// keys (or dashes, for a sequence) are at column col. The block goes on
// while lines are blank, more indented, or, under a mapping, dashes at its
// own column (a sequence written "key:\n- a"). Comments at or left of col
// and blank lines after the block stay after the inserted lines: they
// belong to what follows.
func (t *text) blockInsert(n *yaml.Node, col int, seq bool, lines []string) (textEdit, error) {
	last := maxLine(n)
	for l := last + 1; l <= len(t.lines); l++ {
		s, _ := t.lineText(l)
		body := strings.TrimLeft(s, " ")
		ind := len(s) - len(body)
		switch {
		case strings.TrimSpace(body) == "":
			continue
		case body[0] == '#':
			if ind > col {
				last = l
			}
			continue
		case ind > col, ind == col && !seq && (body == "-" || strings.HasPrefix(body, "- ")):
			last = l
			continue
		}
		break
	}
	_, end := t.lineText(last)
	return textEdit{start: end, end: end, text: t.nl + strings.Join(lines, t.nl)}, nil
}

// flowInsert adds entries before the closing bracket of a flow collection.
func (t *text) flowInsert(n *yaml.Node, open, close byte, parts []string) (textEdit, error) {
	start := t.offset(n.Line, n.Column)
	end, err := flowEnd(t.src, start, open, close)
	if err != nil {
		return textEdit{}, err
	}
	prev := bytes.TrimRight(t.src[start:end], " \t\r\n")
	sep := ", "
	switch prev[len(prev)-1] {
	case open:
		sep = ""
	case ',':
		sep = " "
	}
	return textEdit{start: end, end: end, text: sep + strings.Join(parts, ", ")}, nil
}

// flowEnd finds the bracket that closes the flow collection opening at
// src[start], skipping quoted scalars, nested collections and comments.
func flowEnd(src []byte, start int, open, close byte) (int, error) {
	if start >= len(src) || src[start] != open {
		return 0, fmt.Errorf("flow collection not found at its position")
	}
	depth := 0
	for i := start; i < len(src); i++ {
		switch c := src[i]; c {
		case '"', '\'':
			j, err := quotedEnd(src, i)
			if err != nil {
				return 0, err
			}
			i = j - 1
		case '#':
			if i > 0 && (src[i-1] == ' ' || src[i-1] == '\t' || src[i-1] == '\n') {
				for i < len(src) && src[i] != '\n' {
					i++
				}
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				if c != close {
					return 0, fmt.Errorf("unbalanced flow collection")
				}
				return i, nil
			}
		}
	}
	return 0, fmt.Errorf("unterminated flow collection")
}

// quotedEnd returns the offset just after the quoted scalar opening at src[i].
func quotedEnd(src []byte, i int) (int, error) {
	q := src[i]
	for j := i + 1; j < len(src); j++ {
		switch {
		case q == '"' && src[j] == '\\':
			j++
		case src[j] == q && q == '\'' && j+1 < len(src) && src[j+1] == '\'':
			j++
		case src[j] == q:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unterminated quoted scalar")
}

// replace swaps a scalar for a new value: a scalar in its place, keeping its
// quoting style; a collection in flow style inside a flow collection, or as
// an indented block under its key.
func (t *text) replace(loc located, v any) (textEdit, error) {
	n := loc.node
	if n.Kind != yaml.ScalarNode || n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 || loc.parent == nil {
		return textEdit{}, fmt.Errorf("only single-line scalars can be replaced in place")
	}
	flow := loc.parent.Style&yaml.FlowStyle != 0
	s, e, err := t.scalarExtent(n, flow)
	if err != nil {
		return textEdit{}, err
	}
	gap := ""
	if s == e && s > 0 && (t.src[s-1] == ':' || t.src[s-1] == '-') {
		gap = " " // an empty value: "key:" becomes "key: value"
	}
	_, isMap := v.(map[string]any)
	_, isSeq := v.([]any)
	if !(isMap || isSeq) || flow {
		return textEdit{start: s, end: e, text: gap + t.scalarLike(n, v, flow)}, nil
	}
	// A block collection under "key:" on the key's line. What followed the
	// old value on its line (a comment) stays on the key's line.
	if loc.key == nil || loc.key.Line != lineAt(t.lines, s) || lineAt(t.lines, e) != loc.key.Line {
		return textEdit{}, fmt.Errorf("a collection can only replace a value written on its key's line")
	}
	rest, lineEnd := t.lineText(loc.key.Line)
	rest = strings.TrimSpace(rest[len(rest)-(lineEnd-e):])
	for s > 0 && (t.src[s-1] == ' ' || t.src[s-1] == '\t') {
		s--
	}
	if rest != "" {
		rest = " " + rest
	}
	lines := blockEntry("k", v, t.layout)[1:]
	if len(lines) == 0 { // empty collection: stays on the line
		return textEdit{start: s, end: e, text: " " + flowValue(v)}, nil
	}
	col := loc.key.Column - 1
	return textEdit{start: s, end: lineEnd, text: rest + t.nl + strings.Join(indent(lines, col), t.nl)}, nil
}

// scalarLike renders a new scalar in the style of the one it replaces.
func (t *text) scalarLike(old *yaml.Node, v any, flow bool) string {
	s, ok := v.(string)
	switch {
	case !ok && flow:
		return flowValue(v)
	case !ok:
		return inlineValue(v)
	case old.Style&yaml.DoubleQuotedStyle != 0:
		return jsonString(s)
	case old.Style&yaml.SingleQuotedStyle != 0 && singleQuoted(s) != "":
		return singleQuoted(s)
	case flow:
		return flowScalar(s)
	}
	return blockScalar(s)
}

// scalarExtent finds the bytes of a scalar that fits on its line.
func (t *text) scalarExtent(n *yaml.Node, flow bool) (int, int, error) {
	s := t.offset(n.Line, n.Column)
	switch {
	case n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0:
		if s >= len(t.src) || (t.src[s] != '"' && t.src[s] != '\'') {
			return 0, 0, fmt.Errorf("quoted scalar not found at its position")
		}
		e, err := quotedEnd(t.src, s)
		return s, e, err
	case n.Tag == "!!null" && n.Value == "":
		return s, s, nil
	}
	line, lineEnd := t.lineText(lineAt(t.lines, s))
	rest := line[len(line)-(lineEnd-s):]
	end := len(rest)
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if (c == '#' && i > 0 && (rest[i-1] == ' ' || rest[i-1] == '\t')) ||
			(flow && (c == ',' || c == ']' || c == '}')) ||
			(flow && c == ':' && (i+1 == len(rest) || rest[i+1] == ' ')) {
			end = i
			break
		}
	}
	raw := strings.TrimRight(rest[:end], " \t")
	if raw != n.Value {
		return 0, 0, fmt.Errorf("plain scalar %q does not fit on its line", n.Value)
	}
	return s, s + len(raw), nil
}

// lineAt is the 1-based line holding offset off.
func lineAt(lines []int, off int) int {
	return sort.Search(len(lines), func(i int) bool { return lines[i] > off })
}
