package install

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/canary-tagger/canary-tagger/test/internal/harness"
	"github.com/canary-tagger/canary-tagger/webhook/config"
	"github.com/canary-tagger/canary-tagger/webhook/heal"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
)

// TestHealAsChartServiceAccount runs the healer with the rendered container
// args' heal settings as the release's service account, with the chart's
// RBAC and webhook configuration applied to the apiserver (the webhook itself
// unreachable: failurePolicy Ignore admits Rollouts unlabelled). Every verb
// the chart grants for healing is used, and nothing is refused: the scope
// (the configuration's GET, the namespaces' LIST), the Rollouts (LIST,
// PATCH, and the GET after a write refused by a concurrent change), the
// Events on them, the Lease (create, get, update to renew and to release on
// stop) and the election's Event on it. A verb missing from the chart fails
// here.
func TestHealAsChartServiceAccount(t *testing.T) {
	ctx := t.Context()
	const release, ns = "heal", "chart-heal"
	args, cfg := applyHealRBAC(t, release, ns, nil)
	mwc := mustArg(t, args, "webhook-config-name")
	leaseNS := mustArg(t, args, "leader-election-namespace")
	interval, err := time.ParseDuration(mustArg(t, args, "heal-interval"))
	if err != nil || interval != heal.DefaultInterval {
		t.Errorf("--heal-interval %v (%v), want the default %s", interval, err, heal.DefaultInterval)
	}

	// Rollouts admitted while the webhook is unreachable.
	apps, optedOut := ns+"-apps", ns+"-quiet"
	for name, labels := range map[string]map[string]string{apps: nil, optedOut: {harness.InjectLabel: harness.InjectDisabled}} {
		if err := env.CreateNamespace(ctx, name, labels); err != nil {
			t.Fatal(err)
		}
	}
	created := map[string]*unstructured.Unstructured{}
	for _, key := range []string{apps + "/healed", apps + "/raced", optedOut + "/left", ns + "/own"} {
		rns, name, _ := strings.Cut(key, "/")
		ro := harness.ProbeRollout(rns, name)
		if err := harness.Eventually(ctx, "the healer's effect", func(ctx context.Context) (bool, error) {
			err := env.Client.Create(ctx, ro)
			return err == nil, err
		}); err != nil {
			t.Fatal(err)
		}
		if v, _, _ := unstructured.NestedMap(ro.Object, "spec", "strategy", "canary", "stableMetadata"); v != nil {
			t.Fatalf("%s admitted labelled: the webhook was reached", key)
		}
		created[key] = ro
	}

	// The service account's client; the first PATCH of apps/raced is
	// preceded by a user's write (admin), so the healer sees a refused write.
	var raced atomic.Bool
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if req.Method == http.MethodPatch && strings.HasSuffix(req.URL.Path, "/namespaces/"+apps+"/rollouts/raced") && raced.CompareAndSwap(false, true) {
				ro, err := env.GetRollout(req.Context(), apps, "raced")
				if err == nil {
					_ = unstructured.SetNestedStringMap(ro.Object, map[string]string{config.DefaultLabelKey: "mine"}, "spec", "strategy", "canary", "canaryMetadata", "labels")
					err = env.Client.Update(req.Context(), ro)
				}
				if err != nil {
					return nil, fmt.Errorf("the concurrent write: %w", err)
				}
			}
			return rt.RoundTrip(req)
		})
	}

	logger, logLines := healerLog(t)

	rules := rulesOf(t, args)
	h := harness.StartHealer(heal.Options{
		Rules:                   rules.Rollout,
		CheckWorkloadRef:        true,
		WebhookConfigName:       mwc,
		Interval:                200 * time.Millisecond, // the chart's 1m, shortened
		Logger:                  logger,
		RESTConfig:              func() (*rest.Config, error) { return rest.CopyConfig(cfg), nil },
		LeaderElection:          true,
		LeaderElectionNamespace: leaseNS,
	})
	stopped := false
	defer func() {
		if !stopped {
			_ = h.Stop()
		}
	}()

	// Healed, the concurrent write kept, the rest untouched.
	if err := harness.Eventually(ctx, "the healer's effect", func(ctx context.Context) (bool, error) {
		for _, name := range []string{"healed", "raced"} {
			ro, err := env.GetRollout(ctx, apps, name)
			if err != nil {
				return false, err
			}
			if v, _, _ := unstructured.NestedString(ro.Object, "spec", "strategy", "canary", "stableMetadata", "labels", config.DefaultLabelKey); v != config.DefaultStableValue {
				return false, fmt.Errorf("%s/%s not healed after %d passes", apps, name, h.Passes())
			}
		}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if !raced.Load() {
		t.Errorf("no concurrent write happened")
	}
	ro, err := env.GetRollout(ctx, apps, "raced")
	if err != nil {
		t.Fatal(err)
	}
	if v, _, _ := unstructured.NestedString(ro.Object, "spec", "strategy", "canary", "canaryMetadata", "labels", config.DefaultLabelKey); v != "mine" {
		t.Errorf("the concurrent write's canary value became %q", v)
	}

	// The Events on the healed Rollouts (events.k8s.io create).
	if err := harness.Eventually(ctx, "the healer's effect", func(ctx context.Context) (bool, error) {
		list := &eventsv1.EventList{}
		if err := env.Client.List(ctx, list, client.InNamespace(apps)); err != nil {
			return false, err
		}
		healed := map[string]bool{}
		for _, e := range list.Items {
			if e.Reason == heal.ReasonHealed {
				healed[e.Regarding.Name] = true
			}
		}
		return healed["healed"] && healed["raced"], fmt.Errorf("Healed Events for %v", healed)
	}); err != nil {
		t.Error(err)
	}

	// The Lease: created and held; renewed (update) while the passes run.
	lease := &coordinationv1.Lease{}
	leaseKey := client.ObjectKey{Namespace: leaseNS, Name: heal.LeaseName(mwc)}
	if err := env.Client.Get(ctx, leaseKey, lease); err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		t.Fatalf("Lease %s: %v, holder %v", leaseKey, err, lease.Spec.HolderIdentity)
	}
	renewed := lease.Spec.RenewTime
	if err := harness.Eventually(ctx, "the healer's effect", func(ctx context.Context) (bool, error) {
		if err := env.Client.Get(ctx, leaseKey, lease); err != nil {
			return false, err
		}
		return !lease.Spec.RenewTime.Equal(renewed), fmt.Errorf("Lease not renewed since %v", renewed)
	}); err != nil {
		t.Error(err)
	}
	// The election's Event on the Lease (core events create).
	if err := harness.Eventually(ctx, "the healer's effect", func(ctx context.Context) (bool, error) {
		list := &corev1.EventList{}
		if err := env.Client.List(ctx, list, client.InNamespace(leaseNS)); err != nil {
			return false, err
		}
		for _, e := range list.Items {
			if e.InvolvedObject.Kind == "Lease" && e.InvolvedObject.Name == leaseKey.Name && e.Reason == "LeaderElection" {
				return true, nil
			}
		}
		return false, fmt.Errorf("no LeaderElection Event on the Lease")
	}); err != nil {
		t.Error(err)
	}

	// Several passes later: the opted-out and own namespaces' Rollouts untouched.
	if err := h.WaitPasses(ctx, h.Passes()+3, harness.DefaultTimeout); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{optedOut + "/left", ns + "/own"} {
		rns, name, _ := strings.Cut(key, "/")
		now, err := env.GetRollout(ctx, rns, name)
		if err != nil {
			t.Fatal(err)
		}
		if now.GetResourceVersion() != created[key].GetResourceVersion() {
			t.Errorf("%s was written: out of the chart's scope", key)
		}
	}

	// Released on stop (update).
	stopped = true
	if err := h.Stop(); err != nil {
		t.Error(err)
	}
	if err := env.Client.Get(ctx, leaseKey, lease); err != nil {
		t.Fatal(err)
	}
	if lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity != "" {
		t.Errorf("Lease still held by %s after the healer stopped", *lease.Spec.HolderIdentity)
	}

	// Nothing refused, nothing failed.
	superseded := 0
	for i, rep := range h.Reports() {
		superseded += rep.Superseded
		if rep.Err != nil || rep.Outcomes[outcome.Error] != 0 {
			t.Errorf("pass %d: error %v, outcomes %v", i+1, rep.Err, rep.Outcomes)
		}
		if !rep.Scope.Heals() {
			t.Errorf("pass %d: %s", i+1, rep.Scope)
		}
	}
	if superseded != 1 {
		t.Errorf("%d writes refused by the concurrent change, want 1", superseded)
	}
	noRefusals(t, logLines())
}

// applyHealRBAC applies the chart's ServiceAccount, RBAC and webhook
// configuration, rendered with values into ns, and returns the container's
// args and a client configuration impersonating the ServiceAccount.
func applyHealRBAC(t *testing.T, release, ns string, values map[string]any) ([]string, *rest.Config) {
	t.Helper()
	ctx := t.Context()
	r := renderChart(t, release, ns, chartModes()[0], values)
	dep := only[appsv1.Deployment](t, r, "Deployment")
	args := effectiveArgs(t, dep)
	if v, _ := argValue(args, "leader-elect"); v != "true" {
		t.Fatalf("the chart does not elect the healer: %q", args)
	}
	if err := env.CreateNamespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	var docs []string
	for _, d := range r.docs {
		switch d.Kind {
		case "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration":
			docs = append(docs, string(d.Raw))
		}
	}
	manifest := strings.Join(docs, "\n---\n")
	t.Cleanup(func() {
		env.Kubectl.RunStdin(context.Background(), strings.NewReader(manifest), "delete", "--ignore-not-found", "-f", "-")
	})
	if res := env.Kubectl.RunStdin(ctx, strings.NewReader(manifest), "apply", "--server-side", "--field-manager=helm", "-f", "-"); !res.OK() {
		t.Fatalf("applying the RBAC and the webhook configuration: %s", res)
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + ns + ":" + dep.Spec.Template.Spec.ServiceAccountName,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
	return args, cfg
}

// rulesOf are the rules the container's args set.
func rulesOf(t *testing.T, args []string) config.Rules {
	t.Helper()
	rules, err := (config.Flags{LabelKey: mustArg(t, args, "label-key"), StableValue: mustArg(t, args, "stable-value"),
		CanaryValue: mustArg(t, args, "canary-value"), TagName: mustArg(t, args, "tag-name"), AgentSelector: mustArg(t, args, "agent-selector")}).Validate()
	if err != nil {
		t.Fatal(err)
	}
	return rules
}

// healerLog keeps every log line, to find a refusal the healer only logs,
// and shows the last ones if the test fails.
func healerLog(t *testing.T) (logr.Logger, func() []string) {
	var mu sync.Mutex
	var lines []string
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			t.Logf("healer log:\n%s", tailLines(strings.Join(lines, "\n"), 60))
			mu.Unlock()
		}
	})
	return funcr.New(func(prefix, args string) {
			mu.Lock()
			lines = append(lines, prefix+" "+args)
			mu.Unlock()
		}, funcr.Options{Verbosity: 1}), func() []string {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(lines)
		}
}

func noRefusals(t *testing.T, lines []string) {
	t.Helper()
	for _, l := range lines {
		if strings.Contains(strings.ToLower(l), "forbidden") {
			t.Errorf("refused: %s", l)
		}
	}
}
