package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/canary-tagger/canary-tagger/test/internal/harness"
	"github.com/canary-tagger/canary-tagger/webhook/webhooktest"
)

// The agent DaemonSet comes from the Datadog Helm chart render that maps
// pod labels to tags (test/testdata/datadog-helm/README.md): the webhook
// merges role → kube_role into that mapping on every agent container.
const (
	agentRender    = "pod-labels-as-tags.yaml"
	agentNamespace = "datadog" // the render's namespace
)

// cycle is one timed round of a scenario.
type cycle struct {
	with, warmup bool
	// took is the scenario's own time (all pods Running, all creates answered).
	took time.Duration
	// checked: with canary-tagger, the objects the rule would still change
	// (admitted without it); without, the objects that have what it adds
	// (they should have nothing).
	checked count
	usage   usage
}

// cycleOrder is one warm-up cycle with canary-tagger, then n cycles each
// way, alternating, ending with canary-tagger installed.
func cycleOrder(n int) []cycle {
	order := []cycle{{with: true, warmup: true}}
	for i := 0; i < n; i++ {
		order = append(order, cycle{with: false}, cycle{with: true})
	}
	return order
}

// agentDaemonSet reads the render: its node-Agent DaemonSet, and the
// objects the agent pods need (service accounts, secrets, config maps,
// RBAC, services), without the Cluster Agent Deployment.
func agentDaemonSet(repo string) (*unstructured.Unstructured, []*unstructured.Unstructured, error) {
	path := filepath.Join(repo, "test", "testdata", "datadog-helm", agentRender)
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var ds *unstructured.Unstructured
	var others []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		switch u.GetKind() {
		case "":
		case "DaemonSet":
			if ds != nil {
				return nil, nil, fmt.Errorf("%s: two DaemonSets", path)
			}
			ds = u
		case "Deployment":
		default:
			others = append(others, u)
		}
	}
	if ds == nil {
		return nil, nil, fmt.Errorf("%s: no DaemonSet", path)
	}
	return ds, others, nil
}

// daemonSetScenario creates the agent DaemonSet, one pod per node, in
// alternating cycles with and without the webhook configuration.
func (c *cluster) daemonSetScenario(ctx context.Context, o options) ([]cycle, error) {
	ds, others, err := agentDaemonSet(c.repo)
	if err != nil {
		return nil, err
	}
	if err := c.env.CreateNamespace(ctx, agentNamespace, nil); err != nil {
		return nil, err
	}
	for _, obj := range others {
		if err := c.env.Client.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("creating %s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
	}
	selector := labels.SelectorFromSet(ds.GetLabels()).String()
	if m, ok, _ := unstructured.NestedStringMap(ds.Object, "spec", "selector", "matchLabels"); ok {
		selector = labels.SelectorFromSet(m).String()
	}
	cycles := cycleOrder(o.cycles)
	for i := range cycles {
		cy := &cycles[i]
		if err := c.setWebhook(ctx, cy.with); err != nil {
			return nil, err
		}
		if err := c.daemonSetCycle(ctx, ds, selector, cy); err != nil {
			return nil, err
		}
		logf("DaemonSet cycle %d/%d (%s): %d pods Running in %s; %s",
			i+1, len(cycles), cy.label(), cy.checked.objects, cy.took.Round(100*time.Millisecond), cy.checkSummary("pods", "the mapping"))
	}
	return cycles, nil
}

func (cy cycle) label() string {
	s := "without canary-tagger"
	if cy.with {
		s = "with canary-tagger"
	}
	if cy.warmup {
		s += ", warm-up"
	}
	return s
}

func (cy cycle) checkSummary(objects, what string) string {
	if cy.with {
		return fmt.Sprintf("%d %s admitted without %s", cy.checked.missing, objects, what)
	}
	return fmt.Sprintf("%d %s with %s", cy.checked.missing, objects, what)
}

func (c *cluster) daemonSetCycle(ctx context.Context, ds *unstructured.Unstructured, selector string, cy *cycle) error {
	watch, err := c.watchRunningPods(ctx, agentNamespace, selector)
	if err != nil {
		return err
	}
	defer watch.stop()
	m, err := c.startMeter(ctx, agentPodWebhook, harness.WebhookAgentPod)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := c.env.Client.Create(ctx, ds.DeepCopy()); err != nil {
		return fmt.Errorf("creating DaemonSet %s: %w", ds.GetName(), err)
	}
	err = webhooktest.Poll(ctx, "all agent pods Running", 20*time.Minute, 100*time.Millisecond, func(context.Context) (bool, error) {
		if err := c.health(); err != nil {
			return false, webhooktest.StopPolling(err)
		}
		n := watch.running()
		return n >= c.nodes, fmt.Errorf("%d of %d agent pods Running", n, c.nodes)
	})
	cy.took = time.Since(start)
	if err != nil {
		return err
	}
	if cy.usage, err = m.stop(ctx); err != nil {
		return err
	}
	if cy.checked, err = c.podsMissing(ctx, agentNamespace, selector); err != nil {
		return err
	}
	if !cy.with {
		if cy.checked.missing = cy.checked.objects - cy.checked.missing; cy.checked.missing > 0 {
			return fmt.Errorf("%d agent pods got the mapping in a cycle without canary-tagger: its configuration was still in effect", cy.checked.missing)
		}
	}
	return c.deleteAgents(ctx, ds, selector)
}

// deleteAgents deletes the DaemonSet and, at once (no kubelet to wait
// for), its pods, and waits until none is left.
func (c *cluster) deleteAgents(ctx context.Context, ds *unstructured.Unstructured, selector string) error {
	if err := c.env.Client.Delete(ctx, ds.DeepCopy(), client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	pods := c.cs.CoreV1().Pods(agentNamespace)
	// Deleted again while any is left: the garbage collector may give one
	// a grace period after ours, which only a kubelet would end.
	return webhooktest.Poll(ctx, "the agent pods to be deleted", 5*time.Minute, time.Second, func(ctx context.Context) (bool, error) {
		left, err := pods.List(ctx, metav1.ListOptions{LabelSelector: selector, Limit: 1})
		if err != nil || len(left.Items) == 0 {
			return err == nil, err
		}
		if err := pods.DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)},
			metav1.ListOptions{LabelSelector: selector}); err != nil {
			return false, err
		}
		return false, fmt.Errorf("agent pods left after deleting the DaemonSet")
	})
}

// podWatch counts the Running pods of an informer.
type podWatch struct {
	mu       sync.Mutex
	phase    map[types.UID]corev1.PodPhase
	stopped  chan struct{}
	stopOnce sync.Once
}

// watchRunningPods starts an informer on the pods of namespace matching
// selector that keeps only each pod's phase.
func (c *cluster) watchRunningPods(ctx context.Context, namespace, selector string) (*podWatch, error) {
	w := &podWatch{phase: map[types.UID]corev1.PodPhase{}, stopped: make(chan struct{})}
	factory := informers.NewSharedInformerFactoryWithOptions(c.cs, 0, informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector }))
	inf := factory.Core().V1().Pods().Informer()
	// Only the phase is read: the cache keeps no more of a pod.
	if err := inf.SetTransform(func(obj any) (any, error) {
		if p, ok := obj.(*corev1.Pod); ok {
			return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion},
				Status: corev1.PodStatus{Phase: p.Status.Phase}}, nil
		}
		return obj, nil
	}); err != nil {
		return nil, err
	}
	set := func(obj any) {
		if p, ok := obj.(*corev1.Pod); ok {
			w.mu.Lock()
			w.phase[p.UID] = p.Status.Phase
			w.mu.Unlock()
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    set,
		UpdateFunc: func(_, obj any) { set(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				w.mu.Lock()
				delete(w.phase, p.UID)
				w.mu.Unlock()
			}
		},
	}); err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, w.stop)
	factory.Start(w.stopped)
	for typ, ok := range factory.WaitForCacheSync(w.stopped) {
		if !ok {
			w.stop()
			return nil, fmt.Errorf("informer of %v did not sync", typ)
		}
	}
	return w, nil
}

func (w *podWatch) running() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, p := range w.phase {
		if p == corev1.PodRunning {
			n++
		}
	}
	return n
}

func (w *podWatch) stop() { w.stopOnce.Do(func() { close(w.stopped) }) }
