package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/canary-tagger/canary-tagger/test/internal/harness"
	"github.com/canary-tagger/canary-tagger/webhook/webhooktest"
)

// Contender is one way a Rollout create is admitted, in its own namespace
// bench-<Key> that no other contender's webhook or policy selects.
type Contender struct {
	Key, Title string
	// Webhook, if set, is registered as a mutating webhook for Rollouts in
	// the namespace, with canary-tagger's settings.
	Webhook *Server
	// Policy, if set, is canary-tagger's policy install as the chart
	// renders it (rollouts.admission=policy, mode opt-in): its policies and
	// bindings are created as they are, and the namespace is opted in.
	Policy *harness.PolicyRender
	// Mutates says a created seed Rollout must come back with the role
	// labels; checked before and after the timed creates.
	Mutates bool
}

// Namespace is where the contender's Rollouts are created.
func (c Contender) Namespace() string { return "bench-" + c.Key }

func (c Contender) webhookName() string { return "rollouts.bench-" + c.Key + ".canary-tagger.io" }

// policyName is the name of the contender's policies and bindings.
func (c Contender) policyName() string { return c.Policy.Name }

func rolloutRule() admissionregv1.RuleWithOperations {
	return admissionregv1.RuleWithOperations{
		Operations: []admissionregv1.OperationType{admissionregv1.Create, admissionregv1.Update},
		Rule: admissionregv1.Rule{APIGroups: []string{"argoproj.io"}, APIVersions: []string{"*"},
			Resources: []string{"rollouts"}, Scope: ptr.To(admissionregv1.NamespacedScope)},
	}
}

// Creates is the in-apiserver benchmark: seed Rollouts created one at a
// time, interleaved round by round (round r creates one Rollout in every
// contender's namespace, starting with a different contender each round) so
// that whatever else the machine does hits every contender alike.
type Creates struct {
	Contenders []Contender
	// CAPEM signed the webhook servers' certificate.
	CAPEM []byte
	// Rounds are the timed creates per namespace; WarmupRounds come first,
	// untimed. MeteredRounds come after: each create between two scrapes of
	// the apiserver's metrics, for the admit step, which the apiserver does
	// not break down by namespace.
	Rounds, WarmupRounds, MeteredRounds int
	Logf                                func(string, ...any)
}

// ContenderResult is what one contender's creates cost.
type ContenderResult struct {
	Contender
	// Latencies are client-side, request to response, of the timed creates; sorted.
	Latencies []time.Duration
	// Calls and CallTime: the apiserver's own count and mean duration of
	// the webhook's calls (apiserver_admission_webhook_admission_duration_seconds)
	// or of the policy's mutation (…_mutating_admission_policy_check_duration_seconds)
	// over the timed creates.
	Calls    int
	CallTime time.Duration
	// AdmitStep is the mean of apiserver_admission_step_admission_duration_seconds
	// {type="admit"} (every mutating plugin of the create) over the metered
	// creates, AdmitSamples of them.
	AdmitStep    time.Duration
	AdmitSamples int
	Errors       []string
}

// Mean, Percentile and Max of the client-side latencies.
func (r ContenderResult) Mean() time.Duration { return Result{Latencies: r.Latencies}.Mean() }

// Percentile is the q-th percentile (nearest rank) of the latencies.
func (r ContenderResult) Percentile(q float64) time.Duration {
	return Result{Latencies: r.Latencies}.Percentile(q)
}

var rolloutsGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}

// Run registers every contender, waits until each is in effect, and times
// the creates.
func (b Creates) Run(ctx context.Context, api *APIServer, repo string) ([]ContenderResult, error) {
	logf := b.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	cfg := rest.CopyConfig(api.Config)
	cfg.QPS, cfg.Burst = -1, 0 // no client-side rate limit: it would be what we measure
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	for _, c := range b.Contenders {
		if err := b.register(ctx, cs, c); err != nil {
			return nil, fmt.Errorf("%s: %w", c.Title, err)
		}
	}

	seed, err := SeedRollout(repo, "")
	if err != nil {
		return nil, err
	}
	// What `kubectl apply` sends: the manifest and its last-applied annotation.
	for _, k := range []string{"uid", "generation", "creationTimestamp", "managedFields", "namespace"} {
		delete(seed["metadata"].(map[string]any), k)
	}
	created := 0
	create := func(ctx context.Context, c Contender) (string, time.Duration, error) {
		created++
		o := &unstructured.Unstructured{Object: deepCopy(seed)}
		o.SetName(fmt.Sprintf("demo-%06d", created))
		start := time.Now()
		_, err := dyn.Resource(rolloutsGVR).Namespace(c.Namespace()).Create(ctx, o, metav1.CreateOptions{})
		return o.GetName(), time.Since(start), err
	}
	check := func(ctx context.Context, c Contender, name string) error {
		got, err := dyn.Resource(rolloutsGVR).Namespace(c.Namespace()).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		return checkRoleLabels(got, c.Mutates)
	}

	// The apiserver learns of webhook configurations and policies through
	// informers: wait until every contender is seen to act, a mutating one
	// by a Rollout read back with the labels, the no-op by its call count.
	start := time.Now()
	inEffect := func(ctx context.Context) error {
		before, err := scrapeAPIServer(ctx, cs.RESTClient())
		if err != nil {
			return err
		}
		for _, c := range b.Contenders {
			name, _, err := create(ctx, c)
			if err != nil {
				return fmt.Errorf("%s: %w", c.Title, err)
			}
			if err := check(ctx, c, name); err != nil {
				return fmt.Errorf("%s: %w", c.Title, err)
			}
		}
		after, err := scrapeAPIServer(ctx, cs.RESTClient())
		if err != nil {
			return err
		}
		for _, c := range b.Contenders {
			if c.Webhook == nil && c.Policy == nil {
				continue
			}
			_, n0 := b.callTime(before, c)
			_, n1 := b.callTime(after, c)
			if n1 <= n0 {
				return fmt.Errorf("%s: the apiserver's metrics show no call yet", c.Title)
			}
		}
		return nil
	}
	if err := webhooktest.Poll(ctx, "every contender to act", time.Minute, 50*time.Millisecond, func(ctx context.Context) (bool, error) {
		err := inEffect(ctx)
		return err == nil, err
	}); err != nil {
		return nil, err
	}
	logf("every contender in effect after %s", time.Since(start).Round(time.Millisecond))

	for round := range b.WarmupRounds {
		for i := range b.Contenders {
			c := b.Contenders[(i+round)%len(b.Contenders)]
			if _, _, err := create(ctx, c); err != nil {
				return nil, fmt.Errorf("warm-up, %s: %w", c.Title, err)
			}
		}
	}

	results := make([]ContenderResult, len(b.Contenders))
	lastName := make([]string, len(b.Contenders))
	for i, c := range b.Contenders {
		results[i] = ContenderResult{Contender: c, Latencies: make([]time.Duration, 0, b.Rounds)}
	}
	start = time.Now()
	before, err := scrapeAPIServer(ctx, cs.RESTClient())
	if err != nil {
		return nil, err
	}
	for round := range b.Rounds {
		for k := range b.Contenders {
			i := (k + round) % len(b.Contenders)
			name, d, err := create(ctx, b.Contenders[i])
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				results[i].Errors = append(results[i].Errors, err.Error())
				continue
			}
			results[i].Latencies = append(results[i].Latencies, d)
			lastName[i] = name
		}
		if (round+1)%max(1, b.Rounds/4) == 0 {
			logf("timed creates: round %d of %d", round+1, b.Rounds)
		}
	}
	after, err := scrapeAPIServer(ctx, cs.RESTClient())
	if err != nil {
		return nil, err
	}
	logf("%d timed creates in %s", len(b.Contenders)*b.Rounds, time.Since(start).Round(time.Millisecond))
	for i, c := range b.Contenders {
		slices.Sort(results[i].Latencies)
		s0, n0 := b.callTime(before, c)
		s1, n1 := b.callTime(after, c)
		if n1 > n0 {
			results[i].Calls = int(n1 - n0)
			results[i].CallTime = time.Duration((s1 - s0) / float64(n1-n0) * float64(time.Second))
		}
		if c.Policy != nil {
			// The shipped policy fails open (failurePolicy Ignore): a failed
			// evaluation would show as a fast create, so it counts as a failure.
			_, all0 := before.histogram(policyDurationMetric, map[string]string{"policy": c.policyName()})
			_, all1 := after.histogram(policyDurationMetric, map[string]string{"policy": c.policyName()})
			if failed := (all1 - all0) - (n1 - n0); failed > 0 {
				results[i].Errors = append(results[i].Errors, fmt.Sprintf("%d evaluations of the policy failed (admitted unchanged)", failed))
			}
		}
		// The last timed Rollout still carries (or lacks) the labels.
		if lastName[i] != "" {
			if err := check(ctx, c, lastName[i]); err != nil {
				return nil, fmt.Errorf("%s, after the timed creates: %w", c.Title, err)
			}
		}
	}

	// Metered rounds: scrape, create, scrape. A sample is kept only if the
	// admit step saw exactly that one create.
	admitCreate := map[string]string{"type": "admit", "operation": "CREATE", "rejected": "false"}
	prev, err := scrapeAPIServer(ctx, cs.RESTClient())
	if err != nil {
		return nil, err
	}
	sums := make([]float64, len(b.Contenders))
	for round := range b.MeteredRounds {
		for k := range b.Contenders {
			i := (k + round) % len(b.Contenders)
			if _, _, err := create(ctx, b.Contenders[i]); err != nil {
				results[i].Errors = append(results[i].Errors, err.Error())
			}
			cur, err := scrapeAPIServer(ctx, cs.RESTClient())
			if err != nil {
				return nil, err
			}
			s0, n0 := prev.histogram(stepDurationMetric, admitCreate)
			s1, n1 := cur.histogram(stepDurationMetric, admitCreate)
			if n1-n0 == 1 {
				sums[i] += s1 - s0
				results[i].AdmitSamples++
			}
			prev = cur
		}
	}
	for i := range results {
		if n := results[i].AdmitSamples; n > 0 {
			results[i].AdmitStep = time.Duration(sums[i] / float64(n) * float64(time.Second))
		}
	}
	return results, nil
}

// register creates the contender's namespace and its webhook configuration
// or policy and binding, each selecting only that namespace.
func (b Creates) register(ctx context.Context, cs kubernetes.Interface, c Contender) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.Namespace(), Labels: map[string]string{"bench": c.Key}}}
	if c.Policy != nil {
		if c.Policy.Mode != harness.ModeNamespaceOptIn {
			return fmt.Errorf("the policy is rendered for mode %s; the benchmark needs opt-in, so that it selects one namespace", c.Policy.Mode)
		}
		ns.Labels[harness.InjectLabel] = harness.InjectEnabled
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return err
	}
	only := &metav1.LabelSelector{MatchLabels: map[string]string{"bench": c.Key}}
	if c.Webhook != nil {
		url := c.Webhook.URL + PathRollout
		m := &admissionregv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: c.webhookName()},
			Webhooks: []admissionregv1.MutatingWebhook{{
				Name:              c.webhookName(),
				ClientConfig:      admissionregv1.WebhookClientConfig{URL: &url, CABundle: b.CAPEM},
				Rules:             []admissionregv1.RuleWithOperations{rolloutRule()},
				NamespaceSelector: only,
				// Fail, not canary-tagger's Ignore: a failing call must show as
				// a failed create, not as a fast one.
				FailurePolicy:           ptr.To(admissionregv1.Fail),
				MatchPolicy:             ptr.To(admissionregv1.Equivalent),
				SideEffects:             ptr.To(admissionregv1.SideEffectClassNone),
				TimeoutSeconds:          ptr.To[int32](5),
				AdmissionReviewVersions: []string{"v1"},
				ReinvocationPolicy:      ptr.To(admissionregv1.IfNeededReinvocationPolicy),
			}},
		}
		if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, m, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	if p := c.Policy; p != nil {
		api := cs.AdmissionregistrationV1()
		if _, err := api.MutatingAdmissionPolicies().Create(ctx, p.Mutating, metav1.CreateOptions{}); err != nil {
			return err
		}
		if _, err := api.MutatingAdmissionPolicyBindings().Create(ctx, p.MutatingBinding, metav1.CreateOptions{}); err != nil {
			return err
		}
		if _, err := api.ValidatingAdmissionPolicies().Create(ctx, p.Validating, metav1.CreateOptions{}); err != nil {
			return err
		}
		if _, err := api.ValidatingAdmissionPolicyBindings().Create(ctx, p.ValidatingBinding, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	return nil
}

// callTime is the apiserver's own duration sum and count for the
// contender's webhook or policy.
func (b Creates) callTime(m metrics, c Contender) (float64, uint64) {
	switch {
	case c.Webhook != nil:
		return m.histogram(webhookDurationMetric, map[string]string{"name": c.webhookName()})
	case c.Policy != nil:
		return m.histogram(policyDurationMetric, map[string]string{"policy": c.policyName(), "error_type": "no_error"})
	}
	return 0, 0
}

// checkRoleLabels says whether a Rollout read back has (or, if !want, lacks)
// role=stable and role=canary in its ephemeral metadata.
func checkRoleLabels(o *unstructured.Unstructured, want bool) error {
	stable, _, _ := unstructured.NestedString(o.Object, "spec", "strategy", "canary", "stableMetadata", "labels", "role")
	canary, _, _ := unstructured.NestedString(o.Object, "spec", "strategy", "canary", "canaryMetadata", "labels", "role")
	switch {
	case want && (stable != "stable" || canary != "canary"):
		return fmt.Errorf("Rollout %s/%s read back without the role labels (stable %q, canary %q)", o.GetNamespace(), o.GetName(), stable, canary)
	case !want && (stable != "" || canary != ""):
		return fmt.Errorf("Rollout %s/%s read back with role labels nothing here should add (stable %q, canary %q)", o.GetNamespace(), o.GetName(), stable, canary)
	}
	return nil
}

func deepCopy(m map[string]any) map[string]any { return deepCopyValue(m).(map[string]any) }

func deepCopyValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		c := make(map[string]any, len(t))
		for k, x := range t {
			c[k] = deepCopyValue(x)
		}
		return c
	case []any:
		c := make([]any, len(t))
		for i, x := range t {
			c[i] = deepCopyValue(x)
		}
		return c
	default:
		return v
	}
}
