package offline

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
)

// split cuts a source into documents without losing or changing a byte: the
// concatenation of the documents' Raw is the source.
//
// YAML documents are cut at "---" lines (a document marker at column 0,
// alone or followed by a space, a tab or a comment). Comments and directives
// before the first marker belong to the first document, so Helm's output
// ("---\n# Source: ...\n") numbers its documents from 1. A chunk whose object
// starts with "{" and that parses as a JSON stream is split into its JSON
// values, one document each (kubectl accepts concatenated JSON objects).
func split(name string, data []byte) []*Document {
	var docs []*Document
	for _, c := range yamlChunks(data) {
		if sub := jsonValues(data, c); sub != nil {
			docs = append(docs, sub...)
			continue
		}
		docs = append(docs, &Document{Format: FormatYAML, Raw: data[c.start:c.end], body: c.body - c.start, bodyEnd: c.end - c.start, Line: lineOf(data, c.start)})
	}
	for i, d := range docs {
		d.Source, d.Index, d.Out = name, i+1, d.Raw
	}
	return docs
}

type chunk struct{ start, body, end int }

func yamlChunks(data []byte) []chunk {
	var starts []int
	for pos := 0; pos < len(data); {
		line := data[pos:]
		if pos == 0 {
			line = bytes.TrimPrefix(line, []byte("\ufeff"))
		}
		if isMarker(line) && pos > 0 {
			starts = append(starts, pos)
		}
		nl := bytes.IndexByte(data[pos:], '\n')
		if nl < 0 {
			break
		}
		pos += nl + 1
	}
	bounds := append([]int{0}, starts...)
	var out []chunk
	for i, s := range bounds {
		e := len(data)
		if i+1 < len(bounds) {
			e = bounds[i+1]
		}
		out = append(out, chunk{start: s, end: e})
	}
	// Only comments, directives and blank lines before the first marker: that
	// preamble belongs to the next document.
	if len(out) > 1 && isPreamble(data[out[0].start:out[0].end]) {
		out[1].start = out[0].start
		out = out[1:]
	}
	for i := range out {
		out[i].body = bodyStart(data, out[i])
	}
	if len(out) == 1 && out[0].start == out[0].end {
		return nil // empty source: no document at all
	}
	return out
}

// isMarker reports whether line (from its start) is a "---" document marker.
func isMarker(line []byte) bool {
	if !bytes.HasPrefix(line, []byte("---")) {
		return false
	}
	return len(line) == 3 || strings.IndexByte(" \t\r\n", line[3]) >= 0
}

func isPreamble(b []byte) bool {
	for _, l := range bytes.Split(bytes.TrimPrefix(b, []byte("\ufeff")), []byte("\n")) {
		t := bytes.TrimSpace(l)
		if len(t) > 0 && t[0] != '#' && t[0] != '%' && !isMarker(t) {
			return false
		}
	}
	return true
}

// bodyStart skips the chunk's leading blank, comment, directive and marker
// lines: where its content begins (or the chunk's end).
func bodyStart(data []byte, c chunk) int {
	pos := c.start
	for pos < c.end {
		nl := bytes.IndexByte(data[pos:c.end], '\n')
		end := c.end
		if nl >= 0 {
			end = pos + nl + 1
		}
		t := bytes.TrimSpace(bytes.TrimPrefix(data[pos:end], []byte("\ufeff")))
		switch {
		case len(t) == 0, t[0] == '#', t[0] == '%':
		case bytes.Equal(t, []byte("---")), bytes.HasPrefix(t, []byte("--- #")), bytes.HasPrefix(t, []byte("---\t#")):
		default:
			return pos
		}
		pos = end
	}
	return c.end
}

// jsonValues splits a chunk that is a stream of JSON values into documents,
// or returns nil if the chunk is not JSON (then it is read as YAML, which
// also covers flow-style YAML such as {a: 1}).
func jsonValues(data []byte, c chunk) []*Document {
	body := data[c.body:c.end]
	if len(body) == 0 || (body[0] != '{' && body[0] != '[') {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	type span struct{ start, end int }
	var vals []span
	prev := 0
	for {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil
		}
		end := int(dec.InputOffset())
		start := end - len(raw)
		vals = append(vals, span{c.body + start, c.body + end})
		prev = end
	}
	if len(bytes.TrimSpace(body[prev:])) != 0 || len(vals) == 0 {
		return nil
	}
	docs := make([]*Document, len(vals))
	for i, v := range vals {
		s, e := c.start, c.end
		if i > 0 {
			s = vals[i-1].end
		}
		if i+1 < len(vals) {
			e = v.end
		}
		docs[i] = &Document{Format: FormatJSON, Raw: data[s:e], body: v.start - s, bodyEnd: v.end - s, Line: lineOf(data, v.start)}
	}
	return docs
}

func lineOf(data []byte, off int) int {
	return bytes.Count(data[:off], []byte("\n")) + 1
}
