package main

import (
	"context"
	"time"

	"github.com/canary-tagger/canary-tagger/test/bench"
	"github.com/canary-tagger/canary-tagger/test/internal/harness"
	"github.com/canary-tagger/canary-tagger/webhook/webhooktest"
)

// usage is what the apiserver and serve did over a window of a scenario.
type usage struct {
	took time.Duration
	// latency is the apiserver's webhook duration histogram over the window.
	latency histogram
	// failOpens are the apiserver's fail-opens of the webhook: calls that
	// failed (refused, timed out, bad answer), the object admitted without it.
	failOpens float64
	// reviews are serve's canary_tagger_admission_reviews_total.
	reviews float64
	cpu     time.Duration
	peakRSS int64
}

// meter measures one webhook (its name in the configuration, and its
// label in serve's review counter) from start to stop, serve's CPU and,
// sampled every 100 ms, its RSS.
type meter struct {
	c              *cluster
	webhook, label string
	start          time.Time
	api, serve     webhooktest.Metrics
	pid            int
	cpu            time.Duration
	sampler        *bench.Sampler
}

func (c *cluster) startMeter(ctx context.Context, webhook, label string) (*meter, error) {
	m := &meter{c: c, webhook: webhook, label: label, pid: c.serve.pid()}
	var err error
	if m.api, err = scrapeAPIServer(ctx, c.cs.Discovery().RESTClient()); err != nil {
		return nil, err
	}
	if m.pid != 0 {
		if m.serve, err = c.serve.metrics(ctx); err != nil {
			return nil, err
		}
		if m.cpu, err = bench.CPUTime(m.pid); err != nil {
			return nil, err
		}
		m.sampler = bench.SampleRSS(m.pid, 100*time.Millisecond)
	}
	m.start = time.Now()
	return m, nil
}

// stop ends the window. serve must be the same process as at start.
func (m *meter) stop(ctx context.Context) (usage, error) {
	u := usage{took: time.Since(m.start)}
	if m.sampler != nil {
		u.peakRSS = bench.MaxOf(m.sampler.Stop())
	}
	api, err := scrapeAPIServer(ctx, m.c.cs.Discovery().RESTClient())
	if err != nil {
		return u, err
	}
	name := map[string]string{"name": m.webhook}
	u.latency = histogramOf(api, webhookDurationMetric, name).minus(histogramOf(m.api, webhookDurationMetric, name))
	u.failOpens = api.Sum(webhookFailOpenMetric, name) - m.api.Sum(webhookFailOpenMetric, name)
	if m.pid != 0 {
		s, err := m.c.serve.metrics(ctx)
		if err != nil {
			return u, err
		}
		match := map[string]string{"webhook": m.label}
		u.reviews = s.Sum(harness.ReviewsMetric, match) - m.serve.Sum(harness.ReviewsMetric, match)
		cpu, err := bench.CPUTime(m.pid)
		if err != nil {
			return u, err
		}
		u.cpu = cpu - m.cpu
	}
	return u, nil
}

// plus adds two windows: times, counts and CPU add up, the peak is the larger.
func (u usage) plus(o usage) usage {
	return usage{
		took:      u.took + o.took,
		latency:   u.latency.plus(o.latency),
		failOpens: u.failOpens + o.failOpens,
		reviews:   u.reviews + o.reviews,
		cpu:       u.cpu + o.cpu,
		peakRSS:   max(u.peakRSS, o.peakRSS),
	}
}
