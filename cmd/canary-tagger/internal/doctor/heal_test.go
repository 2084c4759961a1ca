package doctor

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/canary-tagger/canary-tagger/webhook/heal"
	"github.com/canary-tagger/canary-tagger/webhook/rollout"
)

var healNow = time.Date(2026, 11, 28, 19, 42, 38, 0, time.UTC)

// serveDeployment is the chart's Deployment (its heal args) with args
// after serve's own.
func serveDeployment(args ...string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "tagging", Name: "canary-tagger", Labels: map[string]string{"app.kubernetes.io/instance": "ct"}},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "canary-tagger", Image: "ghcr.io/canary-tagger/canary-tagger:v1",
			Args: append([]string{"serve", "--port=9443", "--label-key=role"}, args...),
			Env:  []corev1.EnvVar{{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}},
		}}}}},
	}
}

var chartArgs = []string{"--webhook-config-name=canary-tagger", "--heal-interval=1m", "--leader-elect", "--leader-election-namespace=$(POD_NAMESPACE)"}

// serve's heal flags as the Deployment gives them: both spellings, serve's
// defaults, $(POD_NAMESPACE), and only the Deployment that names this
// configuration.
func TestServeFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		dep  *appsv1.Deployment
		cfg  string
		want map[string]string // nil: not this install's
	}{
		{"chart", serveDeployment(chartArgs...), "canary-tagger", map[string]string{"heal": "true", "heal-agent-pods": "false", "heal-interval": "1m", "leader-elect": "true", "leader-election-namespace": "tagging", "webhook-config-name": "canary-tagger"}},
		{"heal off, values after a space", serveDeployment("--heal=false", "--webhook-config-name", "ct", "-heal-interval", "30s"), "ct", map[string]string{"heal": "false", "heal-agent-pods": "false", "heal-interval": "30s", "leader-elect": "false", "leader-election-namespace": "", "webhook-config-name": "ct"}},
		{"the last one wins", serveDeployment("--webhook-config-name=canary-tagger", "--leader-elect", "--leader-elect=false"), "canary-tagger", map[string]string{"heal": "true", "heal-agent-pods": "false", "heal-interval": "1m0s", "leader-elect": "false", "leader-election-namespace": "", "webhook-config-name": "canary-tagger"}},
		{"agent pods healed", serveDeployment(append(chartArgs, "--heal-agent-pods")...), "canary-tagger", map[string]string{"heal": "true", "heal-agent-pods": "true", "heal-interval": "1m", "leader-elect": "true", "leader-election-namespace": "tagging", "webhook-config-name": "canary-tagger"}},
		{"another configuration", serveDeployment(chartArgs...), "other", nil},
		{"no configuration named (older than healing)", serveDeployment(), "canary-tagger", nil},
		{"not serve", func() *appsv1.Deployment {
			d := serveDeployment()
			d.Spec.Template.Spec.Containers[0].Args = []string{"mutate"}
			return d
		}(), "canary-tagger", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := serveFlags(tc.dep, tc.cfg); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
}

func lease(holder string, renewed time.Duration) *coordinationv1.Lease {
	renew := metav1.NewMicroTime(healNow.Add(-renewed))
	seconds := int32(15)
	return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "tagging", Name: "canary-tagger-heal"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, RenewTime: &renew, LeaseDurationSeconds: &seconds}}
}

func TestLeaseHolder(t *testing.T) {
	for name, tc := range map[string]struct {
		lease *coordinationv1.Lease
		want  string
	}{
		"renewed 2s ago":  {lease("canary-tagger-7d9f-x2k4p_4f1c", 2*time.Second), "canary-tagger-7d9f-x2k4p_4f1c"},
		"expired":         {lease("canary-tagger-7d9f-x2k4p_4f1c", 16*time.Second), ""},
		"released":        {lease("", time.Second), ""},
		"never renewed":   {&coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{HolderIdentity: new("a_b")}}, ""},
		"no holder field": {&coordinationv1.Lease{}, ""},
	} {
		if got := leaseHolder(tc.lease, healNow); got != tc.want {
			t.Errorf("%s: holder %q, want %q", name, got, tc.want)
		}
	}
	if got := podOf("canary-tagger-7d9f-x2k4p_4f1c"); got != "canary-tagger-7d9f-x2k4p" {
		t.Errorf("podOf: %q", got)
	}
}

func rolloutsConfig(nsSelector *metav1.LabelSelector) *admissionv1.MutatingWebhookConfiguration {
	w := hook("rollouts.canary-tagger.io", "argoproj.io", "rollouts")
	w.Rules[0].Operations = []admissionv1.OperationType{admissionv1.Create, admissionv1.Update}
	w.Rules[0].APIVersions = []string{"v1alpha1"}
	w.NamespaceSelector = nsSelector
	return &admissionv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "canary-tagger"}, Webhooks: []admissionv1.MutatingWebhook{w}}
}

// readHealing on a cluster: the Deployment found by its args, the scope read
// as the heal loop reads it, the Lease in the namespace of the flag.
func TestReadHealing(t *testing.T) {
	c := &cluster{opts: Options{WebhookConfiguration: "canary-tagger", Now: func() time.Time { return healNow }},
		core: fake.NewClientset(serveDeployment(chartArgs...), rolloutsConfig(nil), lease("canary-tagger-7d9f-x2k4p_4f1c", time.Second))}
	h := readHealing(t.Context(), c, registered(rolloutsConfig(nil)), listDeployments(t.Context(), c))
	if h.err != nil || h.deployment == nil || !h.enabled || !h.leaderElect || h.interval != "1m" || h.leaseNamespace != "tagging" ||
		!h.scope.Heals() || h.holder != "canary-tagger-7d9f-x2k4p_4f1c" {
		t.Fatalf("got %+v", h)
	}
	if within, ok := h.repairs(labels.Set{"kubernetes.io/metadata.name": "shop"}, nil); !ok || within != "1m" {
		t.Errorf("repairs: %q, %t; want 1m, true", within, ok)
	}
	// No Deployment runs serve: not known, and nothing else read.
	c.core = fake.NewClientset(rolloutsConfig(nil))
	if h := readHealing(t.Context(), c, registered(rolloutsConfig(nil)), listDeployments(t.Context(), c)); h.err != nil || h.deployment != nil {
		t.Errorf("without a serve Deployment: %+v", h)
	}
	// The configuration could not be read: neither can the scope.
	c.core = fake.NewClientset(serveDeployment(chartArgs...))
	if h := readHealing(t.Context(), c, registration{name: "canary-tagger", err: errors.New("forbidden")}, listDeployments(t.Context(), c)); h.err == nil {
		t.Errorf("with an unreadable configuration: %+v, want its error", h)
	}
}

// Each state of healing, the finding that says it, and whether an
// unlabelled Rollout in scope is repaired.
func TestCheckHealing(t *testing.T) {
	dep := serveDeployment(chartArgs...)
	heals := heal.ScopeOf(rolloutsConfig(nil), heal.Rollouts)
	on := healing{deployment: dep, enabled: true, interval: "1m", leaderElect: true, leaseNamespace: "tagging", scope: heals,
		lease: lease("canary-tagger-7d9f-x2k4p_4f1c", time.Second), holder: "canary-tagger-7d9f-x2k4p_4f1c"}
	with := func(edit func(h *healing)) healing {
		h := on
		edit(&h)
		return h
	}
	leaseFixes := leaseFix("tagging", "canary-tagger-heal", dep)
	for _, tc := range []struct {
		name    string
		h       healing
		want    Finding
		repairs bool
	}{
		{"on, leader", on, Finding{Status: OK, Object: "deployment/tagging/canary-tagger", Message: "healing on, every 1m, leader canary-tagger-7d9f-x2k4p"}, true},
		{"on, every replica", with(func(h *healing) { h.leaderElect, h.lease, h.holder = false, nil, "" }),
			Finding{Status: OK, Object: "deployment/tagging/canary-tagger", Message: "healing on, every 1m, on every replica (no --leader-elect)"}, true},
		{"off", healing{deployment: dep, interval: "1m"}, Finding{Status: Info, Object: "deployment/tagging/canary-tagger",
			Message: "healing off (--heal=false): a Rollout admitted while the webhook was unreachable keeps missing its labels until it is updated again",
			Fix:     []string{"helm upgrade ct charts/canary-tagger -n tagging --reuse-values --set heal.enabled=true   # or kubectl apply -k manifests/default, or drop --heal=false from deployment/canary-tagger's args"}}, false},
		{"scope not healed", with(func(h *healing) {
			cfg := rolloutsConfig(nil)
			cfg.Webhooks[0].MatchConditions = []admissionv1.MatchCondition{{Name: "x", Expression: "true"}}
			h.scope = heal.ScopeOf(cfg, heal.Rollouts)
		}), Finding{Status: Info, Object: "deployment/tagging/canary-tagger",
			Message: "healing on, but it repairs nothing: webhook rollouts.canary-tagger.io has matchConditions, which the healer does not evaluate"}, false},
		{"lease never taken", with(func(h *healing) { h.lease, h.holder = nil, "" }), Finding{Status: Action, Object: "lease/tagging/canary-tagger-heal",
			Message: "healing on with --leader-elect, but no replica has ever taken the Lease: nothing is healed", Fix: leaseFixes}, false},
		{"lease expired", with(func(h *healing) { h.lease, h.holder = lease("canary-tagger-7d9f-x2k4p_4f1c", time.Minute), "" }), Finding{Status: Action, Object: "lease/tagging/canary-tagger-heal",
			Message: "healing on with --leader-elect, but no replica holds the Lease (last held by canary-tagger-7d9f-x2k4p, not renewed within its duration): nothing is healed until one takes it", Fix: leaseFixes}, false},
		{"lease released", with(func(h *healing) { h.lease, h.holder = lease("", time.Minute), "" }), Finding{Status: Action, Object: "lease/tagging/canary-tagger-heal",
			Message: "healing on with --leader-elect, but no replica holds the Lease (released): nothing is healed until one takes it", Fix: leaseFixes}, false},
		{"no serve Deployment", healing{}, Finding{Status: Info,
			Message: "no Deployment runs canary-tagger serve for webhook configuration canary-tagger (serve runs elsewhere?): whether healing is on is not known, and the Rollout findings below do not count on it"}, false},
		{"unreadable", healing{err: errors.New("forbidden"), doing: "reading the heal Lease tagging/canary-tagger-heal"},
			Finding{Status: Error, Message: "reading the heal Lease tagging/canary-tagger-heal: forbidden"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := checkHealing(t.Context(), &cluster{opts: Options{WebhookConfiguration: "canary-tagger"}}, inputs{healing: tc.h})
			if len(got) != 1 || !reflect.DeepEqual(got[0], tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			if _, ok := tc.h.repairs(labels.Set{"kubernetes.io/metadata.name": "shop"}, nil); ok != tc.repairs {
				t.Errorf("repairs an unlabelled Rollout in scope: %t, want %t", ok, tc.repairs)
			}
		})
	}
}

// The Rollout check with healing on: an unlabelled Rollout in the heal
// scope says healing repairs it and puts the wait first; a clash, and a
// Rollout outside the heal scope, keep their findings as they were.
func TestCheckRolloutsWithHealing(t *testing.T) {
	opts := rollout.Options{LabelKey: "role", StableValue: "stable", CanaryValue: "canary"}
	c := &cluster{opts: Options{Now: func() time.Time { return healNow }}}
	c.opts.Rules.Rollout = opts
	legacyOut := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"legacy"}}}}
	on := healing{deployment: serveDeployment(chartArgs...), enabled: true, interval: "1m", scope: heal.ScopeOf(rolloutsConfig(legacyOut), heal.Rollouts)}
	in := func(ns string, labelsInTemplate map[string]any) *unstructured.Unstructured {
		r := canaryRollout(labelsInTemplate)
		r.SetNamespace(ns)
		return r
	}
	rollouts := []unstructured.Unstructured{*in("shop", nil), *in("web", map[string]any{"role": "web"}), *in("legacy", nil)}
	got := checkRollouts(t.Context(), c, inputs{
		namespaces: map[string]labels.Set{"shop": {"kubernetes.io/metadata.name": "shop"}, "web": {"kubernetes.io/metadata.name": "web"}, "legacy": {"kubernetes.io/metadata.name": "legacy"}},
		rollouts:   rolloutList{items: rollouts, listed: true},
		healing:    on,
	})
	// legacy is in the (absent) registration's scope, so still a finding,
	// but not in the heal scope the configuration would give.
	if len(got) != 4 {
		t.Fatalf("findings %+v, want three actions and the count", got)
	}
	reapply := reapplyFix("shop", "demo", healNow)
	if f := got[0]; !strings.HasSuffix(f.Message, "; healing repairs this within 1m") || !reflect.DeepEqual(f.Fix, healWaitFix("1m", reapply)) {
		t.Errorf("rollout in the heal scope: %+v", f)
	}
	if f := got[1]; strings.Contains(f.Message, "heal") || !strings.HasPrefix(f.Fix[0], "# remove") {
		t.Errorf("a clash is never healed, its finding as before: %+v", f)
	}
	if f := got[2]; strings.Contains(f.Message, "heal") || !reflect.DeepEqual(f.Fix, reapplyFix("legacy", "demo", healNow)) {
		t.Errorf("rollout outside the heal scope, its finding as before: %+v", f)
	}
	if want := "# wait: healing repairs this within 1m (serve's --heal-interval); or, now:"; got[0].Fix[0] != want {
		t.Errorf("first fix %q, want %q", got[0].Fix[0], want)
	}
}

// Which Agent workloads the heal loop restarts (--heal-agent-pods): a
// DaemonSet or Deployment whose pods are in the agent webhook's scope,
// while a replica heals.
func TestHealingRestarts(t *testing.T) {
	agents := hook("agent-pods.canary-tagger.io", "", "pods")
	agents.ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "dd-agent"}}
	reg := registered(configOf(agents))
	on := healing{deployment: serveDeployment(chartArgs...), enabled: true, interval: "1m", leaderElect: true, holder: "canary-tagger-7d9f-x2k4p_4f1c",
		agentPods: true, agentScope: reg.agentScope}
	agentPod := map[string]string{"app": "dd-agent"}
	for _, tc := range []struct {
		name      string
		edit      func(h *healing)
		podLabels map[string]string
		ref       string
		want      bool
	}{
		{"daemonset", nil, agentPod, "daemonset/dd-agent", true},
		{"deployment", nil, agentPod, "deployment/dd-cluster-agent", true},
		{"extendeddaemonsetreplicaset", nil, agentPod, "extendeddaemonsetreplicaset/dd-agent-x", false},
		{"bare pod", nil, agentPod, "pod/dd-agent-x", false},
		{"out of the webhook's scope", nil, map[string]string{"app": "other"}, "daemonset/dd-agent", false},
		{"without --heal-agent-pods", func(h *healing) { h.agentPods = false }, agentPod, "daemonset/dd-agent", false},
		{"healing off", func(h *healing) { h.enabled = false }, agentPod, "daemonset/dd-agent", false},
		{"no leader", func(h *healing) { h.holder = "" }, agentPod, "daemonset/dd-agent", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := on
			if tc.edit != nil {
				tc.edit(&h)
			}
			within, got := h.restarts(labels.Set{"kubernetes.io/metadata.name": "datadog"}, tc.podLabels, tc.ref)
			if got != tc.want || (got && within != "1m") {
				t.Errorf("restarts: %q, %t; want %t", within, got, tc.want)
			}
		})
	}
}
