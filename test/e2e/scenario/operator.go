package scenario

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/canary-tagger/canary-tagger/webhook/webhooktest"
)

// The Datadog Operator's part of the story (step 13).
const (
	OperatorNS       = "datadog-operator"
	DatadogAgentName = "datadog"
	// The DatadogAgent (and its offline render) in test/testdata/datadog-operator.
	operatorInput = "pod-labels-as-tags.yaml"
	// It sets podLabelsAsTags {app: kube_app}; the Operator writes that into
	// every Agent container; canary-tagger adds role.
	operatorBefore = `{"app":"kube_app"}`
	operatorWant   = `{"app":"kube_app","role":"kube_role"}`
	// The change that makes the Operator roll its workloads.
	operatorChange = `{"spec":{"override":{` +
		`"nodeAgent":{"env":[{"name":"DD_LOG_LEVEL","value":"debug"}]},` +
		`"clusterAgent":{"env":[{"name":"DD_LOG_LEVEL","value":"debug"}]},` +
		`"clusterChecksRunner":{"env":[{"name":"DD_LOG_LEVEL","value":"debug"}]}}}}`
)

var datadogAgentInternalGVR = schema.GroupVersionResource{Group: "datadoghq.com", Version: "v1alpha1", Resource: "datadogagentinternals"}

// operatorStatus is what the Operator reports of the workloads it built.
type operatorStatus struct {
	DaemonSet                  string
	Desired, Ready, UpToDate   int64
	AgentHash                  string
	ClusterAgent, ChecksRunner deploymentStatus
}

type deploymentStatus struct {
	Name           string
	Ready, Updated int64
	Hash           string
}

func (st operatorStatus) String() string {
	return fmt.Sprintf("DaemonSet %s desired=%d ready=%d upToDate=%d hash=%s; %s; %s",
		st.DaemonSet, st.Desired, st.Ready, st.UpToDate, st.AgentHash, st.ClusterAgent, st.ChecksRunner)
}

func (d deploymentStatus) String() string {
	return fmt.Sprintf("Deployment %s ready=%d updated=%d hash=%s", d.Name, d.Ready, d.Updated, d.Hash)
}

func (s *Scenario) operatorStatus(ctx context.Context) (operatorStatus, error) {
	// The DatadogAgent's status sums its DaemonSets without their names or
	// hashes; the DatadogAgentInternal the Operator derives from it (same
	// name) reports each workload it built.
	obj, err := s.dyn.Resource(datadogAgentInternalGVR).Namespace(OperatorNS).Get(ctx, DatadogAgentName, metav1GetOptions)
	if err != nil {
		return operatorStatus{}, err
	}
	str := func(f ...string) string {
		v, _, _ := unstructured.NestedString(obj.Object, append([]string{"status"}, f...)...)
		return v
	}
	num := func(f ...string) int64 {
		v, _, _ := unstructured.NestedInt64(obj.Object, append([]string{"status"}, f...)...)
		return v
	}
	deployment := func(field string) deploymentStatus {
		return deploymentStatus{Name: str(field, "deploymentName"), Ready: num(field, "readyReplicas"),
			Updated: num(field, "updatedReplicas"), Hash: str(field, "currentHash")}
	}
	return operatorStatus{
		DaemonSet: str("agent", "daemonsetName"), AgentHash: str("agent", "currentHash"),
		Desired: num("agent", "desired"), Ready: num("agent", "ready"), UpToDate: num("agent", "upToDate"),
		ClusterAgent: deployment("clusterAgent"), ChecksRunner: deployment("clusterChecksRunner"),
	}, nil
}

// waitOperator waits until the Operator reports every node Agent, the
// Cluster Agent and the Checks Runner ready and up to date, with hashes
// other than those of prev.
func (s *Scenario) waitOperator(ctx context.Context, what string, prev operatorStatus) (operatorStatus, error) {
	var st operatorStatus
	err := s.waitFor(ctx, what, func(ctx context.Context) (bool, string, error) {
		var err error
		if st, err = s.operatorStatus(ctx); err != nil {
			return false, "", err
		}
		nodes := int64(s.env.Nodes)
		done := st.DaemonSet != "" && st.Desired == nodes && st.Ready == nodes && st.UpToDate == nodes &&
			st.AgentHash != prev.AgentHash
		for _, d := range []struct{ now, before deploymentStatus }{{st.ClusterAgent, prev.ClusterAgent}, {st.ChecksRunner, prev.ChecksRunner}} {
			done = done && d.now.Name != "" && d.now.Ready == 1 && d.now.Updated == 1 && d.now.Hash != d.before.Hash
		}
		return done, st.String(), nil
	})
	return st, err
}

// stepOperator: the Datadog Operator builds the Agents from a DatadogAgent;
// their pods carry the user's mapping and role → kube_role, and still do
// after the Operator reconciles a change and rolls them.
func (s *Scenario) stepOperator(ctx context.Context, n Narrator) error {
	if s.env.StartDatadogOperator == nil || s.env.OperatorRendersDir == "" {
		return fmt.Errorf("this environment cannot run the Datadog Operator (Env.StartDatadogOperator, Env.OperatorRendersDir)")
	}
	if err := s.env.StartDatadogOperator(ctx); err != nil {
		return err
	}
	if err := s.ensureNamespace(ctx, OperatorNS); err != nil {
		return err
	}
	input := filepath.Join(s.env.OperatorRendersDir, "inputs", operatorInput)
	dda, err := os.ReadFile(input)
	if err != nil {
		return err
	}
	n.Show("test/testdata/datadog-operator/inputs/"+operatorInput, strings.TrimSpace(string(dda)))
	if _, _, err := s.show(ctx, n, nil, "apply", "-f", input); err != nil {
		return err
	}
	st, err := s.waitOperator(ctx, "the Operator to report its Agents ready", operatorStatus{})
	if err != nil {
		return err
	}
	n.Check("the Operator reports what it built (DatadogAgentInternal %s/%s): %s", OperatorNS, DatadogAgentName, st)
	if err := s.matchOperatorRender(ctx, n, st); err != nil {
		return err
	}
	if err := s.checkOperatorAgents(ctx, n, st, true); err != nil {
		return err
	}
	before, err := s.podUIDs(ctx)
	if err != nil {
		return err
	}
	if err := s.checkOperatorLeavesPods(ctx, n, st, before); err != nil {
		return err
	}

	n.Say("A change to the DatadogAgent (DD_LOG_LEVEL=debug for every component): the Operator reconciles, updates its DaemonSet and Deployments, and they replace every pod")
	if _, _, err := s.show(ctx, n, nil, "patch", "datadogagent", DatadogAgentName, "-n", OperatorNS, "--type=merge", "-p", operatorChange); err != nil {
		return err
	}
	next, err := s.waitOperator(ctx, "the Operator to roll its Agents to new hashes", st)
	if err != nil {
		return err
	}
	n.Check("the Operator's next reconcile: %s", next)
	if err := s.checkOperatorAgents(ctx, n, next, false); err != nil {
		return err
	}
	after, err := s.podUIDs(ctx)
	if err != nil {
		return err
	}
	for uid, p := range after {
		if _, ok := before[uid]; ok {
			return fmt.Errorf("pod %s/%s was there before the change: the Operator did not replace it", OperatorNS, p.Name)
		}
		for _, c := range p.Spec.Containers {
			if _, agent := effectiveEnv(c, AgentEnv); !agent {
				continue
			}
			if v, _ := effectiveEnv(c, "DD_LOG_LEVEL"); v != "debug" {
				return fmt.Errorf("pod %s/%s container %s: DD_LOG_LEVEL = %q, want the change's debug", OperatorNS, p.Name, c.Name, v)
			}
		}
	}
	n.Check("all %d pods are new, built from the changed templates (DD_LOG_LEVEL=debug), and still map app → kube_app and role → kube_role", len(after))
	return nil
}

// reconcileMetric counts the Operator's reconciles of DatadogAgentInternals,
// the objects it builds the workloads from (controller-runtime's counter).
const reconcileMetric = "controller_runtime_reconcile_total"

func (s *Scenario) operatorReconciles(ctx context.Context) (float64, error) {
	m, err := webhooktest.ScrapeMetrics(ctx, s.env.OperatorMetricsURL())
	if err != nil {
		return 0, err
	}
	if !m.Has(reconcileMetric) {
		return 0, fmt.Errorf("the Operator's /metrics has no %s", reconcileMetric)
	}
	return m.Sum(reconcileMetric, map[string]string{"controller": "datadogagentinternal"}), nil
}

// checkOperatorLeavesPods: the Operator reconciles every DatadogAgentInternal
// every 15 s. After two more reconciles (one begun and ended after the
// patched pods were there), its workloads are at the same generation and
// the same pods run, still mapped: the Operator does not fight the webhook.
func (s *Scenario) checkOperatorLeavesPods(ctx context.Context, n Narrator, st operatorStatus, pods map[types.UID]corev1.Pod) error {
	generations := func(ctx context.Context) (string, error) {
		ds, err := s.cs.AppsV1().DaemonSets(OperatorNS).Get(ctx, st.DaemonSet, metav1GetOptions)
		if err != nil {
			return "", err
		}
		gens := fmt.Sprintf("DaemonSet %s generation %d", ds.Name, ds.Generation)
		for _, name := range []string{st.ClusterAgent.Name, st.ChecksRunner.Name} {
			d, err := s.cs.AppsV1().Deployments(OperatorNS).Get(ctx, name, metav1GetOptions)
			if err != nil {
				return "", err
			}
			gens += fmt.Sprintf(", Deployment %s generation %d", d.Name, d.Generation)
		}
		return gens, nil
	}
	gensBefore, err := generations(ctx)
	if err != nil {
		return err
	}
	base, err := s.operatorReconciles(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	err = s.waitFor(ctx, "two more reconciles of the DatadogAgentInternal by the Operator", func(ctx context.Context) (bool, string, error) {
		now, err := s.operatorReconciles(ctx)
		return now >= base+2, fmt.Sprintf("%s: %v, then %v", reconcileMetric, base, now), err
	})
	if err != nil {
		return err
	}
	gensAfter, err := generations(ctx)
	if err != nil {
		return err
	}
	if gensAfter != gensBefore {
		return fmt.Errorf("the Operator changed its workloads without a change to the DatadogAgent: %s, then %s", gensBefore, gensAfter)
	}
	after, err := s.podUIDs(ctx)
	if err != nil {
		return err
	}
	if len(after) != len(pods) {
		return fmt.Errorf("%d pods before the Operator's reconciles, %d after", len(pods), len(after))
	}
	for uid, p := range after {
		if _, ok := pods[uid]; !ok {
			return fmt.Errorf("pod %s/%s is new after the Operator's reconciles: it replaced a patched pod", OperatorNS, p.Name)
		}
		for _, c := range p.Spec.Containers {
			if v, ok := effectiveEnv(c, AgentEnv); ok && v != operatorWant {
				return fmt.Errorf("pod %s/%s container %s: %s = %q after the Operator's reconciles, want %q", OperatorNS, p.Name, c.Name, AgentEnv, v, operatorWant)
			}
		}
	}
	n.Check("the Operator reconciled again (%s counted 2 more in %s): %s, unchanged; the same %d pods, still mapping role → kube_role",
		reconcileMetric, time.Since(start).Round(100*time.Millisecond), gensAfter, len(after))
	return nil
}

// checkOperatorAgents checks the pods of the three workloads the Operator
// reports; show prints one node Agent's variables.
func (s *Scenario) checkOperatorAgents(ctx context.Context, n Narrator, st operatorStatus, show bool) error {
	pods, err := s.checkAgents(ctx, n, OperatorNS, st.DaemonSet, operatorBefore, operatorWant)
	if err != nil {
		return err
	}
	if show {
		if err := s.showAgent(ctx, n, OperatorNS, pods[0]); err != nil {
			return err
		}
	}
	if err := s.checkAgentDeployment(ctx, n, OperatorNS, st.ClusterAgent.Name, "cluster-agent", operatorWant); err != nil {
		return err
	}
	return s.checkAgentDeployment(ctx, n, OperatorNS, st.ChecksRunner.Name, "agent", operatorWant)
}

// matchOperatorRender checks that the workloads the running Operator built
// have the containers, in order, and the environment of each that its
// offline render (test/testdata/datadog-operator) has: the unit tests and
// the Agent-config check read that render, so this ties them to the real
// Operator.
func (s *Scenario) matchOperatorRender(ctx context.Context, n Narrator, st operatorStatus) error {
	f, err := os.Open(filepath.Join(s.env.OperatorRendersDir, operatorInput))
	if err != nil {
		return err
	}
	defer f.Close()
	rendered := map[string]corev1.PodSpec{}
	docs := utilyaml.NewYAMLReader(bufio.NewReader(f))
	for {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("%s: %w", operatorInput, err)
		}
		var w struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				Template corev1.PodTemplateSpec `json:"template"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(doc, &w); err != nil {
			return fmt.Errorf("%s: %w", operatorInput, err)
		}
		if w.Kind == "DaemonSet" || w.Kind == "Deployment" {
			rendered[w.Kind+"/"+w.Metadata.Name] = w.Spec.Template.Spec
		}
	}
	ds, err := s.cs.AppsV1().DaemonSets(OperatorNS).Get(ctx, st.DaemonSet, metav1GetOptions)
	if err != nil {
		return err
	}
	live := map[string]corev1.PodSpec{"DaemonSet/" + ds.Name: ds.Spec.Template.Spec}
	for _, name := range []string{st.ClusterAgent.Name, st.ChecksRunner.Name} {
		var d *appsv1.Deployment
		if d, err = s.cs.AppsV1().Deployments(OperatorNS).Get(ctx, name, metav1GetOptions); err != nil {
			return err
		}
		live["Deployment/"+name] = d.Spec.Template.Spec
	}
	var names []string
	for key, spec := range live {
		want, ok := rendered[key]
		if !ok {
			return fmt.Errorf("the Operator built %s, which its render %s does not have: run make operator-renders", key, operatorInput)
		}
		got, exp := allContainers(spec), allContainers(want)
		if len(got) != len(exp) {
			return fmt.Errorf("%s: %d containers, the render has %d: run make operator-renders", key, len(got), len(exp))
		}
		for i := range got {
			if got[i].Name != exp[i].Name {
				return fmt.Errorf("%s container %d is %s, the render's %s: run make operator-renders", key, i, got[i].Name, exp[i].Name)
			}
			if d := cmp.Diff(withAPIDefaults(exp[i].Env), got[i].Env, quantities, cmpopts.EquateEmpty()); d != "" {
				return fmt.Errorf("%s container %s: env differs from the render's (-render +built): %s\nrun make operator-renders", key, got[i].Name, d)
			}
			names = append(names, key+"/"+got[i].Name)
		}
	}
	n.Check("the Operator built what its offline render in test/testdata/datadog-operator says, container by container, env entry by env entry (%d containers)", len(names))
	return nil
}

// quantities lets cmp compare resource.Quantity (a resourceFieldRef's
// divisor), whose fields are unexported, by value.
var quantities = cmp.Comparer(func(a, b resource.Quantity) bool { return a.Cmp(b) == 0 })

// withAPIDefaults is env as the apiserver stores it: a fieldRef without
// apiVersion gets v1.
func withAPIDefaults(env []corev1.EnvVar) []corev1.EnvVar {
	out := make([]corev1.EnvVar, len(env))
	for i, e := range env {
		out[i] = *e.DeepCopy()
		if f := out[i].ValueFrom; f != nil && f.FieldRef != nil && f.FieldRef.APIVersion == "" {
			f.FieldRef.APIVersion = "v1"
		}
	}
	return out
}

// podUIDs returns the live pods of the Operator's namespace by UID.
func (s *Scenario) podUIDs(ctx context.Context) (map[types.UID]corev1.Pod, error) {
	list, err := s.cs.CoreV1().Pods(OperatorNS).List(ctx, listOptions(""))
	if err != nil {
		return nil, err
	}
	pods := map[types.UID]corev1.Pod{}
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			pods[p.UID] = p
		}
	}
	return pods, nil
}
