package agentpod_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/canary-tagger/canary-tagger/webhook/agentpod"
	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
	"github.com/canary-tagger/canary-tagger/webhook/internal/obj/objtest"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
)

// FuzzMutate: for any JSON object, MutatePod and MutateWorkload never
// panic, never modify their input, are idempotent, and change nothing but
// the one env value (or appended env entry) per container and the pod's
// status annotation.
func FuzzMutate(f *testing.F) {
	for _, cs := range [][]tcase{podCases, workloadCases} {
		for _, c := range cs {
			f.Add(objtest.JSON(objtest.MustYAML(c.in)), false)
			f.Add(objtest.JSON(objtest.MustYAML(c.in)), true)
		}
	}
	for _, fx := range fixtures {
		docs, err := objtest.Docs(filepath.Join(fixtureDir, fx.dir, fx.file))
		if err != nil {
			f.Fatal(err)
		}
		for _, d := range docs {
			if k := d.Kind(); k == "DaemonSet" || k == "Deployment" {
				f.Add(d.JSON, false)
				f.Add(objtest.JSON(podFrom(d)), false)
			}
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte, custom bool) {
		in, err := obj.Decode(raw)
		if err != nil {
			return
		}
		opts := defaults
		if custom {
			opts = agentpod.Options{LabelKey: "Canary-Tagger.io/Track", TagName: "deploy_track", Selector: selector("app")}
		}
		for _, m := range []struct {
			mutate mutateFunc
			pod    bool
		}{{agentpod.MutatePod, true}, {agentpod.MutateWorkload, false}} {
			before := objtest.CopyObject(in)
			out, res := applied(t, m.mutate, in, opts)
			if !reflect.DeepEqual(in, before) {
				t.Fatalf("input modified")
			}
			checkInvariants(t, in, out, res, opts, m.pod)
			if again, res2 := m.mutate(out, opts); len(again) != 0 || res2.Outcome == outcome.Injected {
				t.Fatalf("not idempotent: %s then %s %s\n%s", res.Outcome, res2.Outcome, objtest.JSON(again), objtest.JSON(out))
			}
		}
	})
}

var fieldRe = regexp.MustCompile(`^/(containers|initContainers)/(\d+)/env(?:/(\d+)(?:/(name|value))?)?$`)

// checkInvariants compares every leaf of in and out. Allowed differences:
//   - the value of the effective DD_KUBERNETES_POD_LABELS_AS_TAGS entry of a
//     container, whose mapping must become the old one plus exactly
//     LabelKey→TagName (as compact JSON with sorted keys);
//   - an entry appended to a container's env (replacing a null or empty env),
//     whose value must be exactly {LabelKey: TagName};
//   - for a Pod, the status annotation (replacing null or empty annotations),
//     whose value is Result.Status().
func checkInvariants(t testing.TB, in, out map[string]any, res agentpod.Result, opts agentpod.Options, isPod bool) {
	t.Helper()
	prefix := "/spec/template/spec"
	if isPod {
		prefix = "/spec"
	}
	const status = "/metadata/annotations/canary-tagger.io~1status"
	fail := func(format string, a ...any) {
		t.Helper()
		t.Fatalf("%s\ninput  %s\noutput %s", fmt.Sprintf(format, a...), objtest.JSON(in), objtest.JSON(out))
	}
	// field returns the container field, its index, the env index (-1 for
	// env itself) and the env entry's field of a leaf under prefix.
	field := func(p string) (list string, c, e int, f string, ok bool) {
		if !strings.HasPrefix(p, prefix+"/") {
			return "", 0, 0, "", false
		}
		m := fieldRe.FindStringSubmatch(strings.TrimPrefix(p, prefix))
		if m == nil {
			return "", 0, 0, "", false
		}
		c, _ = strconv.Atoi(m[2])
		e = -1
		if m[3] != "" {
			e, _ = strconv.Atoi(m[3])
		}
		return m[1], c, e, m[4], true
	}
	envOf := func(o map[string]any, list string, c int) []any {
		l, _ := at(o, prefix, list, strconv.Itoa(c), "env").([]any)
		return l
	}

	li, lo := objtest.Leaves(in), objtest.Leaves(out)
	changedEnv := false
	for p, v := range li {
		w, ok := lo[p]
		if ok && reflect.DeepEqual(v, w) {
			continue
		}
		if isPod && p == "/metadata/annotations" && objtest.IsEmpty(v) {
			if _, isList := v.([]any); !isList {
				continue
			}
		}
		if m, _ := regexp.MatchString(`^`+prefix+`/containers/\d+$`, p); m && reflect.DeepEqual(v, map[string]any{}) {
			continue // a container {} that got an env (checked below)
		}
		list, c, e, f, isField := field(p)
		switch {
		case isField && list == "containers" && e < 0 && objtest.IsEmpty(v):
			if _, isMap := v.(map[string]any); isMap {
				fail("env {} replaced")
			}
			changedEnv = true // null or [] env, appended to (checked below)
		case isField && e >= 0 && f == "value":
			old, _ := v.(string)
			if v != nil && !ok {
				fail("%s lost", p)
			}
			checkRewritten(t, fail, old, w, opts)
			envOut := envOf(out, list, c)
			if name, _ := at(envOut[e], "name").(string); name != agentpod.EnvName || lastNamed(envOut) != e {
				fail("%s rewritten but not the effective %s entry", p, agentpod.EnvName)
			}
			changedEnv = true
		default:
			fail("input leaf %s = %v changed or lost", p, v)
		}
	}
	for p, w := range lo {
		if _, ok := li[p]; ok {
			continue
		}
		if isPod && p == status {
			if w != res.Status() {
				fail("status annotation %q, Result.Status() %q", w, res.Status())
			}
			continue
		}
		list, c, e, f, isField := field(p)
		if !isField || e < 0 {
			fail("new leaf %s = %v", p, w)
		}
		envIn := envOf(in, list, c)
		switch {
		case e == len(envIn) && list == "containers" && f == "name":
			if w != agentpod.EnvName {
				fail("appended entry named %v", w)
			}
		case e == len(envIn) && list == "containers" && f == "value",
			e < len(envIn) && f == "value": // entry without a value, now set
			checkRewritten(t, fail, "", w, opts)
		default:
			fail("new leaf %s = %v", p, w)
		}
		changedEnv = true
	}
	if changedEnv != (res.Outcome == outcome.Injected) {
		fail("outcome %s but env changed = %v", res.Outcome, changedEnv)
	}
	if res.Outcome == outcome.Injected && res.Reason != agentpod.ReasonNone {
		fail("injected with reason %q", res.Reason)
	}
	if res.Outcome == "" {
		fail("empty outcome")
	}
	if s := res.Summary(); s.Outcome != res.Outcome || !strings.HasPrefix(s.String(), string(res.Outcome)) ||
		s.Quiet && res.Outcome != outcome.Skipped || (len(s.Added) > 0) != (res.Outcome == outcome.Injected) {
		fail("summary %+v (%q) of %+v", s, s, res)
	}
}

// checkRewritten checks a rewritten value: valid JSON, compact with sorted
// keys, and the old mapping plus exactly LabelKey→TagName.
func checkRewritten(t testing.TB, fail func(string, ...any), old string, newV any, opts agentpod.Options) {
	t.Helper()
	s, ok := newV.(string)
	if !ok || !json.Valid([]byte(s)) {
		fail("new value %v is not valid JSON", newV)
	}
	before := map[string]string{}
	if old != "" {
		if err := json.Unmarshal([]byte(old), &before); err != nil {
			fail("rewrote %q, which is not a mapping: %v", old, err)
		}
	}
	for k := range before {
		if strings.ToLower(k) == strings.ToLower(opts.LabelKey) { // as the agent compares
			fail("rewrote %q, which already maps %s", old, opts.LabelKey)
		}
	}
	after := map[string]string{}
	if err := json.Unmarshal([]byte(s), &after); err != nil {
		fail("new value %q: %v", s, err)
	}
	before[opts.LabelKey] = opts.TagName
	if !reflect.DeepEqual(before, after) {
		fail("mapping %q → %q: want old plus %s→%s", old, s, opts.LabelKey, opts.TagName)
	}
	if canonical := sortedCompact(after); s != canonical {
		fail("value %q is not compact with sorted keys (%q)", s, canonical)
	}
}

func sortedCompact(m map[string]string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil { // maps are encoded with sorted keys
		panic(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// at follows a path of object keys and array indexes; a path element may be
// a JSON pointer ("/spec/template") or a plain key.
func at(v any, path ...string) any {
	var segs []string
	for _, p := range path {
		if strings.HasPrefix(p, "/") {
			segs = append(segs, strings.Split(p[1:], "/")...)
		} else {
			segs = append(segs, p)
		}
	}
	for _, s := range segs {
		switch t := v.(type) {
		case map[string]any:
			v = t[s]
		case []any:
			i, err := strconv.Atoi(s)
			if err != nil || i < 0 || i >= len(t) {
				return nil
			}
			v = t[i]
		default:
			return nil
		}
	}
	return v
}

func lastNamed(env []any) int {
	last := -1
	for i, e := range env {
		if m, ok := e.(map[string]any); ok && m["name"] == agentpod.EnvName {
			last = i
		}
	}
	return last
}

// FuzzEnvValue fuzzes the variable's value itself (the part FuzzMutate's
// byte-level mutations rarely reach): any string, in a container that may
// also have an earlier duplicate entry, gives either an untouched container
// or exactly the old mapping plus LabelKey→TagName.
func FuzzEnvValue(f *testing.F) {
	for _, v := range []string{``, `{}`, `{"app":"kube_app","team":"team"}`, `{"role":"team_role"}`, `{"Role":"x"}`, `{"ROLE":"a","role":"b"}`,
		`{"*":"%%label%%","team":"+team"}`, `{"a":"<b>&"}`, `{"a":"\ud800"}`, `{"a":"\u2028"}`, `{"a\u0000":"b"}`, `{"a":1}`, `{"a":"b","a":"c"}`,
		`{"a":"b",}`, `{} {}`, ` {"a" : "b"} `, `null`, `"x"`, `["a"]`, "{\"a\":\"\xff\"}", `{"a":"b"}x`} {
		f.Add(v, false)
		f.Add(v, true)
	}
	f.Fuzz(func(t *testing.T, value string, dup bool) {
		env := []any{map[string]any{"name": agentpod.EnvName, "value": value}}
		if dup {
			env = append([]any{map[string]any{"name": agentpod.EnvName, "value": `{"x":"y"}`}}, env...)
		}
		in := objtest.MustYAML(agentPod(`{containers: [{name: agent}]}`))
		in["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["env"] = env
		// As the webhook receives it: JSON, in which invalid UTF-8 is already U+FFFD.
		in, err := obj.Decode(objtest.JSON(in))
		if err != nil {
			t.Fatal(err)
		}
		before := objtest.CopyObject(in)
		out, res := applied(t, agentpod.MutatePod, in, defaults)
		if !reflect.DeepEqual(in, before) {
			t.Fatalf("input modified")
		}
		checkInvariants(t, in, out, res, defaults, true)
		if res.Outcome == outcome.Injected {
			if dup && !reflect.DeepEqual(at(out, "/spec/containers/0/env/0"), at(in, "/spec/containers/0/env/0")) {
				t.Fatalf("earlier duplicate entry changed")
			}
		}
		if again, res2 := agentpod.MutatePod(out, defaults); len(again) != 0 || res2.Outcome == outcome.Injected {
			t.Fatalf("not idempotent")
		}
	})
}
