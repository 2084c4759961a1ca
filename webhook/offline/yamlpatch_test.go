package offline

import (
	"reflect"
	"strings"
	"testing"

	jsonpatch5 "github.com/evanphx/json-patch/v5"
	"gomodules.xyz/jsonpatch/v2"
	syaml "sigs.k8s.io/yaml"

	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
)

// patchYAML gives the object evanphx/json-patch gives for the same
// operations, beyond the paths the rules use today: insertion into a
// sequence, "-", escaped pointer tokens, replace, shared anchors on the path
// or at its end, and merge keys.
func TestPatchYAMLMatchesJSONPatch(t *testing.T) {
	add := func(path string, v any) jsonpatch.Operation { return jsonpatch.NewOperation("add", path, v) }
	replace := func(path string, v any) jsonpatch.Operation { return jsonpatch.NewOperation("replace", path, v) }
	cases := []struct {
		name string
		doc  string
		ops  []jsonpatch.Operation
	}{
		{"insert at the front, append with -", "list: [a, b] # two\n", []jsonpatch.Operation{add("/list/0", "first"), add("/list/-", "last")}},
		{"escaped tokens", "m:\n  a/b: 1\n  c~d: {x: 1}\n", []jsonpatch.Operation{add("/m/a~1b", 2), add("/m/c~0d/y", []any{"z"})}},
		{"replace a scalar, keep its comment", "env:\n- name: X\n  value: \"old\" # why\n", []jsonpatch.Operation{replace("/env/0/value", "new")}},
		{"replace an anchored scalar used elsewhere", "a: &v 1\nb: *v\n", []jsonpatch.Operation{replace("/a", 2)}},
		{"add under an anchored sequence entry", "first: &e {name: x}\nlist: [*e, *e]\n", []jsonpatch.Operation{add("/list/1/value", "y")}},
		{"add under an anchor used in a sequence", "list:\n- &e {name: x}\n- *e\n", []jsonpatch.Operation{add("/list/0/value", "y")}},
		{"add under a merged key", "base: &b {m: {x: 1}}\nc:\n  <<: *b\n  n: 2\n", []jsonpatch.Operation{add("/c/m/y", 2)}},
		{"add where a merged key would be", "base: &b {m: 1}\nc: {<<: *b}\n", []jsonpatch.Operation{add("/c/m", 2)}},
		{"add to an empty document's mapping", "{}\n", []jsonpatch.Operation{add("/a", map[string]any{"b": nil})}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := patchYAML([]byte(c.doc), 0, c.ops)
			if err != nil {
				t.Fatal(err)
			}
			inJSON, err := syaml.YAMLToJSON([]byte(c.doc))
			if err != nil {
				t.Fatal(err)
			}
			patch, err := toPatch(c.ops)
			if err != nil {
				t.Fatal(err)
			}
			wantJSON, err := patch.ApplyWithOptions(inJSON, jsonpatch5.NewApplyOptions())
			if err != nil {
				t.Fatal(err)
			}
			outJSON, err := syaml.YAMLToJSON(out)
			if err != nil {
				t.Fatalf("output does not parse: %v\n%s", err, out)
			}
			got, err1 := obj.Decode(outJSON)
			want, err2 := obj.Decode(wantJSON)
			if err1 != nil || err2 != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("got %s\nwant %s\noutput:\n%s", outJSON, wantJSON, out)
			}
			if strings.Contains(c.doc, "#") {
				assertKeptCommentsAndKeys(t, c.doc, string(out))
			}
		})
	}
}

// Operations that cannot be applied are errors, never a guess.
func TestPatchYAMLRefuses(t *testing.T) {
	for _, op := range []jsonpatch.Operation{
		jsonpatch.NewOperation("remove", "/a", nil),
		jsonpatch.NewOperation("add", "", map[string]any{}),
		jsonpatch.NewOperation("replace", "/missing", 1),
		jsonpatch.NewOperation("add", "/a/b", 1), // a is a scalar
		jsonpatch.NewOperation("add", "/list/3", 1),
		jsonpatch.NewOperation("add", "/list/x", 1),
	} {
		if out, err := patchYAML([]byte("a: 1\nlist: [1]\n"), 0, []jsonpatch.Operation{op}); err == nil {
			t.Errorf("%s %s: no error, got %q", op.Operation, op.Path, out)
		}
	}
}
