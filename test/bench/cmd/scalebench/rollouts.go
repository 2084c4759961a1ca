package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/canary-tagger/canary-tagger/test/internal/harness"
	"github.com/canary-tagger/canary-tagger/webhook/webhooktest"
)

// Each Rollout scenario has its namespace, in the webhook's scope.
const (
	burstNamespace  = "scale-burst"
	outageNamespace = "scale-outage"
	healNamespace   = "scale-heal"
)

// unthrottled is cfg without client-side rate limit: the apiserver, not
// client-go's default 5 requests/s, sets the pace.
func unthrottled(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = -1, 0
	return cfg
}

// seedRollout is the seed's Rollout (a canary with steps, no ephemeral metadata).
func seedRollout(repo string) (*unstructured.Unstructured, error) {
	path := harness.SeedRolloutPath(repo)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(b, &u.Object); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return u, nil
}

// burstResult is one burst of creates.
type burstResult struct {
	took time.Duration
}

// burst creates n copies of seed, named prefix-00000…, in namespace, from
// clients clients at once (each its own client, no rate limit), and counts
// answered creates in created (optional). Any failed create is an error:
// the figures would not be about n Rollouts.
func (c *cluster) burst(ctx context.Context, seed *unstructured.Unstructured, namespace, prefix string, n, clients int, created *atomic.Int64) (burstResult, error) {
	writers := make([]dynamic.ResourceInterface, clients)
	for i := range writers {
		d, err := dynamic.NewForConfig(unthrottled(c.env.Config))
		if err != nil {
			return burstResult{}, err
		}
		writers[i] = d.Resource(rolloutsResource).Namespace(namespace)
	}
	work := make(chan int, n)
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	var (
		mu     sync.Mutex
		errs   []error
		failed int
		wg     sync.WaitGroup
	)
	start := time.Now()
	for _, w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				obj := seed.DeepCopy()
				obj.SetNamespace(namespace)
				obj.SetName(fmt.Sprintf("%s-%05d", prefix, i))
				if _, err := w.Create(ctx, obj, metav1.CreateOptions{FieldManager: "scalebench"}); err != nil {
					mu.Lock()
					if failed++; len(errs) < 3 {
						errs = append(errs, fmt.Errorf("%s: %w", obj.GetName(), err))
					}
					mu.Unlock()
				}
				if created != nil {
					created.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	r := burstResult{took: time.Since(start)}
	if failed > 0 {
		return r, fmt.Errorf("%d of %d creates failed, e.g. %w", failed, n, errors.Join(errs...))
	}
	return r, nil
}

// deleteRollouts deletes every Rollout of namespace and waits until none is left.
func (c *cluster) deleteRollouts(ctx context.Context, namespace string) error {
	rs := c.dyn.Resource(rolloutsResource).Namespace(namespace)
	if err := rs.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		return err
	}
	return webhooktest.Poll(ctx, "the Rollouts to be deleted", 5*time.Minute, 250*time.Millisecond, func(ctx context.Context) (bool, error) {
		left, err := rs.List(ctx, metav1.ListOptions{Limit: 1})
		if err != nil {
			return false, err
		}
		return len(left.Items) == 0, fmt.Errorf("Rollouts left in %s", namespace)
	})
}

// burstScenario creates o.rollouts Rollouts from o.clients clients in
// alternating cycles with and without the webhook configuration.
func (c *cluster) burstScenario(ctx context.Context, o options) ([]cycle, error) {
	seed, err := seedRollout(c.repo)
	if err != nil {
		return nil, err
	}
	if err := c.env.CreateNamespace(ctx, burstNamespace, nil); err != nil {
		return nil, err
	}
	cycles := cycleOrder(o.cycles)
	for i := range cycles {
		cy := &cycles[i]
		if err := c.setWebhook(ctx, cy.with); err != nil {
			return nil, err
		}
		m, err := c.startMeter(ctx, rolloutWebhook, harness.WebhookRollout)
		if err != nil {
			return nil, err
		}
		b, err := c.burst(ctx, seed, burstNamespace, "burst", o.rollouts, o.clients, nil)
		if err != nil {
			return nil, err
		}
		cy.took = b.took
		if cy.usage, err = m.stop(ctx); err != nil {
			return nil, err
		}
		if err := c.health(); err != nil {
			return nil, err
		}
		if cy.checked, err = c.rolloutsMissing(ctx, burstNamespace); err != nil {
			return nil, err
		}
		if !cy.with {
			if cy.checked.missing = cy.checked.objects - cy.checked.missing; cy.checked.missing > 0 {
				return nil, fmt.Errorf("%d Rollouts got their labels in a cycle without canary-tagger: its configuration was still in effect", cy.checked.missing)
			}
		}
		logf("Rollout burst %d/%d (%s): %d Rollouts created in %s; %s",
			i+1, len(cycles), cy.label(), cy.checked.objects, cy.took.Round(10*time.Millisecond), cy.checkSummary("Rollouts", "their labels"))
		if err := c.deleteRollouts(ctx, burstNamespace); err != nil {
			return nil, err
		}
	}
	return cycles, nil
}
