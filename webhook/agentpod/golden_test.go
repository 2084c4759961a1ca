package agentpod_test

import (
	"flag"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/canary-tagger/canary-tagger/webhook/agentpod"
	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
	"github.com/canary-tagger/canary-tagger/webhook/internal/obj/objtest"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.yaml from the rules' output")

// The renders of the Datadog Helm chart and of the Datadog Operator.
const fixtureDir = "../../test/testdata"

// agentDeployment is a Cluster Agent or Checks Runner Deployment of a render
// and the container the rule handles in it.
type agentDeployment struct{ name, container string }

// fixtures says, per render, which containers contract 3.2 handles in the agent
// DaemonSet (containers, then init containers that declare the variable) and
// what each must end up with; the agent Deployments' containers end up the same.
var fixtures = []struct {
	dir, file   string
	daemonSet   string
	deployments []agentDeployment
	handled     []string // container names, in status order
	action      agentpod.Action
	value       string // the effective value afterwards, in every handled container
}{
	{dir: "datadog-helm", file: "default.yaml", daemonSet: "dd-datadog", deployments: []agentDeployment{{"dd-datadog-cluster-agent", "cluster-agent"}},
		handled: []string{"agent", "trace-agent", "system-probe"}, action: agentpod.ActionInjected, value: `{"role":"kube_role"}`},
	{dir: "datadog-helm", file: "pod-labels-as-tags.yaml", daemonSet: "dd-datadog", deployments: []agentDeployment{{"dd-datadog-cluster-agent", "cluster-agent"}},
		handled: []string{"agent", "trace-agent", "system-probe", "init-config"}, action: agentpod.ActionInjected,
		value: `{"app":"kube_app","role":"kube_role","team":"team"}`},
	{dir: "datadog-helm", file: "role-already-mapped.yaml", daemonSet: "datadog", deployments: []agentDeployment{{"datadog-cluster-agent", "cluster-agent"}},
		handled: []string{"agent", "trace-agent", "process-agent", "system-probe", "security-agent", "init-config"}, action: agentpod.ActionPresent,
		value: `{"role":"team_role"}`},
	// The Operator sets the variable on Agent containers only, never on init containers.
	{dir: "datadog-operator", file: "default.yaml", daemonSet: "datadog-agent", deployments: operatorDeployments,
		handled: []string{"agent", "trace-agent", "system-probe"}, action: agentpod.ActionInjected, value: `{"role":"kube_role"}`},
	{dir: "datadog-operator", file: "pod-labels-as-tags.yaml", daemonSet: "datadog-agent", deployments: operatorDeployments,
		handled: []string{"agent", "trace-agent", "system-probe"}, action: agentpod.ActionInjected, value: `{"app":"kube_app","role":"kube_role"}`},
}

var operatorDeployments = []agentDeployment{{"datadog-cluster-agent", "cluster-agent"}, {"datadog-cluster-checks-runner", "agent"}}

// podFrom builds the Pod a workload's controller would create from its
// template: the template's labels and annotations, an owner reference to
// the DaemonSet (or to a ReplicaSet for a Deployment), the template's spec.
func podFrom(d objtest.Doc) map[string]any {
	tmplMeta, _ := obj.Lookup(d.Object, "spec", "template", "metadata")
	meta := objtest.DeepCopy(tmplMeta).(map[string]any)
	ns, _ := obj.String(d.Object, "metadata", "namespace")
	ownerKind, ownerName := d.Kind(), d.Name()
	if ownerKind == "Deployment" {
		ownerKind, ownerName = "ReplicaSet", d.Name()+"-6d4f8b7c9"
	}
	meta["name"] = d.Name() + "-x7k2p"
	meta["namespace"] = ns
	meta["ownerReferences"] = []any{map[string]any{
		"apiVersion": "apps/v1", "kind": ownerKind, "name": ownerName,
		"uid": "3f7c2d1e-0000-4000-8000-000000000001", "controller": true, "blockOwnerDeletion": true,
	}}
	spec, _ := obj.Lookup(d.Object, "spec", "template", "spec")
	return map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": objtest.DeepCopy(spec)}
}

// result is one rule's answer in a golden file.
type result struct {
	Outcome outcome.Outcome `json:"outcome"`
	Reason  agentpod.Reason `json:"reason,omitempty"`
	Detail  string          `json:"detail,omitempty"`
	Status  string          `json:"status,omitempty"`
	Changed bool            `json:"changed"`
	Output  map[string]any  `json:"output,omitempty"`
}

func newResult(in, out map[string]any, res agentpod.Result, withOutput bool) *result {
	r := &result{Outcome: res.Outcome, Reason: res.Reason, Detail: res.Detail, Status: res.Status(), Changed: !reflect.DeepEqual(in, out)}
	if withOutput || r.Changed {
		r.Output = out
	}
	return r
}

// run applies a rule and checks the properties every call must have: input
// unchanged, only the rule's own changes, idempotent.
func run(t *testing.T, mutate mutateFunc, in map[string]any, isPod bool) (map[string]any, agentpod.Result) {
	t.Helper()
	before := objtest.CopyObject(in)
	out, res := applied(t, mutate, in, defaults)
	if !reflect.DeepEqual(in, before) {
		t.Fatal("the rule modified its input")
	}
	checkInvariants(t, in, out, res, defaults, isPod)
	checkIdempotent(t, out, defaults, mutate)
	return out, res
}

// TestGolden runs the hand-written testdata/*.yaml inputs (a Pod or a
// DaemonSet each) against testdata/*.golden.yaml.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, path := range inputs {
		if strings.HasSuffix(path, ".golden.yaml") {
			continue
		}
		n++
		t.Run(filepath.Base(path), func(t *testing.T) {
			doc, err := objtest.OnlyDoc(path)
			if err != nil {
				t.Fatal(err)
			}
			in := doc.Object
			mutate, isPod := agentpod.MutateWorkload, false
			if doc.Kind() == "Pod" {
				mutate, isPod = agentpod.MutatePod, true
			}
			out, res := run(t, mutate, in, isPod)
			msg, err := objtest.Golden(strings.TrimSuffix(path, ".yaml")+".golden.yaml", newResult(in, out, res, true), *update)
			if err != nil {
				t.Fatal(err)
			}
			if msg != "" {
				t.Error(msg)
			}
		})
	}
	if n == 0 {
		t.Fatal("no testdata inputs")
	}
}

// TestDatadogFixtures runs both rules on every document of the Datadog Helm
// and Operator renders, and on the Pods their DaemonSet and Deployments would create.
func TestDatadogFixtures(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx.dir+"/"+fx.file, func(t *testing.T) {
			docs, err := objtest.Docs(filepath.Join(fixtureDir, fx.dir, fx.file))
			if err != nil {
				t.Fatal(err)
			}
			type entry struct {
				Document  int     `json:"document"`
				Kind      string  `json:"kind"`
				Name      string  `json:"name"`
				DaemonSet *result `json:"mutateDaemonSet"`
				Pod       *result `json:"mutatePodOfTemplate,omitempty"`
			}
			deployments := map[string]string{}
			for _, d := range fx.deployments {
				deployments[d.name] = d.container
			}
			var entries []entry
			seen := map[string]bool{}
			for _, d := range docs {
				e := entry{Document: d.Index, Kind: d.Kind(), Name: d.Name()}
				out, res := run(t, agentpod.MutateWorkload, d.Object, false)
				e.DaemonSet = newResult(d.Object, out, res, false)
				if pOut, pRes := run(t, agentpod.MutatePod, d.Object, true); !reflect.DeepEqual(pOut, d.Object) || pRes.Outcome != outcome.Skipped {
					t.Errorf("document %d (%s %s): MutatePod on a non-Pod gave %s", d.Index, e.Kind, e.Name, pRes.Outcome)
				}
				container, isAgentDeployment := deployments[e.Name]
				switch {
				case e.Kind == "DaemonSet" && e.Name == fx.daemonSet:
					seen[e.Kind+"/"+e.Name] = true
					checkFixtureWorkload(t, fx.handled, fx.action, fx.value, d.Object, out, res)
					pod := podFrom(d)
					pOut, pRes := run(t, agentpod.MutatePod, pod, true)
					e.Pod = newResult(pod, pOut, pRes, true)
					checkFixturePod(t, fx.handled, fx.action, fx.value, pod, pOut, pRes)
				case e.Kind == "Deployment" && isAgentDeployment:
					// The Cluster Agent and Checks Runners get the same merge (kubernetes_state metrics).
					seen[e.Kind+"/"+e.Name] = true
					checkFixtureWorkload(t, []string{container}, fx.action, fx.value, d.Object, out, res)
					pod := podFrom(d)
					pOut, pRes := run(t, agentpod.MutatePod, pod, true)
					e.Pod = newResult(pod, pOut, pRes, false)
					checkFixturePod(t, []string{container}, fx.action, fx.value, pod, pOut, pRes)
				default:
					if e.DaemonSet.Changed || res.Outcome != outcome.Skipped {
						t.Errorf("document %d (%s %s) was %s; only the Agent workloads may change", d.Index, e.Kind, e.Name, res.Outcome)
					}
				}
				entries = append(entries, e)
			}
			if len(seen) != 1+len(fx.deployments) {
				t.Fatalf("found %v; want DaemonSet %s and Deployments %v", seen, fx.daemonSet, fx.deployments)
			}
			golden := filepath.Join("testdata", fx.dir, strings.TrimSuffix(fx.file, ".yaml")+".golden.yaml")
			msg, err := objtest.Golden(golden, entries, *update)
			if err != nil {
				t.Fatal(err)
			}
			if msg != "" {
				t.Error(msg)
			}
		})
	}
}

// effective returns the value of the last DD_KUBERNETES_POD_LABELS_AS_TAGS
// entry of every container of a pod spec, and which names declare it.
func effective(spec any) map[string]string {
	vals := map[string]string{}
	for _, list := range []string{"containers", "initContainers"} {
		cs, _ := at(spec, list).([]any)
		for _, c := range cs {
			name, _ := at(c, "name").(string)
			env, _ := at(c, "env").([]any)
			if i := lastNamed(env); i >= 0 {
				vals[name], _ = at(env[i], "value").(string)
			}
		}
	}
	return vals
}

func checkFixtureWorkload(t *testing.T, handled []string, action agentpod.Action, value string, in, out map[string]any, res agentpod.Result) {
	t.Helper()
	checkContainers(t, handled, action, res)
	checkSpec(t, handled, value, at(in, "/spec/template/spec"), at(out, "/spec/template/spec"))
	if action == agentpod.ActionPresent && !reflect.DeepEqual(in, out) {
		t.Errorf("workload changed although every container maps the key")
	}
	if !reflect.DeepEqual(at(in, "/spec/template/metadata"), at(out, "/spec/template/metadata")) {
		t.Errorf("template metadata changed (no status annotation on templates, contract 6)")
	}
}

func checkFixturePod(t *testing.T, handled []string, action agentpod.Action, value string, in, out map[string]any, res agentpod.Result) {
	t.Helper()
	checkContainers(t, handled, action, res)
	checkSpec(t, handled, value, at(in, "spec"), at(out, "spec"))
	parts := make([]string, len(handled))
	for i, n := range handled {
		parts[i] = n + ": " + string(action)
		if action == agentpod.ActionPresent {
			parts[i] = n + ": present (team_role)"
		}
	}
	if got, want := at(out, "metadata", "annotations", agentpod.StatusAnnotation), strings.Join(parts, "; "); got != want {
		t.Errorf("status annotation %q, want %q", got, want)
	}
}

func checkContainers(t *testing.T, handled []string, action agentpod.Action, res agentpod.Result) {
	t.Helper()
	var names []string
	for _, c := range res.Containers {
		names = append(names, c.Name)
		if c.Action != action {
			t.Errorf("container %s: %s, want %s", c.Name, c, action)
		}
		if action == agentpod.ActionPresent && c.Tag != "team_role" {
			t.Errorf("container %s: tag %q, want team_role", c.Name, c.Tag)
		}
	}
	if !reflect.DeepEqual(names, handled) {
		t.Errorf("handled containers %q, want %q", names, handled)
	}
	want := outcome.Injected
	if action == agentpod.ActionPresent {
		want = outcome.Present
	}
	if res.Outcome != want {
		t.Errorf("outcome %s, want %s", res.Outcome, want)
	}
}

// checkSpec: the handled containers end with the expected value; every other
// container is exactly as it was.
func checkSpec(t *testing.T, handled []string, value string, in, out any) {
	t.Helper()
	got := effective(out)
	for _, n := range handled {
		if got[n] != value {
			t.Errorf("container %s: %s = %q, want %q", n, agentpod.EnvName, got[n], value)
		}
	}
	isHandled := map[string]bool{}
	for _, n := range handled {
		isHandled[n] = true
	}
	for _, list := range []string{"containers", "initContainers"} {
		ci, _ := at(in, list).([]any)
		co, _ := at(out, list).([]any)
		if len(ci) != len(co) {
			t.Fatalf("%s: %d → %d", list, len(ci), len(co))
		}
		for i := range ci {
			name, _ := at(ci[i], "name").(string)
			if !isHandled[name] && !reflect.DeepEqual(ci[i], co[i]) {
				t.Errorf("container %s (not handled) changed", name)
			}
		}
	}
}
