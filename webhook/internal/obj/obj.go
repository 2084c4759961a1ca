// Package obj reads unstructured JSON objects (map[string]any as decoded by
// encoding/json with UseNumber) without ever "repairing" a field of an
// unexpected type: readers report what they found, so that a rule can leave
// such an object alone (contract 7).
package obj

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

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

// List reads a field that should hold an array. ok is true for an array
// (list) and for an absent or null field (list nil, found nil); it is false
// when something else is at path or on the way there: found is then that
// value and at the path up to it, as with Find, for the caller's message.
func List(o map[string]any, path ...string) (list []any, found any, at []string, ok bool) {
	v, k, at := Find(o, path...)
	switch k {
	case Absent, Null:
		return nil, nil, at, true
	case Other:
		if l, isList := v.([]any); isList && len(at) == len(path) {
			return l, v, at, true
		}
	}
	return nil, v, at, false
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

// Decode parses one JSON object with encoding/json, keeping numbers as
// json.Number so that no value the webhook does not own is rewritten.
func Decode(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("unexpected data after the JSON object")
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
