package install

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/canary-tagger/canary-tagger/test/internal/harness"
	"github.com/canary-tagger/canary-tagger/webhook/heal"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
)

// TestHealAgentPodsAsChartServiceAccount runs the healer with heal.agentPods
// as the release's service account, with the chart's RBAC and webhook
// configuration applied (the webhook unreachable: Agent pods are admitted
// without the mapping). The node Agent's DaemonSet and the Cluster Agent's
// Deployment (found through its ReplicaSet) are restarted — only their pod
// template's restartedAt changes — with an Event each; a non-agent
// DaemonSet whose pod lacks the variable too is never touched; nothing is
// refused. There are no controllers here: the workloads' status says their
// rollouts have finished, and the pods are created with their owners.
func TestHealAgentPodsAsChartServiceAccount(t *testing.T) {
	ctx := t.Context()
	const release, ns = "heal-agents", "chart-heal-agents"
	args, cfg := applyHealRBAC(t, release, ns, map[string]any{"heal": map[string]any{"agentPods": true}})
	if v, _ := argValue(args, "heal-agent-pods"); v != "true" {
		t.Fatalf("heal.agentPods does not reach --heal-agent-pods: %q", args)
	}
	apps := ns + "-datadog"
	if err := env.CreateNamespace(ctx, apps, nil); err != nil {
		t.Fatal(err)
	}
	agent := map[string]string{"app": "datadog", "agent.datadoghq.com/component": "agent"}
	clusterAgent := map[string]string{"app": "datadog-cluster-agent", "agent.datadoghq.com/component": "cluster-agent"}
	web := map[string]string{"app": "web"}
	before := map[string]*appsv1.DaemonSet{"datadog": daemonSetOf(t, apps, "datadog", agent), "web": daemonSetOf(t, apps, "web", web)}
	deploy := deploymentOf(t, apps, "datadog-cluster-agent", clusterAgent)

	logger, logLines := healerLog(t)
	rules := rulesOf(t, args)
	h := harness.StartHealer(heal.Options{
		Rules:                   rules.Rollout,
		HealAgentPods:           true,
		AgentPodRules:           rules.AgentPod,
		WebhookReady:            func() error { return nil }, // stands for this process's webhook server
		WebhookConfigName:       mustArg(t, args, "webhook-config-name"),
		Interval:                200 * time.Millisecond, // the chart's 1m, shortened
		Logger:                  logger,
		RESTConfig:              func() (*rest.Config, error) { return rest.CopyConfig(cfg), nil },
		LeaderElection:          true,
		LeaderElectionNamespace: mustArg(t, args, "leader-election-namespace"),
	})
	t.Cleanup(func() { _ = h.Stop() })

	restartedAt := func(tpl corev1.PodTemplateSpec) string { return tpl.Annotations[heal.RestartedAtAnnotation] }
	if err := harness.Eventually(ctx, "the Agent workloads restarted", func(ctx context.Context) (bool, error) {
		ds, d := &appsv1.DaemonSet{}, &appsv1.Deployment{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(before["datadog"]), ds); err != nil {
			return false, err
		}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(deploy), d); err != nil {
			return false, err
		}
		return restartedAt(ds.Spec.Template) != "" && restartedAt(d.Spec.Template) != "",
			fmt.Errorf("restartedAt: DaemonSet %q, Deployment %q after %d passes", restartedAt(ds.Spec.Template), restartedAt(d.Spec.Template), h.Passes())
	}); err != nil {
		t.Fatal(err)
	}
	if err := h.WaitPasses(ctx, h.Passes()+3, harness.DefaultTimeout); err != nil {
		t.Fatal(err)
	}
	// Only restartedAt changed, and only once: with no controller here the
	// restart's generation is never observed, which reads as a rollout in
	// progress, so later passes wait as they would for a real one.
	for name, was := range before {
		now := &appsv1.DaemonSet{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(was), now); err != nil {
			t.Fatal(err)
		}
		delete(now.Spec.Template.Annotations, heal.RestartedAtAnnotation)
		if len(now.Spec.Template.Annotations) == 0 {
			now.Spec.Template.Annotations = nil
		}
		want := was.Generation
		if name == "datadog" {
			want++
		}
		if now.Generation != want || !equality.Semantic.DeepEqual(now.Spec, was.Spec) {
			t.Errorf("DaemonSet %s: generation %d → %d (want %d); spec besides restartedAt:\n%s", name, was.Generation, now.Generation, want, cmp.Diff(was.Spec, now.Spec))
		}
	}

	list := &eventsv1.EventList{}
	if err := env.Client.List(ctx, list, client.InNamespace(apps)); err != nil {
		t.Fatal(err)
	}
	restarted := map[string]int{}
	for _, e := range list.Items {
		if e.Reason == heal.ReasonRestarted {
			restarted[e.Regarding.Kind+"/"+e.Regarding.Name]++
		}
	}
	if restarted["DaemonSet/datadog"] != 1 || restarted["Deployment/datadog-cluster-agent"] != 1 || len(restarted) != 2 {
		t.Errorf("Restarted Events %v, want one on the DaemonSet datadog and one on the Deployment", restarted)
	}
	for i, rep := range h.Reports() {
		if rep.Err != nil || rep.Outcomes[outcome.Error] != 0 {
			t.Errorf("pass %d (%s): error %v, outcomes %v", i+1, rep.Kind, rep.Err, rep.Outcomes)
		}
	}
	noRefusals(t, logLines())
}

// agentContainers lack role in the variable: what an Agent admitted without
// the webhook runs with.
func agentContainers() []corev1.Container {
	return []corev1.Container{{Name: "agent", Image: "datadog/agent:7", Env: []corev1.EnvVar{
		{Name: "DD_KUBERNETES_POD_LABELS_AS_TAGS", Value: `{"app":"kube_app"}`}}}}
}

// daemonSetOf creates a DaemonSet whose rollout has finished on its one
// node, and its pod.
func daemonSetOf(t *testing.T, ns, name string, labels map[string]string) *appsv1.DaemonSet {
	t.Helper()
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: agentContainers()}},
		},
	}
	create(t, ds)
	ds.Status = appsv1.DaemonSetStatus{ObservedGeneration: ds.Generation, CurrentNumberScheduled: 1, DesiredNumberScheduled: 1,
		UpdatedNumberScheduled: 1, NumberAvailable: 1, NumberReady: 1}
	if err := env.Client.Status().Update(t.Context(), ds); err != nil {
		t.Fatal(err)
	}
	createPod(t, ns, name+"-x1", labels, metav1.OwnerReference{APIVersion: "apps/v1", Kind: "DaemonSet", Name: name, UID: ds.UID, Controller: ptr.To(true)})
	return ds.DeepCopy()
}

// deploymentOf creates a Deployment whose rollout has finished, its
// ReplicaSet and its pod.
func deploymentOf(t *testing.T, ns, name string, labels map[string]string) *appsv1.Deployment {
	t.Helper()
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: agentContainers()}},
		},
	}
	create(t, d)
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}
	if err := env.Client.Status().Update(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-5d9", Namespace: ns,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: name, UID: d.UID, Controller: ptr.To(true)}}},
		Spec: appsv1.ReplicaSetSpec{Selector: d.Spec.Selector, Template: d.Spec.Template},
	}
	create(t, rs)
	createPod(t, ns, rs.Name+"-x1", labels, metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr.To(true)})
	return d.DeepCopy()
}

func createPod(t *testing.T, ns, name string, labels map[string]string, owner metav1.OwnerReference) {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, OwnerReferences: []metav1.OwnerReference{owner}},
		Spec:       corev1.PodSpec{Containers: agentContainers()},
	}
	create(t, p)
	if _, has := p.Annotations["canary-tagger.io/status"]; has {
		t.Fatalf("pod %s admitted through the webhook", name)
	}
}

func create(t *testing.T, o client.Object) {
	t.Helper()
	if err := env.Client.Create(t.Context(), o); err != nil {
		t.Fatal(err)
	}
}
