package integration

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/diff"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/canary-tagger/canary-tagger/test/internal/harness"
	"github.com/canary-tagger/canary-tagger/webhook/agentpod"
)

// The Datadog chart's render (test/testdata/datadog-helm).
// DATADOG_HELM_FIXTURE overrides the path.
func datadogFixture(t *testing.T) string {
	t.Helper()
	p := os.Getenv("DATADOG_HELM_FIXTURE")
	if p == "" {
		p = filepath.Join(env.Repo, "test", "testdata", "datadog-helm", "default.yaml")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("Datadog Helm fixture not found (%v): it lives in test/testdata/datadog-helm; or set DATADOG_HELM_FIXTURE to a render of the datadog chart", err)
	}
	return p
}

const datadogNamespace = "datadog"

// Case 11: the Datadog chart's DaemonSet in namespace datadog, and pods
// created the way the DaemonSet controller creates them (there is no
// kube-controller-manager here): agent pods are patched as contract 3 says; pods
// without the agent label never reach the webhook.
func TestDatadogAgentDaemonSetPods(t *testing.T) {
	fixture := datadogFixture(t)
	ctx := t.Context()
	must(t, env.CreateNamespace(ctx, datadogNamespace, nil))
	mustKubectl(t, "apply", "-n", datadogNamespace, "-f", fixture)

	agentSelector := client.MatchingLabels{"agent.datadoghq.com/component": "agent"}
	var dsList appsv1.DaemonSetList
	must(t, env.Client.List(ctx, &dsList, client.InNamespace(datadogNamespace), agentSelector))
	if len(dsList.Items) != 1 {
		t.Fatalf("want 1 agent DaemonSet in %s, got %d", datadogNamespace, len(dsList.Items))
	}
	ds := &dsList.Items[0]

	key, tag := env.Rules.AgentPod.LabelKey, env.Rules.AgentPod.TagName
	wantValue := fmt.Sprintf(`{%q:%q}`, key, tag)

	t.Run("agent pod patched", func(t *testing.T) {
		before, beforeInjected := reviews(t, harness.WebhookAgentPod), reviews(t, harness.WebhookAgentPod, "injected")
		pod := podForDaemonSet(ds, "node-a")
		must(t, env.Client.Create(ctx, pod))
		t.Logf("created pod %s/%s", pod.Namespace, pod.Name)

		if d := reviews(t, harness.WebhookAgentPod) - before; d != 1 {
			t.Errorf("agent-pod reviews moved by %v, want 1", d)
		}
		if d := reviews(t, harness.WebhookAgentPod, "injected") - beforeInjected; d != 1 {
			t.Errorf("agent-pod reviews with outcome injected moved by %v, want 1", d)
		}

		// What the apiserver stores for the same pod without the webhook: a
		// server-side dry run of it without the agent label (the objectSelector
		// keeps it away from the webhook). The apiserver's own defaulting (e.g.
		// AppArmor annotations → securityContext.appArmorProfile) is in both.
		baseline := podForDaemonSet(ds, "node-a")
		delete(baseline.Labels, "agent.datadoghq.com/component")
		must(t, env.Client.Create(ctx, baseline, client.DryRunAll))

		if len(pod.Spec.Containers) != len(baseline.Spec.Containers) {
			t.Fatalf("pod has %d containers, the template %d", len(pod.Spec.Containers), len(baseline.Spec.Containers))
		}
		status := pod.Annotations[agentpod.StatusAnnotation]
		t.Logf("%s: %s", agentpod.StatusAnnotation, status)
		stripped := pod.Spec.DeepCopy()
		for i, c := range pod.Spec.Containers {
			// contract 3.3: no entry, no envFrom in the chart's containers → one
			// entry appended, with the compact JSON mapping.
			var entries, rest []corev1.EnvVar
			for _, e := range c.Env {
				if e.Name == agentpod.EnvName {
					entries = append(entries, e)
				} else {
					rest = append(rest, e)
				}
			}
			if len(entries) != 1 || entries[0].Value != wantValue || entries[0].ValueFrom != nil {
				t.Errorf("container %s: %s entries %+v, want one with value %s", c.Name, agentpod.EnvName, entries, wantValue)
			}
			if n := len(c.Env); n == 0 || c.Env[n-1].Name != agentpod.EnvName {
				t.Errorf("container %s: %s is not the last env entry (appended)", c.Name, agentpod.EnvName)
			}
			stripped.Containers[i].Env = rest
			wantContains(t, "status annotation", status, c.Name+": injected")
		}
		// Nothing else in the spec changed; in particular init containers that
		// do not declare the variable are left alone (contract 3.2).
		if !apiequality.Semantic.DeepEqual(*stripped, baseline.Spec) {
			t.Errorf("pod spec differs from the same pod without the webhook beyond %s (- webhook, + without):\n%s",
				agentpod.EnvName, diff.Diff(*stripped, baseline.Spec))
		}
		// Metadata: the status annotation is the only addition.
		annotations := maps.Clone(pod.Annotations)
		delete(annotations, agentpod.StatusAnnotation)
		if !maps.Equal(annotations, baseline.Annotations) {
			t.Errorf("annotations besides %s differ (- webhook, + without):\n%s", agentpod.StatusAnnotation, diff.Diff(annotations, baseline.Annotations))
		}
		for k, v := range ds.Spec.Template.Labels {
			if pod.Labels[k] != v {
				t.Errorf("pod label %s = %q, want the template's %q", k, pod.Labels[k], v)
			}
		}
	})

	t.Run("cluster agent pod patched", func(t *testing.T) {
		var depList appsv1.DeploymentList
		must(t, env.Client.List(ctx, &depList, client.InNamespace(datadogNamespace),
			client.MatchingLabels{"agent.datadoghq.com/component": "cluster-agent"}))
		if len(depList.Items) != 1 {
			t.Fatalf("want the chart's cluster agent Deployment in %s, got %d", datadogNamespace, len(depList.Items))
		}
		// As the ReplicaSet controller creates it: owned by the Deployment's ReplicaSet.
		pod := podForTemplate(datadogNamespace, depList.Items[0].Name, &depList.Items[0].Spec.Template)
		pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet",
			Name: depList.Items[0].Name + "-6d4f8b7c9", UID: "3f7c2d1e-0000-4000-8000-000000000002", Controller: ptr(true)}}
		before := reviews(t, harness.WebhookAgentPod, "injected")
		must(t, env.Client.Create(ctx, pod))
		if d := reviews(t, harness.WebhookAgentPod, "injected") - before; d != 1 {
			t.Errorf("agent-pod reviews with outcome injected moved by %v, want 1", d)
		}
		wantContains(t, "status annotation", pod.Annotations[agentpod.StatusAnnotation], "cluster-agent: injected")
		for _, c := range pod.Spec.Containers {
			var values []string
			for _, e := range c.Env {
				if e.Name == agentpod.EnvName {
					values = append(values, e.Value)
				}
			}
			if len(values) != 1 || values[0] != wantValue {
				t.Errorf("container %s: %s = %q, want one entry %s", c.Name, agentpod.EnvName, values, wantValue)
			}
		}
	})

	t.Run("pods without an agent component never reach the webhook", func(t *testing.T) {
		// The agent template without its agent label, still owned by the DaemonSet.
		unlabelled := podForDaemonSet(ds, "node-b")
		delete(unlabelled.Labels, "agent.datadoghq.com/component")
		// A component canary-tagger does not patch.
		other := podForDaemonSet(ds, "node-c")
		other.Labels["agent.datadoghq.com/component"] = "otel-agent"

		for _, pod := range []*corev1.Pod{unlabelled, other} {
			before, beforeCR := reviews(t, harness.WebhookAgentPod), crRequests(t, "/mutate-agent-pod")
			want := pod.DeepCopy()
			must(t, env.Client.Create(ctx, pod))
			t.Logf("created pod %s/%s labels %v", pod.Namespace, pod.Name, pod.Labels)
			if after := reviews(t, harness.WebhookAgentPod); after != before {
				t.Errorf("pod %s reached the webhook: %s moved from %v to %v", pod.Name, harness.ReviewsMetric, before, after)
			}
			if after := crRequests(t, "/mutate-agent-pod"); after != beforeCR {
				t.Errorf("pod %s reached the webhook: %s moved from %v to %v", pod.Name, harness.CRRequestsMetric, beforeCR, after)
			}
			if _, ok := pod.Annotations[agentpod.StatusAnnotation]; ok {
				t.Errorf("pod %s has %s", pod.Name, agentpod.StatusAnnotation)
			}
			for i, c := range pod.Spec.Containers {
				if len(c.Env) != len(want.Spec.Containers[i].Env) {
					t.Errorf("pod %s container %s: env changed: %v", pod.Name, c.Name, c.Env)
				}
			}
		}
	})
}

func ptr[T any](v T) *T { return &v }

// podForDaemonSet builds the pod the DaemonSet controller would create for
// node: the template's metadata and spec, a controller reference to the
// DaemonSet (its UID), the revision labels, node affinity and the
// DaemonSet tolerations.
func podForDaemonSet(ds *appsv1.DaemonSet, node string) *corev1.Pod {
	pod := podForTemplate(ds.Namespace, ds.Name, &ds.Spec.Template)
	pod.Labels["controller-revision-hash"] = "6d5c8f7b9"
	pod.Labels["pod-template-generation"] = strconv.FormatInt(ds.Generation, 10)
	pod.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(ds, appsv1.SchemeGroupVersion.WithKind("DaemonSet"))}
	if pod.Spec.Affinity == nil {
		pod.Spec.Affinity = &corev1.Affinity{}
	}
	pod.Spec.Affinity.NodeAffinity = &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchFields: []corev1.NodeSelectorRequirement{{
					Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{node},
				}},
			}},
		},
	}
	for _, taint := range []string{
		"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable",
	} {
		pod.Spec.Tolerations = append(pod.Spec.Tolerations, corev1.Toleration{Key: taint, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute})
	}
	for _, taint := range []string{
		"node.kubernetes.io/disk-pressure", "node.kubernetes.io/memory-pressure",
		"node.kubernetes.io/pid-pressure", "node.kubernetes.io/unschedulable",
	} {
		pod.Spec.Tolerations = append(pod.Spec.Tolerations, corev1.Toleration{Key: taint, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})
	}
	return pod
}

func podForTemplate(ns, owner string, tmpl *corev1.PodTemplateSpec) *corev1.Pod {
	t := tmpl.DeepCopy()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Namespace:    ns,
		GenerateName: strings.TrimSuffix(owner, "-") + "-",
		Labels:       t.Labels,
		Annotations:  t.Annotations,
	}, Spec: t.Spec}
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	return pod
}
