package main

// TestBadInputCLI is the CLI half of the bad-input catalogue
// (docs/bad-inputs.md): each case runs `canary-tagger mutate` (runMutate)
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

// evSeed is the seed's Rollout (test/e2e/testdata/rollout.yaml).
const evSeed = `apiVersion: argoproj.io/v1alpha1
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

// evAgentDaemonSet is an agent DaemonSet whose container "agent" has env.
func evAgentDaemonSet(env string) string {
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

type evWant int

const (
	evError     evWant = iota // exit 2, stdout empty, stderr names the document
	evUntouched               // exit 0, stdout == stdin byte for byte
	evMutated                 // exit 0, stdout differs and decodes to the rule's result
	evExit2                   // exit 2 (usage or file errors), stdout empty
)

func (w evWant) String() string {
	return [...]string{"exit 2, nothing written, document named", "exit 0, written back byte for byte", "exit 0, mutated", "exit 2, nothing written"}[w]
}

type evCLICase struct {
	name  string
	args  []string
	stdin func(t *testing.T) []byte
	want  evWant
	// stderr must match (evError: the document's position, e.g. "document 2").
	stderr string
	// within bounds the run (default 10 s).
	within time.Duration
	check  func(t *testing.T, stdout []byte)
}

func evRun(t *testing.T, stdin []byte, args ...string) (int, []byte, []byte) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runMutate(args, bytes.NewReader(stdin), &out, &errOut)
	return code, out.Bytes(), errOut.Bytes()
}

// evDocs decodes a YAML/JSON stream the way kubectl does.
func evDocs(t *testing.T, stream []byte) []map[string]any {
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

func evLabel(t *testing.T, doc map[string]any, side string) any {
	t.Helper()
	canary, _ := doc["spec"].(map[string]any)["strategy"].(map[string]any)["canary"].(map[string]any)
	meta, _ := canary[side].(map[string]any)
	labels, _ := meta["labels"].(map[string]any)
	return labels["role"]
}

func evInjected(t *testing.T, stdout []byte) {
	t.Helper()
	docs := evDocs(t, stdout)
	if len(docs) == 0 {
		t.Fatal("no document written")
	}
	for i, d := range docs {
		if d["kind"] != "Rollout" {
			continue
		}
		if evLabel(t, d, "stableMetadata") != "stable" || evLabel(t, d, "canaryMetadata") != "canary" {
			t.Fatalf("document %d: Rollout not injected: %v", i+1, d["spec"])
		}
	}
}

func evAgentEnv(t *testing.T, stdout []byte) string {
	t.Helper()
	docs := evDocs(t, stdout)
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

func evBomb(indent string) string {
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

func evBytes(s string) func(*testing.T) []byte { return func(*testing.T) []byte { return []byte(s) } }

func evCLICases() []evCLICase {
	return []evCLICase{
		// --- unparsable: exit 2, nothing written, the document named ---
		{name: "truncated YAML (unterminated quote)", stdin: evBytes("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: \"demo\n"), want: evError, stderr: "document 1"},
		{name: "second document unparsable after a valid Rollout", stdin: evBytes(evSeed + "---\nkind: [\n"), want: evError, stderr: "document 2"},
		{name: "tab indentation", stdin: evBytes("apiVersion: v1\nkind: ConfigMap\nmetadata:\n\tname: demo\n"), want: evError, stderr: "document 1"},
		{name: "invalid UTF-8 in a Rollout", stdin: evBytes(strings.Replace(evSeed, "argoproj/demo:blue", "argoproj/demo:blue\xff\xfe", 1)), want: evError, stderr: "document 1"},
		{name: "NUL byte", stdin: evBytes("apiVersion: v1\x00\nkind: ConfigMap\n"), want: evError, stderr: "document 1"},
		{name: "binary garbage", stdin: func(*testing.T) []byte {
			b := make([]byte, 1024)
			for i := range b {
				b[i] = byte(i * 7)
			}
			return b
		}, want: evError, stderr: "document 1"},
		{name: "YAML nested 100 000 deep", stdin: evBytes("a: " + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + "\n"), want: evError, stderr: "document 1", within: 5 * time.Second},
		{name: "alias bomb (billion laughs) in a ConfigMap", stdin: evBytes("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n" + evBomb("  ")), want: evError, stderr: "document 1", within: 5 * time.Second},
		{name: "alias bomb in a Rollout", stdin: evBytes(evSeed + "extra:\n" + evBomb("  ")), want: evError, stderr: "document 1", within: 5 * time.Second},
		{name: "--check with an unparsable document", args: []string{"--check"}, stdin: evBytes(evSeed + "---\nkind: [\n"), want: evError, stderr: "document 2"},
		// --- usage and files ---
		{name: "-f of a file that does not exist", args: []string{"-f", "/nonexistent/canary-tagger/x.yaml"}, stdin: evBytes(""), want: evExit2, stderr: "/nonexistent/canary-tagger/x.yaml"},
		{name: "unknown flag", args: []string{"--no-such-flag"}, stdin: evBytes(evSeed), want: evExit2, stderr: "no-such-flag"},
		{name: "invalid --label-key", args: []string{"--label-key=-bad-"}, stdin: evBytes(evSeed), want: evExit2, stderr: "label-key"},
		// --- not ours, or nothing to do: byte for byte ---
		{name: "empty input", stdin: evBytes(""), want: evUntouched},
		{name: "only comments and separators", stdin: evBytes("# a comment\n---\n# another\n---\n"), want: evUntouched},
		{name: "null documents", stdin: evBytes("null\n---\n~\n"), want: evUntouched},
		{name: "a scalar document", stdin: evBytes("hello\n"), want: evUntouched},
		{name: "a JSON array document", stdin: evBytes("[1, 2, 3]\n"), want: evUntouched},
		{name: "List with items: null", stdin: evBytes("apiVersion: v1\nkind: List\nitems: null\n"), want: evUntouched},
		{name: `List with items: "x"`, stdin: evBytes("apiVersion: v1\nkind: List\nitems: x\n"), want: evUntouched},
		{name: "Rollout without apiVersion", stdin: evBytes(strings.Replace(evSeed, "apiVersion: argoproj.io/v1alpha1\n", "", 1)), want: evUntouched},
		{name: "duplicate key in a ConfigMap", stdin: evBytes("apiVersion: v1\nkind: ConfigMap\nkind: Secret\nmetadata:\n  name: x\n"), want: evUntouched},
		{name: `Rollout with steps: "x"`, stdin: evBytes(strings.Replace(evSeed, "      steps:\n        - setWeight: 20\n        - pause: {}\n        - setWeight: 50\n        - pause: {}\n", "      steps: x\n", 1)), want: evUntouched},
		{name: "Rollout with stableMetadata.labels: []", stdin: evBytes(strings.Replace(evSeed, "    canary:\n", "    canary:\n      stableMetadata:\n        labels: []\n", 1)), want: evUntouched},
		{name: "agent DaemonSet whose container has env: {}", stdin: evBytes(evAgentDaemonSet("          env: {}\n")), want: evUntouched},
		{name: "agent DaemonSet whose DD_KUBERNETES_POD_LABELS_AS_TAGS is not JSON", stdin: evBytes(evAgentDaemonSet("          env:\n            - name: DD_KUBERNETES_POD_LABELS_AS_TAGS\n              value: app:kube_app\n")), want: evUntouched},
		// --- odd but valid: mutated ---
		{name: "duplicate key in a Rollout (last wins, as kubectl decodes it)", stdin: evBytes(strings.Replace(evSeed, "    canary:\n", "    canary:\n      steps: x\n", 1)), want: evMutated, check: evInjected},
		{name: "UTF-8 byte order mark", stdin: evBytes("\xef\xbb\xbf" + evSeed), want: evMutated, check: evInjected},
		{name: "CRLF line endings", stdin: evBytes(strings.ReplaceAll(evSeed, "\n", "\r\n")), want: evMutated, check: evInjected},
		{name: "one-line JSON Rollout of 1 MiB", stdin: func(t *testing.T) []byte {
			var m map[string]any
			if err := yaml.Unmarshal([]byte(evSeed), &m); err != nil {
				t.Fatal(err)
			}
			m["metadata"].(map[string]any)["annotations"] = map[string]any{"big": strings.Repeat("x", 1<<20)}
			b, _ := json.Marshal(m)
			return append(b, '\n')
		}, want: evMutated, check: evInjected},
		{name: "3 MiB Rollout (one large annotation)", stdin: evBytes(strings.Replace(evSeed, "  name: demo\n", "  name: demo\n  annotations:\n    big: "+strings.Repeat("x", 3<<20)+"\n", 1)), want: evMutated, check: evInjected, within: 30 * time.Second},
		{name: "10 000 env entries in an agent container", stdin: func(*testing.T) []byte {
			var b strings.Builder
			b.WriteString("          env:\n")
			for i := range 10000 {
				fmt.Fprintf(&b, "            - name: VAR_%05d\n              value: \"x\"\n", i)
			}
			return []byte(evAgentDaemonSet(b.String()))
		}, want: evMutated, within: 30 * time.Second, check: func(t *testing.T, stdout []byte) {
			if v := evAgentEnv(t, stdout); v != `{"role":"kube_role"}` {
				t.Errorf("DD_KUBERNETES_POD_LABELS_AS_TAGS = %q", v)
			}
		}},
		{name: "2 000 documents", stdin: evBytes(strings.Repeat("---\n"+evSeed, 2000)), want: evMutated, within: 30 * time.Second, check: func(t *testing.T, stdout []byte) {
			if n := bytes.Count(stdout, []byte("role: canary")); n != 2000 {
				t.Errorf("%d of 2000 Rollouts injected", n)
			}
		}},
	}
}

func TestBadInputCLI(t *testing.T) {
	for _, tc := range evCLICases() {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.stdin(t)
			within := tc.within
			if within == 0 {
				within = 10 * time.Second
			}
			start := time.Now()
			code, stdout, stderr := evRun(t, in, tc.args...)
			if d := time.Since(start); d > within {
				t.Errorf("took %s, want under %s", d.Round(time.Millisecond), within)
			}
			switch tc.want {
			case evError, evExit2:
				if code != 2 || len(stdout) > 0 {
					t.Fatalf("want %s; got exit %d, %d bytes on stdout; stderr: %.500s", tc.want, code, len(stdout), stderr)
				}
			case evUntouched:
				if code != 0 || !bytes.Equal(stdout, in) {
					t.Fatalf("want %s; got exit %d, stdout equal=%v; stderr: %.500s\nstdout: %.500s", tc.want, code, bytes.Equal(stdout, in), stderr, stdout)
				}
			case evMutated:
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
	if err := os.WriteFile(good, []byte(evSeed), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("kind: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := evRun(t, nil, "-f", dir)
	if code != 2 || len(stdout) > 0 || !strings.Contains(string(stderr), "b-broken.yaml") {
		t.Fatalf("a directory with one broken file: want exit 2, nothing written, the file named; got exit %d, %d bytes, stderr %q", code, len(stdout), stderr)
	}
	if err := os.WriteFile(bad, nil, 0o000); err != nil {
		t.Fatal(err)
	}
	if os.Getuid() != 0 { // root reads anything
		code, stdout, stderr = evRun(t, nil, "-f", bad)
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
	for _, tc := range evCLICases() {
		row := regexp.MustCompile(`(?m)^\| *C\d+ *\| *` + regexp.QuoteMeta(strings.ReplaceAll(tc.name, "|", `\|`)) + ` *\|`)
		if !row.Match(doc) {
			t.Errorf("docs/bad-inputs.md has no CLI row for %q", tc.name)
		}
	}
}
