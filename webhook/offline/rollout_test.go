package offline

import (
	"slices"
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

// seedOut is seed with the labels added at the end of the canary strategy,
// in yaml.v3's layout: comments and key order kept; the spacing before line
// comments and the blank line are not.
const seedOut = `# Source: app/templates/rollout.yaml
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: web # the app
spec:
  replicas: 3
  strategy:
    canary:
      steps:
      - setWeight: 20
      - pause: {}
      - setWeight: 50
      - pause: {} # until promoted
      stableMetadata:
        labels:
          role: stable
      canaryMetadata:
        labels:
          role: canary
  # the pod template
  template:
    metadata:
      labels:
        app: web
`

func TestRolloutSeed(t *testing.T) {
	res, out, notes := run(t, inYAML("---\n"+seed))
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
		want: head + "    canary:\n      canaryMetadata: # later\n        labels:\n          role: canary\n      stableMetadata:\n        labels:\n          role: stable\n      steps:\n      - setWeight: 10\n",
	}, {
		name: "annotations kept, labels added after them",
		in:   head + "    canary:\n      stableMetadata:\n        annotations:\n          a: b # why\n      canaryMetadata:\n        labels:\n          tier: web\n      steps:\n      - setWeight: 10\n",
		want: head + "    canary:\n      stableMetadata:\n        annotations:\n          a: b # why\n        labels:\n          role: stable\n      canaryMetadata:\n        labels:\n          tier: web\n          role: canary\n      steps:\n      - setWeight: 10\n",
	}, {
		name: "four-space indent becomes two, no line break at the end stays so",
		in:   "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata:\n    name: r\nspec:\n    strategy:\n        canary:\n            steps:\n                - setWeight: 10",
		want: head + "    canary:\n      steps:\n      - setWeight: 10\n" + strings.TrimSuffix(injectedMetadata("      "), "\n"),
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
			res, out, _ := run(t, inYAML(c.in))
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
	res, out, notes := run(t, inYAML(in))
	assertWritten(t, res, out, in, 0)
	assertNotes(t, notes,
		"in.yaml:1 Rollout/done: present (stableMetadata and canaryMetadata already have the label)",
		"in.yaml:2 Rollout/clash: conflict: ",
		"in.yaml:2 Rollout/clash: warning: ",
		"in.yaml:3 Rollout/odd: skipped: field of unexpected type: spec.strategy.canary.steps is a string")
}

const rolloutHead = `apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: r
spec:
  strategy:
    canary:
      steps: [{setWeight: 10}]
`

// stableMetadata is an anchor and canaryMetadata its alias: each side must
// get its own value. Writing the stable label into the anchor alone would
// give both sides "stable" (or, edit refused, leave the document unchanged
// while --check said it would change).
func TestRolloutMetadataAnchorAndAlias(t *testing.T) {
	in := rolloutHead + `      stableMetadata: &meta
        labels:
          app: web
      canaryMetadata: *meta
`
	want := rolloutHead + `      stableMetadata: &meta
        labels:
          app: web
          role: stable
      canaryMetadata:
        labels:
          app: web
          role: canary
`
	res, out, notes := run(t, inYAML(in))
	assertWritten(t, res, out, want, 1)
	assertNotes(t, notes, "in.yaml:1 Rollout/r: injected stableMetadata.labels.role=stable, canaryMetadata.labels.role=canary")
	assertIdempotent(t, out)
}

// The labels come from an anchor defined elsewhere in the document (here
// the pod template's): that place keeps its labels as they were.
func TestRolloutAnchorElsewhere(t *testing.T) {
	in := `apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: r
  labels: &labels {app: web}
spec:
  strategy:
    canary:
      steps: [{setWeight: 10}]
      stableMetadata: {labels: *labels}
      canaryMetadata: {labels: *labels}
`
	want := strings.NewReplacer(
		"stableMetadata: {labels: *labels}", "stableMetadata: {labels: {app: web, role: stable}}",
		"canaryMetadata: {labels: *labels}", "canaryMetadata: {labels: {app: web, role: canary}}").Replace(in)
	res, out, _ := run(t, inYAML(in))
	assertWritten(t, res, out, want, 1)
	assertIdempotent(t, out)
}

// A canary strategy that takes its metadata from a merge key (<<) gets the
// merged value as its own key, after the <<, so that it wins; the merged
// mapping is unchanged.
func TestRolloutMergeKey(t *testing.T) {
	in := `apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: r
  annotations:
    defaults: &defaults {stableMetadata: {labels: {tier: web}}}
spec:
  strategy:
    canary:
      <<: *defaults
      steps: [{setWeight: 10}]
`
	want := strings.Replace(in, "      steps: [{setWeight: 10}]\n",
		"      steps: [{setWeight: 10}]\n      stableMetadata: {labels: {tier: web, role: stable}}\n"+
			"      canaryMetadata:\n        labels:\n          role: canary\n", 1)
	res, out, _ := run(t, inYAML(in))
	assertWritten(t, res, out, want, 1)
	assertIdempotent(t, out)
}

// A changed document keeps every comment: head, line and foot comments,
// comments in flow and block collections, and those before the object.
func TestChangedDocumentKeepsComments(t *testing.T) {
	in := `---
# Source: app/rollout.yaml
# second line
apiVersion: argoproj.io/v1alpha1 # the group
kind: Rollout
metadata:
  # the name
  name: r
spec:
  strategy:
    canary:
      # before steps
      steps:
      # first step
      - setWeight: 10 # ten
      - pause: {} # wait
      # after the steps
      stableMetadata:
        labels:
          app: web # the app
        # end of labels
# end of document
`
	want := `---
# Source: app/rollout.yaml
# second line
apiVersion: argoproj.io/v1alpha1 # the group
kind: Rollout
metadata:
  # the name
  name: r
spec:
  strategy:
    canary:
      # before steps
      steps:
      # first step
      - setWeight: 10 # ten
      - pause: {} # wait
      # after the steps
      stableMetadata:
        labels:
          app: web # the app
          role: stable
          # end of labels
      canaryMetadata:
        labels:
          role: canary
# end of document
`
	res, out, _ := run(t, inYAML(in))
	assertWritten(t, res, out, want, 1)
	assertIdempotent(t, out)
}

// When the rewritten text would not decode to what the webhook admits, the
// document is written back as it was, with a warning, and does not count as
// changed, so that --check agrees with what is written. Here kubectl's YAML
// decoder lets a merge key written after stableMetadata override it, and the
// node tree edit lands in the overridden one.
func TestUnwritableLeftAsIs(t *testing.T) {
	cases := map[string]struct{ in, reason string }{
		"merge key overrides an earlier key": {reason: "the patched document does not decode to the patched object", in: `apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: r
  annotations:
    defaults: &defaults {stableMetadata: {labels: {tier: web}}}
spec:
  strategy:
    canary:
      stableMetadata: {labels: {tier: mine}}
      <<: *defaults
      canaryMetadata: {labels: {role: canary}}
      steps: [{setWeight: 10}]
`},
		"a second document without a --- line": {in: rolloutHead + "...\nkind: ConfigMap\n", reason: "more than one YAML document between two --- lines"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			res, out, notes := run(t, inYAML(c.in))
			assertWritten(t, res, out, c.in, 0)
			if !res.Docs[0].Unwritten {
				t.Error("Unwritten = false, want true")
			}
			assertNotes(t, notes, "Rollout/r: injected", "Rollout/r: warning: the change could not be written into this document, left as is: "+c.reason)
		})
	}
}

// A blue-green Rollout (with Options.Rollout.BlueGreen) is reported in its
// own fields' names, whether it gets the labels or already has them.
func TestRolloutBlueGreenNotes(t *testing.T) {
	in := `apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: bg}
spec:
  strategy:
    blueGreen:
      activeService: bg
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: done}
spec:
  strategy:
    blueGreen:
      activeService: done
      activeMetadata: {labels: {role: stable}}
      previewMetadata: {labels: {role: canary}}
`
	opts := defaults(t)
	opts.Rollout.BlueGreen = true
	res, err := Process([]Input{{Name: "in.yaml", Data: []byte(in)}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range res.Notes {
		got = append(got, n.String())
	}
	want := []string{
		"in.yaml:1 Rollout/bg: injected activeMetadata.labels.role=stable, previewMetadata.labels.role=canary",
		"in.yaml:2 Rollout/done: present (activeMetadata and previewMetadata already have the label)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("report:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if res.Changed() != 1 {
		t.Errorf("%d documents changed, want 1", res.Changed())
	}
}
