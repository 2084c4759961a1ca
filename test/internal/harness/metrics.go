package harness

// Metric names the suites read.
const (
	// ReviewsMetric is canary-tagger's own counter, by webhook and outcome.
	ReviewsMetric = "canary_tagger_admission_reviews_total"
	// WebhookRollout and WebhookAgentPod are its `webhook` label values.
	WebhookRollout  = "rollout"
	WebhookAgentPod = "agent-pod"
	// CRRequestsMetric is controller-runtime's per-path request counter.
	CRRequestsMetric = "controller_runtime_webhook_requests_total"
)
