package obj_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
)

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	m, err := obj.Decode([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFind(t *testing.T) {
	o := map[string]any{
		"a": map[string]any{"m": map[string]any{}, "n": nil, "s": "x", "l": []any{}},
		"z": nil,
	}
	for _, c := range []struct {
		path []string
		kind obj.Kind
		at   string
		v    any
	}{
		{[]string{}, obj.Map, "", o},
		{[]string{"a", "m"}, obj.Map, "a.m", map[string]any{}},
		{[]string{"a", "n"}, obj.Null, "a.n", nil},
		{[]string{"a", "s"}, obj.Other, "a.s", "x"},
		{[]string{"a", "l"}, obj.Other, "a.l", []any{}},
		{[]string{"a", "x"}, obj.Absent, "a.x", nil},
		{[]string{"b", "c"}, obj.Absent, "b", nil},
		{[]string{"a", "s", "deeper"}, obj.Other, "a.s", "x"}, // stopped at the string
		{[]string{"a", "l", "0"}, obj.Other, "a.l", []any{}},
		{[]string{"z", "y"}, obj.Null, "z", nil}, // stopped at the null
		{[]string{"a", "n", "y", "w"}, obj.Null, "a.n", nil},
	} {
		v, k, at := obj.Find(o, c.path...)
		if k != c.kind || strings.Join(at, ".") != c.at || !reflect.DeepEqual(v, c.v) {
			t.Errorf("Find(%q) = %v, %v, %q; want %v, %v, %q", c.path, v, k, at, c.v, c.kind, c.at)
		}
		lv, lk := obj.Lookup(o, c.path...)
		if lk != k || !reflect.DeepEqual(lv, v) {
			t.Errorf("Lookup(%q) differs from Find", c.path)
		}
	}
	if _, k := obj.Lookup(nil, "a"); k != obj.Absent {
		t.Errorf("Lookup on a nil map: %v", k)
	}
}

func TestString(t *testing.T) {
	o := decode(t, `{"a":{"s":"x","n":1}}`)
	if s, ok := obj.String(o, "a", "s"); !ok || s != "x" {
		t.Errorf("String(a.s) = %q, %v", s, ok)
	}
	for _, p := range [][]string{{"a", "n"}, {"a"}, {"missing"}, {"a", "s", "x"}} {
		if s, ok := obj.String(o, p...); ok || s != "" {
			t.Errorf("String(%q) = %q, %v; want not a string", p, s, ok)
		}
	}
}

func TestDecode(t *testing.T) {
	m := decode(t, `{"n": 1.50, "big": 12345678901234567890, "e": 1e3}`)
	for k, want := range map[string]string{"n": "1.50", "big": "12345678901234567890", "e": "1e3"} {
		if n, ok := m[k].(json.Number); !ok || string(n) != want {
			t.Errorf("%s = %#v, want json.Number(%s)", k, m[k], want)
		}
	}
	b, _ := json.Marshal(m)
	if string(b) != `{"big":12345678901234567890,"e":1e3,"n":1.50}` {
		t.Errorf("re-encoded as %s", b)
	}
	for _, bad := range []string{``, `[]`, `"x"`, `null`, `1`, `{`, `{"a":1} {"b":2}`, `{"a":1} x`, `{"a":}`, `{"a":1}}`, `{"a":1}]`} {
		if _, err := obj.Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%q) succeeded", bad)
		}
	}
	if _, err := obj.Decode([]byte(" {\"a\":1}\n")); err != nil {
		t.Errorf("surrounding whitespace: %v", err)
	}
	if _, err := obj.Decode([]byte(`[]`)); err == nil || !strings.Contains(err.Error(), "an array") {
		t.Errorf("error for an array should say so: %v", err)
	}
}

func TestTypeName(t *testing.T) {
	for v, want := range map[string]string{`null`: "null", `{}`: "an object", `[]`: "an array", `"s"`: "a string", `true`: "a boolean", `1`: "a number"} {
		var x any
		dec := json.NewDecoder(strings.NewReader(v))
		dec.UseNumber()
		if err := dec.Decode(&x); err != nil {
			t.Fatal(err)
		}
		if got := obj.TypeName(x); got != want {
			t.Errorf("TypeName(%s) = %q, want %q", v, got, want)
		}
	}
	if got := obj.TypeName(1.5); got != "a number" {
		t.Errorf("TypeName(float64) = %q", got)
	}
}

func TestList(t *testing.T) {
	l := []any{"x"}
	o := map[string]any{
		"a": map[string]any{"l": l, "e": []any{}, "n": nil, "s": "x", "m": map[string]any{}},
		"z": nil,
	}
	for _, c := range []struct {
		path  []string
		list  []any
		found any
		at    string
		ok    bool
	}{
		{[]string{"a", "l"}, l, l, "a.l", true},
		{[]string{"a", "e"}, []any{}, []any{}, "a.e", true},
		{[]string{"a", "n"}, nil, nil, "a.n", true},
		{[]string{"a", "x"}, nil, nil, "a.x", true},
		{[]string{"z", "y"}, nil, nil, "z", true}, // a null on the way: no list
		{[]string{"a", "s"}, nil, "x", "a.s", false},
		{[]string{"a", "m"}, nil, map[string]any{}, "a.m", false},
		{[]string{"a", "s", "deeper"}, nil, "x", "a.s", false},
		{[]string{"a", "l", "0"}, nil, l, "a.l", false}, // an array on the way is not the list asked for
	} {
		list, found, at, ok := obj.List(o, c.path...)
		if ok != c.ok || !reflect.DeepEqual(list, c.list) || !reflect.DeepEqual(found, c.found) || strings.Join(at, ".") != c.at {
			t.Errorf("List(%q) = %v, %v, %q, %t; want %v, %v, %q, %t", c.path, list, found, at, ok, c.list, c.found, c.at, c.ok)
		}
	}
}
