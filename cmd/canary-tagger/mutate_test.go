package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	yamlv3 "go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files of the mutate fixture tests")

// fixtures are the Datadog Helm chart renders in test/testdata/datadog-helm.
func fixtures(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "test", "testdata", "datadog-helm"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("fixtures not available (test/testdata/datadog-helm): %v", err)
	}
	return dir
}

const goldenDir = "../../webhook/offline/testdata"

func mutate(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(append([]string{"mutate"}, args...), strings.NewReader(stdin), &out, &errb, noSignals(t))
	return code, out.String(), errb.String()
}

// TestMutateDatadogFixtures runs mutate on the chart renders: the agent
// DaemonSet and the Cluster Agent Deployment get the mapping on every Agent
// container (and on init-config when it declares the variable); every other
// document comes back byte for byte. A changed document is
// re-encoded by yaml.v3: the golden files hold the report and, for each
// changed document, a line diff against the input document re-encoded the
// same way, which shows the edits alone. That the re-encoding is layout only
// is checked in webhook/offline (TestDatadogFixturesLayoutOnly).
func TestMutateDatadogFixtures(t *testing.T) {
	dir := fixtures(t)
	cases := []struct {
		file string
		// want is the variable's value per container of the DaemonSet and
		// the Deployment, "" where it must be absent.
		want map[string]string
	}{
		{"default.yaml", map[string]string{
			"agent": `{"role":"kube_role"}`, "trace-agent": `{"role":"kube_role"}`, "system-probe": `{"role":"kube_role"}`,
			"init-volume": "", "init-config": "", "seccomp-setup": "", "cluster-agent": `{"role":"kube_role"}`,
		}},
		{"pod-labels-as-tags.yaml", map[string]string{
			"agent": `{"app":"kube_app","role":"kube_role","team":"team"}`, "trace-agent": `{"app":"kube_app","role":"kube_role","team":"team"}`,
			"system-probe": `{"app":"kube_app","role":"kube_role","team":"team"}`, "init-config": `{"app":"kube_app","role":"kube_role","team":"team"}`,
			"init-volume": "", "seccomp-setup": "", "cluster-agent": `{"app":"kube_app","role":"kube_role","team":"team"}`,
		}},
		{"role-already-mapped.yaml", nil},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			path := filepath.Join(dir, c.file)
			in, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			code, out, stderr := mutate(t, "", "-f", path)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			inDocs, outDocs := strings.Split(string(in), "\n---\n"), strings.Split(out, "\n---\n")
			if len(inDocs) != len(outDocs) {
				t.Fatalf("%d documents in, %d out", len(inDocs), len(outDocs))
			}
			var edits strings.Builder
			for i := range inDocs {
				if inDocs[i] == outDocs[i] {
					continue
				}
				if c.want == nil || !strings.Contains(inDocs[i], "\nkind: DaemonSet\n") && !strings.Contains(inDocs[i], "\nkind: Deployment\n") {
					t.Errorf("document %d changed:\n%s", i+1, lineDiff(inDocs[i], outDocs[i]))
					continue
				}
				checkAgentEnv(t, outDocs[i], c.want)
				fmt.Fprintf(&edits, "## document %d\n%s", i+1, lineDiff(reencoded(t, inDocs[i]), outDocs[i]))
			}
			if c.want == nil && out != string(in) {
				t.Errorf("output differs from the input")
			}
			checkGolden(t, strings.TrimSuffix(c.file, ".yaml")+".golden", fmt.Sprintf(
				"# canary-tagger mutate -f <fixtures>/%s\n# exit %d\n# stderr:\n%s"+
					"# each changed document against the input document re-encoded by yaml.v3 as mutate does:\n%s",
				c.file, code, strings.ReplaceAll(stderr, dir+string(filepath.Separator), "<fixtures>/"), edits.String()))

			// Idempotent: mutate on its own output changes nothing.
			code, again, stderr := mutate(t, out)
			if code != 0 || again != out {
				t.Errorf("second run: exit %d, output changed: %s", code, lineDiff(out, again))
			}
			if strings.Contains(stderr, "injected (") {
				t.Errorf("second run still injects: %s", stderr)
			}
		})
	}
}

// reencoded is a YAML document as mutate writes a changed document, without
// the change: yaml.v3's node tree, indent 2, compact sequences.
func reencoded(t *testing.T, doc string) string {
	t.Helper()
	var node yamlv3.Node
	if err := yamlv3.Unmarshal([]byte(doc), &node); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	enc := yamlv3.NewEncoder(&b)
	enc.SetIndent(2)
	enc.CompactSeqIndent()
	if err := enc.Encode(&node); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// checkAgentEnv decodes the DaemonSet with the Kubernetes types, as the
// apiserver would, and checks the variable per container.
func checkAgentEnv(t *testing.T, doc string, want map[string]string) {
	t.Helper()
	var ds appsv1.DaemonSet
	if err := yaml.Unmarshal([]byte(doc), &ds); err != nil {
		t.Fatalf("workload does not decode: %v", err)
	}
	spec := ds.Spec.Template.Spec
	for _, c := range append(spec.InitContainers, spec.Containers...) {
		w, ok := want[c.Name]
		if !ok {
			t.Errorf("unexpected container %q", c.Name)
			continue
		}
		got, n := "", 0
		for _, e := range c.Env {
			if e.Name == "DD_KUBERNETES_POD_LABELS_AS_TAGS" {
				got, n = e.Value, n+1
			}
		}
		if got != w || n > 1 {
			t.Errorf("container %s: DD_KUBERNETES_POD_LABELS_AS_TAGS = %q (%d entries), want %q", c.Name, got, n, w)
		}
	}
	if ds.Spec.Template.Annotations["canary-tagger.io/status"] != "" {
		t.Errorf("the template got a status annotation (it would restart the agents)")
	}
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join(goldenDir, name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s", path, got)
	}
}

// lineDiff shows the lines b adds to or changes from a, with a's line
// numbers. It aligns greedily, which is exact for mutate's edits: inserted
// lines and lines replaced one for one.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var d strings.Builder
	i, j := 0, 0
	for i < len(al) || j < len(bl) {
		if i < len(al) && j < len(bl) && al[i] == bl[j] {
			i, j = i+1, j+1
			continue
		}
		fmt.Fprintf(&d, "@@ line %d @@\n", i+1)
		k := j
		for k < len(bl) && k < j+50 && (i >= len(al) || bl[k] != al[i]) {
			k++
		}
		if i < len(al) && k < len(bl) && bl[k] == al[i] {
			for ; j < k; j++ {
				d.WriteString("+" + bl[j] + "\n")
			}
			continue
		}
		if i < len(al) {
			d.WriteString("-" + al[i] + "\n")
			i++
		}
		if j < len(bl) {
			d.WriteString("+" + bl[j] + "\n")
			j++
		}
	}
	return d.String()
}

// TestCheckAgreesWithMutate: on every input of the CLI tests — the
// bad-input catalogue, the Datadog chart renders and this file's documents —
// `mutate --check` writes nothing, exits 1 exactly when `mutate` writes
// something other than its input, and 2 exactly when mutate fails.
func TestCheckAgreesWithMutate(t *testing.T) {
	type input struct {
		name  string
		args  []string
		stdin []byte
		file  string // read with -f instead of stdin
	}
	inputs := []input{
		{name: "rollout", stdin: []byte(rolloutDoc)},
		{name: "mutated rollout", stdin: []byte(rolloutOut)},
		{name: "custom values", stdin: []byte(rolloutDoc), args: []string{"--label-key=track", "--stable-value=main", "--canary-value=next"}},
	}
	for _, c := range cliCases() {
		inputs = append(inputs, input{name: c.name, args: c.args, stdin: c.stdin(t)})
	}
	files, err := filepath.Glob(filepath.Join(fixtures(t), "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		inputs = append(inputs, input{name: filepath.Base(f), args: []string{"-f", f}, file: f})
	}
	for _, in := range inputs {
		t.Run(in.name, func(t *testing.T) {
			code, out, stderr := mutateBytes(t, in.stdin, in.args...)
			checkCode, checkOut, checkStderr := mutateBytes(t, in.stdin, append([]string{"--check"}, in.args...)...)
			original := in.stdin
			if in.file != "" {
				if original, err = os.ReadFile(in.file); err != nil {
					t.Fatal(err)
				}
			}
			want := 0
			switch {
			case code == 2:
				want = 2
			case code != 0:
				t.Fatalf("mutate: exit %d: %.300s", code, stderr)
			case !bytes.Equal(out, original):
				want = 1
			}
			if checkCode != want || len(checkOut) > 0 {
				t.Errorf("mutate exits %d and writes the input %s; --check exits %d (want %d) with %d bytes on stdout: %.300s",
					code, map[bool]string{true: "unchanged", false: "changed"}[bytes.Equal(out, original)], checkCode, want, len(checkOut), checkStderr)
			}
		})
	}
}

func TestMutateCheck(t *testing.T) {
	dir := fixtures(t)
	code, out, stderr := mutate(t, "", "--check", "-f", filepath.Join(dir, "default.yaml"))
	if code != 1 || out != "" {
		t.Errorf("exit %d, stdout %d bytes; want 1 and nothing", code, len(out))
	}
	if !strings.Contains(stderr, "DaemonSet/dd-datadog: injected") || !strings.Contains(stderr, "Deployment/dd-datadog-cluster-agent: injected") ||
		!strings.Contains(stderr, "2 of 26 documents would change") {
		t.Errorf("stderr should list what would change: %s", stderr)
	}
	code, out, stderr = mutate(t, "", "--check", "-f", filepath.Join(dir, "role-already-mapped.yaml"))
	if code != 0 || out != "" {
		t.Errorf("exit %d, stdout %q; want 0 and nothing (stderr %s)", code, out, stderr)
	}
}

const rolloutDoc = `apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  strategy:
    canary:
      steps:
      - setWeight: 20
      - pause: {}
`

const rolloutOut = rolloutDoc + `      stableMetadata:
        labels:
          role: stable
      canaryMetadata:
        labels:
          role: canary
`

// As a Helm post-renderer: Helm's output on stdin, the result on stdout.
func TestMutateStdin(t *testing.T) {
	in := "---\n# Source: app/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n---\n# Source: app/templates/rollout.yaml\n" + rolloutDoc
	want := strings.Replace(in, rolloutDoc, rolloutOut, 1)
	for _, args := range [][]string{nil, {"-f", "-"}, {"--filename=-", "--label-key=role"}} {
		code, out, stderr := mutate(t, in, args...)
		if code != 0 || out != want {
			t.Errorf("%q: exit %d, stdout:\n%s\nstderr: %s", args, code, out, stderr)
		}
		if want := "stdin:2 Rollout/web: injected stableMetadata.labels.role=stable, canaryMetadata.labels.role=canary\n"; stderr != want {
			t.Errorf("%q: stderr %q, want %q", args, stderr, want)
		}
	}
	if code, _, stderr := mutate(t, in, "-f", "-", "-f", "-"); code != 2 || !strings.Contains(stderr, "stdin") {
		t.Errorf("stdin twice: exit %d, %s", code, stderr)
	}
}

const blueGreenDoc = `apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  strategy:
    blueGreen:
      activeService: web
      previewService: web-preview
`

// With --blue-green a blue-green Rollout gets both labels, and the report
// names its own fields (activeMetadata, previewMetadata), on the first run
// and on the second (nothing left to add).
func TestMutateBlueGreen(t *testing.T) {
	code, out, stderr := mutate(t, blueGreenDoc, "--blue-green")
	want := blueGreenDoc + `      activeMetadata:
        labels:
          role: stable
      previewMetadata:
        labels:
          role: canary
`
	if code != 0 || out != want {
		t.Fatalf("exit %d, stdout:\n%s\nwant:\n%s\nstderr: %s", code, out, want, stderr)
	}
	if want := "stdin:1 Rollout/web: injected activeMetadata.labels.role=stable, previewMetadata.labels.role=canary\n"; stderr != want {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
	code, again, stderr := mutate(t, out, "--blue-green")
	if code != 0 || again != out {
		t.Errorf("second run: exit %d, stdout:\n%s", code, again)
	}
	if want := "stdin:1 Rollout/web: present (activeMetadata and previewMetadata already have the label)\n"; stderr != want {
		t.Errorf("second run: stderr %q, want %q", stderr, want)
	}
	// Without the flag a blue-green Rollout is out of scope: unchanged, and not news.
	if code, out, stderr := mutate(t, blueGreenDoc); code != 0 || out != blueGreenDoc || stderr != "" {
		t.Errorf("without --blue-green: exit %d, stdout:\n%s\nstderr: %q", code, out, stderr)
	}
}

func TestMutateFlagsAndCustomValues(t *testing.T) {
	code, out, stderr := mutate(t, rolloutDoc, "--label-key=track", "--stable-value=main", "--canary-value=next")
	if code != 0 || !strings.Contains(out, "          track: next\n") || !strings.Contains(out, "          track: main\n") {
		t.Errorf("exit %d, stdout:\n%s\nstderr: %s", code, out, stderr)
	}
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--label-key=not a key"}, "--label-key"},
		{[]string{"--tag-name=Bad Tag"}, "--tag-name"},
		{[]string{"--agent-selector=a in (b"}, "--agent-selector"},
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"file.yaml"}, `unexpected argument "file.yaml"`},
	} {
		code, out, stderr := mutate(t, rolloutDoc, c.args...)
		if code != 2 || out != "" || !strings.Contains(stderr, c.msg) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2, nothing, a message naming %s", c.args, code, out, stderr, c.msg)
		}
	}
	code, help, _ := mutate(t, "", "-h")
	if code != 0 || !strings.Contains(help, "Usage:\n  canary-tagger mutate") || !strings.Contains(help, "--check") || !strings.Contains(help, "Exit status") {
		t.Errorf("-h: exit %d, %s", code, help)
	}
}

// A bad document anywhere means nothing is written at all.
func TestMutateErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	write(t, bad, "kind: ConfigMap\n---\n"+rolloutDoc+"---\n# third\nkind: Secret\ndata: {a: [\n")
	code, out, stderr := mutate(t, "", "-f", bad)
	if code != 2 || out != "" || !strings.Contains(stderr, bad+":") || !strings.Contains(stderr, "document 3") {
		t.Errorf("exit %d, stdout %q, stderr %q; want 2, nothing, an error naming %s document 3", code, out, stderr, bad)
	}
	code, out, stderr = mutate(t, "", "-f", filepath.Join(dir, "missing.yaml"))
	if code != 2 || out != "" || !strings.Contains(stderr, "missing.yaml") {
		t.Errorf("missing file: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	good := filepath.Join(dir, "good.yaml")
	write(t, good, rolloutDoc)
	code, out, _ = mutate(t, "", "-f", good, "-f", bad)
	if code != 2 || out != "" {
		t.Errorf("good then bad: exit %d, stdout %q; want 2 and nothing", code, out)
	}
}

func TestMutateDirectory(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "b.yaml"), rolloutDoc)
	write(t, filepath.Join(dir, "a.yml"), "kind: ConfigMap\n")
	cj, _ := json.Marshal(map[string]any{"kind": "Secret"})
	write(t, filepath.Join(dir, "c.json"), string(cj))
	write(t, filepath.Join(dir, "notes.txt"), "not a manifest: [")
	write(t, filepath.Join(dir, "sub", "d.yaml"), strings.Replace(rolloutDoc, "name: web", "name: deep", 1))

	code, out, stderr := mutate(t, "", "-f", dir)
	if want := "kind: ConfigMap\n---\n" + rolloutOut + "---\n" + string(cj); code != 0 || out != want {
		t.Errorf("exit %d, got:\n%s\nwant:\n%s\nstderr: %s", code, out, want, stderr)
	}
	if !strings.Contains(stderr, filepath.Join(dir, "b.yaml")+":1 Rollout/web: injected") || strings.Contains(stderr, "deep") {
		t.Errorf("stderr: %s", stderr)
	}
	code, out, stderr = mutate(t, "", "-R", "-f", dir)
	if code != 0 || !strings.Contains(stderr, filepath.Join(dir, "sub", "d.yaml")+":1 Rollout/deep: injected") || strings.Count(out, "role: canary") != 2 {
		t.Errorf("-R: exit %d, stderr: %s", code, stderr)
	}
	empty := t.TempDir()
	if code, _, stderr := mutate(t, "", "-f", empty); code != 2 || !strings.Contains(stderr, empty) {
		t.Errorf("empty directory: exit %d, %s", code, stderr)
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
