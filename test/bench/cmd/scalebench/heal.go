package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"github.com/canary-tagger/canary-tagger/test/bench"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
	"github.com/canary-tagger/canary-tagger/webhook/rollout"
	"github.com/canary-tagger/canary-tagger/webhook/webhooktest"
)

// rolloutWatch follows every Rollout of the cluster through an informer
// and keeps, per Rollout, only whether the Rollout rule would still change
// it: the moment the last one gets its labels is seen as it happens,
// without LISTing thousands of Rollouts over and over.
type rolloutWatch struct {
	mu       sync.Mutex
	missing  map[string]bool // namespace/name → still without its labels
	stopped  chan struct{}
	stopOnce sync.Once
}

// missingField marks, in the informer's slimmed copy, a Rollout the rule
// would still change.
const missingField = "scalebenchMissing"

func (c *cluster) watchRollouts(ctx context.Context) (*rolloutWatch, error) {
	w := &rolloutWatch{missing: map[string]bool{}, stopped: make(chan struct{})}
	factory := dynamicinformer.NewDynamicSharedInformerFactory(c.dyn, 0)
	inf := factory.ForResource(rolloutsResource).Informer()
	opts := c.rules.Rollout
	if err := inf.SetTransform(func(obj any) (any, error) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return obj, nil
		}
		// The informer may hand an object it already holds back to the
		// transform (client-go: a transform must be idempotent).
		if _, slim := u.Object[missingField]; slim {
			return u, nil
		}
		_, res := rollout.Mutate(u.Object, opts, nil)
		slim := &unstructured.Unstructured{Object: map[string]any{missingField: res.Outcome != outcome.Present}}
		slim.SetGroupVersionKind(u.GroupVersionKind())
		slim.SetNamespace(u.GetNamespace())
		slim.SetName(u.GetName())
		slim.SetUID(u.GetUID())
		slim.SetResourceVersion(u.GetResourceVersion())
		return slim, nil
	}); err != nil {
		return nil, err
	}
	set := func(obj any) {
		if u, ok := obj.(*unstructured.Unstructured); ok {
			missing, _ := u.Object[missingField].(bool)
			w.mu.Lock()
			w.missing[u.GetNamespace()+"/"+u.GetName()] = missing
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
			if u, ok := obj.(*unstructured.Unstructured); ok {
				w.mu.Lock()
				delete(w.missing, u.GetNamespace()+"/"+u.GetName())
				w.mu.Unlock()
			}
		},
	}); err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, w.stop)
	factory.Start(w.stopped)
	for r, ok := range factory.WaitForCacheSync(w.stopped) {
		if !ok {
			w.stop()
			return nil, fmt.Errorf("informer of %v did not sync", r)
		}
	}
	return w, nil
}

// counts is how many Rollouts there are and how many lack their labels.
func (w *rolloutWatch) counts() count {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := count{objects: len(w.missing)}
	for _, m := range w.missing {
		if m {
			n.missing++
		}
	}
	return n
}

// waitFor waits until the informer has caught up with what a LIST read.
func (w *rolloutWatch) waitFor(ctx context.Context, stored count) error {
	return webhooktest.Poll(ctx, "the Rollout informer to catch up", time.Minute, 100*time.Millisecond, func(context.Context) (bool, error) {
		n := w.counts()
		return n == stored, fmt.Errorf("informer: %+v, stored: %+v", n, stored)
	})
}

func (w *rolloutWatch) stop() { w.stopOnce.Do(func() { close(w.stopped) }) }

// healResult is serve started again over Rollouts admitted without it.
type healResult struct {
	available bool
	// unlabelled: Rollouts without their labels when serve started.
	unlabelled int
	// repaired: from serve's start until the last had its labels
	// (converged), or until the deadline (remaining are still without).
	repaired  time.Duration
	converged bool
	remaining int
	// What healing did until the pass that converged had ended: LIST pages,
	// GETs, writes, objects by kind and outcome, as serve's /metrics counts them.
	lists, gets, patches float64
	objects              string
	passes               float64
	// idle is the next whole pass, after convergence.
	idle      idlePass
	idleFound bool
	// failOpens of the Rollout webhook from serve ready to the end.
	failOpens float64
	peakRSS   int64
	cpu       time.Duration
}

// idlePass is what one whole heal pass cost once there was nothing to do.
type idlePass struct{ lists, gets, patches float64 }

// healPasses is serve's count of finished Rollout heal passes: the series
// whose kind names Rollouts, or all of them if none does.
func healPasses(m webhooktest.Metrics) float64 {
	var rollouts, all float64
	found := false
	for _, s := range m[healPassesMetric].GetMetric() {
		v := s.GetCounter().GetValue()
		all += v
		for _, l := range s.GetLabel() {
			if l.GetName() == "kind" && strings.Contains(strings.ToLower(l.GetValue()), "rollout") {
				rollouts += v
				found = true
			}
		}
	}
	if found {
		return rollouts
	}
	return all
}

func healRequests(m webhooktest.Metrics, verb string) float64 {
	return m.Sum(healRequestsMetric, map[string]string{"verb": verb})
}

// healObjects lists serve's heal object counter, e.g. "Rollout/healed 500".
func healObjects(m webhooktest.Metrics) string {
	var parts []string
	for _, s := range m[healObjectsMetric].GetMetric() {
		var kind, out string
		for _, l := range s.GetLabel() {
			switch l.GetName() {
			case "kind":
				kind = l.GetValue()
			case "outcome":
				out = l.GetValue()
			}
		}
		if v := s.GetCounter().GetValue(); v > 0 {
			parts = append(parts, fmt.Sprintf("%s/%s %g", kind, out, v))
		}
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// startAndHeal starts serve (with --heal-interval if the binary heals) and
// follows healing until every Rollout has its labels or deadline passes,
// then through one whole pass after that. The figures are serve's own
// (a new process, so its counters start at zero) and the apiserver's.
func (c *cluster) startAndHeal(ctx context.Context, w *rolloutWatch, interval, deadline time.Duration) (healResult, error) {
	h := healResult{unlabelled: w.counts().missing}
	start := time.Now()
	if err := c.serve.start(ctx); err != nil {
		return h, err
	}
	h.available = c.serve.heal
	pid := c.serve.pid()
	sampler := bench.SampleRSS(pid, 100*time.Millisecond)
	api0, err := scrapeAPIServer(ctx, c.cs.Discovery().RESTClient())
	if err != nil {
		sampler.Stop()
		return h, err
	}
	if h.available {
		err := webhooktest.Poll(ctx, "every Rollout to have its labels", deadline, 100*time.Millisecond, func(context.Context) (bool, error) {
			if err := c.health(); err != nil {
				return false, webhooktest.StopPolling(err)
			}
			n := w.counts().missing
			return n == 0, fmt.Errorf("%d Rollouts without their labels", n)
		})
		h.repaired = time.Since(start)
		if err := errors.Join(c.health(), ctx.Err()); err != nil {
			sampler.Stop()
			return h, err
		}
		h.converged = err == nil
		if !h.converged {
			logf("heal: not converged after %s: %v", deadline, err)
		}
		if err := c.followPasses(ctx, &h, interval); err != nil {
			sampler.Stop()
			return h, err
		}
	}
	peak := bench.MaxOf(sampler.Stop())
	if m, err := bench.ReadMem(pid); err == nil {
		peak = max(peak, m.HWM)
	}
	h.peakRSS = peak
	if h.cpu, err = bench.CPUTime(pid); err != nil {
		return h, err
	}
	api1, err := scrapeAPIServer(ctx, c.cs.Discovery().RESTClient())
	if err != nil {
		return h, err
	}
	name := map[string]string{"name": rolloutWebhook}
	h.failOpens = api1.Sum(webhookFailOpenMetric, name) - api0.Sum(webhookFailOpenMetric, name)
	all, err := c.rolloutsMissing(ctx, "")
	if err != nil {
		return h, err
	}
	h.remaining = all.missing
	return h, nil
}

// followPasses waits for the heal pass under way to end (the one that
// converged, or one after it) and records what healing did up to then,
// then for the next pass to end: that whole pass found nothing to do, and
// what it cost is the idle pass.
func (c *cluster) followPasses(ctx context.Context, h *healResult, interval time.Duration) error {
	first, err := c.serve.metrics(ctx)
	if err != nil {
		return err
	}
	wait := func(after float64) (webhooktest.Metrics, error) {
		var m webhooktest.Metrics
		err := webhooktest.Poll(ctx, "a heal pass to end", 2*interval+time.Minute, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
			var err error
			if m, err = c.serve.metrics(ctx); err != nil {
				return false, webhooktest.StopPolling(err)
			}
			return healPasses(m) > after, fmt.Errorf("%s at %g", healPassesMetric, healPasses(m))
		})
		return m, err
	}
	end, err := wait(healPasses(first))
	for _, family := range []string{healPassesMetric, healRequestsMetric} {
		if !end.Has(family) {
			return fmt.Errorf("serve accepted --heal-interval but its /metrics has no %s (%v)", family, err)
		}
	}
	if err != nil {
		return fmt.Errorf("waiting for a heal pass to end: %w", err)
	}
	h.lists, h.gets, h.patches = healRequests(end, "list"), healRequests(end, "get"), healRequests(end, "patch")
	h.objects, h.passes = healObjects(end), healPasses(end)
	if !h.converged {
		return nil
	}
	next, err := wait(healPasses(end))
	if err != nil {
		return fmt.Errorf("waiting for the pass after convergence to end: %w", err)
	}
	h.idleFound = true
	n := healPasses(next) - healPasses(end) // 1, unless passes ended between two scrapes
	h.idle = idlePass{
		lists:   (healRequests(next, "list") - h.lists) / n,
		gets:    (healRequests(next, "get") - h.gets) / n,
		patches: (healRequests(next, "patch") - h.patches) / n,
	}
	return nil
}

// outageResult is the webhook stopped in the middle of a burst.
type outageResult struct {
	rollouts int
	// killedAfter creates had been answered when serve was killed; it was
	// down for outage (until the burst had ended, at least the outage asked for).
	killedAfter int64
	outage      time.Duration
	// unlabelled: Rollouts stored without their labels, read back before
	// serve started again; failOpens: the apiserver's count meanwhile.
	unlabelled int
	failOpens  float64
	heal       healResult
}

func (c *cluster) outageScenario(ctx context.Context, o options) (outageResult, error) {
	r := outageResult{rollouts: o.rollouts}
	seed, err := seedRollout(c.repo)
	if err != nil {
		return r, err
	}
	if err := c.env.CreateNamespace(ctx, outageNamespace, nil); err != nil {
		return r, err
	}
	if err := c.setWebhook(ctx, true); err != nil {
		return r, err
	}
	w, err := c.watchRollouts(ctx)
	if err != nil {
		return r, err
	}
	defer w.stop()
	api0, err := scrapeAPIServer(ctx, c.cs.Discovery().RESTClient())
	if err != nil {
		return r, err
	}

	var created atomic.Int64
	done := make(chan error, 1)
	go func() {
		_, err := c.burst(ctx, seed, outageNamespace, "outage", o.rollouts, o.clients, &created)
		done <- err
	}()
	half := int64(o.rollouts / 2)
	if err := webhooktest.Poll(ctx, "half the creates to be answered", 10*time.Minute, 2*time.Millisecond, func(context.Context) (bool, error) {
		n := created.Load()
		return n >= half, fmt.Errorf("%d of %d creates answered", n, o.rollouts)
	}); err != nil {
		return r, err
	}
	c.serve.kill()
	killed := time.Now()
	r.killedAfter = created.Load()
	logf("outage: serve killed after %d of %d creates", r.killedAfter, o.rollouts)

	// Down for the outage, and until the burst has ended, so that what it
	// admitted unlabelled is known before serve returns.
	outage := time.NewTimer(o.outage)
	defer outage.Stop()
	burstDone, outageOver := false, false
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for !burstDone || !outageOver {
		select {
		case err := <-done:
			if err != nil {
				return r, err
			}
			burstDone = true
		case <-outage.C:
			outageOver = true
		case <-tick.C:
			if err := c.health(); err != nil {
				return r, err
			}
		case <-ctx.Done():
			return r, ctx.Err()
		}
	}
	r.outage = time.Since(killed)
	got, err := c.rolloutsMissing(ctx, outageNamespace)
	if err != nil {
		return r, err
	}
	r.unlabelled = got.missing
	api1, err := scrapeAPIServer(ctx, c.cs.Discovery().RESTClient())
	if err != nil {
		return r, err
	}
	name := map[string]string{"name": rolloutWebhook}
	r.failOpens = api1.Sum(webhookFailOpenMetric, name) - api0.Sum(webhookFailOpenMetric, name)
	logf("outage: down %s; %d of %d Rollouts admitted without their labels (apiserver: %g fail-opens)",
		r.outage.Round(100*time.Millisecond), r.unlabelled, o.rollouts, r.failOpens)
	if err := w.waitFor(ctx, got); err != nil {
		return r, err
	}
	if r.unlabelled > 0 && r.failOpens == 0 {
		return r, fmt.Errorf("%d Rollouts were admitted unlabelled but the apiserver counted no fail-open in %s: the fail-open figures cannot be trusted", r.unlabelled, webhookFailOpenMetric)
	}

	if r.heal, err = c.startAndHeal(ctx, w, o.healInterval, o.healInterval+30*time.Second+5*time.Minute); err != nil {
		return r, err
	}
	logHeal("outage", r.heal)
	return r, nil
}

// memoryResult is serve healing with many Rollouts in the cluster.
type memoryResult struct {
	// rollouts in the cluster; created of them while serve was stopped.
	rollouts, created int
	heal              healResult
}

// memoryScenario stops serve, tops the cluster up to o.healRollouts
// Rollouts meanwhile (admitted without the webhook: failurePolicy Ignore),
// and starts serve again: it heals them and keeps passing over all.
func (c *cluster) memoryScenario(ctx context.Context, o options) (memoryResult, error) {
	var r memoryResult
	seed, err := seedRollout(c.repo)
	if err != nil {
		return r, err
	}
	if err := c.env.CreateNamespace(ctx, healNamespace, nil); err != nil {
		return r, err
	}
	w, err := c.watchRollouts(ctx)
	if err != nil {
		return r, err
	}
	defer w.stop()
	// Counted by a LIST: an informer that has synced may not have told
	// its handlers about every object yet.
	existing, err := c.rolloutsMissing(ctx, "")
	if err != nil {
		return r, err
	}
	r.created = max(o.healRollouts-existing.objects, 0)
	c.serve.stop()
	if _, err := c.burst(ctx, seed, healNamespace, "heal", r.created, o.clients, nil); err != nil {
		return r, err
	}
	all, err := c.rolloutsMissing(ctx, "")
	if err != nil {
		return r, err
	}
	r.rollouts = all.objects
	logf("memory: %d Rollouts in the cluster, %d created while serve was stopped, %d without their labels", r.rollouts, r.created, all.missing)
	if err := w.waitFor(ctx, all); err != nil {
		return r, err
	}
	if r.heal, err = c.startAndHeal(ctx, w, o.healInterval, 15*time.Minute); err != nil {
		return r, err
	}
	logHeal("memory", r.heal)
	return r, nil
}

func logHeal(scenario string, h healResult) {
	if !h.available {
		logf("%s: %s; %d Rollouts still without their labels", scenario, healUnavailable, h.remaining)
		return
	}
	logf("%s: %d Rollouts repaired in %s (converged: %t, %d left); heal: %g LIST pages, %g GETs, %g patches (%s); idle pass: %g LIST pages, %g GETs, %g patches; serve peak RSS %.1f MiB",
		scenario, h.unlabelled, h.repaired.Round(100*time.Millisecond), h.converged, h.remaining, h.lists, h.gets, h.patches, h.objects,
		h.idle.lists, h.idle.gets, h.idle.patches, mib(h.peakRSS))
}
