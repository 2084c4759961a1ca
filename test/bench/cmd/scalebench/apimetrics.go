package main

import (
	"context"
	"math"
	"sort"

	"k8s.io/client-go/rest"

	"github.com/canary-tagger/canary-tagger/webhook/webhooktest"
)

// The kube-apiserver's own admission webhook metrics (k8s.io/apiserver
// pkg/admission/metrics), by webhook name.
const (
	// Every call, answered or failed, with applying its patch; buckets
	// 5 ms, 25 ms, 100 ms, 500 ms, 1 s, 2.5 s, 10 s, 25 s.
	webhookDurationMetric = "apiserver_admission_webhook_admission_duration_seconds"
	// A call that failed (refused, timed out, bad answer) under
	// failurePolicy Ignore: the object was admitted without the webhook.
	webhookFailOpenMetric = "apiserver_admission_webhook_fail_open_count"
)

var apiserverFamilies = []string{webhookDurationMetric, webhookFailOpenMetric}

// The webhooks of the installed configuration (manifests/).
const (
	rolloutWebhook  = "rollouts.canary-tagger.io"
	agentPodWebhook = "agent-pods.canary-tagger.io"
)

// scrapeAPIServer reads the apiserver's webhook families (as the admin user).
func scrapeAPIServer(ctx context.Context, rc rest.Interface) (webhooktest.Metrics, error) {
	return webhooktest.ScrapeAPIServer(ctx, rc, apiserverFamilies...)
}

// histogram is a cumulative histogram: count[i] observations at most
// bound[i], total of them in all (the +Inf bucket).
type histogram struct {
	bounds []float64
	counts []float64
	total  float64
}

// histogramOf sums the buckets of the series of family whose labels
// include match.
func histogramOf(m webhooktest.Metrics, family string, match map[string]string) histogram {
	byBound := map[float64]float64{}
	var h histogram
	for _, s := range m[family].GetMetric() {
		hs := s.GetHistogram()
		if hs == nil || !webhooktest.LabelsMatch(s.GetLabel(), match) {
			continue
		}
		h.total += float64(hs.GetSampleCount())
		for _, b := range hs.GetBucket() {
			if !math.IsInf(b.GetUpperBound(), +1) {
				byBound[b.GetUpperBound()] += float64(b.GetCumulativeCount())
			}
		}
	}
	for b := range byBound {
		h.bounds = append(h.bounds, b)
	}
	sort.Float64s(h.bounds)
	for _, b := range h.bounds {
		h.counts = append(h.counts, byBound[b])
	}
	return h
}

// minus is the histogram of the observations made between before and h.
func (h histogram) minus(before histogram) histogram {
	prev := map[float64]float64{}
	for i, b := range before.bounds {
		prev[b] = before.counts[i]
	}
	out := histogram{bounds: h.bounds, total: h.total - before.total}
	for i, b := range h.bounds {
		out.counts = append(out.counts, h.counts[i]-prev[b])
	}
	return out
}

// plus adds the observations of two histograms with the same buckets.
func (h histogram) plus(o histogram) histogram {
	if len(h.bounds) == 0 {
		return o
	}
	if len(o.bounds) == 0 {
		return h
	}
	out := histogram{bounds: h.bounds, total: h.total + o.total}
	for i := range h.bounds {
		out.counts = append(out.counts, h.counts[i]+o.counts[i])
	}
	return out
}

// estimate is a quantile of a histogram: the value interpolated, and the
// bucket it lies in (upper is +Inf beyond the last finite bound, and the
// value is then that bound).
type estimate struct {
	value, lower, upper float64
}

// quantile estimates the q-quantile as Prometheus's histogram_quantile
// does: linear within the bucket it falls in. ok is false for no observations.
func (h histogram) quantile(q float64) (estimate, bool) {
	if h.total <= 0 || len(h.bounds) == 0 {
		return estimate{}, false
	}
	rank := q * h.total
	lower, below := 0.0, 0.0
	for i, b := range h.bounds {
		if h.counts[i] >= rank {
			e := estimate{value: b, lower: lower, upper: b}
			if in := h.counts[i] - below; in > 0 {
				e.value = lower + (b-lower)*(rank-below)/in
			}
			return e, true
		}
		lower, below = b, h.counts[i]
	}
	return estimate{value: lower, lower: lower, upper: math.Inf(+1)}, true
}
