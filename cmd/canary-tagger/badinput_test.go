package main

// TestBadInputCLI is the CLI half of the bad-input catalogue
// (docs/bad-inputs.md): each case runs `canary-tagger mutate` (run)
// and has one expected outcome. Whatever it is: no panic, an answer within
// a bound, and on exit 2 nothing on stdout and a message on stderr.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// seedRollout is the seed's Rollout (test/e2e/testdata/rollout.yaml).
const seedRollout = `apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: demo
spec:
  replicas: 5
  selector:
    matchLabels:
      app: demo
  template:
    metadata:
      labels:
        app: demo
    spec:
      containers:
        - name: demo
          image: argoproj/demo:blue
          ports:
            - name: http
              containerPort: 8080
              protocol: TCP
  strategy:
    canary:
      steps:
        - setWeight: 20
        - pause: {}
        - setWeight: 50
        - pause: {}
`

// agentDaemonSet is an agent DaemonSet whose container "agent" has env.
func agentDaemonSet(env string) string {
	return `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: datadog-agent
  namespace: datadog
spec:
  selector:
    matchLabels:
      app: datadog-agent
  template:
    metadata:
      labels:
        app: datadog-agent
        agent.datadoghq.com/component: agent
    spec:
      containers:
        - name: agent
          image: gcr.io/datadoghq/agent:7.81.1
` + env
}

type cliOutcome int

const (
	errorNamingDocument  cliOutcome = iota // exit 2, stdout empty, stderr names the document
	writtenBackUnchanged                   // exit 0, stdout == stdin byte for byte
	writtenMutated                         // exit 0, stdout differs and decodes to the rule's result
	usageError                             // exit 2 (usage or file errors), stdout empty
)

func (w cliOutcome) String() string {
	return [...]string{"exit 2, nothing written, document named", "exit 0, written back byte for byte", "exit 0, mutated", "exit 2, nothing written"}[w]
}

type cliCase struct {
	name  string
	args  []string
	stdin func(t *testing.T) []byte
	want  cliOutcome
	// stderr must match (errorNamingDocument: the document's position, e.g. "document 2").
	stderr string
	// within bounds the run (default 10 s).
	within time.Duration
	check  func(t *testing.T, stdout []byte)
}

func mutateBytes(t *testing.T, stdin []byte, args ...string) (int, []byte, []byte) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(append([]string{"mutate"}, args...), bytes.NewReader(stdin), &out, &errOut, noSignals(t))
	return code, out.Bytes(), errOut.Bytes()
}

// decodeStream decodes a YAML/JSON stream the way kubectl does.
func decodeStream(t *testing.T, stream []byte) []map[string]any {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	var docs []map[string]any
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs
		} else if err != nil {
			t.Fatalf("output does not split into documents: %v", err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			t.Fatalf("output document does not decode: %v\n%s", err, doc)
		}
		if m != nil {
			docs = append(docs, m)
		}
	}
}

func rolloutLabel(t *testing.T, doc map[string]any, side string) any {
	t.Helper()
	canary, _ := doc["spec"].(map[string]any)["strategy"].(map[string]any)["canary"].(map[string]any)
	meta, _ := canary[side].(map[string]any)
	labels, _ := meta["labels"].(map[string]any)
	return labels["role"]
}

func assertRolloutsInjected(t *testing.T, stdout []byte) {
	t.Helper()
	docs := decodeStream(t, stdout)
	if len(docs) == 0 {
		t.Fatal("no document written")
	}
	for i, d := range docs {
		if d["kind"] != "Rollout" {
			continue
		}
		if rolloutLabel(t, d, "stableMetadata") != "stable" || rolloutLabel(t, d, "canaryMetadata") != "canary" {
			t.Fatalf("document %d: Rollout not injected: %v", i+1, d["spec"])
		}
	}
}

func agentLabelsAsTags(t *testing.T, stdout []byte) string {
	t.Helper()
	docs := decodeStream(t, stdout)
	c := docs[0]["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
	env, _ := c["env"].([]any)
	for i := len(env) - 1; i >= 0; i-- {
		if e, _ := env[i].(map[string]any); e["name"] == "DD_KUBERNETES_POD_LABELS_AS_TAGS" {
			s, _ := e["value"].(string)
			return s
		}
	}
	return ""
}

func aliasBomb(indent string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%sa: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n", indent)
	prev := "a"
	for _, c := range "bcdefghi" {
		refs := strings.TrimSuffix(strings.Repeat("*"+prev+",", 9), ",")
		fmt.Fprintf(&b, "%s%c: &%c [%s]\n", indent, c, c, refs)
		prev = string(c)
	}
	return b.String()
}

func stdinText(s string) func(*testing.T) []byte { return func(*testing.T) []byte { return []byte(s) } }

func cliCases() []cliCase {
	return []cliCase{
		// --- unparsable: exit 2, nothing written, the document named ---
		{name: "truncated YAML (unterminated quote)", stdin: stdinText("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: \"demo\n"), want: errorNamingDocument, stderr: "document 1"},
		{name: "second document unparsable after a valid Rollout", stdin: stdinText(seedRollout + "---\nkind: [\n"), want: errorNamingDocument, stderr: "document 2"},
		{name: "tab indentation", stdin: stdinText("apiVersion: v1\nkind: ConfigMap\nmetadata:\n\tname: demo\n"), want: errorNamingDocument, stderr: "document 1"},
		{name: "invalid UTF-8 in a Rollout", stdin: stdinText(strings.Replace(seedRollout, "argoproj/demo:blue", "argoproj/demo:blue\xff\xfe", 1)), want: errorNamingDocument, stderr: "document 1"},
		{name: "NUL byte", stdin: stdinText("apiVersion: v1\x00\nkind: ConfigMap\n"), want: errorNamingDocument, stderr: "document 1"},
		{name: "binary garbage", stdin: func(*testing.T) []byte {
			b := make([]byte, 1024)
			for i := range b {
				b[i] = byte(i * 7)
			}
			return b
		}, want: errorNamingDocument, stderr: "document 1"},
		{name: "YAML nested 100 000 deep", stdin: stdinText("a: " + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + "\n"), want: errorNamingDocument, stderr: "document 1", within: 5 * time.Second},
		{name: "alias bomb (billion laughs) in a ConfigMap", stdin: stdinText("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n" + aliasBomb("  ")), want: errorNamingDocument, stderr: "document 1", within: 5 * time.Second},
		{name: "alias bomb in a Rollout", stdin: stdinText(seedRollout + "extra:\n" + aliasBomb("  ")), want: errorNamingDocument, stderr: "document 1", within: 5 * time.Second},
		{name: "--check with an unparsable document", args: []string{"--check"}, stdin: stdinText(seedRollout + "---\nkind: [\n"), want: errorNamingDocument, stderr: "document 2"},
		// --- usage and files ---
		{name: "-f of a file that does not exist", args: []string{"-f", "/nonexistent/canary-tagger/x.yaml"}, stdin: stdinText(""), want: usageError, stderr: "/nonexistent/canary-tagger/x.yaml"},
		{name: "unknown flag", args: []string{"--no-such-flag"}, stdin: stdinText(seedRollout), want: usageError, stderr: "no-such-flag"},
		{name: "invalid --label-key", args: []string{"--label-key=-bad-"}, stdin: stdinText(seedRollout), want: usageError, stderr: "label-key"},
		// --- not ours, or nothing to do: byte for byte ---
		{name: "empty input", stdin: stdinText(""), want: writtenBackUnchanged},
		{name: "only comments and separators", stdin: stdinText("# a comment\n---\n# another\n---\n"), want: writtenBackUnchanged},
		{name: "null documents", stdin: stdinText("null\n---\n~\n"), want: writtenBackUnchanged},
		{name: "a scalar document", stdin: stdinText("hello\n"), want: writtenBackUnchanged},
		{name: "a JSON array document", stdin: stdinText("[1, 2, 3]\n"), want: writtenBackUnchanged},
		{name: "List with items: null", stdin: stdinText("apiVersion: v1\nkind: List\nitems: null\n"), want: writtenBackUnchanged},
		{name: `List with items: "x"`, stdin: stdinText("apiVersion: v1\nkind: List\nitems: x\n"), want: writtenBackUnchanged},
		{name: "Rollout without apiVersion", stdin: stdinText(strings.Replace(seedRollout, "apiVersion: argoproj.io/v1alpha1\n", "", 1)), want: writtenBackUnchanged},
		{name: "duplicate key in a ConfigMap", stdin: stdinText("apiVersion: v1\nkind: ConfigMap\nkind: Secret\nmetadata:\n  name: x\n"), want: writtenBackUnchanged},
		{name: `Rollout with steps: "x"`, stdin: stdinText(strings.Replace(seedRollout, "      steps:\n        - setWeight: 20\n        - pause: {}\n        - setWeight: 50\n        - pause: {}\n", "      steps: x\n", 1)), want: writtenBackUnchanged},
		{name: "Rollout with stableMetadata.labels: []", stdin: stdinText(strings.Replace(seedRollout, "    canary:\n", "    canary:\n      stableMetadata:\n        labels: []\n", 1)), want: writtenBackUnchanged},
		{name: "agent DaemonSet whose container has env: {}", stdin: stdinText(agentDaemonSet("          env: {}\n")), want: writtenBackUnchanged},
		{name: "agent DaemonSet whose DD_KUBERNETES_POD_LABELS_AS_TAGS is not JSON", stdin: stdinText(agentDaemonSet("          env:\n            - name: DD_KUBERNETES_POD_LABELS_AS_TAGS\n              value: app:kube_app\n")), want: writtenBackUnchanged},
		// --- odd but valid: mutated ---
		{name: "duplicate key in a Rollout (last wins, as kubectl decodes it)", stdin: stdinText(strings.Replace(seedRollout, "    canary:\n", "    canary:\n      steps: x\n", 1)), want: writtenMutated, check: assertRolloutsInjected},
		{name: "UTF-8 byte order mark", stdin: stdinText("\xef\xbb\xbf" + seedRollout), want: writtenMutated, check: assertRolloutsInjected},
		{name: "CRLF line endings", stdin: stdinText(strings.ReplaceAll(seedRollout, "\n", "\r\n")), want: writtenMutated, check: assertRolloutsInjected},
		{name: "one-line JSON Rollout of 1 MiB", stdin: func(t *testing.T) []byte {
			var m map[string]any
			if err := yaml.Unmarshal([]byte(seedRollout), &m); err != nil {
				t.Fatal(err)
			}
			m["metadata"].(map[string]any)["annotations"] = map[string]any{"big": strings.Repeat("x", 1<<20)}
			b, _ := json.Marshal(m)
			return append(b, '\n')
		}, want: writtenMutated, check: assertRolloutsInjected},
		{name: "3 MiB Rollout (one large annotation)", stdin: stdinText(strings.Replace(seedRollout, "  name: demo\n", "  name: demo\n  annotations:\n    big: "+strings.Repeat("x", 3<<20)+"\n", 1)), want: writtenMutated, check: assertRolloutsInjected, within: 30 * time.Second},
		{name: "10 000 env entries in an agent container", stdin: func(*testing.T) []byte {
			var b strings.Builder
			b.WriteString("          env:\n")
			for i := range 10000 {
				fmt.Fprintf(&b, "            - name: VAR_%05d\n              value: \"x\"\n", i)
			}
			return []byte(agentDaemonSet(b.String()))
		}, want: writtenMutated, within: 30 * time.Second, check: func(t *testing.T, stdout []byte) {
			if v := agentLabelsAsTags(t, stdout); v != `{"role":"kube_role"}` {
				t.Errorf("DD_KUBERNETES_POD_LABELS_AS_TAGS = %q", v)
			}
		}},
		{name: "2 000 documents", stdin: stdinText(strings.Repeat("---\n"+seedRollout, 2000)), want: writtenMutated, within: 30 * time.Second, check: func(t *testing.T, stdout []byte) {
			if n := bytes.Count(stdout, []byte("role: canary")); n != 2000 {
				t.Errorf("%d of 2000 Rollouts injected", n)
			}
		}},
		// --- anchors and merge keys ---
		{name: "stableMetadata an anchor, canaryMetadata its alias", stdin: stdinText(strings.Replace(seedRollout, "    canary:\n",
			"    canary:\n      stableMetadata: &meta\n        labels:\n          app: demo\n      canaryMetadata: *meta\n", 1)),
			want: writtenMutated, check: assertRolloutsInjected},
		{name: "a merge key written after stableMetadata overrides it", stdin: stdinText(strings.Replace(seedRollout, "    canary:\n",
			"    canary:\n      stableMetadata: {labels: {app: mine}}\n      <<: {stableMetadata: {labels: {app: merged}}}\n", 1)),
			want: writtenBackUnchanged, stderr: "the change could not be written into this document, left as is"},
	}
}

func TestBadInputCLI(t *testing.T) {
	for _, tc := range cliCases() {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.stdin(t)
			within := tc.within
			if within == 0 {
				within = 10 * time.Second
			}
			start := time.Now()
			code, stdout, stderr := mutateBytes(t, in, tc.args...)
			if d := time.Since(start); d > within {
				t.Errorf("took %s, want under %s", d.Round(time.Millisecond), within)
			}
			switch tc.want {
			case errorNamingDocument, usageError:
				if code != 2 || len(stdout) > 0 {
					t.Fatalf("want %s; got exit %d, %d bytes on stdout; stderr: %.500s", tc.want, code, len(stdout), stderr)
				}
			case writtenBackUnchanged:
				if code != 0 || !bytes.Equal(stdout, in) {
					t.Fatalf("want %s; got exit %d, stdout equal=%v; stderr: %.500s\nstdout: %.500s", tc.want, code, bytes.Equal(stdout, in), stderr, stdout)
				}
			case writtenMutated:
				if code != 0 || bytes.Equal(stdout, in) {
					t.Fatalf("want %s; got exit %d, stdout changed=%v; stderr: %.500s", tc.want, code, !bytes.Equal(stdout, in), stderr)
				}
			}
			if tc.stderr != "" && !strings.Contains(string(stderr), tc.stderr) {
				t.Errorf("stderr does not mention %q: %.500s", tc.stderr, stderr)
			}
			if tc.check != nil {
				tc.check(t, stdout)
			}
		})
	}
}

// TestBadInputCLIFiles: the same engine on files and directories.
func TestBadInputCLIFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "a-rollout.yaml")
	bad := filepath.Join(dir, "b-broken.yaml")
	if err := os.WriteFile(good, []byte(seedRollout), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("kind: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := mutateBytes(t, nil, "-f", dir)
	if code != 2 || len(stdout) > 0 || !strings.Contains(string(stderr), "b-broken.yaml") {
		t.Fatalf("a directory with one broken file: want exit 2, nothing written, the file named; got exit %d, %d bytes, stderr %q", code, len(stdout), stderr)
	}
	if err := os.WriteFile(bad, nil, 0o000); err != nil {
		t.Fatal(err)
	}
	if os.Getuid() != 0 { // root reads anything
		code, stdout, stderr = mutateBytes(t, nil, "-f", bad)
		if code != 2 || len(stdout) > 0 || !strings.Contains(string(stderr), "b-broken.yaml") {
			t.Fatalf("an unreadable file: want exit 2, nothing written, the file named; got exit %d, %q", code, stderr)
		}
	}
}

// TestBadInputCLIDocs keeps docs/bad-inputs.md in step with the catalogue.
func TestBadInputCLIDocs(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "bad-inputs.md"))
	if err != nil {
		t.Fatalf("docs/bad-inputs.md: %v", err)
	}
	for _, tc := range cliCases() {
		row := regexp.MustCompile(`(?m)^\| *C\d+ *\| *` + regexp.QuoteMeta(strings.ReplaceAll(tc.name, "|", `\|`)) + ` *\|`)
		if !row.Match(doc) {
			t.Errorf("docs/bad-inputs.md has no CLI row for %q", tc.name)
		}
	}
}
