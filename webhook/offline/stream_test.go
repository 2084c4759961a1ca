package offline

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// A changed JSON document keeps its key order (new keys come last) and the
// text of its numbers and strings; it is indented with 2 spaces.
func TestJSONDocument(t *testing.T) {
	in := `{"kind": "Rollout", "apiVersion": "argoproj.io/v1alpha1",
 "metadata": {"name": "j", "annotations": {"x": "<&>", "y": "caf\u00e9"}},
 "spec": {"replicas": 1.50, "strategy": {"canary": {"steps": [{"setWeight": 20}], "stableMetadata": {"labels": {}}}}}}
`
	want := `{
  "kind": "Rollout",
  "apiVersion": "argoproj.io/v1alpha1",
  "metadata": {
    "name": "j",
    "annotations": {
      "x": "<&>",
      "y": "caf\u00e9"
    }
  },
  "spec": {
    "replicas": 1.50,
    "strategy": {
      "canary": {
        "steps": [
          {
            "setWeight": 20
          }
        ],
        "stableMetadata": {
          "labels": {
            "role": "stable"
          }
        },
        "canaryMetadata": {
          "labels": {
            "role": "canary"
          }
        }
      }
    }
  }
}
`
	res, out, notes := run(t, Input{Name: "r.json", Data: []byte(in)})
	assertWritten(t, res, out, want, 1)
	if res.Docs[0].Format != FormatJSON {
		t.Errorf("format %v, want JSON", res.Docs[0].Format)
	}
	assertNotes(t, notes, "r.json:1 Rollout/j: injected")
	assertIdempotent(t, out)
}

// List kinds: each item is handled; edits land inside items, the rest of
// the document is untouched.
func TestListKinds(t *testing.T) {
	// The YAML list gets the labels inside its Rollout item and nothing
	// else; the JSON list is re-indented (as any changed JSON document is).
	yamlList := `apiVersion: v1
kind: List
items:
# a config map first
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: cm}
- apiVersion: argoproj.io/v1alpha1
  kind: Rollout
  metadata:
    name: in-list
  spec:
    strategy:
      canary:
        steps:
        - setWeight: 5
metadata:
  resourceVersion: ""
`
	in := yamlList + `---
{"kind": "RolloutList", "apiVersion": "argoproj.io/v1alpha1", "items": [
  {"kind": "Rollout", "apiVersion": "argoproj.io/v1alpha1", "metadata": {"name": "j"},
   "spec": {"strategy": {"canary": {"steps": [{"pause": {}}], "canaryMetadata": {"labels": {"role": "c"}}}}}}]}
`
	want := strings.Replace(yamlList, "        - setWeight: 5\n", "        - setWeight: 5\n"+injectedMetadata("        "), 1) + `---
{
  "kind": "RolloutList",
  "apiVersion": "argoproj.io/v1alpha1",
  "items": [
    {
      "kind": "Rollout",
      "apiVersion": "argoproj.io/v1alpha1",
      "metadata": {
        "name": "j"
      },
      "spec": {
        "strategy": {
          "canary": {
            "steps": [
              {
                "pause": {}
              }
            ],
            "canaryMetadata": {
              "labels": {
                "role": "c"
              }
            },
            "stableMetadata": {
              "labels": {
                "role": "stable"
              }
            }
          }
        }
      }
    }
  ]
}
`
	res, out, notes := run(t, inYAML(in))
	assertWritten(t, res, out, want, 2)
	assertNotes(t, notes, "in.yaml:1 items[1] Rollout/in-list: injected", "in.yaml:2 items[0] Rollout/j: injected stableMetadata.labels.role=stable")
	assertIdempotent(t, out)
}

// workloadRef is resolved from the other documents of the input, whatever
// source they come from.
func TestWorkloadRef(t *testing.T) {
	rolloutWithRef := func(name, ref string) string {
		return `apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: ` + name + `, namespace: shop}
spec:
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: ` + ref + `}
  strategy:
    canary:
      steps: [{setWeight: 10}]
`
	}
	deploys := `apiVersion: apps/v1
kind: Deployment
metadata: {name: clean}
spec:
  template:
    metadata:
      labels: {app: web}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: clash, namespace: shop}
spec:
  template:
    metadata:
      labels: {app: web, role: frontend}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: missing, namespace: elsewhere}
`
	rollouts := rolloutWithRef("a", "clean") + "---\n" + rolloutWithRef("b", "clash") + "---\n" + rolloutWithRef("c", "missing")
	res, out, notes := run(t, Input{Name: "rollouts.yaml", Data: []byte(rollouts)}, Input{Name: "deploy.yaml", Data: []byte(deploys)})
	docs := strings.Split(out, "---\n")
	if !strings.Contains(docs[0], "role: stable") || docs[1] != rolloutWithRef("b", "clash") || !strings.Contains(docs[2], "role: canary") {
		t.Errorf("want a injected, b untouched, c injected; got:\n%s", out)
	}
	if res.Changed() != 2 {
		t.Errorf("Changed() = %d, want 2", res.Changed())
	}
	assertNotes(t, notes,
		"rollouts.yaml:1 Rollout/a: injected",
		"rollouts.yaml:2 Rollout/b: conflict: ",
		"rollouts.yaml:2 Rollout/b: warning: ",
		"rollouts.yaml:3 Rollout/c: injected",
		`rollouts.yaml:3 Rollout/c: warning: workloadRef Deployment/missing not checked for label "role" (no Deployment named "missing" in the input); injected anyway`)
	if !strings.Contains(notes[2], "workloadRef Deployment/clash") {
		t.Errorf("conflict warning should name the workload: %s", notes[2])
	}
}

// mutate resolves a workloadRef with the server's model: the kinds Argo
// Rollouts resolves (by group), each with its own template path; a
// reference without apiVersion is resolved by its kind alone.
func TestWorkloadRefKinds(t *testing.T) {
	rolloutWithRef := func(name, ref string) string {
		return `apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: ` + name + `}
spec:
  workloadRef: ` + ref + `
  strategy:
    canary:
      steps: [{setWeight: 10}]
`
	}
	workloads := `apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs}
spec:
  template:
    metadata:
      labels: {role: x}
---
apiVersion: v1
kind: PodTemplate
metadata: {name: pt}
template:
  metadata:
    labels: {role: x}
---
apiVersion: extensions/v1beta1
kind: Deployment
metadata: {name: old}
spec:
  template:
    metadata:
      labels: {role: x}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: sts}
spec:
  template:
    metadata:
      labels: {role: x}
`
	refs := []string{
		`{apiVersion: apps/v1, kind: ReplicaSet, name: rs}`,
		`{apiVersion: v1, kind: PodTemplate, name: pt}`,
		`{kind: PodTemplate, name: pt}`,
		`{apiVersion: extensions/v1beta1, kind: Deployment, name: old}`,
		`{apiVersion: apps/v1, kind: StatefulSet, name: sts}`,
		`{kind: Deployment, name: old}`,
	}
	var rollouts []string
	for i, ref := range refs {
		rollouts = append(rollouts, rolloutWithRef(fmt.Sprintf("r%d", i), ref))
	}
	_, _, notes := run(t, Input{Name: "rollouts.yaml", Data: []byte(strings.Join(rollouts, "---\n"))}, Input{Name: "workloads.yaml", Data: []byte(workloads)})
	assertNotes(t, notes,
		"rollouts.yaml:1 Rollout/r0: conflict: ",
		"rollouts.yaml:1 Rollout/r0: warning: label \"role\" not injected: already used in workloadRef ReplicaSet/rs template",
		"rollouts.yaml:2 Rollout/r1: conflict: ",
		"rollouts.yaml:2 Rollout/r1: warning: label \"role\" not injected: already used in workloadRef PodTemplate/pt template",
		"rollouts.yaml:3 Rollout/r2: conflict: ",
		"rollouts.yaml:3 Rollout/r2: warning: label \"role\" not injected: already used in workloadRef PodTemplate/pt template",
		"rollouts.yaml:4 Rollout/r3: injected",
		"rollouts.yaml:4 Rollout/r3: warning: workloadRef Deployment/old not checked for label \"role\" (extensions/v1beta1 Deployment is not a kind Argo Rollouts supports for workloadRef); injected anyway",
		"rollouts.yaml:5 Rollout/r4: injected",
		"rollouts.yaml:5 Rollout/r4: warning: workloadRef StatefulSet/sts not checked for label \"role\" (apps/v1 StatefulSet is not a kind Argo Rollouts supports for workloadRef); injected anyway",
		"rollouts.yaml:6 Rollout/r5: injected",
		"rollouts.yaml:6 Rollout/r5: warning: workloadRef Deployment/old not checked for label \"role\" (no Deployment named \"old\" in the input); injected anyway",
	)
}

// An unparsable document is an error naming its position; Process then
// returns no result, so nothing can be written.
func TestParseError(t *testing.T) {
	in := "kind: ConfigMap\n---\nkind: Secret\n---\n# third\nkind: Service\nspec:\n  ports: [\n"
	res, err := Process([]Input{{Name: "bad.yaml", Data: []byte(in)}}, defaults(t))
	if res != nil || err == nil {
		t.Fatalf("want an error and no result, got %v, %v", res, err)
	}
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Index != 3 || pe.Line < 4 {
		t.Fatalf("want a ParseError for document 3, got %#v", err)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "bad.yaml:") || !strings.Contains(msg, "document 3") {
		t.Errorf("message %q should name bad.yaml and document 3", msg)
	}
}

// Sources are joined so that documents stay apart.
func TestSourcesJoined(t *testing.T) {
	_, out, _ := run(t, Input{Name: "a", Data: []byte("kind: A")}, Input{Name: "b", Data: []byte("kind: B\n")},
		Input{Name: "c", Data: []byte("---\nkind: C\n")}, Input{Name: "d", Data: []byte("# d\n---\nkind: D\n")})
	if want := "kind: A\n---\nkind: B\n---\nkind: C\n# d\n---\nkind: D\n"; out != want {
		t.Errorf("got %q, want %q", out, want)
	}
}
