package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/canary-tagger/canary-tagger/test/internal/harness"
	"github.com/canary-tagger/canary-tagger/webhook/heal"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
)

// healInterval is short so that "over several passes" takes a second; the
// tests wait on passes, never on time.
const healInterval = 200 * time.Millisecond

// healOptions are serve's healer options for this control plane: the
// webhook's rules, the installed configuration's name, a log file dumped on
// failure.
func healOptions(t *testing.T, name string) heal.Options {
	t.Helper()
	wc, err := harness.RenderWebhookConfiguration(t.Context(), env.Kubectl, env.Repo, harness.ModeClusterWide)
	must(t, err)
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	must(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s log:\n%s", name, b)
		}
	})
	return heal.Options{
		Rules:             env.Rules.Rollout,
		CheckWorkloadRef:  true,
		WebhookConfigName: wc.Object.Name,
		Interval:          healInterval,
		Logger:            zap.New(zap.WriteTo(f)),
		RESTConfig:        func() (*rest.Config, error) { return rest.CopyConfig(env.Config), nil },
	}
}

// startHealer runs a healer until the test ends.
func startHealer(t *testing.T, o heal.Options) *harness.Healer {
	t.Helper()
	h := harness.StartHealer(o)
	t.Cleanup(func() {
		if err := h.Stop(); err != nil {
			t.Error(err)
		}
	})
	return h
}

// waitMorePasses waits until n more passes than now have finished.
func waitMorePasses(t *testing.T, h *harness.Healer, n int) {
	t.Helper()
	must(t, h.WaitPasses(t.Context(), h.Passes()+n, harness.DefaultTimeout))
}

// createRollout creates harness.ProbeRollout (a canary with steps, no
// metadata) with edit applied, as stored.
func createRollout(t *testing.T, ns, name string, edit func(o map[string]any)) *unstructured.Unstructured {
	t.Helper()
	r := harness.ProbeRollout(ns, name)
	if edit != nil {
		edit(r.Object)
	}
	must(t, env.Client.Create(t.Context(), r))
	return getRollout(t, ns, name)
}

func set(o map[string]any, value any, path ...string) {
	if err := unstructured.SetNestedField(o, value, path...); err != nil {
		panic(err)
	}
}

func roleAt(r *unstructured.Unstructured, side string) string {
	v, _, _ := unstructured.NestedString(r.Object, "spec", "strategy", "canary", side, "labels", env.Rules.Rollout.LabelKey)
	return v
}

// stopWebhook stops the webhook server (fail-open admits unlabelled) until the test ends.
func stopWebhook(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { restoreDefault(t) })
	must(t, env.Webhook.Stop(t.Context()))
}

// events lists the events.k8s.io Events regarding name in ns.
func events(t *testing.T, ns, name string) []eventsv1.Event {
	t.Helper()
	list := &eventsv1.EventList{}
	must(t, env.Client.List(t.Context(), list, client.InNamespace(ns)))
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// waitEvent waits for an Event regarding name with reason.
func waitEvent(t *testing.T, ns, name, reason string) eventsv1.Event {
	t.Helper()
	var found eventsv1.Event
	must(t, harness.Eventually(t.Context(), "an Event of the reason", func(context.Context) (bool, error) {
		for _, e := range events(t, ns, name) {
			if e.Reason == reason {
				found = e
				return true, nil
			}
		}
		return false, fmt.Errorf("no %s Event regarding %s/%s", reason, ns, name)
	}))
	return found
}

// TestHealRolloutAdmittedWhileWebhookDown: Rollouts created while the webhook
// was unreachable (fail-open) are written by the first pass once healing
// runs — what admission would have written, a user's value kept — with an
// Event saying what and why, the field manager canary-tagger and the heal
// metric; after that, passes write nothing (no write loop).
func TestHealRolloutAdmittedWhileWebhookDown(t *testing.T) {
	ns := newNamespace(t, nil)
	stopWebhook(t)
	plain := createRollout(t, ns, "plain", nil)
	wantUntouched(t, plain)
	mine := createRollout(t, ns, "mine", func(o map[string]any) {
		set(o, map[string]any{"labels": map[string]any{env.Rules.Rollout.LabelKey: "mine"}}, "spec", "strategy", "canary", "canaryMetadata")
	})
	if roleAt(mine, "stableMetadata") != "" {
		t.Fatalf("admitted with a stable label while the webhook was down")
	}
	must(t, env.Webhook.Start(t.Context()))
	must(t, env.WaitWebhookServing(t.Context()))
	before, err := env.Metrics(t.Context())
	must(t, err)

	h := startHealer(t, healOptions(t, "healer"))
	must(t, h.WaitPasses(t.Context(), 1, harness.DefaultTimeout))
	healed := getRollout(t, ns, "plain")
	wantInjected(t, healed)
	healedMine := getRollout(t, ns, "mine")
	if s, c := roleAt(healedMine, "stableMetadata"), roleAt(healedMine, "canaryMetadata"); s != env.Rules.Rollout.StableValue || c != "mine" {
		t.Errorf("Rollout with the user's canary value: stable %q, canary %q; want %q and the user's %q", s, c, env.Rules.Rollout.StableValue, "mine")
	}
	managers := map[string]string{}
	for _, mf := range healed.GetManagedFields() {
		managers[mf.Manager] = string(mf.Operation)
	}
	if managers[heal.FieldManager] != "Update" {
		t.Errorf("managed fields %v, want an Update by %s", managers, heal.FieldManager)
	}
	e := waitEvent(t, ns, "plain", heal.ReasonHealed)
	if e.Type != "Normal" || e.ReportingController != heal.FieldManager ||
		!strings.Contains(e.Note, "added stableMetadata.labels.role=stable, canaryMetadata.labels.role=canary") ||
		!strings.Contains(e.Note, "admitted without canary-tagger's webhook") {
		t.Errorf("Event %s %s from %s: %q", e.Type, e.Reason, e.ReportingController, e.Note)
	}
	if n := waitEvent(t, ns, "mine", heal.ReasonHealed).Note; strings.Contains(n, "canaryMetadata") {
		t.Errorf("the Event for the user's value says the canary label was added: %q", n)
	}
	after, err := env.Metrics(t.Context())
	must(t, err)
	injected := map[string]string{"kind": "Rollout", "outcome": string(outcome.Injected)}
	if d := after.Sum("canary_tagger_heal_objects_total", injected) - before.Sum("canary_tagger_heal_objects_total", injected); d < 2 {
		t.Errorf("canary_tagger_heal_objects_total{outcome=injected} rose by %v, want at least 2", d)
	}

	// Converged: several more passes write nothing, here or anywhere.
	first := h.Passes()
	waitMorePasses(t, h, 4)
	for i, rep := range h.Reports()[first:] {
		if rep.Patches != 0 || rep.Err != nil {
			t.Errorf("pass %d after convergence: %d patches, error %v", first+i+1, rep.Patches, rep.Err)
		}
		if rep.Requests["patch"] != 0 || rep.Requests["list"] < 2 {
			t.Errorf("pass %d after convergence made requests %v, want LIST pages only (and the configuration's GET)", first+i+1, rep.Requests)
		}
	}
	for name, was := range map[string]*unstructured.Unstructured{"plain": healed, "mine": healedMine} {
		now := getRollout(t, ns, name)
		if now.GetResourceVersion() != was.GetResourceVersion() || now.GetGeneration() != was.GetGeneration() {
			t.Errorf("%s written again after it was healed: resourceVersion %s → %s, generation %d → %d",
				name, was.GetResourceVersion(), now.GetResourceVersion(), was.GetGeneration(), now.GetGeneration())
		}
	}
}

// TestHealLeavesAloneWhatAdmissionLeavesAlone: an opted-out namespace, an
// annotated Rollout and a Rollout with the key in its selector or template
// are never written over several passes; each clash gets one Warning Event
// with the admission warning's text, not one per pass.
func TestHealLeavesAloneWhatAdmissionLeavesAlone(t *testing.T) {
	apps := newNamespace(t, nil)
	optedOut := newNamespace(t, map[string]string{harness.InjectLabel: harness.InjectDisabled})
	stopWebhook(t)
	key := env.Rules.Rollout.LabelKey
	alone := map[string]*unstructured.Unstructured{
		"opted-out": createRollout(t, optedOut, "opted-out", nil),
		"annotated": createRollout(t, apps, "annotated", func(o map[string]any) {
			set(o, map[string]any{"canary-tagger.io/inject": "false"}, "metadata", "annotations")
		}),
		"selector-clash": createRollout(t, apps, "selector-clash", func(o map[string]any) {
			set(o, "web", "spec", "selector", "matchLabels", key)
			set(o, "web", "spec", "template", "metadata", "labels", key)
		}),
		"template-clash": createRollout(t, apps, "template-clash", func(o map[string]any) {
			set(o, "web", "spec", "template", "metadata", "labels", key)
		}),
	}
	h := startHealer(t, healOptions(t, "healer"))
	for name, says := range map[string]string{
		"selector-clash": "already used in spec.selector.matchLabels",
		"template-clash": "already used in spec.template.metadata.labels",
	} {
		e := waitEvent(t, apps, name, heal.ReasonLabelConflict)
		if e.Type != "Warning" || !strings.Contains(e.Note, `canary-tagger: label "`+key+`" not injected: `+says) {
			t.Errorf("%s: Event %s %q", name, e.Type, e.Note)
		}
	}
	waitMorePasses(t, h, 4)
	for name, was := range alone {
		now := getRollout(t, was.GetNamespace(), name)
		wantUntouched(t, now)
		if now.GetResourceVersion() != was.GetResourceVersion() || now.GetGeneration() != was.GetGeneration() {
			t.Errorf("%s written: resourceVersion %s → %s, generation %d → %d", name,
				was.GetResourceVersion(), now.GetResourceVersion(), was.GetGeneration(), now.GetGeneration())
		}
		evs := events(t, was.GetNamespace(), name)
		want := 0
		if strings.HasSuffix(name, "-clash") {
			want = 1
		}
		if len(evs) != want {
			t.Errorf("%s: %d Events after %d passes, want %d", name, len(evs), h.Passes(), want)
		}
		for _, e := range evs {
			if e.Series != nil {
				t.Errorf("%s: the Event was repeated %d times", name, e.Series.Count)
			}
		}
	}
}

// TestHealNeverOverwritesAConcurrentWrite: a user's write that lands between
// the healer's LIST and its PATCH is kept — the patch's resourceVersion test
// fails, which is not an error — and the next pass heals the new version.
// Without the test the stale add would replace the user's canaryMetadata.
func TestHealNeverOverwritesAConcurrentWrite(t *testing.T) {
	ns := newNamespace(t, nil)
	stopWebhook(t)
	createRollout(t, ns, "raced", nil)
	key := env.Rules.Rollout.LabelKey

	var raced atomic.Bool
	o := healOptions(t, "healer")
	o.RESTConfig = func() (*rest.Config, error) {
		cfg := rest.CopyConfig(env.Config)
		cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
			return roundTripper(func(req *http.Request) (*http.Response, error) {
				if req.Method == http.MethodPatch && strings.HasSuffix(req.URL.Path, "/namespaces/"+ns+"/rollouts/raced") && raced.CompareAndSwap(false, true) {
					// The user's write, through another client, first.
					r, err := env.GetRollout(req.Context(), ns, "raced")
					if err == nil {
						set(r.Object, map[string]any{"labels": map[string]any{key: "mine"}}, "spec", "strategy", "canary", "canaryMetadata")
						err = env.Client.Update(req.Context(), r)
					}
					if err != nil {
						return nil, fmt.Errorf("the concurrent write: %w", err)
					}
				}
				return rt.RoundTrip(req)
			})
		}
		return cfg, nil
	}
	h := startHealer(t, o)
	must(t, harness.Eventually(t.Context(), "the healer to heal", func(context.Context) (bool, error) {
		r := getRollout(t, ns, "raced")
		if roleAt(r, "stableMetadata") == "" {
			return false, fmt.Errorf("not healed after %d passes", h.Passes())
		}
		return true, nil
	}))
	r := getRollout(t, ns, "raced")
	if !raced.Load() {
		t.Fatal("no concurrent write happened")
	}
	if got := roleAt(r, "canaryMetadata"); got != "mine" {
		t.Errorf("the user's canary value became %q", got)
	}
	superseded := 0
	for _, rep := range h.Reports() {
		superseded += rep.Superseded
		if rep.Err != nil || rep.Outcomes[outcome.Error] != 0 {
			t.Errorf("a pass reported an error: %v, outcomes %v", rep.Err, rep.Outcomes)
		}
	}
	if superseded != 1 {
		t.Errorf("%d superseded writes, want 1", superseded)
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestHealLeaderElection: two healers on one Lease; only the holder runs
// passes and writes; cancelling it releases the Lease and the other heals.
func TestHealLeaderElection(t *testing.T) {
	ns := newNamespace(t, nil)
	stopWebhook(t)
	withLease := func(name string) heal.Options {
		o := healOptions(t, name)
		o.LeaderElection, o.LeaderElectionNamespace = true, ns
		return o
	}
	first := harness.StartHealer(withLease("first"))
	stopFirst := func() {
		if err := first.Stop(); err != nil {
			t.Error(err)
		}
	}
	defer stopFirst()
	must(t, first.WaitPasses(t.Context(), 1, harness.DefaultTimeout))
	second := startHealer(t, withLease("second"))

	lease := &coordinationv1.Lease{}
	leaseName := heal.LeaseName(healOptions(t, "name").WebhookConfigName)
	must(t, env.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: leaseName}, lease))
	holder := ""
	if lease.Spec.HolderIdentity != nil {
		holder = *lease.Spec.HolderIdentity
	}
	if holder == "" {
		t.Fatalf("Lease %s/%s has no holder while the first healer heals", ns, leaseName)
	}

	createRollout(t, ns, "while-first-leads", nil)
	must(t, harness.Eventually(t.Context(), "the lease holder to heal", func(context.Context) (bool, error) {
		ok := roleAt(getRollout(t, ns, "while-first-leads"), "stableMetadata") != ""
		return ok, fmt.Errorf("not healed")
	}))
	waitMorePasses(t, first, 3)
	if n := second.Passes(); n != 0 {
		t.Fatalf("the second healer ran %d passes while the first held the Lease", n)
	}

	stopFirst()
	stopped := first.Passes()
	createRollout(t, ns, "after-handover", nil)
	must(t, second.WaitPasses(t.Context(), 1, harness.DefaultTimeout))
	must(t, harness.Eventually(t.Context(), "the new leader to heal", func(context.Context) (bool, error) {
		ok := roleAt(getRollout(t, ns, "after-handover"), "stableMetadata") != ""
		return ok, fmt.Errorf("not healed after the handover")
	}))
	if first.Passes() != stopped {
		t.Errorf("the first healer ran passes after it was stopped")
	}
	must(t, env.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: leaseName}, lease))
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == holder || *lease.Spec.HolderIdentity == "" {
		t.Errorf("Lease holder %v after the handover, was %q", lease.Spec.HolderIdentity, holder)
	}
}

// TestHealFollowsTheConfiguration: without the webhook configuration nothing
// is healed and a pass only reads the configuration; once it is installed
// again the next pass heals, without a restart (level-triggered).
func TestHealFollowsTheConfiguration(t *testing.T) {
	ns := newNamespace(t, nil)
	t.Cleanup(func() { restoreDefault(t) })
	must(t, env.UninstallWebhookConfiguration(t.Context()))
	was := createRollout(t, ns, "unconfigured", nil)

	h := startHealer(t, healOptions(t, "healer"))
	waitMorePasses(t, h, 3)
	for i, rep := range h.Reports() {
		if rep.Scope.Heals() || !strings.Contains(rep.Scope.NotHealed, "not found") {
			t.Errorf("pass %d: scope %s", i+1, rep.Scope)
		}
		if rep.Requests["list"] != 0 || rep.Requests["patch"] != 0 {
			t.Errorf("pass %d without a configuration made requests %v", i+1, rep.Requests)
		}
	}
	if now := getRollout(t, ns, "unconfigured"); now.GetResourceVersion() != was.GetResourceVersion() {
		t.Errorf("written without a webhook configuration")
	}

	must(t, env.InstallWebhookConfiguration(t.Context(), harness.ModeClusterWide))
	must(t, harness.Eventually(t.Context(), "the healer to heal after the configuration returns", func(context.Context) (bool, error) {
		ok := roleAt(getRollout(t, ns, "unconfigured"), "stableMetadata") != ""
		return ok, fmt.Errorf("not healed after the configuration was installed (%d passes)", h.Passes())
	}))
	wantInjected(t, getRollout(t, ns, "unconfigured"))
}
