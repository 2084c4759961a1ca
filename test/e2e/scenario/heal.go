package scenario

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/canary-tagger/canary-tagger/webhook/heal"
	healoutcome "github.com/canary-tagger/canary-tagger/webhook/outcome"
	"github.com/canary-tagger/canary-tagger/webhook/rollout"
	"github.com/canary-tagger/canary-tagger/webhook/webhooktest"
)

// Steps 14-16: canary-tagger serve heals (webhook/heal). Rollouts that
// reached the apiserver while the webhook was down get, from the healer,
// what admission would have written, and the real Argo Rollouts controller
// relabels their running pods in place; what admission leaves alone, the
// healer leaves alone; with two replicas, only the holder of the Lease heals.

// The names the heal steps use.
const (
	// Step 14: (a) a Rollout created while the webhook is down, (b) one
	// deployed (a new image) while it is down.
	HealNewNamespace    = "heal-new"
	HealDeployNamespace = "heal-deploy"
	// Step 15: Rollouts the healer must never write.
	HealAloneNamespace = "heal-alone"
	OptedOutRollout    = "opted-out"
	ClashRollout       = "clash"
	OwnValuesRollout   = "own-values"
	OwnStableValue     = "live"
	OwnCanaryValue     = "trial"
	// Step 16: the Lease of two replicas, and the Rollout created after
	// the leader died.
	HealElectionNamespace = "heal-election"
	// WebhookConfigName is the harness's MutatingWebhookConfiguration
	// (serve's default --webhook-config-name): its selectors are the
	// healer's scope, its name the Lease's.
	WebhookConfigName = "canary-tagger"

	healPassesMetric   = "canary_tagger_heal_passes_total"
	healRequestsMetric = "canary_tagger_heal_requests_total"
	healObjectsMetric  = "canary_tagger_heal_objects_total"
	// healPassesObserved: passes watched for "nothing written". The first
	// may have begun before what it is to see was there; the others began
	// after, so at least three intervals are judged.
	healPassesObserved = 4
)

// in is the scenario on the seed's Rollout in namespace ns: the same clients,
// Datadog stand-in and analysis state.
func (s *Scenario) in(ns string) *Scenario {
	o := *s
	o.env.Namespace = ns
	return &o
}

// roleAt is the role label of the canary strategy's stableMetadata or canaryMetadata.
func roleAt(u *unstructured.Unstructured, field string) (string, bool) {
	v, ok, _ := unstructured.NestedString(u.Object, "spec", "strategy", "canary", field, "labels", LabelKey)
	return v, ok
}

func hasEphemeralMetadata(u *unstructured.Unstructured) bool {
	for _, f := range []string{"stableMetadata", "canaryMetadata"} {
		if _, ok, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", "strategy", "canary", f); ok {
			return true
		}
	}
	return false
}

func managedBy(u *unstructured.Unstructured, manager string) bool {
	for _, mf := range u.GetManagedFields() {
		if mf.Manager == manager {
			return true
		}
	}
	return false
}

// healCounts is one scrape of a serve's heal metrics.
type healCounts struct {
	passes, patches float64
	objects         map[healoutcome.Outcome]float64
}

func scrapeHeal(ctx context.Context, url string) (healCounts, error) {
	m, err := webhooktest.ScrapeMetrics(ctx, url)
	if err != nil {
		return healCounts{}, err
	}
	hc := healCounts{
		// Absent (0) on a replica that has not healed: the healer registers
		// its metrics when it starts, on the elected replica only.
		passes:  m.Sum(healPassesMetric, map[string]string{"kind": "Rollout"}),
		patches: m.Sum(healRequestsMetric, map[string]string{"verb": "patch"}),
		objects: map[healoutcome.Outcome]float64{},
	}
	for _, o := range healoutcome.All {
		hc.objects[o] = m.Sum(healObjectsMetric, map[string]string{"kind": "Rollout", "outcome": string(o)})
	}
	return hc, nil
}

// healEvent is the newest Event canary-tagger reported with reason about
// the Rollout name in the scenario's namespace (found false if none).
func (s *Scenario) healEvent(ctx context.Context, name, reason string) (eventsv1.Event, bool, error) {
	list, err := s.cs.EventsV1().Events(s.env.Namespace).List(ctx, listOptions(""))
	if err != nil {
		return eventsv1.Event{}, false, err
	}
	var found eventsv1.Event
	ok := false
	for _, e := range list.Items {
		if e.Regarding.Kind == "Rollout" && e.Regarding.Name == name && e.Reason == reason && e.ReportingController == heal.FieldManager &&
			(!ok || e.CreationTimestamp.After(found.CreationTimestamp.Time)) {
			found, ok = e, true
		}
	}
	return found, ok, nil
}

// workload is what a Rollout runs: its pods and ReplicaSets by UID.
type workload struct {
	pods, sets map[string]string // UID → name
}

func (s *Scenario) workload(ctx context.Context, pods []podInfo) (workload, error) {
	w := workload{pods: map[string]string{}, sets: map[string]string{}}
	for _, p := range pods {
		w.pods[p.UID] = p.Name
	}
	list, err := s.cs.AppsV1().ReplicaSets(s.env.Namespace).List(ctx, listOptions("app=demo"))
	if err != nil {
		return w, err
	}
	for _, rs := range list.Items {
		w.sets[string(rs.UID)] = rs.Name
	}
	return w, nil
}

// same says how now differs from w ("" if it does not).
func (w workload) same(now workload) string {
	diff := func(what string, was, is map[string]string) string {
		var gone, added []string
		for uid, name := range was {
			if _, ok := is[uid]; !ok {
				gone = append(gone, name)
			}
		}
		for uid, name := range is {
			if _, ok := was[uid]; !ok {
				added = append(added, name)
			}
		}
		if len(gone)+len(added) == 0 {
			return ""
		}
		sort.Strings(gone)
		sort.Strings(added)
		return fmt.Sprintf("%s gone %v, new %v", what, gone, added)
	}
	var out []string
	for _, d := range []string{diff("pods", w.pods, now.pods), diff("ReplicaSets", w.sets, now.sets)} {
		if d != "" {
			out = append(out, d)
		}
	}
	return strings.Join(out, "; ")
}

func (w workload) setNames() string {
	var names []string
	for _, n := range w.sets {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// unlabelled: every pod Ready, none terminating, none with the role label.
func unlabelled(pods []podInfo) bool {
	for _, p := range pods {
		if !p.Ready || p.Terminating || p.HasRole {
			return false
		}
	}
	return true
}

// waitHealed waits until the Rollout in the scenario's namespace carries
// stable and canary in its ephemeral metadata, written by the healer (its
// field manager) with a Healed Event, and returns the Event.
func (s *Scenario) waitHealed(ctx context.Context, name, stable, canary string) (eventsv1.Event, error) {
	var ev eventsv1.Event
	err := s.waitFor(ctx, fmt.Sprintf("%s/%s healed by canary-tagger", s.env.Namespace, name), func(ctx context.Context) (bool, string, error) {
		u, err := s.dyn.Resource(rolloutGVR).Namespace(s.env.Namespace).Get(ctx, name, metav1GetOptions)
		if err != nil {
			return false, "", err
		}
		gotS, _ := roleAt(u, "stableMetadata")
		gotC, _ := roleAt(u, "canaryMetadata")
		e, found, err := s.healEvent(ctx, name, heal.ReasonHealed)
		if err != nil {
			return false, "", err
		}
		seen := fmt.Sprintf("stableMetadata %s=%q, canaryMetadata %s=%q, managed by %s: %t, %s Event: %t",
			LabelKey, gotS, LabelKey, gotC, heal.FieldManager, managedBy(u, heal.FieldManager), heal.ReasonHealed, found)
		ev = e
		return gotS == stable && gotC == canary && managedBy(u, heal.FieldManager) && found, seen, nil
	})
	return ev, err
}

// ---- step 14 ----

// stepHealDeploy: canary-tagger is down while (a) a Rollout is created and
// (b) another is deployed (a new image, paused at a canary step). Their pods
// carry no role. When it is back, its healer writes the metadata and the
// real Argo controller relabels the same pods, in place; then the shipped
// analysis measures the repaired canary and promotes it.
func (s *Scenario) stepHealDeploy(ctx context.Context, n Narrator) error {
	switch {
	case s.env.StopWebhook == nil || s.env.RestartWebhook == nil:
		return errors.New("the heal steps need Env.StopWebhook and Env.RestartWebhook")
	case s.datadog == nil:
		return errors.New("the repaired canary is measured with the analysis set up by step 7, which has not run")
	}
	fresh, deploy := s.in(HealNewNamespace), s.in(HealDeployNamespace)
	for _, ns := range []string{HealNewNamespace, HealDeployNamespace} {
		if err := s.ensureNamespace(ctx, ns); err != nil {
			return err
		}
	}
	m0, err := s.hookMetrics(ctx)
	if err != nil {
		return err
	}
	n.Say("canary-tagger stopped, as in an outage: its webhook configuration stays, so the apiserver admits Rollouts without it (failurePolicy: Ignore); nothing heals either.")
	if err := s.env.StopWebhook(ctx); err != nil {
		return err
	}

	n.Say("The seed's Rollout created in %s (a) and in %s (b) while the webhook is down:", HealNewNamespace, HealDeployNamespace)
	for _, sc := range []*Scenario{fresh, deploy} {
		if _, _, err := sc.show(ctx, n, nil, "apply", "-n", sc.env.Namespace, "-f", s.env.RolloutFile); err != nil {
			return err
		}
		st, err := sc.rollout(ctx)
		if err != nil {
			return err
		}
		if hasEphemeralMetadata(st.Obj) {
			return fmt.Errorf("%s/%s was stored with stableMetadata or canaryMetadata although canary-tagger is down", sc.env.Namespace, RolloutName)
		}
	}
	m1, err := s.hookMetrics(ctx)
	if err != nil {
		return err
	}
	if d := m1.failOpen[RolloutHook] - m0.failOpen[RolloutHook]; d < 2 {
		return fmt.Errorf("the apiserver failed open %g time(s) on %s, want at least 2 (one per Rollout created)", d, RolloutHook)
	}
	n.Check("both stored without stableMetadata or canaryMetadata: the apiserver failed open on %s (apiserver_admission_webhook_fail_open_count +%g)",
		RolloutHook, m1.failOpen[RolloutHook]-m0.failOpen[RolloutHook])

	n.Say("Waiting for both to be Healthy: 5 Ready pods each, none with a %s label ...", LabelKey)
	var freshHash string
	for _, sc := range []*Scenario{fresh, deploy} {
		elapsed, err := sc.waitForRollout(ctx, sc.env.Namespace+": Healthy with 5 pods without "+LabelKey, func(_ context.Context, st rolloutState, pods []podInfo, seen string) (bool, string, error) {
			if sc == fresh {
				freshHash = st.StableRS
			}
			return st.Phase == "Healthy" && st.upToDate() && st.StableRS != "" && st.StableRS == st.PodHash &&
				len(pods) == 5 && unlabelled(pods), seen, nil
		})
		if err != nil {
			return err
		}
		n.Check("%s/%s Healthy after %s: 5 pods, none labelled %s", sc.env.Namespace, RolloutName, elapsed, LabelKey)
	}

	n.Say("(b) A new image for %s/%s, still while the webhook is down:", HealDeployNamespace, RolloutName)
	if _, _, err := deploy.show(ctx, n, nil, "argo", "rollouts", "set", "image", RolloutName, "demo="+ImageAfter, "-n", HealDeployNamespace); err != nil {
		return err
	}
	var oldHash, newHash string
	var before [2]workload
	elapsed, err := deploy.waitForRollout(ctx, "paused at step 1 with 1 canary pod and 4 stable pods, none labelled", func(ctx context.Context, st rolloutState, pods []podInfo, seen string) (bool, string, error) {
		if st.Phase != "Paused" || !st.Paused || st.StepIndex != 1 || !st.upToDate() || st.Image != ImageAfter ||
			st.StableRS == "" || st.PodHash == "" || st.PodHash == st.StableRS || !unlabelled(pods) || len(pods) != 5 {
			return false, seen, nil
		}
		oldHash, newHash = st.StableRS, st.PodHash
		counts := map[string]int{}
		for _, p := range pods {
			counts[p.Hash]++
		}
		if counts[newHash] != 1 || counts[oldHash] != 4 {
			return false, seen, nil
		}
		w, err := deploy.workload(ctx, pods)
		before[1] = w
		return err == nil, seen, err
	})
	if err != nil {
		return err
	}
	n.Check("(b) paused at step 1 after %s: 1 canary pod (hash %s) and 4 stable pods (hash %s), none labelled %s: Datadog cannot tell them apart",
		elapsed, newHash, oldHash, LabelKey)
	// By name (the hash is in it): showPods sorts by the role label, which none has.
	if _, _, err := deploy.show(ctx, n, nil, "get", "pods", "-n", HealDeployNamespace, "-l", "app=demo", "--show-labels", "--sort-by=.metadata.name"); err != nil {
		return err
	}
	pods, err := fresh.demoPods(ctx)
	if err != nil {
		return err
	}
	if before[0], err = fresh.workload(ctx, pods); err != nil {
		return err
	}

	n.Say("canary-tagger started again (--heal-interval=%s here); its healer runs a pass at once, then every interval:", s.env.HealInterval)
	restarted := time.Now()
	if err := s.env.RestartWebhook(ctx); err != nil {
		return err
	}
	for _, sc := range []*Scenario{fresh, deploy} {
		ev, err := sc.waitHealed(ctx, RolloutName, StableValue, CanaryValue)
		if err != nil {
			return err
		}
		n.Check("%s/%s healed %s after the restart: stableMetadata %s=%s and canaryMetadata %s=%s, field manager %s, Event %s %s from %s",
			sc.env.Namespace, RolloutName, time.Since(restarted).Round(100*time.Millisecond), LabelKey, StableValue, LabelKey, CanaryValue,
			heal.FieldManager, ev.Type, ev.Reason, ev.ReportingController)
	}
	if _, _, err := deploy.show(ctx, n, nil, "get", "events", "-n", HealDeployNamespace, "--field-selector", "reason="+heal.ReasonHealed,
		"-o", "custom-columns=TYPE:.type,REASON:.reason,FROM:.reportingComponent,OBJECT:.involvedObject.name,MESSAGE:.message"); err != nil {
		return err
	}

	n.Say("Waiting for the Argo Rollouts controller to relabel the running pods ...")
	wants := []struct {
		sc     *Scenario
		counts map[[2]string]int
		paused bool
	}{
		{fresh, map[[2]string]int{{StableValue, freshHash}: 5}, false},
		{deploy, map[[2]string]int{{CanaryValue, newHash}: 1, {StableValue, oldHash}: 4}, true},
	}
	for i, want := range wants {
		var diff string
		elapsed, err := want.sc.waitForRollout(ctx, want.sc.env.Namespace+": the same pods and ReplicaSets, labelled", func(ctx context.Context, st rolloutState, pods []podInfo, seen string) (bool, string, error) {
			now, err := want.sc.workload(ctx, pods)
			if err != nil {
				return false, seen, err
			}
			if diff = before[i].same(now); diff != "" {
				// Argo replaced something: relabelling was not in place.
				return false, seen, webhooktest.StopPolling(fmt.Errorf("%s: %s (%s)", want.sc.env.Namespace, diff, seen))
			}
			counts, settled := countPods(pods)
			if want.paused && (st.Phase != "Paused" || st.StepIndex != 1 || st.PodHash != newHash) || !want.paused && st.Phase != "Healthy" {
				return false, seen, nil
			}
			if !settled || len(counts) != len(want.counts) {
				return false, seen, nil
			}
			for k, c := range want.counts {
				if counts[k] != c {
					return false, seen, nil
				}
			}
			return true, seen, nil
		})
		if err != nil {
			return err
		}
		var got []string
		for k, c := range want.counts {
			got = append(got, fmt.Sprintf("%d %s=%s (hash %s)", c, LabelKey, k[0], k[1]))
		}
		sort.Strings(got)
		n.Check("%s relabelled in place after %s: %s; the same %d pods (UIDs) and ReplicaSets (%s) as before the repair",
			want.sc.env.Namespace, elapsed, strings.Join(got, ", "), len(before[i].pods), before[i].setNames())
	}
	if err := deploy.showPods(ctx, n); err != nil {
		return err
	}

	// The analysis of steps 7-8 on the repaired canary: its queries ask
	// about the values the healer wrote, and the pods answer to them.
	canary, stable, err := deploy.injectedValues(ctx)
	if err != nil {
		return err
	}
	deploy.analysis.canaryValue, deploy.analysis.stableValue = canary, stable
	s.datadog.SetScenario(goodTable(canary, stable))
	n.Say("The repaired canary judged by the shipped analysis: its steps become setWeight 20 / analysis, which restarts them on the same canary (the pod template is unchanged: no new ReplicaSet). The stand-in says canary 1 error in 100 requests, stable 4 in 400.")
	patch, err := json.Marshal([]any{map[string]any{"op": "replace", "path": "/spec/strategy/canary/steps", "value": analysisSteps()}})
	if err != nil {
		return err
	}
	count, _ := strconv.Atoi(AnalysisCount)
	res, err := deploy.judgeCanary(ctx, n, "repaired canary measured and promoted", nil,
		[]string{"patch", "rollout", RolloutName, "-n", HealDeployNamespace, "--type=json", "-p", string(patch)},
		outcome{runPhase: "Successful", promoted: true, checkMeasurements: valuesMeasured("Successful", count, near(0))})
	if err != nil {
		return err
	}
	if res.canaryHash != newHash || res.stableHash != oldHash {
		return fmt.Errorf("the analysis judged canary %s over stable %s, not the repaired canary %s over %s", res.canaryHash, res.stableHash, newHash, oldHash)
	}
	return deploy.checkQueries(n, res, true)
}

// ---- step 15 ----

// leaveAloneDocs are three Rollouts neither admission nor the healer may
// write: opted out by annotation, a clash (the label key already in the pod
// template), and the user's own values on both sides. One replica each.
func leaveAloneDocs() []byte {
	ro := func(name, annotations, templateLabels, metadata string) string {
		return "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: " + name + "\n" + annotations +
			"spec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: " + name + "\n" +
			"  template:\n    metadata:\n      labels:\n        app: " + name + "\n" + templateLabels +
			"    spec:\n      containers:\n        - name: demo\n          image: " + ImageBefore + "\n" +
			"  strategy:\n    canary:\n" + metadata + "      steps:\n        - setWeight: 20\n        - pause: {}\n"
	}
	return []byte(strings.Join([]string{
		ro(OptedOutRollout, "  annotations:\n    "+rollout.OptOutAnnotation+": \"false\"\n", "", ""),
		ro(ClashRollout, "", "        "+LabelKey+": web\n", ""),
		ro(OwnValuesRollout, "", "", "      stableMetadata:\n        labels:\n          "+LabelKey+": "+OwnStableValue+
			"\n      canaryMetadata:\n        labels:\n          "+LabelKey+": "+OwnCanaryValue+"\n"),
	}, "---\n"))
}

// generations is every Rollout's generation in the cluster, by namespace/name.
func (s *Scenario) generations(ctx context.Context) (map[string]int64, error) {
	list, err := s.dyn.Resource(rolloutGVR).List(ctx, listOptions(""))
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, u := range list.Items {
		out[u.GetNamespace()+"/"+u.GetName()] = u.GetGeneration()
	}
	return out, nil
}

// stepHealLeavesAlone: Rollouts admission leaves alone are never written by
// the healer, and, once converged, it writes nothing at all: every
// Rollout's generation stays as it is across several passes.
func (s *Scenario) stepHealLeavesAlone(ctx context.Context, n Narrator) error {
	if s.env.WebhookMetricsURL == "" {
		return errors.New("the heal steps need Env.WebhookMetricsURL")
	}
	alone := s.in(HealAloneNamespace)
	if err := s.ensureNamespace(ctx, HealAloneNamespace); err != nil {
		return err
	}
	n.Say("Three Rollouts in %s that canary-tagger must never write: %s (annotation %s: \"false\"), %s (%s already in its pod template: a clash) and %s (the user's own values %s=%s / %s=%s). Admission leaves them as they are, so they are stored as if the webhook had been down:",
		HealAloneNamespace, OptedOutRollout, rollout.OptOutAnnotation, ClashRollout, LabelKey, OwnValuesRollout, LabelKey, OwnStableValue, LabelKey, OwnCanaryValue)
	if _, _, err := alone.show(ctx, n, leaveAloneDocs(), "apply", "-n", HealAloneNamespace, "-f", "-"); err != nil {
		return err
	}
	names := []string{OptedOutRollout, ClashRollout, OwnValuesRollout}
	stored := map[string]*unstructured.Unstructured{}
	if err := s.waitFor(ctx, "the three Rollouts Healthy", func(ctx context.Context) (bool, string, error) {
		var seen []string
		healthy := 0
		for _, name := range names {
			u, err := s.dyn.Resource(rolloutGVR).Namespace(HealAloneNamespace).Get(ctx, name, metav1GetOptions)
			if err != nil {
				return false, "", err
			}
			stored[name] = u
			st := parseRollout(u)
			seen = append(seen, name+": "+st.Phase)
			if st.Phase == "Healthy" && st.upToDate() {
				healthy++
			}
		}
		return healthy == len(names), strings.Join(seen, ", "), nil
	}); err != nil {
		return err
	}
	for _, name := range []string{OptedOutRollout, ClashRollout} {
		if hasEphemeralMetadata(stored[name]) {
			return fmt.Errorf("%s/%s was given ephemeral metadata at admission", HealAloneNamespace, name)
		}
	}
	if st, _ := roleAt(stored[OwnValuesRollout], "stableMetadata"); st != OwnStableValue {
		return fmt.Errorf("%s/%s: stableMetadata %s=%q, the user wrote %q", HealAloneNamespace, OwnValuesRollout, LabelKey, st, OwnStableValue)
	}
	n.Check("all three Healthy, stored as written")

	gens, err := s.generations(ctx)
	if err != nil {
		return err
	}
	h0, err := scrapeHeal(ctx, s.env.WebhookMetricsURL)
	if err != nil {
		return err
	}
	n.Say("Watching %d heal passes (%s on serve's /metrics), and on every poll the generation of all %d Rollouts in the cluster ...",
		healPassesObserved, healPassesMetric, len(gens))
	start := time.Now()
	var h1 healCounts
	if err := s.waitFor(ctx, fmt.Sprintf("%d heal passes that write nothing", healPassesObserved), func(ctx context.Context) (bool, string, error) {
		now, err := s.generations(ctx)
		if err != nil {
			return false, "", err
		}
		for key, g := range gens {
			if now[key] != g {
				return false, "", webhooktest.StopPolling(fmt.Errorf("rollout %s written while nothing was to be healed: generation %d → %d", key, g, now[key]))
			}
		}
		if h1, err = scrapeHeal(ctx, s.env.WebhookMetricsURL); err != nil {
			return false, "", err
		}
		if d := h1.patches - h0.patches; d > 0 {
			return false, "", webhooktest.StopPolling(fmt.Errorf("the healer sent %g patch(es) while nothing was to be healed", d))
		}
		return h1.passes >= h0.passes+healPassesObserved, fmt.Sprintf("%g passes", h1.passes-h0.passes), nil
	}); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s{kind=\"Rollout\"}  +%g\n", healPassesMetric, h1.passes-h0.passes)
	fmt.Fprintf(&b, "%s{verb=\"patch\"}  +%g\n", healRequestsMetric, h1.patches-h0.patches)
	for _, o := range healoutcome.All {
		fmt.Fprintf(&b, "%s{kind=\"Rollout\",outcome=%q}  +%g\n", healObjectsMetric, o, h1.objects[o]-h0.objects[o])
	}
	n.Show(fmt.Sprintf("canary-tagger's heal metrics over those %s:", time.Since(start).Round(100*time.Millisecond)), strings.TrimRight(b.String(), "\n"))
	passes := h1.passes - h0.passes
	switch {
	case h1.objects[healoutcome.Injected] != h0.objects[healoutcome.Injected]:
		return fmt.Errorf("the healer counted %g Rollouts injected", h1.objects[healoutcome.Injected]-h0.objects[healoutcome.Injected])
	case h1.objects[healoutcome.Conflict]-h0.objects[healoutcome.Conflict] < passes-1:
		return fmt.Errorf("the clash was counted a conflict %g times in %g passes", h1.objects[healoutcome.Conflict]-h0.objects[healoutcome.Conflict], passes)
	}

	for _, name := range names {
		u, err := s.dyn.Resource(rolloutGVR).Namespace(HealAloneNamespace).Get(ctx, name, metav1GetOptions)
		if err != nil {
			return err
		}
		if managedBy(u, heal.FieldManager) {
			return fmt.Errorf("%s/%s has fields managed by %s", HealAloneNamespace, name, heal.FieldManager)
		}
		if _, found, err := alone.healEvent(ctx, name, heal.ReasonHealed); err != nil {
			return err
		} else if found {
			return fmt.Errorf("%s/%s has a %s Event", HealAloneNamespace, name, heal.ReasonHealed)
		}
	}
	ev, found, err := alone.healEvent(ctx, ClashRollout, heal.ReasonLabelConflict)
	if err != nil {
		return err
	}
	if !found || ev.Type != "Warning" {
		return fmt.Errorf("no Warning %s Event from %s about %s/%s", heal.ReasonLabelConflict, heal.FieldManager, HealAloneNamespace, ClashRollout)
	}
	n.Check("%s, %s and %s never written over %g passes: the same generation, no field managed by %s, no %s Event",
		OptedOutRollout, ClashRollout, OwnValuesRollout, passes, heal.FieldManager, heal.ReasonHealed)
	n.Check("the clash said once, as a Warning Event %s: %q", ev.Reason, ev.Note)
	n.Check("no write loop: all %d Rollouts (the two healed in step 14 among them) at the same generation over %g passes; 0 patches",
		len(gens), passes)
	if _, _, err := s.show(ctx, n, nil, "get", "rollouts", "-A", "-o",
		"custom-columns=NAMESPACE:.metadata.namespace,NAME:.metadata.name,GENERATION:.metadata.generation,STABLE:.spec.strategy.canary.stableMetadata.labels.role,CANARY:.spec.strategy.canary.canaryMetadata.labels.role"); err != nil {
		return err
	}

	n.Say("The three deleted: doctor (the last step) rightly asks for the clash to be resolved.")
	_, _, err = s.show(ctx, n, nil, "delete", "rollouts", "-n", HealAloneNamespace, "--all", "--wait=true")
	return err
}

// ---- step 16 ----

// stepHealLeader: two replicas elect the healer on the Lease
// <config>-heal; only its holder heals. The holder is killed (SIGKILL: the
// Lease is not released), the other takes the Lease when it runs out and
// heals a Rollout created after.
func (s *Scenario) stepHealLeader(ctx context.Context, n Narrator) error {
	if s.env.StartWebhookReplica == nil || s.env.StopWebhookReplica == nil || s.env.KillWebhook == nil || s.env.RestartWebhook == nil || s.env.WebhookMetricsURL == "" {
		return errors.New("the leader-election step needs Env.StartWebhookReplica, StopWebhookReplica, KillWebhook, RestartWebhook and WebhookMetricsURL")
	}
	el := s.in(HealElectionNamespace)
	if err := s.ensureNamespace(ctx, HealElectionNamespace); err != nil {
		return err
	}
	lease := heal.LeaseName(WebhookConfigName)
	flags := []string{"--leader-elect", "--leader-election-namespace=" + HealElectionNamespace}
	holder := func(ctx context.Context) (string, error) {
		l, err := s.cs.CoordinationV1().Leases(HealElectionNamespace).Get(ctx, lease, metav1GetOptions)
		if err != nil {
			return "", err
		}
		if l.Spec.HolderIdentity == nil {
			return "", nil
		}
		return *l.Spec.HolderIdentity, nil
	}
	showLease := func() error {
		_, _, err := s.show(ctx, n, nil, "get", "lease", lease, "-n", HealElectionNamespace, "-o",
			"custom-columns=NAME:.metadata.name,HOLDER:.spec.holderIdentity,TRANSITIONS:.spec.leaseTransitions,RENEWED:.spec.renewTime")
		return err
	}

	n.Say("canary-tagger restarted with %s: it heals only while it holds the Lease %s/%s.", strings.Join(flags, " "), HealElectionNamespace, lease)
	if err := s.env.RestartWebhook(ctx, flags...); err != nil {
		return err
	}
	var first string
	if err := s.waitFor(ctx, "the first replica to take the Lease and heal", func(ctx context.Context) (bool, string, error) {
		h, err := holder(ctx)
		if err != nil {
			return false, "", err
		}
		first = h
		hc, err := scrapeHeal(ctx, s.env.WebhookMetricsURL)
		if err != nil {
			return false, "", err
		}
		return first != "" && hc.passes >= 1, fmt.Sprintf("holder %q, %g passes", first, hc.passes), nil
	}); err != nil {
		return err
	}
	n.Check("replica 1 (the one the webhook configuration points at) holds the Lease (%s) and heals", first)

	n.Say("Replica 2 started with the same flags, on ports of its own:")
	second, err := s.env.StartWebhookReplica(ctx, flags...)
	if err != nil {
		return err
	}
	h0, err := scrapeHeal(ctx, s.env.WebhookMetricsURL)
	if err != nil {
		return err
	}
	var passes float64
	if err := s.waitFor(ctx, fmt.Sprintf("%d passes of replica 1 and none of replica 2", healPassesObserved-1), func(ctx context.Context) (bool, string, error) {
		if h, err := holder(ctx); err != nil {
			return false, "", err
		} else if h != first {
			return false, "", webhooktest.StopPolling(fmt.Errorf("the Lease went from %q to %q with its holder running", first, h))
		}
		r2, err := scrapeHeal(ctx, second)
		if err != nil {
			return false, "", err
		}
		if r2.passes > 0 {
			return false, "", webhooktest.StopPolling(fmt.Errorf("replica 2 ran %g heal passes without the Lease", r2.passes))
		}
		r1, err := scrapeHeal(ctx, s.env.WebhookMetricsURL)
		if err != nil {
			return false, "", err
		}
		passes = r1.passes - h0.passes
		return passes >= healPassesObserved-1, fmt.Sprintf("replica 1: %g passes, replica 2: %g", passes, r2.passes), nil
	}); err != nil {
		return err
	}
	n.Check("one healer: replica 1 ran %g passes, replica 2 none, the Lease still %s's", passes, first)
	if err := showLease(); err != nil {
		return err
	}

	n.Say("Replica 1 killed (SIGKILL: a crash, the Lease is not released and must run out). The webhook configuration points at it, so the webhook is down too.")
	if err := s.env.KillWebhook(ctx); err != nil {
		return err
	}
	killed := time.Now()
	n.Say("The seed's Rollout created in %s meanwhile; as stored (the canary strategy):", HealElectionNamespace)
	out, _, err := el.show(ctx, n, nil, "create", "-n", HealElectionNamespace, "-f", s.env.RolloutFile, "-o", `jsonpath={.spec.strategy.canary}{"\n"}`)
	if err != nil {
		return err
	}
	var canary map[string]any
	if err := json.Unmarshal([]byte(out), &canary); err != nil {
		return fmt.Errorf("the created Rollout's canary strategy: %w", err)
	}
	if _, ok := canary["stableMetadata"]; ok {
		return fmt.Errorf("the Rollout created with replica 1 dead was stored with stableMetadata: %s", out)
	}
	n.Check("stored without stableMetadata or canaryMetadata: nothing admitted it")

	var next string
	if err := s.waitFor(ctx, "replica 2 to take the Lease and heal", func(ctx context.Context) (bool, string, error) {
		h, err := holder(ctx)
		if err != nil {
			return false, "", err
		}
		next = h
		r2, err := scrapeHeal(ctx, second)
		if err != nil {
			return false, "", err
		}
		return h != "" && h != first && r2.passes >= 1, fmt.Sprintf("holder %q, replica 2: %g passes", h, r2.passes), nil
	}); err != nil {
		return err
	}
	n.Check("replica 2 took the Lease %s after the kill (holder %s) and heals", time.Since(killed).Round(100*time.Millisecond), next)
	ev, err := el.waitHealed(ctx, RolloutName, StableValue, CanaryValue)
	if err != nil {
		return err
	}
	if _, err := el.waitForRollout(ctx, "Healthy with 5 pods "+LabelKey+"="+StableValue, func(_ context.Context, st rolloutState, pods []podInfo, seen string) (bool, string, error) {
		counts, settled := countPods(pods)
		return st.Phase == "Healthy" && st.upToDate() && st.StableRS != "" && settled && len(pods) == 5 &&
			counts[[2]string{StableValue, st.StableRS}] == 5, seen, nil
	}); err != nil {
		return err
	}
	n.Check("replica 2 healed %s/%s (Event %s: %q); Healthy %s after the kill, 5 pods %s=%s",
		HealElectionNamespace, RolloutName, ev.Reason, ev.Note, time.Since(killed).Round(100*time.Millisecond), LabelKey, StableValue)
	if err := showLease(); err != nil {
		return err
	}

	n.Say("Back to one canary-tagger with its default flags:")
	if err := s.env.StopWebhookReplica(ctx); err != nil {
		return err
	}
	return s.env.RestartWebhook(ctx)
}
