package scenario

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/canary-tagger/canary-tagger/webhook/heal"
	"github.com/canary-tagger/canary-tagger/webhook/webhooktest"
)

// Step 17: Agent pods admitted while the webhook was down keep their
// environment until they are replaced; serve --heal-agent-pods restarts
// their workloads, and the replacements are patched.

// The names step 17 uses.
const (
	// HealAgentsNamespace gets a third release of the Datadog chart while
	// the webhook is down.
	HealAgentsNamespace = "datadog-outage"
	// OtherDaemonSet is not an Agent, though its pods carry the variable
	// without role too: it is never restarted.
	OtherDaemonSet = "log-shipper"

	healRestartsMetric = "canary_tagger_heal_restarts_total"

	// outageTraceHostPort replaces the chart's trace-agent hostPort 8126,
	// which the first release holds on every node.
	outageTraceHostPort = 18126
)

var traceHostPort = regexp.MustCompile(`(?m)^(\s*hostPort:\s*)8126\s*$`)

// agentWorkloads are the Agent DaemonSet, the Cluster Agent and the other
// DaemonSet, as the step reads them.
type agentWorkloads struct {
	agent, other *appsv1.DaemonSet
	clusterAgent *appsv1.Deployment
}

func (s *Scenario) agentWorkloads(ctx context.Context, ns string) (agentWorkloads, error) {
	var w agentWorkloads
	var err error
	if w.agent, err = s.cs.AppsV1().DaemonSets(ns).Get(ctx, AgentDS, metav1GetOptions); err != nil {
		return w, err
	}
	if w.other, err = s.cs.AppsV1().DaemonSets(ns).Get(ctx, OtherDaemonSet, metav1GetOptions); err != nil {
		return w, err
	}
	w.clusterAgent, err = s.cs.AppsV1().Deployments(ns).Get(ctx, ClusterAgent, metav1GetOptions)
	return w, err
}

func restartedAt(t corev1.PodTemplateSpec) string { return t.Annotations[heal.RestartedAtAnnotation] }

// otherDaemonSet is a node-level DaemonSet that is not a Datadog Agent
// (no agent.datadoghq.com/component label), with the variable set.
func otherDaemonSet(ns string) ([]byte, error) {
	labels := map[string]string{"app": OtherDaemonSet}
	return yaml.Marshal(appsv1.DaemonSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"},
		ObjectMeta: metav1.ObjectMeta{Name: OtherDaemonSet, Namespace: ns},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "shipper", Image: "fluent/fluent-bit:3",
					Env: []corev1.EnvVar{{Name: AgentEnv, Value: wantBefore}}}}},
			},
		},
	})
}

func (s *Scenario) stepHealAgentPods(ctx context.Context, n Narrator) error {
	if s.env.StopWebhook == nil || s.env.RestartWebhook == nil || s.env.WebhookMetricsURL == "" {
		return errors.New("the heal steps need Env.StopWebhook, Env.RestartWebhook and Env.WebhookMetricsURL")
	}
	ns := HealAgentsNamespace
	if err := s.ensureNamespace(ctx, ns); err != nil {
		return err
	}
	m0, err := s.hookMetrics(ctx)
	if err != nil {
		return err
	}
	n.Say("canary-tagger stopped again; meanwhile the Datadog chart (podLabelsAsTags={app: kube_app, team: team}) is installed as a third release in %s, next to a DaemonSet that is not an Agent:", ns)
	if err := s.env.StopWebhook(ctx); err != nil {
		return err
	}
	docs, _, err := relocate(s.fixture("pod-labels-as-tags.yaml"), DatadogNS, ns)
	if err != nil {
		return err
	}
	// The first release's trace-agent holds hostPort 8126 on every node, so
	// the scheduler would leave this release's Agent pods Pending; a second
	// Helm release would be given another port the same way.
	docs = traceHostPort.ReplaceAll(docs, []byte("${1}"+strconv.Itoa(outageTraceHostPort)))
	other, err := otherDaemonSet(ns)
	if err != nil {
		return err
	}
	out, errOut, err := s.Kubectl(ctx, append(append(docs, []byte("\n---\n")...), other...), "apply", "-n", ns, "-f", "-")
	if err != nil {
		return err
	}
	n.Show(fmt.Sprintf("$ kubectl apply -n %s -f - < pod-labels-as-tags.yaml (namespace %s → %s, trace hostPort 8126 → %d) + daemonset/%s", ns, DatadogNS, ns, outageTraceHostPort, OtherDaemonSet), summarizeApply(out, errOut))

	// Admitted without the mapping: every pod of the three, Running.
	err = s.waitFor(ctx, fmt.Sprintf("the pods of %s to run without the mapping", ns), func(ctx context.Context) (bool, string, error) {
		list, err := s.cs.CoreV1().Pods(ns).List(ctx, listOptions(""))
		if err != nil {
			return false, "", err
		}
		running := 0
		for _, p := range list.Items {
			if _, patched := p.Annotations[StatusAnnot]; patched {
				return false, "", fmt.Errorf("pod %s/%s was patched by canary-tagger, which is down", ns, p.Name)
			}
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				running++
			}
		}
		want := 2*s.env.Nodes + 1 // the Agent and the other DaemonSet on every node, one Cluster Agent
		return running == want, fmt.Sprintf("%d of %d pods Running", running, want), nil
	})
	if err != nil {
		return err
	}
	m1, err := s.hookMetrics(ctx)
	if err != nil {
		return err
	}
	if d := m1.failOpen[AgentPodsHook] - m0.failOpen[AgentPodsHook]; d < float64(s.env.Nodes+1) {
		return fmt.Errorf("the apiserver failed open %g time(s) on %s, want at least %d (one per Agent pod)", d, AgentPodsHook, s.env.Nodes+1)
	}
	n.Check("%d Agent pods and the Cluster Agent Running with %s = %s, no role: the apiserver failed open on %s (+%g)",
		s.env.Nodes, AgentEnv, wantBefore, AgentPodsHook, m1.failOpen[AgentPodsHook]-m0.failOpen[AgentPodsHook])
	before, err := s.agentWorkloads(ctx, ns)
	if err != nil {
		return err
	}

	n.Say("canary-tagger started again as before (healing Rollouts only): Agent pods keep their environment, nothing restarts.")
	if err := s.env.RestartWebhook(ctx); err != nil {
		return err
	}
	if err := s.waitHealPasses(ctx, "Rollout", 2); err != nil {
		return err
	}
	now, err := s.agentWorkloads(ctx, ns)
	if err != nil {
		return err
	}
	if err := unchanged(before, now, true); err != nil {
		return err
	}
	n.Check("2 heal passes later: DaemonSet %s, Deployment %s and DaemonSet %s at generations %d, %d, %d, no restartedAt",
		AgentDS, ClusterAgent, OtherDaemonSet, now.agent.Generation, now.clusterAgent.Generation, now.other.Generation)

	n.Say("Restarted with --heal-agent-pods: the healer restarts the Agents' DaemonSet and Deployment as `kubectl rollout restart` does, and the replacements go through the webhook.")
	if err := s.env.RestartWebhook(ctx, "--heal-agent-pods"); err != nil {
		return err
	}
	err = s.waitFor(ctx, "the Agent DaemonSet and Deployment restarted by canary-tagger", func(ctx context.Context) (bool, string, error) {
		w, err := s.agentWorkloads(ctx, ns)
		if err != nil {
			return false, "", err
		}
		now = w
		return restartedAt(w.agent.Spec.Template) != "" && restartedAt(w.clusterAgent.Spec.Template) != "",
			fmt.Sprintf("restartedAt: DaemonSet %q, Deployment %q", restartedAt(w.agent.Spec.Template), restartedAt(w.clusterAgent.Spec.Template)), nil
	})
	if err != nil {
		return err
	}
	if _, _, err := s.show(ctx, n, nil, "get", "events", "-n", ns, "--field-selector", "reason="+heal.ReasonRestarted,
		"-o", "custom-columns=KIND:.involvedObject.kind,OBJECT:.involvedObject.name,REASON:.reason,MESSAGE:.message"); err != nil {
		return err
	}
	// checkAgents and checkAgentDeployment wait for the rollouts to finish.
	// Their status annotation shows every pod is a replacement, admitted
	// through the webhook.
	if _, err := s.checkAgents(ctx, n, ns, AgentDS, wantBefore, wantLabelsAsTags); err != nil {
		return err
	}
	if err := s.checkAgentDeployment(ctx, n, ns, ClusterAgent, "cluster-agent", wantLabelsAsTags); err != nil {
		return err
	}

	// Converged: no second restart, the other DaemonSet never touched.
	restarted, err := s.agentWorkloads(ctx, ns)
	if err != nil {
		return err
	}
	if err := s.waitHealPasses(ctx, "Pod", 3); err != nil {
		return err
	}
	final, err := s.agentWorkloads(ctx, ns)
	if err != nil {
		return err
	}
	if err := unchanged(restarted, final, false); err != nil {
		return err
	}
	if g := final.other.Generation; g != before.other.Generation || restartedAt(final.other.Spec.Template) != "" {
		return fmt.Errorf("DaemonSet %s (not an Agent) was written: generation %d → %d, restartedAt %q", OtherDaemonSet, before.other.Generation, g, restartedAt(final.other.Spec.Template))
	}
	metrics, err := webhooktest.ScrapeMetrics(ctx, s.env.WebhookMetricsURL)
	if err != nil {
		return err
	}
	n.Check("3 heal passes later nothing is restarted again (restarts: %g DaemonSet, %g Deployment); DaemonSet %s, not an Agent, still at generation %d",
		metrics.Sum(healRestartsMetric, map[string]string{"kind": "DaemonSet"}), metrics.Sum(healRestartsMetric, map[string]string{"kind": "Deployment"}),
		OtherDaemonSet, final.other.Generation)

	n.Say("canary-tagger back to its usual flags.")
	return s.env.RestartWebhook(ctx)
}

// unchanged compares generations and restartedAt (all three workloads, or
// only the restarted two).
func unchanged(was, now agentWorkloads, all bool) error {
	type pair struct {
		name     string
		gen      [2]int64
		restarts [2]string
	}
	pairs := []pair{
		{"DaemonSet " + AgentDS, [2]int64{was.agent.Generation, now.agent.Generation}, [2]string{restartedAt(was.agent.Spec.Template), restartedAt(now.agent.Spec.Template)}},
		{"Deployment " + ClusterAgent, [2]int64{was.clusterAgent.Generation, now.clusterAgent.Generation}, [2]string{restartedAt(was.clusterAgent.Spec.Template), restartedAt(now.clusterAgent.Spec.Template)}},
	}
	if all {
		pairs = append(pairs, pair{"DaemonSet " + OtherDaemonSet, [2]int64{was.other.Generation, now.other.Generation}, [2]string{restartedAt(was.other.Spec.Template), restartedAt(now.other.Spec.Template)}})
	}
	var changed []string
	for _, p := range pairs {
		if p.gen[0] != p.gen[1] || p.restarts[0] != p.restarts[1] {
			changed = append(changed, fmt.Sprintf("%s: generation %d → %d, restartedAt %q → %q", p.name, p.gen[0], p.gen[1], p.restarts[0], p.restarts[1]))
		}
	}
	if len(changed) > 0 {
		return fmt.Errorf("written: %s", strings.Join(changed, "; "))
	}
	return nil
}

// waitHealPasses waits for n more heal passes of kind on serve's metrics.
func (s *Scenario) waitHealPasses(ctx context.Context, kind string, n int) error {
	passes := func(ctx context.Context) (float64, error) {
		m, err := webhooktest.ScrapeMetrics(ctx, s.env.WebhookMetricsURL)
		if err != nil {
			return 0, err
		}
		return m.Sum(healPassesMetric, map[string]string{"kind": kind}), nil
	}
	var start float64
	err := s.waitFor(ctx, "serve's metrics", func(ctx context.Context) (bool, string, error) {
		var err error
		start, err = passes(ctx)
		return err == nil, fmt.Sprint(err), nil
	})
	if err != nil {
		return err
	}
	return s.waitFor(ctx, fmt.Sprintf("%d more heal passes (%s)", n, kind), func(ctx context.Context) (bool, string, error) {
		now, err := passes(ctx)
		if err != nil {
			return false, "", err
		}
		return now >= start+float64(n), fmt.Sprintf("%g passes", now), nil
	})
}
