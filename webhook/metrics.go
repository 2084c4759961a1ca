package webhook

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/canary-tagger/canary-tagger/webhook/outcome"
)

// Values of the "webhook" label.
const (
	metricRollout  = "rollout"
	metricAgentPod = "agent-pod"
)

// reviewsTotal counts reviews by webhook and outcome. It lives in
// controller-runtime's registry so /metrics serves it next to
// controller_runtime_webhook_*.
var reviewsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "canary_tagger_admission_reviews_total",
	Help: "Admission reviews answered by canary-tagger, by webhook (rollout, agent-pod) and outcome (injected, present, conflict, skipped, error).",
}, []string{"webhook", "outcome"})

var registerOnce sync.Once

// registerMetrics registers the counter once per process (several servers
// may run in one process, e.g. in tests) and creates every label combination
// at zero, so dashboards and alerts see the series before the first review.
func registerMetrics() {
	registerOnce.Do(func() {
		metrics.Registry.MustRegister(reviewsTotal)
		for _, w := range []string{metricRollout, metricAgentPod} {
			for _, o := range outcome.All {
				reviewsTotal.WithLabelValues(w, string(o))
			}
		}
	})
}
