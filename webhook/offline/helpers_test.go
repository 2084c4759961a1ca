package offline

import (
	"bytes"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"

	"github.com/canary-tagger/canary-tagger/webhook/config"
)

// defaults are the rules' options with the contract 1 defaults.
func defaults(t *testing.T) Options {
	t.Helper()
	f := config.Flags{
		LabelKey: config.DefaultLabelKey, StableValue: config.DefaultStableValue, CanaryValue: config.DefaultCanaryValue,
		TagName: config.DefaultTagName, AgentSelector: config.DefaultAgentSelector,
	}
	r, err := f.Validate()
	if err != nil {
		t.Fatal(err)
	}
	return Options{Rollout: r.Rollout, AgentPod: r.AgentPod}
}

// run processes the inputs and returns the stream written and the report.
// On every input it checks what --check relies on (a document counts as
// changed exactly when it is written differently) and that the changes
// are edits and layout only (assertKeptCommentsAndKeys).
func run(t *testing.T, inputs ...Input) (*Result, string, []string) {
	t.Helper()
	res, err := Process(inputs, defaults(t))
	if err != nil {
		t.Fatalf("Process: %v", err)
	}
	var b bytes.Buffer
	if _, err := res.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	var notes []string
	for _, n := range res.Notes {
		notes = append(notes, n.String())
	}
	for _, d := range res.Docs {
		if d.Changed == bytes.Equal(d.Out, d.Raw) {
			t.Errorf("document %d: Changed = %v, but written %s", d.Index, d.Changed, map[bool]string{true: "as it was", false: "differently"}[bytes.Equal(d.Out, d.Raw)])
		}
		if d.Changed {
			assertKeptCommentsAndKeys(t, string(d.Raw), string(d.Out))
		}
	}
	return res, b.String(), notes
}

// assertKeptCommentsAndKeys checks that a rewritten document has every
// comment line and every mapping key of its input, in the same order (with
// whatever was added in between). Values are checked by Process itself.
func assertKeptCommentsAndKeys(t *testing.T, in, out string) {
	t.Helper()
	inComments, inKeys := commentsAndKeys(t, in)
	outComments, outKeys := commentsAndKeys(t, out)
	if missing := notIn(inComments, outComments); missing != "" {
		t.Errorf("comment %q lost or moved out of order:\n%s", missing, out)
	}
	if missing := notIn(inKeys, outKeys); missing != "" {
		t.Errorf("key %q lost or reordered:\n%s", missing, out)
	}
}

// commentsAndKeys lists a YAML document's comment lines and mapping keys in
// document order.
func commentsAndKeys(t *testing.T, doc string) (comments, keys []string) {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
		t.Fatalf("yaml.v3 cannot read %q: %v", doc, err)
	}
	// A key's foot comment follows its value in the text.
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		comments = append(comments, commentLines(n.HeadComment+"\n"+n.LineComment)...)
		for i := 0; i < len(n.Content); i++ {
			c := n.Content[i]
			if n.Kind != yaml.MappingNode || i+1 == len(n.Content) {
				walk(c)
				continue
			}
			keys = append(keys, c.Value)
			comments = append(comments, commentLines(c.HeadComment+"\n"+c.LineComment)...)
			walk(n.Content[i+1])
			comments = append(comments, commentLines(c.FootComment)...)
			i++
		}
		comments = append(comments, commentLines(n.FootComment)...)
	}
	walk(&root)
	return comments, keys
}

func commentLines(c string) []string {
	var lines []string
	for _, l := range strings.Split(c, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// notIn returns the first element of sub that is not matched, in order, in
// seq ("" if sub is a subsequence of seq).
func notIn(sub, seq []string) string {
	j := 0
	for _, s := range sub {
		for j < len(seq) && seq[j] != s {
			j++
		}
		if j == len(seq) {
			return s
		}
		j++
	}
	return ""
}

// inYAML is a single source named in.yaml.
func inYAML(s string) Input { return Input{Name: "in.yaml", Data: []byte(s)} }

// assertWritten checks a run's output against want and how many documents
// it changed.
func assertWritten(t *testing.T, res *Result, out, want string, changed int) {
	t.Helper()
	if out != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
	if res.Changed() != changed {
		t.Errorf("Changed() = %d, want %d", res.Changed(), changed)
	}
}

// injectedMetadata is what the rollout rule appends to a canary strategy in
// block style, the strategy's keys at indent.
func injectedMetadata(indent string) string {
	return indent + "stableMetadata:\n" +
		indent + "  labels:\n" +
		indent + "    role: stable\n" +
		indent + "canaryMetadata:\n" +
		indent + "  labels:\n" +
		indent + "    role: canary\n"
}

// assertIdempotent checks that mutate applied to its own output changes nothing.
func assertIdempotent(t *testing.T, out string) {
	t.Helper()
	res, again, _ := run(t, inYAML(out))
	if again != out || res.Changed() != 0 {
		t.Errorf("not idempotent: second run changed %d documents:\n%s", res.Changed(), again)
	}
}

func assertNotes(t *testing.T, got []string, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("report has %d lines, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i, w := range want {
		if !strings.Contains(got[i], w) {
			t.Errorf("report line %d = %q, want it to contain %q", i, got[i], w)
		}
	}
}
