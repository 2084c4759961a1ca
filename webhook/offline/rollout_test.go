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

// seedOut is seed with the labels added at the end of the canary strategy:
// after the last step and its comment, before the blank line and the comment
// that follow.
var seedOut = strings.Replace(seed, "      - pause: {}   # until promoted\n",
	"      - pause: {}   # until promoted\n"+injectedMetadata("      "), 1)

func TestRolloutSeed(t *testing.T) {
	res, out, notes := run(t, one("---\n"+seed))
	assertWritten(t, res, out, "---\n"+seedOut, 1)
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
		want: strings.ReplaceAll(head+"    canary:\n      steps:\n      - pause: {}\n"+injectedMetadata("      "), "\n", "\r\n"),
	}, {
		name: "quoted keys and values",
		in:   head + "    \"canary\":\n      'stableMetadata':\n        \"labels\": {\"app\": \"x\"}\n      steps: [{setWeight: 10}]\n",
		want: head + "    \"canary\":\n      'stableMetadata':\n        \"labels\": {\"app\": \"x\", role: stable}\n      steps: [{setWeight: 10}]\n      canaryMetadata:\n        labels:\n          role: canary\n",
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, out, _ := run(t, one(c.in))
			assertWritten(t, res, out, c.want, 1)
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
	assertWritten(t, res, out, in, 0)
	assertNotes(t, notes,
		"in.yaml:1 Rollout/done: present",
		"in.yaml:2 Rollout/clash: conflict: ",
		"in.yaml:2 Rollout/clash: warning: ",
		"in.yaml:3 Rollout/odd: skipped: spec.strategy.canary.steps is a string")
}
