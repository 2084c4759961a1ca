// Package obj reads and copies unstructured JSON objects (map[string]any as
// produced by encoding/json with UseNumber) without ever "repairing" a field
// of an unexpected type: readers report what they found, writers copy only
// the maps and slices on the path they change, so the caller's object is
// never modified (the rules are pure functions).
package obj

import "fmt"

// Kind says what a path lookup found.
type Kind int

const (
	Absent Kind = iota // key not present
	Null               // present with JSON null
	Map                // a JSON object
	Other              // present with another type (string, number, array, bool)
)

// Lookup follows path through nested objects. It returns the value and its Kind.
// If an intermediate element is not an object, the result is Other for that
// element's kind; callers treat Other as "unexpected type: leave alone".
func Lookup(o map[string]any, path ...string) (any, Kind) {
	v, k, _ := Find(o, path...)
	return v, k
}

// Find is Lookup that also returns the part of path it reached: all of path,
// or the prefix ending at the element that was null or not an object, so that
// a message can name the field actually at fault.
func Find(o map[string]any, path ...string) (any, Kind, []string) {
	var cur any = o
	for i, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			if cur == nil {
				return nil, Null, path[:i]
			}
			return cur, Other, path[:i]
		}
		v, ok := m[p]
		if !ok {
			return nil, Absent, path[:i+1]
		}
		cur = v
	}
	switch cur.(type) {
	case nil:
		return nil, Null, path
	case map[string]any:
		return cur, Map, path
	default:
		return cur, Other, path
	}
}

// String returns the string at path, and whether it is a string (a string
// met on the way, such as annotations: "x", is not the one at path).
func String(o map[string]any, path ...string) (string, bool) {
	v, _, at := Find(o, path...)
	s, ok := v.(string)
	if len(at) != len(path) {
		return "", false
	}
	return s, ok
}

// CopyMap returns a shallow copy of m (nil stays nil).
func CopyMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	c := make(map[string]any, len(m)+1)
	for k, v := range m {
		c[k] = v
	}
	return c
}

// Decode parses one JSON object, keeping numbers as json.Number so that
// re-encoding never changes a value the webhook does not own. It decodes what
// encoding/json (with UseNumber) would, in one pass (see Reader).
func Decode(raw []byte) (map[string]any, error) { return DecodeShape(raw, nil) }

// Shape names the parts of an object a rule reads, so that a server can
// decode only those: each member named maps to the Shape of its value (nil:
// all of it); with an array, the Shape applies to each element. Members not
// named are kept as Skipped, so a rule still sees that they are there.
type Shape map[string]Shape

// Skipped is the value of a member its Shape left out. Readers report it as
// Other; it never reaches a patch (the webhook checks, see runRule).
var Skipped any = skipped{}

type skipped struct{}

// DecodeShape is Decode for the members s names (see Shape).
func DecodeShape(raw []byte, s Shape) (map[string]any, error) {
	r := NewReader(raw)
	v, err := r.ValueShape(s)
	if err != nil {
		return nil, err
	}
	if err := r.End(); err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("expected a JSON object, got %s", TypeName(v))
	}
	return m, nil
}

// TypeName describes a decoded JSON value for messages ("an array", ...).
func TypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	default:
		return "a number"
	}
}
