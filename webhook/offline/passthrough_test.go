package offline

import (
	"strings"
	"testing"
)

// Documents the rules leave alone come back byte for byte, whatever their
// layout, and the report stays quiet about them.
func TestPassthroughByteForByte(t *testing.T) {
	cases := map[string]string{
		"helm output": `---
# Source: chart/templates/sa.yaml
apiVersion: v1
kind: ServiceAccount
metadata:
  name: sa
---
# Source: chart/templates/cm.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: cm   # trailing comment
data:
  key:    "value"     
  multi: |
    ---
    not a separator
`,
		"odd spacing and marker variants": "apiVersion: v1\nkind:   ConfigMap\nmetadata: {name: a}\n\n\n--- # a comment on the marker\napiVersion: v1\nkind: Secret\n---\t\nkind: Service\n...\n",
		"empty documents":                 "---\n---\n# only a comment\n---\n\n---\nkind: ConfigMap\n---\n",
		"scalar and list documents":       "--- just a string\n---\n- a\n- b\n---\n42\n",
		"no trailing newline":             "kind: ConfigMap\nmetadata:\n  name: x",
		"crlf":                            "---\r\n# Source: x\r\napiVersion: apps/v1\r\nkind: Deployment\r\nmetadata:\r\n  name: d\r\n",
		"bom":                             "\ufeff---\nkind: ConfigMap\n",
		"json object and array":           "{\"kind\": \"ConfigMap\",   \"data\": {\"a\": \"1\"}}\n[1, 2]\n",
		"json stream":                     "{\"kind\":\"ConfigMap\"}{\"kind\":\"Secret\"}\n\n{\"kind\":\"Service\"}",
		"blue-green rollout": `apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: bg
spec:
  strategy:
    blueGreen: {activeService: a}
`,
		"opted-out rollout": `apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: out
  annotations:
    canary-tagger.io/inject: "false"
spec:
  strategy:
    canary:
      steps: [{setWeight: 10}]
`,
		"daemonset that is not the agent": `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: fluentd
spec:
  template:
    metadata:
      labels: {app: fluentd}
    spec:
      containers:
      - name: fluentd
`,
		"agent pod not owned by a daemonset": `apiVersion: v1
kind: Pod
metadata:
  name: agent
  labels: {agent.datadoghq.com/component: agent}
spec:
  containers: [{name: agent}]
`,
		"empty input": "",
		"blank input": "\n\n",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			res, out, notes := run(t, inYAML(in))
			if out != in {
				t.Errorf("output differs from input:\n--- in\n%q\n--- out\n%q", in, out)
			}
			if res.Changed() != 0 || len(notes) != 0 {
				t.Errorf("changed %d, report %q; want 0 and nothing", res.Changed(), notes)
			}
		})
	}
}

// Splitting keeps every byte and numbers documents as a reader would.
func TestSplitNumbering(t *testing.T) {
	in := "# preamble\n---\na: 1\n---\nb: 2\n--- # c\nc: 3\n"
	docs := split("x", []byte(in))
	var got []string
	for _, d := range docs {
		got = append(got, string(d.Raw))
	}
	if strings.Join(got, "") != in {
		t.Fatalf("documents do not add up to the input: %q", got)
	}
	if len(docs) != 3 || docs[0].Line != 1 || docs[1].Line != 4 || docs[2].Index != 3 {
		t.Errorf("documents %q, want the preamble in the first of 3", got)
	}
}
