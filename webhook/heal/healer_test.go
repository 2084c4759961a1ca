package heal

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/canary-tagger/canary-tagger/webhook/outcome"
)

var _ manager.LeaderElectionRunnable = (*Healer)(nil)

// TestStartRunsPassesUntilCancelled: the Runnable passes at once and every
// interval, counts them in the metrics, and returns when its context ends;
// it runs only on the elected replica.
func TestStartRunsPassesUntilCancelled(t *testing.T) {
	var passes atomic.Int64
	done := make(chan struct{}, 1)
	h := New(Options{Rules: rules, WebhookConfigName: "canary-tagger", Interval: 10 * time.Millisecond, Logger: logr.Discard(),
		AfterPass: func(r Report) {
			if passes.Add(1) == 3 {
				done <- struct{}{}
			}
		}},
		fake.NewClientset(chartConfig(), namespace("shop")),
		dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
			map[schema.GroupVersionResource]string{Rollouts.GroupVersionResource: "RolloutList"}, rolloutIn(t, "shop", "web", "")),
		events.NewFakeRecorder(10))
	if !h.NeedLeaderElection() {
		t.Error("the healer runs on every replica")
	}
	registerMetrics()
	passesBefore := testutil.ToFloat64(passesTotal.WithLabelValues(kindRollout))
	injectedBefore := testutil.ToFloat64(objectsTotal.WithLabelValues(kindRollout, string(outcome.Injected)))
	patchesBefore := testutil.ToFloat64(requestsTotal.WithLabelValues(verbPatch))

	ctx, cancel := context.WithCancel(context.Background())
	returned := make(chan error, 1)
	go func() { returned <- h.Start(ctx) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%d passes in 10s at a 10ms interval", passes.Load())
	}
	cancel()
	select {
	case err := <-returned:
		if err != nil {
			t.Errorf("Start: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Start did not return after its context ended")
	}
	if d := testutil.ToFloat64(passesTotal.WithLabelValues(kindRollout)) - passesBefore; d < 3 {
		t.Errorf("canary_tagger_heal_passes_total rose by %v, want at least 3", d)
	}
	if d := testutil.ToFloat64(objectsTotal.WithLabelValues(kindRollout, string(outcome.Injected))) - injectedBefore; d != 1 {
		t.Errorf("canary_tagger_heal_objects_total{outcome=injected} rose by %v, want 1 (healed once, then present)", d)
	}
	if d := testutil.ToFloat64(requestsTotal.WithLabelValues(verbPatch)) - patchesBefore; d != 1 {
		t.Errorf("canary_tagger_heal_requests_total{verb=patch} rose by %v, want 1", d)
	}
	if testutil.ToFloat64(lastPassTime.WithLabelValues(kindRollout)) == 0 {
		t.Errorf("canary_tagger_heal_last_pass_timestamp_seconds not set")
	}
}

// TestRunRefusesOptionsThatCannotWork: Run names what is missing instead of
// retrying forever.
func TestRunRefusesOptionsThatCannotWork(t *testing.T) {
	for name, o := range map[string]Options{
		"no configuration name":               {RESTConfig: nil},
		"leader election without a namespace": {WebhookConfigName: "canary-tagger", LeaderElection: true},
		"no API configuration":                {WebhookConfigName: "canary-tagger"},
	} {
		if err := Run(context.Background(), o); err == nil {
			t.Errorf("%s: Run returned nil", name)
		}
	}
}

// TestRunRetriesWithoutAPI: without API access (serve run on a laptop with
// no kubeconfig) Run keeps trying every interval and returns nil when its
// context ends, so the webhook server next to it is never stopped.
func TestRunRetriesWithoutAPI(t *testing.T) {
	var calls atomic.Int64
	tried := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	returned := make(chan error, 1)
	go func() {
		returned <- Run(ctx, Options{WebhookConfigName: "canary-tagger", Interval: 10 * time.Millisecond, Logger: logr.Discard(),
			RESTConfig: func() (*rest.Config, error) {
				if calls.Add(1) == 3 {
					tried <- struct{}{}
				}
				return nil, errors.New("no kubeconfig")
			}})
	}()
	select {
	case <-tried:
	case err := <-returned:
		t.Fatalf("Run returned %v without API access", err)
	case <-time.After(10 * time.Second):
		t.Fatalf("%d attempts in 10s at a 10ms interval", calls.Load())
	}
	cancel()
	select {
	case err := <-returned:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
