package offline

import (
	"strings"
	"testing"
)

// seed is the Rollout of the brief: canary steps, no ephemeral metadata.
const seed = `# Source: app/templates/rollout.yaml
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: web   # the app
spec:
  replicas: 3
  strategy:
    canary:
      steps:
      - setWeight: 20
      - pause: {}
      - setWeight: 50
      - pause: {}   # until promoted

  # the pod template
  template:
    metadata:
      labels:
        app: web
`

const seedOut = `# Source: app/templates/rollout.yaml
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: web   # the app
spec:
  replicas: 3
  strategy:
    canary:
      steps:
      - setWeight: 20
      - pause: {}
      - setWeight: 50
      - pause: {}   # until promoted
      canaryMetadata:
        labels:
          role: canary
      stableMetadata:
        labels:
          role: stable

  # the pod template
  template:
    metadata:
      labels:
        app: web
`

func TestRolloutSeed(t *testing.T) {
	res, out, notes := run(t, one("---\n"+seed))
	if out != "---\n"+seedOut {
		t.Errorf("got:\n%s\nwant:\n---\n%s", out, seedOut)
	}
	if res.Changed() != 1 {
		t.Errorf("Changed() = %d, want 1", res.Changed())
	}
	assertNotes(t, notes, "in.yaml:1 Rollout/web: injected stableMetadata.labels.role=stable, canaryMetadata.labels.role=canary")
	assertIdempotent(t, out)
}

// Each way the metadata can already be written gets only what is missing,
// in the style of its surroundings.
func TestRolloutEdits(t *testing.T) {
	head := "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: r\nspec:\n  strategy:\n"
	cases := []struct{ name, in, want string }{{
		name: "flow mappings",
		in:   head + "    canary:\n      canaryMetadata: {}\n      stableMetadata: {labels: {app: x}}\n      steps: [{setWeight: 10}]\n",
		want: head + "    canary:\n      canaryMetadata: {labels: {role: canary}}\n      stableMetadata: {labels: {app: x, role: stable}}\n      steps: [{setWeight: 10}]\n",
	}, {
		name: "null, empty and comment",
		in:   head + "    canary:\n      canaryMetadata: null # later\n      stableMetadata:\n        labels:\n      steps:\n        - setWeight: 10\n",
		want: head + "    canary:\n      canaryMetadata: # later\n        labels:\n          role: canary\n      stableMetadata:\n        labels:\n          role: stable\n      steps:\n        - setWeight: 10\n",
	}, {
		name: "annotations kept, labels added after them",
		in:   head + "    canary:\n      stableMetadata:\n        annotations:\n          a: b # why\n      canaryMetadata:\n        labels:\n          tier: web\n      steps:\n      - setWeight: 10\n",
		want: head + "    canary:\n      stableMetadata:\n        annotations:\n          a: b # why\n        labels:\n          role: stable\n      canaryMetadata:\n        labels:\n          tier: web\n          role: canary\n      steps:\n      - setWeight: 10\n",
	}, {
		name: "four-space indent is learnt",
		in:   "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata:\n    name: r\nspec:\n    strategy:\n        canary:\n            steps:\n                - setWeight: 10",
		want: "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata:\n    name: r\nspec:\n    strategy:\n        canary:\n            steps:\n                - setWeight: 10\n            canaryMetadata:\n                labels:\n                    role: canary\n            stableMetadata:\n                labels:\n                    role: stable",
	}, {
		name: "crlf",
		in:   strings.ReplaceAll(head+"    canary:\n      steps:\n      - pause: {}\n", "\n", "\r\n"),
		want: strings.ReplaceAll(head+"    canary:\n      steps:\n      - pause: {}\n      canaryMetadata:\n        labels:\n          role: canary\n      stableMetadata:\n        labels:\n          role: stable\n", "\n", "\r\n"),
	}, {
		name: "quoted keys and values",
		in:   head + "    \"canary\":\n      'stableMetadata':\n        \"labels\": {\"app\": \"x\"}\n      steps: [{setWeight: 10}]\n",
		want: head + "    \"canary\":\n      'stableMetadata':\n        \"labels\": {\"app\": \"x\", role: stable}\n      steps: [{setWeight: 10}]\n      canaryMetadata:\n        labels:\n          role: canary\n",
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, out, _ := run(t, one(c.in))
			if out != c.want {
				t.Errorf("got:\n%s\nwant:\n%s", out, c.want)
			}
			if res.Changed() != 1 {
				t.Errorf("Changed() = %d, want 1", res.Changed())
			}
			assertIdempotent(t, out)
		})
	}
}

func TestRolloutPresentAndConflict(t *testing.T) {
	in := `apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: done}
spec:
  strategy:
    canary:
      canaryMetadata: {labels: {role: canary}}
      stableMetadata: {labels: {role: stable}}
      steps: [{setWeight: 10}]
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: clash}
spec:
  selector:
    matchLabels: {app: x, role: web}
  strategy:
    canary:
      steps: [{setWeight: 10}]
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: odd}
spec:
  strategy:
    canary:
      steps: "x"
`
	res, out, notes := run(t, one(in))
	if out != in || res.Changed() != 0 {
		t.Errorf("changed %d documents:\n%s", res.Changed(), out)
	}
	assertNotes(t, notes,
		"in.yaml:1 Rollout/done: present",
		"in.yaml:2 Rollout/clash: conflict: ",
		"in.yaml:2 Rollout/clash: warning: ",
		"in.yaml:3 Rollout/odd: skipped: spec.strategy.canary.steps is a string")
}
