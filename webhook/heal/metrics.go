package heal

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/canary-tagger/canary-tagger/webhook/outcome"
)

// Values of the "verb" label: what the healer asks the apiserver.
const (
	verbList  = "list"
	verbGet   = "get"
	verbPatch = "patch"
)

// Kinds a pass heals (the "kind" label).
const (
	kindRollout = "Rollout"
	kindPod     = "Pod"
)

// In controller-runtime's registry, so the server's /metrics serves them
// next to the admission reviews.
var (
	objectsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "canary_tagger_heal_objects_total",
		Help: "Objects in scope a heal pass asked the rule about, by kind and outcome (injected: a Rollout written, or an Agent pod without the mapping; conflict: left alone with a Warning Event; error: the write failed).",
	}, []string{"kind", "outcome"})
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "canary_tagger_heal_requests_total",
		Help: "Requests the healer made to the apiserver, by verb (list: one per page; get: the webhook configuration and workloadRef templates; patch: one per write).",
	}, []string{"verb"})
	restartsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "canary_tagger_heal_restarts_total",
		Help: "Workloads of Agent pods without the mapping restarted (as kubectl rollout restart does), by kind (DaemonSet, Deployment).",
	}, []string{"kind"})
	passesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "canary_tagger_heal_passes_total",
		Help: "Heal passes finished, by kind (with or without error).",
	}, []string{"kind"})
	passErrorsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "canary_tagger_heal_pass_errors_total",
		Help: "Heal passes that ended early on an API error, by kind.",
	}, []string{"kind"})
	lastPassDuration = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "canary_tagger_heal_last_pass_duration_seconds",
		Help: "Duration of the last heal pass, by kind.",
	}, []string{"kind"})
	lastPassTime = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "canary_tagger_heal_last_pass_timestamp_seconds",
		Help: "Unix time the last heal pass finished, by kind.",
	}, []string{"kind"})
)

var registerOnce sync.Once

// registerMetrics registers once per process and creates every series at
// zero, so dashboards see them before the first pass.
func registerMetrics() {
	registerOnce.Do(func() {
		metrics.Registry.MustRegister(objectsTotal, requestsTotal, restartsTotal, passesTotal, passErrorsTotal, lastPassDuration, lastPassTime)
		for _, o := range outcome.All {
			objectsTotal.WithLabelValues(kindRollout, string(o))
			objectsTotal.WithLabelValues(kindPod, string(o))
		}
		restartsTotal.WithLabelValues("DaemonSet")
		restartsTotal.WithLabelValues("Deployment")
		for _, v := range []string{verbList, verbGet, verbPatch} {
			requestsTotal.WithLabelValues(v)
		}
		for _, k := range []string{kindRollout, kindPod} {
			passesTotal.WithLabelValues(k)
			passErrorsTotal.WithLabelValues(k)
		}
	})
}
