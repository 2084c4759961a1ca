package scenario

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/canary-tagger/canary-tagger/webhook/webhooktest"
)

// Bounds for the idle window. A controller and a mutating webhook that
// disagree about an object fight over it: the Rollout's generation climbs and
// the webhook is called on every round, several times a second. An idle
// Rollout is updated by nobody.
const (
	maxIdleRolloutEvents = 2 // Rollout watch events (ADDED/MODIFIED/DELETED) in the window
	maxIdleWorkerEvents  = 2 // its ReplicaSets' and pods' watch events in the window
	maxIdleHookCalls     = 2 // calls of the rollouts webhook in the window
)

func (s *Scenario) stepQuiet(ctx context.Context, n Narrator) error {
	st0, err := s.rollout(ctx)
	if err != nil {
		return err
	}
	m0, err := s.hookMetrics(ctx)
	if err != nil {
		return err
	}
	window := s.env.IdleWindow
	n.Say("Watching the Rollout, its ReplicaSets and pods for %s, with the Argo Rollouts controller and canary-tagger running ...", window)
	events, err := s.watchIdle(ctx, window, st0.Generation)
	if err != nil {
		return err
	}
	st1, err := s.rollout(ctx)
	if err != nil {
		return err
	}
	m1, err := s.hookMetrics(ctx)
	if err != nil {
		return err
	}
	calls := m1.requests[RolloutHook] - m0.requests[RolloutHook]
	summary := fmt.Sprintf("%d Rollout events, %d ReplicaSet/pod events, %g rollouts-webhook calls; generation %d → %d",
		events.rollout, events.workers, calls, st0.Generation, st1.Generation)
	switch {
	case events.genChanged != "":
		return fmt.Errorf("update loop: %s (%s)", events.genChanged, summary)
	case st1.Generation != st0.Generation:
		return fmt.Errorf("update loop: the Rollout's generation went from %d to %d in %s (%s)", st0.Generation, st1.Generation, window, summary)
	case events.rollout > maxIdleRolloutEvents:
		return fmt.Errorf("update loop: %d Rollout updates in %s, at most %d expected (%s)", events.rollout, window, maxIdleRolloutEvents, summary)
	case events.workers > maxIdleWorkerEvents:
		return fmt.Errorf("churn: %d ReplicaSet/pod events in %s, at most %d expected (%s)", events.workers, window, maxIdleWorkerEvents, summary)
	case calls > maxIdleHookCalls:
		return fmt.Errorf("update loop: the rollouts webhook was called %g times in %s, at most %d expected (%s)", calls, window, maxIdleHookCalls, summary)
	}
	n.Check("%s idle: %s", window, summary)

	// kubectl diff: a server-side dry run, which goes through the webhook
	// (sideEffects: None), compared with the live object.
	n.Say("kubectl diff of the seed's file against the live Rollout (server-side dry run, through the webhook):")
	out, errOut, err := s.Kubectl(ctx, nil, "diff", "-n", s.env.Namespace, "-f", s.env.RolloutFile)
	var exitErr *exec.ExitError
	if err != nil && !(errors.As(err, &exitErr) && exitErr.ExitCode() == 1) {
		return err
	}
	m2, err := s.hookMetrics(ctx)
	if err != nil {
		return err
	}
	body := strings.TrimRight(out, "\n")
	if body == "" {
		body = "(no differences)"
	}
	if w := strings.TrimSpace(errOut); w != "" {
		body += "\n" + w
	}
	n.Show("$ kubectl diff -n "+s.env.Namespace+" -f test/e2e/testdata/rollout.yaml", body)
	if m2.requests[RolloutHook] <= m1.requests[RolloutHook] {
		return fmt.Errorf("kubectl diff did not call the rollouts webhook (its dry run should go through it)")
	}
	var ours, others []string
	for _, l := range changedLines(out) {
		if owned.MatchString(l) {
			ours = append(ours, l)
		} else {
			others = append(others, strings.TrimSpace(l))
		}
	}
	if len(ours) > 0 {
		return fmt.Errorf("kubectl diff shows changes in what canary-tagger writes:\n%s", strings.Join(ours, "\n"))
	}
	n.Check("kubectl diff: no difference in stableMetadata/canaryMetadata or the role label (the dry run called the webhook %g time(s))",
		m2.requests[RolloutHook]-m1.requests[RolloutHook])
	if len(others) > 0 {
		n.Say("The diff's other lines are not canary-tagger's: the image set in step 2 (the file still says %s), and fields the Argo Rollouts controller owns.", ImageBefore)
	}

	for _, hook := range []string{RolloutHook, AgentPodsHook} {
		if f := m2.failOpen[hook]; f > 0 {
			return fmt.Errorf("the apiserver failed open %g time(s) on %s: canary-tagger was not reachable", f, hook)
		}
	}
	n.Check("whole run: %g calls of %s and %g of %s, none failed open",
		m2.requests[RolloutHook], RolloutHook, m2.requests[AgentPodsHook], AgentPodsHook)
	return nil
}

// owned matches a diff line touching what canary-tagger writes on a Rollout.
var owned = regexp.MustCompile(`stableMetadata|canaryMetadata|\brole\b|canary-tagger`)

// changedLines returns the +/- lines of a unified diff, without the file headers.
func changedLines(diff string) []string {
	var out []string
	for _, l := range strings.Split(diff, "\n") {
		if strings.HasPrefix(l, "+++") || strings.HasPrefix(l, "---") {
			continue
		}
		if strings.HasPrefix(l, "+") || strings.HasPrefix(l, "-") {
			out = append(out, l)
		}
	}
	return out
}

type idleEvents struct {
	rollout, workers int
	genChanged       string
}

// watchIdle watches the Rollout, and the ReplicaSets and pods of app=demo, for
// exactly window (a deadline, not a sleep: every event is counted as it comes).
func (s *Scenario) watchIdle(ctx context.Context, window time.Duration, gen int64) (idleEvents, error) {
	ns := s.env.Namespace
	rsList, err := s.cs.AppsV1().ReplicaSets(ns).List(ctx, listOptions("app=demo"))
	if err != nil {
		return idleEvents{}, err
	}
	podList, err := s.cs.CoreV1().Pods(ns).List(ctx, listOptions("app=demo"))
	if err != nil {
		return idleEvents{}, err
	}
	roList, err := s.dyn.Resource(rolloutGVR).Namespace(ns).List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + RolloutName})
	if err != nil {
		return idleEvents{}, err
	}
	wctx, cancel := context.WithTimeout(ctx, window)
	defer cancel()

	var mu sync.Mutex
	var res idleEvents
	type source struct {
		name  string
		rv    string
		watch func(ctx context.Context, rv string) (watch.Interface, error)
		on    func(watch.Event)
	}
	sources := []source{
		{"rollout", roList.GetResourceVersion(), func(ctx context.Context, rv string) (watch.Interface, error) {
			return s.dyn.Resource(rolloutGVR).Namespace(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + RolloutName, ResourceVersion: rv})
		}, func(e watch.Event) {
			res.rollout++
			if u, ok := e.Object.(*unstructured.Unstructured); ok && u.GetGeneration() != gen && res.genChanged == "" {
				res.genChanged = fmt.Sprintf("the Rollout's generation went from %d to %d (%s event)", gen, u.GetGeneration(), e.Type)
			}
		}},
		{"replicasets", rsList.ResourceVersion, func(ctx context.Context, rv string) (watch.Interface, error) {
			return s.cs.AppsV1().ReplicaSets(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "app=demo", ResourceVersion: rv})
		}, func(watch.Event) { res.workers++ }},
		{"pods", podList.ResourceVersion, func(ctx context.Context, rv string) (watch.Interface, error) {
			return s.cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "app=demo", ResourceVersion: rv})
		}, func(watch.Event) { res.workers++ }},
	}
	errs := make(chan error, len(sources))
	for _, src := range sources {
		go func(src source) {
			rv := src.rv
			for {
				w, err := src.watch(wctx, rv)
				if err != nil {
					if wctx.Err() != nil {
						errs <- nil
					} else {
						errs <- fmt.Errorf("watch %s: %w", src.name, err)
					}
					return
				}
				closed := false
				for !closed {
					select {
					case <-wctx.Done():
						w.Stop()
						errs <- nil
						return
					case e, ok := <-w.ResultChan():
						if !ok {
							closed = true // the server ended the watch: resume from rv
							break
						}
						if e.Type == watch.Error {
							w.Stop()
							errs <- fmt.Errorf("watch %s: %v", src.name, e.Object)
							return
						}
						if e.Type == watch.Bookmark {
							continue
						}
						if m, err := metaAccessor(e.Object); err == nil {
							rv = m
						}
						mu.Lock()
						src.on(e)
						mu.Unlock()
					}
				}
			}
		}(src)
	}
	var errList []error
	for range sources {
		errList = append(errList, <-errs)
	}
	if err := errors.Join(errList...); err != nil {
		return res, err
	}
	if s.env.Health != nil {
		if err := s.env.Health(); err != nil {
			return res, err
		}
	}
	return res, nil
}

func metaAccessor(o any) (string, error) {
	type rv interface{ GetResourceVersion() string }
	if m, ok := o.(rv); ok {
		return m.GetResourceVersion(), nil
	}
	return "", errors.New("no resourceVersion")
}

type hookCounts struct {
	requests, failOpen map[string]float64
}

// hookMetrics reads the apiserver's admission metrics: calls per webhook
// (apiserver_admission_webhook_request_total) and fail-open count
// (apiserver_admission_webhook_fail_open_count).
func (s *Scenario) hookMetrics(ctx context.Context) (hookCounts, error) {
	m, err := webhooktest.ScrapeAPIServer(ctx, s.cs.CoreV1().RESTClient(), requestsMetric, failOpenMetric)
	if err != nil {
		return hookCounts{}, err
	}
	return hookCountsOf(m), nil
}

const (
	requestsMetric = "apiserver_admission_webhook_request_total"
	failOpenMetric = "apiserver_admission_webhook_fail_open_count"
)

// hookCountsOf sums each of canary-tagger's webhooks over the other labels.
func hookCountsOf(m webhooktest.Metrics) hookCounts {
	hc := hookCounts{requests: map[string]float64{}, failOpen: map[string]float64{}}
	for _, hook := range []string{RolloutHook, AgentPodsHook} {
		hc.requests[hook] = m.Sum(requestsMetric, map[string]string{"name": hook})
		hc.failOpen[hook] = m.Sum(failOpenMetric, map[string]string{"name": hook})
	}
	return hc
}
