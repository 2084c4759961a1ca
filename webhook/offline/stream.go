package offline

import (
	"bytes"
	"io"
)

// WriteTo writes the stream: every document's Out, in order. Sources are
// joined so that the last document of one cannot run into the first of the
// next: a line break if the source did not end with one, and a "---" line
// if the next source does not start with one.
func (r *Result) WriteTo(w io.Writer) (int64, error) {
	var b bytes.Buffer
	prev := ""
	for _, d := range r.Docs {
		if d.Source != prev && b.Len() > 0 {
			if b.Bytes()[b.Len()-1] != '\n' {
				b.WriteByte('\n')
			}
			if !d.hasMarker() {
				b.WriteString("---\n")
			}
		}
		prev = d.Source
		b.Write(d.Out)
	}
	return b.WriteTo(w)
}

// hasMarker reports whether a "---" line precedes the document's object.
func (d *Document) hasMarker() bool {
	for _, l := range bytes.SplitAfter(d.Raw[:d.body], []byte("\n")) {
		if isMarker(bytes.TrimPrefix(l, []byte("\ufeff"))) {
			return true
		}
	}
	return false
}
