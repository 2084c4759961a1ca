package scenario

import (
	"context"
	"fmt"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// The Datadog Operator's part of the story (step 13).
const (
	OperatorNS       = "datadog-operator"
	DatadogAgentName = "datadog"
	// testdata/datadogagent.yaml sets podLabelsAsTags {app: kube_app}; the
	// Operator writes it into every Agent container; canary-tagger adds role.
	operatorBefore = `{"app":"kube_app"}`
	operatorWant   = `{"app":"kube_app","role":"kube_role"}`
	// The change that makes the Operator roll its workloads.
	operatorChange = `{"spec":{"override":{` +
		`"nodeAgent":{"env":[{"name":"DD_LOG_LEVEL","value":"debug"}]},` +
		`"clusterAgent":{"env":[{"name":"DD_LOG_LEVEL","value":"debug"}]}}}}`
)

var datadogAgentInternalGVR = schema.GroupVersionResource{Group: "datadoghq.com", Version: "v1alpha1", Resource: "datadogagentinternals"}

// datadogAgentStatus is what the Operator reports of the workloads it built.
type datadogAgentStatus struct {
	DaemonSet, Deployment    string
	AgentHash, ClusterHash   string
	Desired, Ready, UpToDate int64
	ClusterReady, ClusterUpd int64
}

func (st datadogAgentStatus) String() string {
	return fmt.Sprintf("agent %q desired=%d ready=%d upToDate=%d hash=%s; clusterAgent %q ready=%d updated=%d hash=%s",
		st.DaemonSet, st.Desired, st.Ready, st.UpToDate, st.AgentHash, st.Deployment, st.ClusterReady, st.ClusterUpd, st.ClusterHash)
}

func (s *Scenario) datadogAgentStatus(ctx context.Context) (datadogAgentStatus, error) {
	// The DatadogAgent's status sums its DaemonSets without their names or
	// hashes; the DatadogAgentInternal the Operator derives from it (same
	// name) reports the DaemonSet and the Deployment it built.
	obj, err := s.dyn.Resource(datadogAgentInternalGVR).Namespace(OperatorNS).Get(ctx, DatadogAgentName, metav1GetOptions)
	if err != nil {
		return datadogAgentStatus{}, err
	}
	status, _, _ := unstructured.NestedMap(obj.Object, "status")
	str := func(f ...string) string {
		v, _, _ := unstructured.NestedString(status, f...)
		return v
	}
	num := func(f ...string) int64 {
		v, _, _ := unstructured.NestedInt64(status, f...)
		return v
	}
	return datadogAgentStatus{
		DaemonSet: str("agent", "daemonsetName"), Deployment: str("clusterAgent", "deploymentName"),
		AgentHash: str("agent", "currentHash"), ClusterHash: str("clusterAgent", "currentHash"),
		Desired: num("agent", "desired"), Ready: num("agent", "ready"), UpToDate: num("agent", "upToDate"),
		ClusterReady: num("clusterAgent", "readyReplicas"), ClusterUpd: num("clusterAgent", "updatedReplicas"),
	}, nil
}

// waitOperator waits until the Operator reports every node Agent and the
// Cluster Agent ready and up to date, with hashes other than those of prev.
func (s *Scenario) waitOperator(ctx context.Context, what string, prev datadogAgentStatus) (datadogAgentStatus, error) {
	var st datadogAgentStatus
	err := s.waitFor(ctx, what, func(ctx context.Context) (bool, string, error) {
		var err error
		if st, err = s.datadogAgentStatus(ctx); err != nil {
			return false, "", err
		}
		n := int64(s.env.Nodes)
		done := st.DaemonSet != "" && st.Deployment != "" &&
			st.Desired == n && st.Ready == n && st.UpToDate == n && st.ClusterReady == 1 && st.ClusterUpd == 1 &&
			st.AgentHash != prev.AgentHash && st.ClusterHash != prev.ClusterHash
		return done, st.String(), nil
	})
	return st, err
}

// stepOperator: the Datadog Operator builds the Agents from a DatadogAgent;
// their pods carry the user's mapping and role → kube_role, and still do
// after the Operator reconciles a change and rolls them.
func (s *Scenario) stepOperator(ctx context.Context, n Narrator) error {
	if s.env.StartDatadogOperator == nil || s.env.DatadogAgentFile == "" {
		return fmt.Errorf("this environment cannot run the Datadog Operator (Env.StartDatadogOperator, Env.DatadogAgentFile)")
	}
	if err := s.env.StartDatadogOperator(ctx); err != nil {
		return err
	}
	if err := s.ensureNamespace(ctx, OperatorNS); err != nil {
		return err
	}
	dda, err := os.ReadFile(s.env.DatadogAgentFile)
	if err != nil {
		return err
	}
	n.Show("test/e2e/testdata/datadogagent.yaml", strings.TrimSpace(string(dda)))
	if _, _, err := s.show(ctx, n, nil, "apply", "-n", OperatorNS, "-f", s.env.DatadogAgentFile); err != nil {
		return err
	}
	st, err := s.waitOperator(ctx, "the Operator to report its Agents ready", datadogAgentStatus{})
	if err != nil {
		return err
	}
	n.Check("DatadogAgentInternal %s/%s, as the Operator reports what it built: %s", OperatorNS, DatadogAgentName, st)
	pods, err := s.checkAgents(ctx, n, OperatorNS, st.DaemonSet, operatorBefore, operatorWant)
	if err != nil {
		return err
	}
	if err := s.showAgent(ctx, n, OperatorNS, pods[0]); err != nil {
		return err
	}
	if err := s.checkClusterAgent(ctx, n, OperatorNS, st.Deployment, operatorWant); err != nil {
		return err
	}
	before, err := s.podUIDs(ctx)
	if err != nil {
		return err
	}

	n.Say("A change to the DatadogAgent (DD_LOG_LEVEL=debug for both): the Operator reconciles, updates its DaemonSet and Deployment, and they replace every pod")
	if _, _, err := s.show(ctx, n, nil, "patch", "datadogagent", DatadogAgentName, "-n", OperatorNS, "--type=merge", "-p", operatorChange); err != nil {
		return err
	}
	next, err := s.waitOperator(ctx, "the Operator to roll its Agents to the new hashes", st)
	if err != nil {
		return err
	}
	n.Check("the Operator's next reconcile: %s", next)
	pods, err = s.checkAgents(ctx, n, OperatorNS, next.DaemonSet, operatorBefore, operatorWant)
	if err != nil {
		return err
	}
	if err := s.checkClusterAgent(ctx, n, OperatorNS, next.Deployment, operatorWant); err != nil {
		return err
	}
	after, err := s.podUIDs(ctx)
	if err != nil {
		return err
	}
	for uid, name := range after {
		if _, ok := before[uid]; ok {
			return fmt.Errorf("pod %s/%s was there before the change: the Operator did not replace it", OperatorNS, name)
		}
	}
	for _, p := range pods {
		for _, c := range p.Spec.Containers {
			if v, _ := effectiveEnv(c, "DD_LOG_LEVEL"); c.Name == "agent" && v != "debug" {
				return fmt.Errorf("pod %s/%s container agent: DD_LOG_LEVEL = %q, want the change's debug", OperatorNS, p.Name, v)
			}
		}
	}
	n.Check("all %d pods are new, built from the changed templates, and still map app → kube_app and role → kube_role", len(after))
	return nil
}

// podUIDs returns the live pods of the Operator's namespace by UID.
func (s *Scenario) podUIDs(ctx context.Context) (map[types.UID]string, error) {
	list, err := s.cs.CoreV1().Pods(OperatorNS).List(ctx, listOptions(""))
	if err != nil {
		return nil, err
	}
	uids := map[types.UID]string{}
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			uids[p.UID] = p.Name
		}
	}
	return uids, nil
}
