package offline

import (
	"bytes"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/canary-tagger/canary-tagger/webhook/config"
)

// settings are the flags' defaults (contract 1).
var settings = config.Flags{
	LabelKey: config.DefaultLabelKey, StableValue: config.DefaultStableValue, CanaryValue: config.DefaultCanaryValue,
	TagName: config.DefaultTagName, AgentSelector: config.DefaultAgentSelector,
}

// runCommand runs c on stdin and returns its exit code, stdout and stderr.
func runCommand(t *testing.T, c Command, stdin string) (int, string, string) {
	t.Helper()
	if c.Settings == (config.Flags{}) {
		c.Settings = settings
	}
	var out, errb bytes.Buffer
	code := c.Run(strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

const rolloutYAML = `apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  strategy:
    canary:
      steps:
      - setWeight: 20
`

// tree writes files (path → text) under a new directory, each with mode
// 0640 and a modification time an hour ago, so that a rewrite shows.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	past := time.Now().Add(-time.Hour).Truncate(time.Second)
	for name, text := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, past, past); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type fileState struct {
	data    string
	mode    os.FileMode
	modTime time.Time
}

// snapshot reads every file under dir, by path relative to dir.
func snapshot(t *testing.T, dir string) map[string]fileState {
	t.Helper()
	files := map[string]fileState{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		files[rel] = fileState{string(data), info.Mode(), info.ModTime()}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// stream is what mutate writes on stdout for one file.
func stream(t *testing.T, path string) string {
	t.Helper()
	code, out, stderr := runCommand(t, Command{Files: []string{path}}, "")
	if code != 0 {
		t.Fatalf("mutate -f %s: exit %d: %s", path, code, stderr)
	}
	return out
}

// TestWriteInPlace: -w writes each changed file with what mutate would
// print for it, keeps its mode, and leaves every other file as it was,
// modification time included; a second run writes nothing.
func TestWriteInPlace(t *testing.T) {
	dir := tree(t, map[string]string{
		"rollout.yaml":        "# the web app\n" + rolloutYAML,
		"configmap.yaml":      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n",
		"two.yaml":            "kind: Secret\n---\n" + strings.Replace(rolloutYAML, "web", "two", 1),
		"rollout.json":        `{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "j"}, "spec": {"strategy": {"canary": {"steps": [{"pause": {}}]}}}}`,
		"sub/deep.yaml":       strings.Replace(rolloutYAML, "web", "deep", 1),
		"sub/mutated.yaml":    strings.Replace(rolloutYAML, "web", "done", 1) + injectedMetadata("      "),
		"notes.txt":           rolloutYAML, // not a manifest file name: never read
		"empty.yaml":          "",
		"sub/only-blank.yaml": "\n# nothing\n",
	})
	if err := os.Chmod(filepath.Join(dir, "two.yaml"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	want := map[string]string{}
	for _, name := range []string{"rollout.yaml", "two.yaml", "rollout.json", "sub/deep.yaml"} {
		want[name] = stream(t, filepath.Join(dir, name))
		if want[name] == before[name].data {
			t.Fatalf("%s: mutate does not change it; the test needs it changed", name)
		}
	}

	code, out, stderr := runCommand(t, Command{Files: []string{dir}, Recursive: true, Write: true}, "")
	if code != 0 || out != "" {
		t.Fatalf("exit %d, stdout %q; want 0 and nothing: %s", code, out, stderr)
	}
	if !strings.Contains(stderr, filepath.Join(dir, "sub", "deep.yaml")+":1 Rollout/deep: injected") {
		t.Errorf("the report should go on as without -w: %s", stderr)
	}
	after := snapshot(t, dir)
	if len(after) != len(before) {
		t.Errorf("files before %d, after %d (a temporary file left?): %v", len(before), len(after), slices.Sorted(maps.Keys(after)))
	}
	for name, b := range before {
		a := after[name]
		if a.mode != b.mode {
			t.Errorf("%s: mode %v, was %v", name, a.mode, b.mode)
		}
		if w, changed := want[name]; changed {
			if a.data != w {
				t.Errorf("%s: written\n%s\nwant what mutate prints for it:\n%s", name, a.data, w)
			}
			continue
		}
		if a != b {
			t.Errorf("%s was touched: %+v, was %+v", name, a, b)
		}
	}

	again := snapshot(t, dir)
	if code, _, stderr := runCommand(t, Command{Files: []string{dir}, Recursive: true, Write: true}, ""); code != 0 {
		t.Fatalf("second run: exit %d: %s", code, stderr)
	}
	for name, s := range snapshot(t, dir) {
		if s != again[name] {
			t.Errorf("second run touched %s", name)
		}
	}
}

// TestWriteUsage: -w needs files (stdin has none to write back) and does
// not go with --check; both are refused before anything is read.
func TestWriteUsage(t *testing.T) {
	file := filepath.Join(tree(t, map[string]string{"r.yaml": rolloutYAML}), "r.yaml")
	for _, c := range []struct {
		cmd Command
		msg string
	}{
		{Command{Write: true}, "stdin"},
		{Command{Write: true, Files: []string{file, "-"}}, "stdin"},
		{Command{Write: true, Check: true, Files: []string{file}}, "--check"},
	} {
		var out, errb bytes.Buffer
		c.cmd.Settings = settings
		code := c.cmd.Run(unreadable{t}, &out, &errb)
		if code != 2 || out.Len() > 0 || !strings.Contains(errb.String(), c.msg) {
			t.Errorf("%+v: exit %d, stdout %q, stderr %q; want 2, nothing, a message naming %s", c.cmd, code, out.String(), errb.String(), c.msg)
		}
	}
	if data, _ := os.ReadFile(file); string(data) != rolloutYAML {
		t.Errorf("a refused -w wrote the file")
	}
}

type unreadable struct{ t *testing.T }

func (u unreadable) Read([]byte) (int, error) {
	u.t.Error("stdin read")
	return 0, io.EOF
}

// TestRecursiveGoesOn: with -R an unparsable file is named with its line
// and left out; every other file is processed: printed, written with -w,
// listed with --check; the exit code is 2.
func TestRecursiveGoesOn(t *testing.T) {
	files := map[string]string{
		"a.yaml": rolloutYAML,
		// A good document of a bad file still counts for workloadRef: its
		// template has the label key, so the Rollout that names it is a conflict.
		"b-bad.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: base\nspec:\n  template:\n    metadata:\n      labels:\n        role: web\n---\nkind: Secret\ndata: {a: [\n",
		"c.yaml":     strings.Replace(rolloutYAML, "  strategy:", "  workloadRef:\n    kind: Deployment\n    name: base\n  strategy:", 1),
		"d.yaml":     "kind: ConfigMap\n",
		"sub/e.json": `{"kind": "Secret", "data": [}`,
		"sub/f.yaml": strings.Replace(rolloutYAML, "web", "f", 1),
	}
	bad := func(t *testing.T, dir, stderr string) {
		t.Helper()
		for _, want := range []string{filepath.Join(dir, "b-bad.yaml") + ":12: document 2: yaml:", filepath.Join(dir, "sub", "e.json") + ": document 1"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr does not name %q:\n%s", want, stderr)
			}
		}
		if !strings.Contains(stderr, "2 files") {
			t.Errorf("stderr does not count the 2 files left out:\n%s", stderr)
		}
	}
	t.Run("stdout", func(t *testing.T) {
		dir := tree(t, files)
		code, out, stderr := runCommand(t, Command{Files: []string{dir}, Recursive: true}, "")
		want := stream(t, filepath.Join(dir, "a.yaml")) + "---\n" + files["c.yaml"] + "---\n" + files["d.yaml"] + "---\n" + stream(t, filepath.Join(dir, "sub", "f.yaml"))
		if code != 2 || out != want {
			t.Errorf("exit %d, stdout:\n%s\nwant 2 and the good files' stream:\n%s", code, out, want)
		}
		if !strings.Contains(stderr, "c.yaml:1 Rollout/web: conflict: label key in workloadRef") {
			t.Errorf("the bad file's Deployment was not used for workloadRef:\n%s", stderr)
		}
		bad(t, dir, stderr)
	})
	t.Run("-w", func(t *testing.T) {
		dir := tree(t, files)
		before := snapshot(t, dir)
		code, out, stderr := runCommand(t, Command{Files: []string{dir}, Recursive: true, Write: true}, "")
		if code != 2 || out != "" {
			t.Errorf("exit %d, stdout %q; want 2 and nothing", code, out)
		}
		bad(t, dir, stderr)
		after := snapshot(t, dir)
		for name, b := range before {
			changed := name == "a.yaml" || name == filepath.Join("sub", "f.yaml")
			if (after[name] != b) != changed {
				t.Errorf("%s: written = %v, want %v", name, after[name] != b, changed)
			}
		}
	})
	t.Run("--check", func(t *testing.T) {
		dir := tree(t, files)
		before := snapshot(t, dir)
		code, out, stderr := runCommand(t, Command{Files: []string{dir}, Recursive: true, Check: true}, "")
		if code != 2 || out != "" {
			t.Errorf("exit %d, stdout %q; want 2 and nothing", code, out)
		}
		bad(t, dir, stderr)
		for _, want := range []string{filepath.Join(dir, "a.yaml") + ": 1 of 1 document would change\n", filepath.Join(dir, "sub", "f.yaml") + ": 1 of 1 document would change\n"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr does not list %q:\n%s", want, stderr)
			}
		}
		for _, unchanged := range []string{"c.yaml", "d.yaml"} {
			if strings.Contains(stderr, filepath.Join(dir, unchanged)+": ") {
				t.Errorf("stderr lists %s, which would not change:\n%s", unchanged, stderr)
			}
		}
		for name, s := range snapshot(t, dir) {
			if s != before[name] {
				t.Errorf("--check touched %s", name)
			}
		}
	})
}

// TestCheckListsFiles: --check names each file that would change, one a
// line, on stderr (stdout stays empty: --check writes nothing), in the one
// stream mode too.
func TestCheckListsFiles(t *testing.T) {
	dir := tree(t, map[string]string{
		"a.yaml": rolloutYAML,
		"b.yaml": "kind: ConfigMap\n---\n" + strings.Replace(rolloutYAML, "web", "b", 1) + "---\n" + strings.Replace(rolloutYAML, "web", "b2", 1),
		"c.yaml": "kind: ConfigMap\n",
	})
	code, out, stderr := runCommand(t, Command{Files: []string{dir}, Check: true}, "")
	want := filepath.Join(dir, "a.yaml") + ": 1 of 1 document would change\n" +
		filepath.Join(dir, "b.yaml") + ": 2 of 3 documents would change\n" +
		"canary-tagger mutate --check: 3 of 5 documents would change\n"
	if code != 1 || out != "" || !strings.HasSuffix(stderr, want) {
		t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant 1, nothing, and stderr ending with:\n%s", code, out, stderr, want)
	}
	if code, _, stderr := runCommand(t, Command{Files: []string{filepath.Join(dir, "c.yaml")}, Check: true}, ""); code != 0 || stderr != "" {
		t.Errorf("nothing to change: exit %d, stderr %q", code, stderr)
	}
}

// TestWriteFile: the file is replaced whole, its mode kept; through a
// symbolic link the target is replaced and the link stays.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target.yaml")
	if err := os.WriteFile(target, []byte("old"), 0o751); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.yaml")
	if err := os.Symlink("target.yaml", link); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(link, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(target); string(data) != "new" {
		t.Errorf("target holds %q", data)
	}
	if info, err := os.Lstat(link); err != nil || info.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link is gone: %v, %v", info, err)
	}
	if info, _ := os.Stat(target); info.Mode().Perm() != 0o751 {
		t.Errorf("mode %v, want 0751", info.Mode())
	}
	if err := WriteFile(filepath.Join(dir, "missing.yaml"), []byte("x")); err == nil {
		t.Error("a missing file was written")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("%d entries in the directory, want 2 (a temporary file left?)", len(entries))
	}
}
