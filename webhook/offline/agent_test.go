package offline

import (
	"strings"
	"testing"
)

const dsHead = `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: datadog
spec:
  template:
    metadata:
      labels:
        agent.datadoghq.com/component: agent
    spec:
`

func TestAgentDaemonSet(t *testing.T) {
	cases := []struct{ name, in, want, note string }{{
		name: "no env: env added in the document's sequence style",
		in:   dsHead + "      containers:\n      - name: agent\n        image: agent:7\n      volumes: []\n",
		want: dsHead + "      containers:\n      - name: agent\n        image: agent:7\n        env:\n        - name: DD_KUBERNETES_POD_LABELS_AS_TAGS\n          value: '{\"role\":\"kube_role\"}'\n      volumes: []\n",
		note: "in.yaml:1 DaemonSet/datadog: injected (agent: injected)",
	}, {
		name: "flow env",
		in:   dsHead + "      containers:\n      - {name: agent, env: []}\n",
		want: dsHead + "      containers:\n      - {name: agent, env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{\"role\":\"kube_role\"}'}]}\n",
		note: "injected (agent: injected)",
	}, {
		name: "double-quoted value keeps its quotes",
		in:   dsHead + "      containers:\n      - name: agent\n        env:\n        - name: DD_KUBERNETES_POD_LABELS_AS_TAGS\n          value: \"{\\\"*\\\":\\\"%%label%%\\\"}\" # all labels\n",
		want: dsHead + "      containers:\n      - name: agent\n        env:\n        - name: DD_KUBERNETES_POD_LABELS_AS_TAGS\n          value: \"{\\\"*\\\":\\\"%%label%%\\\",\\\"role\\\":\\\"kube_role\\\"}\" # all labels\n",
		note: "injected (agent: injected)",
	}, {
		name: "empty value",
		in:   dsHead + "      containers:\n      - name: agent\n        env:\n        - name: DD_KUBERNETES_POD_LABELS_AS_TAGS\n          value:\n",
		want: dsHead + "      containers:\n      - name: agent\n        env:\n        - name: DD_KUBERNETES_POD_LABELS_AS_TAGS\n          value: '{\"role\":\"kube_role\"}'\n",
		note: "injected (agent: injected)",
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, out, notes := run(t, inYAML(c.in))
			assertWritten(t, res, out, c.want, 1)
			assertNotes(t, notes, c.note)
			assertIdempotent(t, out)
		})
	}
}

// Containers the rule must leave alone are reported, since a DaemonSet
// template gets no status annotation.
func TestAgentSkipsReported(t *testing.T) {
	in := dsHead + `      containers:
      - name: agent
        envFrom: [{configMapRef: {name: dd-env}}]
      - name: trace-agent
        env:
        - name: DD_KUBERNETES_POD_LABELS_AS_TAGS
          value: 'not json'
      - name: process-agent
        env:
        - name: DD_KUBERNETES_POD_LABELS_AS_TAGS
          valueFrom: {configMapKeyRef: {name: dd, key: tags}}
`
	res, out, notes := run(t, inYAML(in))
	assertWritten(t, res, out, in, 0)
	assertNotes(t, notes, "in.yaml:1 DaemonSet/datadog: skipped: agent: skipped: ")
	for _, w := range []string{"agent: skipped: envFrom", "trace-agent: skipped: value is not a JSON object", "process-agent: skipped: valueFrom"} {
		if !strings.Contains(notes[0], w) {
			t.Errorf("report %q should contain %q", notes[0], w)
		}
	}
}

// An agent Pod gets the env entry and the status annotation, as from the webhook.
func TestAgentPod(t *testing.T) {
	in := `apiVersion: v1
kind: Pod
metadata:
  name: datadog-x7k2p
  labels: {agent.datadoghq.com/component: agent}
  ownerReferences:
  - {apiVersion: apps/v1, kind: DaemonSet, name: datadog, uid: u}
spec:
  containers:
  - name: agent
    env:
    - {name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"app":"kube_app"}'}
`
	want := strings.Replace(in, `'{"app":"kube_app"}'`, `'{"app":"kube_app","role":"kube_role"}'`, 1)
	want = strings.Replace(want, "uid: u}\n", "uid: u}\n  annotations:\n    canary-tagger.io/status: 'agent: injected'\n", 1)
	res, out, notes := run(t, inYAML(in))
	assertWritten(t, res, out, want, 1)
	assertNotes(t, notes, "in.yaml:1 Pod/datadog-x7k2p: injected (agent: injected)")
	assertIdempotent(t, out)
}

// A value replaced by the rule keeps its comments and the style the author
// wrote it in, here a block scalar.
func TestReplacedValueKeepsStyle(t *testing.T) {
	in := "---\n# Source: dd.yaml\n" + dsHead + `      containers:
      - name: agent # main
        env:
        - name: DD_KUBERNETES_POD_LABELS_AS_TAGS
          # the chart's mapping
          value: |-
            {"app":"kube_app"}
`
	want := strings.Replace(in, `{"app":"kube_app"}`, `{"app":"kube_app","role":"kube_role"}`, 1)
	res, out, notes := run(t, inYAML(in))
	assertWritten(t, res, out, want, 1)
	assertNotes(t, notes, "injected (agent: injected)")
	assertIdempotent(t, out)
}

// Containers that share their env through an anchor each get their own
// entry: the alias becomes a copy before anything is added, so that the
// edit of one place does not show up in the other.
func TestSharedEnvUnshared(t *testing.T) {
	in := dsHead + `      containers:
      - &c
        name: agent
        env: &e []
      - name: other
        env: *e # same env
`
	want := dsHead + `      containers:
      - &c
        name: agent
        env: &e [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"role":"kube_role"}'}]
      - name: other
        env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"role":"kube_role"}'}] # same env
`
	res, out, notes := run(t, inYAML(in))
	assertWritten(t, res, out, want, 1)
	assertNotes(t, notes, "injected (agent: injected; other: injected)")
	assertIdempotent(t, out)
}
