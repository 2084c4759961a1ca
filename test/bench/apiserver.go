package bench

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/canary-tagger/canary-tagger/test/internal/harness"
)

// APIServerResult is the in-apiserver benchmark: Rollout creates one at a
// time, in rounds alternating between one namespace per webhook and one no
// webhook sees.
type APIServerResult struct {
	Creates int // per namespace
	// None is the mean client-side create latency where no webhook is
	// called (5 % trimmed each side); Mean the same per target key.
	None time.Duration
	Mean map[string]time.Duration
	// Webhook is the apiserver's own mean
	// apiserver_admission_webhook_admission_duration_seconds per call, per
	// target key (it includes applying the webhook's patch); Calls counts them.
	Webhook      map[string]time.Duration
	Calls        map[string]int
	Errors       int
	ErrorSamples []string
}

// Added is the added client-side latency per create of target key.
func (r APIServerResult) Added(key string) time.Duration { return r.Mean[key] - r.None }

// APITarget is a webhook server registered for the namespace bench-<Key>.
type APITarget struct {
	Key    string
	Server *Server
	// Injects says the server patches the seed (checked before timing).
	Injects bool
}

var rolloutsGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}

func webhookName(key string) string { return "rollouts.bench-" + key + ".canary-tagger.io" }

// RunAPIServer starts envtest (kube-apiserver + etcd from bin/k8s, Argo
// Rollouts CRDs), registers every target the same way (a Rollout webhook by
// URL with canary-tagger's settings, failurePolicy Fail here so that a
// failure shows as an error rather than hiding), and times creates of the
// seed Rollout.
func RunAPIServer(ctx context.Context, repo string, targets []APITarget, caPEM []byte, creates, perRound int, logf func(string, ...any)) (APIServerResult, error) {
	res := APIServerResult{Mean: map[string]time.Duration{}, Webhook: map[string]time.Duration{}, Calls: map[string]int{}}
	env, err := harness.Start(ctx, harness.Options{NoWebhook: true, Logf: logf})
	if err != nil {
		return res, err
	}
	defer env.Stop()

	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = -1, 0 // no client-side rate limit: it would be what we measure
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return res, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return res, err
	}
	keys := []string{"none"}
	for _, t := range targets {
		keys = append(keys, t.Key)
	}
	ns := func(key string) string { return "bench-" + key }
	for _, key := range keys {
		if err := env.CreateNamespace(ctx, ns(key), map[string]string{"bench": key}); err != nil {
			return res, err
		}
	}
	for _, t := range targets {
		url := t.Server.URL + PathRollout
		m := &admissionregv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: webhookName(t.Key)},
			Webhooks: []admissionregv1.MutatingWebhook{{
				Name:                    webhookName(t.Key),
				ClientConfig:            admissionregv1.WebhookClientConfig{URL: &url, CABundle: caPEM},
				Rules:                   []admissionregv1.RuleWithOperations{{Operations: []admissionregv1.OperationType{admissionregv1.Create, admissionregv1.Update}, Rule: admissionregv1.Rule{APIGroups: []string{"argoproj.io"}, APIVersions: []string{"*"}, Resources: []string{"rollouts"}, Scope: ptr.To(admissionregv1.NamespacedScope)}}},
				NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"bench": t.Key}},
				FailurePolicy:           ptr.To(admissionregv1.Fail),
				MatchPolicy:             ptr.To(admissionregv1.Equivalent),
				SideEffects:             ptr.To(admissionregv1.SideEffectClassNone),
				TimeoutSeconds:          ptr.To[int32](5),
				AdmissionReviewVersions: []string{"v1"},
				ReinvocationPolicy:      ptr.To(admissionregv1.IfNeededReinvocationPolicy),
			}},
		}
		if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, m, metav1.CreateOptions{}); err != nil {
			return res, err
		}
	}

	seed, err := SeedRollout(repo, "")
	if err != nil {
		return res, err
	}
	for _, k := range []string{"uid", "generation", "creationTimestamp", "managedFields", "namespace"} {
		delete(seed["metadata"].(map[string]any), k)
	}
	n := 0
	create := func(ctx context.Context, namespace string) (time.Duration, *unstructured.Unstructured, error) {
		n++
		o := &unstructured.Unstructured{Object: deepCopy(seed)}
		o.SetName(fmt.Sprintf("demo-%05d", n))
		t0 := time.Now()
		got, err := dyn.Resource(rolloutsGVR).Namespace(namespace).Create(ctx, o, metav1.CreateOptions{})
		return time.Since(t0), got, err
	}
	// Wait until the apiserver calls every webhook (its configuration cache
	// lags behind the create): the patching ones inject, the others show in
	// the apiserver's metric.
	if err := harness.Eventually(ctx, func(ctx context.Context) (bool, error) {
		m0, err := scrapeAPIServer(ctx, cs)
		if err != nil {
			return false, err
		}
		for _, t := range targets {
			_, got, err := create(ctx, ns(t.Key))
			if err != nil {
				return false, err
			}
			if t.Injects {
				if v, _, _ := unstructured.NestedString(got.Object, "spec", "strategy", "canary", "stableMetadata", "labels", "role"); v != "stable" {
					return false, fmt.Errorf("a Rollout in %s is not injected yet", ns(t.Key))
				}
			}
		}
		m1, err := scrapeAPIServer(ctx, cs)
		if err != nil {
			return false, err
		}
		for _, t := range targets {
			_, c0 := m0.histogram(webhookName(t.Key))
			_, c1 := m1.histogram(webhookName(t.Key))
			if c1 <= c0 {
				return false, fmt.Errorf("the apiserver has not called %s yet", webhookName(t.Key))
			}
		}
		return true, nil
	}); err != nil {
		return res, err
	}
	// Warm-up: connections, caches, the apiserver's own first-call costs.
	for range 20 {
		for _, key := range keys {
			if _, _, err := create(ctx, ns(key)); err != nil {
				return res, err
			}
		}
	}

	before, err := scrapeAPIServer(ctx, cs)
	if err != nil {
		return res, err
	}
	lat := map[string][]time.Duration{}
	for round := 0; len(lat["none"]) < creates; round++ {
		for i := range keys {
			key := keys[(i+round)%len(keys)]
			for range perRound {
				d, _, err := create(ctx, ns(key))
				if err != nil {
					res.Errors++
					if len(res.ErrorSamples) < 5 {
						res.ErrorSamples = append(res.ErrorSamples, fmt.Sprintf("%s: %v", key, err))
					}
					continue
				}
				lat[key] = append(lat[key], d)
			}
		}
	}
	after, err := scrapeAPIServer(ctx, cs)
	if err != nil {
		return res, err
	}
	res.Creates = len(lat["none"])
	res.None = trimmedMean(lat["none"])
	for _, t := range targets {
		res.Mean[t.Key] = trimmedMean(lat[t.Key])
		s0, c0 := before.histogram(webhookName(t.Key))
		s1, c1 := after.histogram(webhookName(t.Key))
		if c1 > c0 {
			res.Webhook[t.Key] = time.Duration((s1 - s0) / float64(c1-c0) * float64(time.Second))
			res.Calls[t.Key] = int(c1 - c0)
		}
	}
	return res, nil
}

func trimmedMean(xs []time.Duration) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	cut := len(s) / 20
	s = s[cut : len(s)-cut]
	var sum time.Duration
	for _, x := range s {
		sum += x
	}
	return sum / time.Duration(len(s))
}

type promScrape map[string]*dtoFamily

// dtoFamily keeps only what the benchmark reads.
type dtoFamily struct {
	sums, counts map[string]float64 // by webhook name
}

func (m promScrape) histogram(webhook string) (sum float64, count uint64) {
	f := m["apiserver_admission_webhook_admission_duration_seconds"]
	if f == nil {
		return 0, 0
	}
	return f.sums[webhook], uint64(f.counts[webhook])
}

func scrapeAPIServer(ctx context.Context, cs *kubernetes.Clientset) (promScrape, error) {
	raw, err := cs.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("apiserver /metrics: %w", err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	out := promScrape{}
	const name = "apiserver_admission_webhook_admission_duration_seconds"
	if f, ok := fams[name]; ok {
		d := &dtoFamily{sums: map[string]float64{}, counts: map[string]float64{}}
		for _, s := range f.GetMetric() {
			var wh string
			for _, l := range s.GetLabel() {
				if l.GetName() == "name" {
					wh = l.GetValue()
				}
			}
			if h := s.GetHistogram(); h != nil {
				d.sums[wh] += h.GetSampleSum()
				d.counts[wh] += float64(h.GetSampleCount())
			}
		}
		out[name] = d
	}
	return out, nil
}

func deepCopy(m map[string]any) map[string]any {
	return runtimeDeepCopy(m).(map[string]any)
}

func runtimeDeepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		c := make(map[string]any, len(t))
		for k, x := range t {
			c[k] = runtimeDeepCopy(x)
		}
		return c
	case []any:
		c := make([]any, len(t))
		for i, x := range t {
			c[i] = runtimeDeepCopy(x)
		}
		return c
	default:
		return v
	}
}
