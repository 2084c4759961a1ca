package heal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/canary-tagger/canary-tagger/webhook/agentpod"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
)

var agentSelector = labels.SelectorFromSet(labels.Set{"app": "datadog"})

// agentConfig is chartConfig whose agent-pod webhook selects agents as the
// chart does (objectSelector = --agent-selector), in every namespace but
// the install's own (here: quiet).
func agentConfig() *admissionv1.MutatingWebhookConfiguration {
	cfg := chartConfig()
	cfg.Webhooks[1].ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "datadog"}}
	cfg.Webhooks[1].NamespaceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"quiet"}}}}
	return cfg
}

const (
	mapped   = `[{name: agent, env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"app":"kube_app","role":"kube_role"}'}]}]`
	unmapped = `[{name: agent, env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"app":"kube_app"}'}]}]`
	// Left alone on purpose by the rule: a restart would change nothing.
	valueFrom = `[{name: agent, env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, valueFrom: {configMapKeyRef: {name: c, key: k}}}]}]`
)

// pod is an agent pod (app=datadog unless podLabels says otherwise) in
// shop, controlled by ownerKind/ownerName, created at minute created.
func pod(t *testing.T, name, podLabels, ownerKind, ownerName, containers string, created int) *unstructured.Unstructured {
	t.Helper()
	doc := fmt.Sprintf(`{apiVersion: v1, kind: Pod, metadata: {name: %s, namespace: shop, labels: {%s}, creationTimestamp: %q,
  ownerReferences: [{apiVersion: apps/v1, kind: %s, name: %s, uid: u, controller: true}]},
  spec: {containers: %s}, status: {phase: Running}}`, name, podLabels, at(created).Format(time.RFC3339), ownerKind, ownerName, containers)
	var o map[string]any
	if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: o}
}

// at is minute m of the test's day.
func at(m int) time.Time { return time.Date(2026, 12, 7, 6, m, 0, 0, time.UTC) }

// finishedDaemonSet has rolled out on its 2 nodes.
func finishedDaemonSet(name string) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", UID: types.UID("uid-ds-" + name), ResourceVersion: "3", Generation: 1},
		Status:     appsv1.DaemonSetStatus{ObservedGeneration: 1, DesiredNumberScheduled: 2, UpdatedNumberScheduled: 2, NumberAvailable: 2},
	}
}

type agentFixture struct {
	kube     *fake.Clientset
	dynamic  *dynamicfake.FakeDynamicClient
	recorder *events.FakeRecorder
	healer   *Healer
	ready    error
}

func newAgentFixture(t *testing.T, kubeObjects []runtime.Object, pods ...runtime.Object) *agentFixture {
	t.Helper()
	kubeObjects = append(kubeObjects, namespace("shop"), namespace("quiet", "canary-tagger.io/inject", "disabled"), agentConfig())
	f := &agentFixture{
		kube: fake.NewClientset(kubeObjects...),
		dynamic: dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
			Rollouts.GroupVersionResource: "RolloutList", AgentPods.GroupVersionResource: "PodList"}, pods...),
		recorder: events.NewFakeRecorder(100),
	}
	f.healer = New(Options{
		Rules: rules, WebhookConfigName: "canary-tagger", Logger: logr.Discard(),
		HealAgentPods: true,
		AgentPodRules: agentpod.Options{LabelKey: "role", TagName: "kube_role", Selector: agentSelector},
		WebhookReady:  func() error { return f.ready },
	}, f.kube, f.dynamic, f.recorder)
	return f
}

// pass runs one pass and returns its agent-pod report.
func (f *agentFixture) pass(t *testing.T) Report {
	t.Helper()
	f.kube.ClearActions()
	reports := f.healer.Pass(context.Background())
	if len(reports) != 2 || reports[1].Kind != kindPod {
		t.Fatalf("reports %+v, want Rollouts then Pods", reports)
	}
	if reports[1].Err != nil {
		t.Fatalf("pass: %v", reports[1].Err)
	}
	return reports[1]
}

// restarts are the workloads the last pass patched, with their restartedAt.
func (f *agentFixture) restarts(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, a := range f.kube.Actions() {
		p, ok := a.(clienttesting.PatchAction)
		if !ok {
			continue
		}
		if p.GetPatchType() != "application/strategic-merge-patch+json" {
			t.Errorf("patch type %s", p.GetPatchType())
		}
		var body struct {
			Metadata struct{ ResourceVersion string }
			Spec     struct {
				Template struct {
					Metadata struct{ Annotations map[string]string }
				}
			}
		}
		if err := json.Unmarshal(p.GetPatch(), &body); err != nil {
			t.Fatal(err)
		}
		if body.Metadata.ResourceVersion == "" {
			t.Errorf("%s: patch without a resourceVersion: %s", p.GetName(), p.GetPatch())
		}
		if n := len(body.Spec.Template.Metadata.Annotations); n != 1 {
			t.Errorf("%s: patch sets %d template annotations, want only %s: %s", p.GetName(), n, RestartedAtAnnotation, p.GetPatch())
		}
		out[p.GetResource().Resource+"/"+p.GetName()] = body.Spec.Template.Metadata.Annotations[RestartedAtAnnotation]
	}
	return out
}

func (f *agentFixture) events() []string {
	var out []string
	for {
		select {
		case e := <-f.recorder.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// TestAgentPodPassRestartsOnlyWhatNeedsIt: the owners of Agent pods the rule
// would still inject are restarted once each; mapped pods, pods the rule
// leaves alone on purpose, non-agent pods and out-of-scope namespaces never
// cause a restart.
func TestAgentPodPassRestartsOnlyWhatNeedsIt(t *testing.T) {
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "cluster-agent-5d9", Namespace: "shop",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "cluster-agent", UID: "d", Controller: ptr.To(true)}}}}
	deploy := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "cluster-agent", Namespace: "shop", ResourceVersion: "9", Generation: 2},
		Spec:   appsv1.DeploymentSpec{Replicas: ptr.To[int32](1)},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 1, UpdatedReplicas: 1, AvailableReplicas: 1}}
	quiet := pod(t, "quiet-agent", "app: datadog", "DaemonSet", "quiet-agent", unmapped, 1)
	quiet.SetNamespace("quiet")
	f := newAgentFixture(t, []runtime.Object{finishedDaemonSet("agent"), finishedDaemonSet("mapped"), finishedDaemonSet("valuefrom"),
		finishedDaemonSet("other"), rs, deploy},
		pod(t, "agent-a", "app: datadog", "DaemonSet", "agent", unmapped, 1),
		pod(t, "agent-b", "app: datadog", "DaemonSet", "agent", mapped, 2),
		pod(t, "agent-c", "app: datadog", "DaemonSet", "agent", unmapped, 3),
		pod(t, "mapped-a", "app: datadog", "DaemonSet", "mapped", mapped, 1),
		pod(t, "valuefrom-a", "app: datadog", "DaemonSet", "valuefrom", valueFrom, 1),
		pod(t, "other-a", "app: web", "DaemonSet", "other", unmapped, 1),
		pod(t, "cluster-agent-5d9-x", "app: datadog", "ReplicaSet", "cluster-agent-5d9", unmapped, 1),
		quiet)

	rep := f.pass(t)
	got := f.restarts(t)
	if len(got) != 2 || got["daemonsets/agent"] == "" || got["deployments/cluster-agent"] == "" {
		t.Fatalf("restarted %v, want the DaemonSet agent and the Deployment cluster-agent", got)
	}
	if _, err := time.Parse(time.RFC3339, got["daemonsets/agent"]); err != nil {
		t.Errorf("restartedAt %q is not kubectl's RFC 3339: %v", got["daemonsets/agent"], err)
	}
	if rep.Restarts != 2 || rep.Outcomes[outcome.Injected] != 3 || rep.Outcomes[outcome.Present] != 2 || rep.Outcomes[outcome.Skipped] != 1 {
		t.Errorf("report %+v: want 2 restarts; 3 pods to inject, 2 present, 1 skipped (the non-agent pod is not listed)", rep)
	}
	ev := strings.Join(f.events(), "\n")
	if !strings.Contains(ev, "Normal Restarted restarted as `kubectl rollout restart` does: 2 pods lack role → kube_role (agent-a, agent-c)") {
		t.Errorf("events:\n%s", ev)
	}
}

// TestAgentPodPassWaits: no restart while the webhook here is not ready,
// while the workload's rollout is in progress, or of a workload that
// cannot roll (a Warning Event, once per version); and never a second
// restart when the pods made by canary-tagger's own restart lack the
// mapping (the webhook was not called: restarting again would loop).
func TestAgentPodPassWaits(t *testing.T) {
	rolling := finishedDaemonSet("agent")
	rolling.Status.UpdatedNumberScheduled = 1
	onDelete := finishedDaemonSet("agent")
	onDelete.Spec.UpdateStrategy.Type = appsv1.OnDeleteDaemonSetStrategyType
	restartedByCanaryTagger := func(podsCreated int) *appsv1.DaemonSet {
		ds := finishedDaemonSet("agent")
		ds.Spec.Template.Annotations = map[string]string{RestartedAtAnnotation: at(10).Format(time.RFC3339)}
		ds.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: FieldManager, Operation: metav1.ManagedFieldsOperationUpdate, FieldsType: "FieldsV1",
			FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:template":{"f:metadata":{"f:annotations":{"f:kubectl.kubernetes.io/restartedAt":{}}}}}}`)}}}
		return ds
	}
	restartedByKubectl := restartedByCanaryTagger(0)
	restartedByKubectl.ManagedFields[0].Manager = "kubectl-rollout"

	for name, tc := range map[string]struct {
		ds         *appsv1.DaemonSet
		podCreated int
		notReady   bool
		restart    bool
		warning    string
	}{
		"webhook not ready":                 {ds: finishedDaemonSet("agent"), notReady: true},
		"rollout in progress":               {ds: rolling},
		"OnDelete":                          {ds: onDelete, warning: "Warning NotRestarted 1 pod lacks role → kube_role: its update strategy is OnDelete"},
		"pods older than our restart":       {ds: restartedByCanaryTagger(0), podCreated: 5, restart: true},
		"pods made by our restart unmapped": {ds: restartedByCanaryTagger(0), podCreated: 11, warning: "still lack the mapping: the apiserver did not call the webhook"},
		"a person's restart":                {ds: restartedByKubectl, podCreated: 11, restart: true},
	} {
		t.Run(name, func(t *testing.T) {
			f := newAgentFixture(t, []runtime.Object{tc.ds}, pod(t, "agent-a", "app: datadog", "DaemonSet", "agent", unmapped, tc.podCreated))
			if tc.notReady {
				f.ready = errors.New("webhook: not reachable")
			}
			f.pass(t)
			if got := len(f.restarts(t)) == 1; got != tc.restart {
				t.Errorf("restarted: %v, want %v", got, tc.restart)
			}
			ev := strings.Join(f.events(), "\n")
			if tc.warning == "" && strings.Contains(ev, "Warning") || !strings.Contains(ev, tc.warning) {
				t.Errorf("events:\n%s\nwant %q", ev, tc.warning)
			}
			if tc.warning != "" {
				f.pass(t)
				if again := f.events(); len(again) != 0 {
					t.Errorf("second pass, same resourceVersion: events %v, want none", again)
				}
			}
		})
	}
}

// TestAgentPodPassOff: without HealAgentPods there is no agent-pod pass.
func TestAgentPodPassOff(t *testing.T) {
	f := newFixture(t, agentConfig())
	if reports := f.healer.Pass(context.Background()); len(reports) != 1 || reports[0].Kind != kindRollout {
		t.Fatalf("reports %+v, want only the Rollout pass", reports)
	}
}
