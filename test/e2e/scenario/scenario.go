// Package scenario is the seed's story, end to end, written once: the e2e test
// runs it with a narrator that logs into t.Log, `make demo` with one that prints
// for a person. Every check is a real assertion; every wait polls with a
// deadline and says what it last saw when it gives up.
//
//  1. The seed's Rollout, with no metadata, goes Healthy: 5 pods role=stable.
//  2. New image: paused at step 1 with 1 pod role=canary (new hash), 4 role=stable (old hash).
//  3. Promote: paused at step 3, every pod labelled per its ReplicaSet.
//  4. Promote to the end: Healthy, 5 pods role=stable with the new hash, none canary.
//  5. Datadog chart renders: agent pods (one per node) map role → kube_role in
//     every agent container and init-config, with the status annotation; the
//     cluster agent is untouched.
//  6. A quiet cluster: 30 s of watching show no update loop, and `kubectl diff`
//     of the seed file shows no difference in anything canary-tagger writes.
//  7. The templates of manifests/analysis installed, Argo's Datadog provider
//     pointed at a stand-in (the `datadog` Secret), an analysis step added to
//     the seed's Rollout.
//  8. A good canary: the AnalysisRun measures and passes, the Rollout is
//     promoted, every pod role=stable with the new hash; the queries asked
//     about exactly the role values canary-tagger injected.
//  9. A bad canary: the AnalysisRun fails, the Rollout is aborted, the canary
//     scaled down, no pod left role=canary; its measurements are shown.
//  10. Bad input (the stand-in answers 500 or garbage, the tolerance argument
//     is empty or not a number): the AnalysisRun ends in Error and the canary
//     is aborted, never promoted.
//  11. canary-tagger restarted with --canary-value/--stable-value: a second
//     Rollout gets those labels, and the analysis queries carry them.
//  12. Blue-green with --blue-green: preview pods role=canary beside active
//     role=stable, the error-ratio template as prePromotionAnalysis.
//  13. The Datadog Operator, built from its module, builds node Agents and a
//     Cluster Agent from a DatadogAgent with podLabelsAsTags {app: kube_app}:
//     their pods map app → kube_app and role → kube_role; two more reconciles
//     by the Operator change nothing; a change to the DatadogAgent makes it
//     roll them, and the new pods map both too.
//  14. The webhook was down during a deploy: a Rollout created (Healthy,
//     5 pods without role) and another given a new image (paused at step 1,
//     its canary pod without role) while canary-tagger was stopped. Started
//     again, its healer writes their metadata (Event, field manager
//     canary-tagger) and Argo relabels the same pods in place (same UIDs,
//     same ReplicaSets): canary role=canary, stable role=stable. The
//     shipped analysis then measures the repaired canary and promotes it.
//  15. Never written by the healer: an opted-out Rollout, a clash (role in
//     the pod template) and a user's own values keep their generation over
//     4 heal passes (serve's heal metrics), the clash gets one Warning
//     Event; no Rollout in the cluster is written again (0 patches).
//  16. Two replicas with --leader-elect: only the holder of the Lease
//     canary-tagger-heal heals; killed (SIGKILL), the other takes the Lease
//     and heals a Rollout created while the webhook was down.
//  17. Agent pods admitted while the webhook was down (a third release of
//     the Datadog chart, and a DaemonSet that is not an Agent): healing
//     Rollouts only, nothing restarts; with --heal-agent-pods the Agent
//     DaemonSet and the Cluster Agent are restarted (restartedAt, an Event)
//     and every new pod maps app, team and role; no second restart, the
//     other DaemonSet never written.
//  18. `canary-tagger doctor` on the cluster: the webhook healthy, every
//     Rollout and agent pod covered, no pod left canary: exit 0.
package scenario

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/canary-tagger/canary-tagger/test/internal/datadogapi"
	"github.com/canary-tagger/canary-tagger/webhook/webhooktest"
)

// Narrator receives the story as it happens.
type Narrator interface {
	// Step starts step n.
	Step(n int, title string)
	// Say is a line of narration (what is being done, what is awaited).
	Say(format string, args ...any)
	// Show is a verbatim block: a command line and its output, a table.
	Show(title, body string)
	// Check reports an assertion that passed.
	Check(format string, args ...any)
}

// Env is where the scenario runs: a cluster with the controllers, kwok nodes
// and canary-tagger registered (see package cluster).
type Env struct {
	Kubeconfig string
	// Kubectl is bin/k8s/kubectl; PluginDir (bin/e2e) holds kubectl-argo-rollouts
	// and is put first on kubectl's PATH, as a person would install the plugin.
	Kubectl   string
	PluginDir string
	// RolloutFile is test/e2e/testdata/rollout.yaml; FixturesDir the Datadog
	// Helm renders (test/testdata/datadog-helm).
	RolloutFile string
	FixturesDir string
	// Namespace of the Rollout (default "default").
	Namespace string
	// Nodes is the number of kwok nodes (one agent pod per node).
	Nodes int
	// Health reports a controller or the webhook that died (optional); waits
	// stop at once with its error instead of running into their deadline.
	Health func() error
	// Timeout bounds each wait (default 90 s); IdleWindow is step 6's
	// observation window (default 30 s).
	Timeout    time.Duration
	IdleWindow time.Duration

	// AnalysisDir is manifests/analysis (steps 7-11).
	AnalysisDir string
	// ControllerNamespace is where the Argo Rollouts controller looks for
	// its `datadog` Secret.
	ControllerNamespace string
	// RestartWebhook restarts canary-tagger with extra flags (step 11), or
	// starts it again after StopWebhook or KillWebhook.
	RestartWebhook func(ctx context.Context, extra ...string) error
	// StopWebhook stops canary-tagger (SIGTERM), KillWebhook kills it
	// (SIGKILL, a crash); the webhook configuration stays, so the apiserver
	// fails open until RestartWebhook (the heal steps).
	StopWebhook func(ctx context.Context) error
	KillWebhook func(ctx context.Context) error
	// WebhookMetricsURL is canary-tagger serve's /metrics, with the heal
	// metrics (the same port across restarts); HealInterval is the
	// --heal-interval serve runs with.
	WebhookMetricsURL string
	HealInterval      time.Duration
	// StartWebhookReplica starts a second canary-tagger serve, on ports of
	// its own, with extra flags, and returns its /metrics URL; the webhook
	// configuration stays pointed at the first. StopWebhookReplica stops it.
	StartWebhookReplica func(ctx context.Context, extra ...string) (metricsURL string, err error)
	StopWebhookReplica  func(ctx context.Context) error
	// StartDatadogOperator installs the Datadog Operator's CRDs and starts
	// it; OperatorRendersDir is test/testdata/datadog-operator, whose
	// inputs/pod-labels-as-tags.yaml step 13 applies and whose render of it
	// the Operator's workloads must match.
	StartDatadogOperator func(ctx context.Context) error
	OperatorRendersDir   string
	// OperatorMetricsURL is the running Operator's /metrics (its reconcile counts).
	OperatorMetricsURL func() string
	// CanaryTagger is the canary-tagger binary, whose doctor ends the story (the last step).
	CanaryTagger string
}

// The names the story uses.
const (
	RolloutName   = "demo"
	ImageBefore   = "argoproj/demo:blue"
	ImageAfter    = "argoproj/demo:yellow"
	LabelKey      = "role"
	StableValue   = "stable"
	CanaryValue   = "canary"
	HashLabel     = "rollouts-pod-template-hash"
	AgentEnv      = "DD_KUBERNETES_POD_LABELS_AS_TAGS"
	StatusAnnot   = "canary-tagger.io/status"
	DatadogNS     = "datadog"
	DatadogNS2    = "datadog-default"
	AgentDS       = "dd-datadog"
	ClusterAgent  = "dd-datadog-cluster-agent"
	RolloutHook   = "rollouts.canary-tagger.io"
	AgentPodsHook = "agent-pods.canary-tagger.io"
)

var rolloutGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}

// Step is one numbered part of the story.
type Step struct {
	N     int
	Title string
	Run   func(ctx context.Context, n Narrator) error
}

// Scenario holds the clients and what earlier steps learnt.
type Scenario struct {
	env Env
	cs  kubernetes.Interface
	dyn dynamic.Interface

	oldHash, newHash string

	// The Datadog API stand-in of the analysis steps, and what they learnt.
	datadog  *datadogapi.Server
	analysis analysisState
}

// New checks env and builds the clients.
func New(env Env) (*Scenario, error) {
	if env.Namespace == "" {
		env.Namespace = "default"
	}
	if env.Nodes == 0 {
		env.Nodes = 3
	}
	if env.Timeout == 0 {
		env.Timeout = 90 * time.Second
	}
	if env.IdleWindow == 0 {
		env.IdleWindow = 30 * time.Second
	}
	for _, f := range []string{env.Kubeconfig, env.Kubectl, filepath.Join(env.PluginDir, "kubectl-argo-rollouts"), env.RolloutFile,
		filepath.Join(env.FixturesDir, "pod-labels-as-tags.yaml"), filepath.Join(env.FixturesDir, "default.yaml")} {
		if _, err := os.Stat(f); err != nil {
			return nil, err
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", env.Kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 50, 100
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Scenario{env: env, cs: cs, dyn: dyn}, nil
}

// Steps returns the story's steps, to be run in order; a step's number is its
// place in the list.
func (s *Scenario) Steps() []Step {
	steps := []Step{
		{Title: "Apply the seed's Rollout (no metadata): Healthy, 5 pods role=stable", Run: s.stepSeed},
		{Title: "New image: paused at step 1 with 1 canary and 4 stable pods", Run: s.stepNewImage},
		{Title: "Promote: paused at step 3, every pod labelled per its ReplicaSet", Run: s.stepPromote},
		{Title: "Promote to the end: Healthy, all pods role=stable with the new hash", Run: s.stepPromoteToTheEnd},
		{Title: "Datadog agents: role → kube_role in every agent container", Run: s.stepDatadogAgents},
		{Title: "A quiet cluster: no update loop, no diff in what canary-tagger writes", Run: s.stepQuiet},
		{Title: "Analysis: the shipped templates, Datadog answered by a stand-in, an analysis step on the Rollout", Run: s.stepAnalysis},
		{Title: "A good canary: the analysis passes and the Rollout is promoted", Run: s.stepGoodCanary},
		{Title: "A bad canary: the analysis fails and the Rollout is aborted", Run: s.stepBadCanary},
		{Title: "Measurements that cannot be taken: the analysis errs, the canary is not promoted", Run: s.stepUnmeasurable},
		{Title: "Other label values: the analysis asks about what canary-tagger injected", Run: s.stepOtherValues},
		{Title: "Blue-green, with --blue-green: preview pods canary before the promotion, stable after", Run: s.stepBlueGreen},
		{Title: "The Datadog Operator builds the Agents: the user's mapping and role → kube_role, after every reconcile", Run: s.stepOperator},
		{Title: "The webhook was down during a deploy: canary-tagger repairs it, the same pods relabelled in place", Run: s.stepHealDeploy},
		{Title: "Never written by the healer: opted out, a clash, a user's values; nothing written again after the repair", Run: s.stepHealLeavesAlone},
		{Title: "Two replicas: the holder of the Lease heals; killed, the other takes over", Run: s.stepHealLeader},
		{Title: "Agent pods started while the webhook was down: with --heal-agent-pods their workloads are restarted and the new pods mapped", Run: s.stepHealAgentPods},
		{Title: "canary-tagger doctor: nothing left to do", Run: s.stepDoctor},
	}
	for i := range steps {
		steps[i].N = i + 1
	}
	return steps
}

// Run runs every step in order and stops at the first failure.
func (s *Scenario) Run(ctx context.Context, n Narrator) error {
	for _, st := range s.Steps() {
		n.Step(st.N, st.Title)
		if err := st.Run(ctx, n); err != nil {
			return fmt.Errorf("step %d (%s): %w", st.N, st.Title, err)
		}
	}
	return nil
}

// ---- kubectl ----

// Kubectl runs bin/k8s/kubectl with KUBECONFIG set and the plugin on PATH.
// It returns stdout and stderr; the error carries both.
func (s *Scenario) Kubectl(ctx context.Context, stdin []byte, args ...string) (string, string, error) {
	return RunKubectl(ctx, s.env.Kubectl, s.env.Kubeconfig, s.env.PluginDir, stdin, args...)
}

// RunKubectl is Kubectl without a Scenario.
func RunKubectl(ctx context.Context, kubectl, kubeconfig, pluginDir string, stdin []byte, args ...string) (string, string, error) {
	cmd := exec.CommandContext(ctx, kubectl, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "PATH="+pluginDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("kubectl %s: %w\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), stderr.String(), err
}

// show runs kubectl and shows the command line and its output.
func (s *Scenario) show(ctx context.Context, n Narrator, stdin []byte, args ...string) (string, string, error) {
	out, errOut, err := s.Kubectl(ctx, stdin, args...)
	if err != nil {
		return out, errOut, err
	}
	body := strings.TrimRight(out, "\n")
	if w := strings.TrimSpace(errOut); w != "" {
		body = strings.TrimRight(body+"\n"+w, "\n")
	}
	n.Show("$ kubectl "+strings.Join(args, " "), body)
	return out, errOut, nil
}

// ---- waiting ----

// waitFor polls cond every 250 ms until it returns true, the timeout passes,
// ctx ends, or Env.Health reports a dead process. cond returns a description of
// what it saw, used in the error on timeout.
func (s *Scenario) waitFor(ctx context.Context, what string, cond func(ctx context.Context) (bool, string, error)) error {
	var seen string
	return webhooktest.Poll(ctx, what, s.env.Timeout, 250*time.Millisecond, func(ctx context.Context) (bool, error) {
		if s.env.Health != nil {
			if err := s.env.Health(); err != nil {
				return false, webhooktest.StopPolling(fmt.Errorf("waiting for %s: %w", what, err))
			}
		}
		ok, now, err := cond(ctx)
		if now != "" {
			seen = now
		}
		switch {
		case err != nil && seen != "":
			return false, fmt.Errorf("%w (seen: %s)", err, seen)
		case err != nil:
			return false, err
		case !ok && seen != "":
			return false, errors.New(seen)
		}
		return ok, nil
	})
}

// waitForRollout is waitFor on the Rollout and its pods together: cond gets
// both, read afresh on every poll, and seen, a description of them that it
// returns (extended, if it learns more). waitForRollout returns how long the
// wait took.
func (s *Scenario) waitForRollout(ctx context.Context, what string, cond func(ctx context.Context, st rolloutState, pods []podInfo, seen string) (bool, string, error)) (time.Duration, error) {
	start := time.Now()
	err := s.waitFor(ctx, what, func(ctx context.Context) (bool, string, error) {
		st, err := s.rollout(ctx)
		if err != nil {
			return false, "", err
		}
		pods, err := s.demoPods(ctx)
		if err != nil {
			return false, st.String(), err
		}
		return cond(ctx, st, pods, st.String()+"; "+describePods(pods))
	})
	return time.Since(start).Round(100 * time.Millisecond), err
}

// ---- the Rollout ----

type rolloutState struct {
	Generation         int64
	ObservedGeneration string
	ResourceVersion    string
	Phase, Message     string
	StepIndex          int64 // -1 when absent
	StableRS, PodHash  string
	Paused             bool
	Image              string
	Obj                *unstructured.Unstructured
}

func (r rolloutState) String() string {
	return fmt.Sprintf("phase=%q message=%q step=%d stableRS=%s currentPodHash=%s generation=%d observedGeneration=%s",
		r.Phase, r.Message, r.StepIndex, r.StableRS, r.PodHash, r.Generation, r.ObservedGeneration)
}

func (s *Scenario) rollout(ctx context.Context) (rolloutState, error) {
	u, err := s.dyn.Resource(rolloutGVR).Namespace(s.env.Namespace).Get(ctx, RolloutName, metav1GetOptions)
	if err != nil {
		return rolloutState{}, err
	}
	return parseRollout(u), nil
}

func parseRollout(u *unstructured.Unstructured) rolloutState {
	st := rolloutState{Generation: u.GetGeneration(), ResourceVersion: u.GetResourceVersion(), StepIndex: -1, Obj: u}
	st.ObservedGeneration, _, _ = unstructured.NestedString(u.Object, "status", "observedGeneration")
	st.Phase, _, _ = unstructured.NestedString(u.Object, "status", "phase")
	st.Message, _, _ = unstructured.NestedString(u.Object, "status", "message")
	st.StableRS, _, _ = unstructured.NestedString(u.Object, "status", "stableRS")
	st.PodHash, _, _ = unstructured.NestedString(u.Object, "status", "currentPodHash")
	if i, ok, _ := unstructured.NestedInt64(u.Object, "status", "currentStepIndex"); ok {
		st.StepIndex = i
	}
	pcs, _, _ := unstructured.NestedSlice(u.Object, "status", "pauseConditions")
	st.Paused = len(pcs) > 0
	cs, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
	if len(cs) > 0 {
		if c, ok := cs[0].(map[string]any); ok {
			st.Image, _ = c["image"].(string)
		}
	}
	return st
}

// upToDate: the controller has seen the current spec.
func (r rolloutState) upToDate() bool {
	return r.ObservedGeneration == strconv.FormatInt(r.Generation, 10)
}

// ---- pods ----

type podInfo struct {
	Name, Role, Hash, Node string
	UID                    string
	HasRole, Ready         bool
	Terminating            bool
}

func (p podInfo) String() string {
	role := p.Role
	if !p.HasRole {
		role = "<none>"
	}
	return fmt.Sprintf("%s(role=%s hash=%s ready=%t terminating=%t)", p.Name, role, p.Hash, p.Ready, p.Terminating)
}

func (s *Scenario) demoPods(ctx context.Context) ([]podInfo, error) {
	list, err := s.cs.CoreV1().Pods(s.env.Namespace).List(ctx, listOptions("app=demo"))
	if err != nil {
		return nil, err
	}
	var out []podInfo
	for _, p := range list.Items {
		pi := podInfo{Name: p.Name, UID: string(p.UID), Hash: p.Labels[HashLabel], Node: p.Spec.NodeName, Terminating: p.DeletionTimestamp != nil}
		pi.Role, pi.HasRole = p.Labels[LabelKey]
		for _, c := range p.Status.Conditions {
			if c.Type == "Ready" && c.Status == "True" {
				pi.Ready = true
			}
		}
		out = append(out, pi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func describePods(pods []podInfo) string {
	parts := make([]string, len(pods))
	for i, p := range pods {
		parts[i] = p.String()
	}
	return fmt.Sprintf("%d pods [%s]", len(pods), strings.Join(parts, " "))
}

// countPods counts pods by (role, hash); any pod that is not Ready, is
// terminating, or lacks the role label makes settled false.
func countPods(pods []podInfo) (counts map[[2]string]int, settled bool) {
	counts = map[[2]string]int{}
	settled = true
	for _, p := range pods {
		if !p.Ready || p.Terminating || !p.HasRole {
			settled = false
		}
		counts[[2]string{p.Role, p.Hash}]++
	}
	return counts, settled
}

func (s *Scenario) showPods(ctx context.Context, n Narrator) error {
	_, _, err := s.show(ctx, n, nil, "get", "pods", "-n", s.env.Namespace, "-l", "app=demo", "--show-labels", "--sort-by=.metadata.labels.role")
	return err
}

func (s *Scenario) replicaSetReplicas(ctx context.Context, hash string) (int32, error) {
	list, err := s.cs.AppsV1().ReplicaSets(s.env.Namespace).List(ctx, listOptions(HashLabel+"="+hash))
	if err != nil {
		return 0, err
	}
	if len(list.Items) != 1 {
		return 0, fmt.Errorf("%d ReplicaSets with %s=%s", len(list.Items), HashLabel, hash)
	}
	if list.Items[0].Spec.Replicas == nil {
		return 1, nil
	}
	return *list.Items[0].Spec.Replicas, nil
}

// ---- steps 1-4: the Rollout ----

// promote runs `kubectl argo rollouts promote` on the Rollout and shows it.
func (s *Scenario) promote(ctx context.Context, n Narrator) error {
	_, _, err := s.show(ctx, n, nil, "argo", "rollouts", "promote", RolloutName, "-n", s.env.Namespace)
	return err
}

func (s *Scenario) stepSeed(ctx context.Context, n Narrator) error {
	n.Say("The seed's Rollout: 5 replicas of %s, steps setWeight 20 / pause / setWeight 50 / pause, and no stableMetadata or canaryMetadata.", ImageBefore)
	_, errOut, err := s.show(ctx, n, nil, "apply", "-n", s.env.Namespace, "-f", s.env.RolloutFile)
	if err != nil {
		return err
	}
	if strings.Contains(errOut, "Warning") {
		return fmt.Errorf("unexpected admission warning on the seed's Rollout: %s", errOut)
	}
	st, err := s.rollout(ctx)
	if err != nil {
		return err
	}
	for _, side := range []struct{ field, want string }{{"stableMetadata", StableValue}, {"canaryMetadata", CanaryValue}} {
		got, ok, _ := unstructured.NestedString(st.Obj.Object, "spec", "strategy", "canary", side.field, "labels", LabelKey)
		if !ok || got != side.want {
			return fmt.Errorf("stored Rollout: spec.strategy.canary.%s.labels.%s = %q (present %t), want %q", side.field, LabelKey, got, ok, side.want)
		}
	}
	n.Check("canary-tagger added spec.strategy.canary.stableMetadata.labels.role=stable and canaryMetadata.labels.role=canary at admission")
	if _, _, err := s.show(ctx, n, nil, "get", "rollout", RolloutName, "-n", s.env.Namespace, "-o", `jsonpath={.spec.strategy.canary}{"\n"}`); err != nil {
		return err
	}

	n.Say("Waiting for the Rollout to be Healthy with 5 Ready pods ...")
	elapsed, err := s.waitForRollout(ctx, "Rollout Healthy with 5 pods role=stable", func(ctx context.Context, st rolloutState, pods []podInfo, seen string) (bool, string, error) {
		if st.Phase != "Healthy" || !st.upToDate() || st.StableRS == "" || st.StableRS != st.PodHash {
			return false, seen, nil
		}
		counts, settled := countPods(pods)
		s.oldHash = st.StableRS
		return settled && len(pods) == 5 && counts[[2]string{StableValue, st.StableRS}] == 5, seen, nil
	})
	if err != nil {
		return err
	}
	n.Check("Rollout Healthy after %s; all 5 pods role=stable (hash %s)", elapsed, s.oldHash)
	return s.showPods(ctx, n)
}

func (s *Scenario) stepNewImage(ctx context.Context, n Narrator) error {
	n.Say("A new image, set the way the Argo Rollouts docs do it:")
	if _, _, err := s.show(ctx, n, nil, "argo", "rollouts", "set", "image", RolloutName, "demo="+ImageAfter, "-n", s.env.Namespace); err != nil {
		return err
	}
	n.Say("Waiting for the Rollout to pause at step 1 (setWeight 20) ...")
	elapsed, err := s.waitForRollout(ctx, "Rollout paused at step 1 with 1 pod role=canary and 4 role=stable", func(ctx context.Context, st rolloutState, pods []podInfo, seen string) (bool, string, error) {
		if st.Phase != "Paused" || !st.Paused || st.StepIndex != 1 || !st.upToDate() || st.Image != ImageAfter ||
			st.StableRS != s.oldHash || st.PodHash == "" || st.PodHash == s.oldHash {
			return false, seen, nil
		}
		s.newHash = st.PodHash
		counts, settled := countPods(pods)
		return settled && len(pods) == 5 &&
			counts[[2]string{CanaryValue, s.newHash}] == 1 &&
			counts[[2]string{StableValue, s.oldHash}] == 4, seen, nil
	})
	if err != nil {
		return err
	}
	n.Check("paused at step 1 after %s: exactly 1 pod role=canary (new hash %s) and 4 role=stable (old hash %s)",
		elapsed, s.newHash, s.oldHash)
	return s.showPods(ctx, n)
}

func (s *Scenario) stepPromote(ctx context.Context, n Narrator) error {
	if err := s.promote(ctx, n); err != nil {
		return err
	}
	n.Say("Waiting for the Rollout to pause at step 3 (setWeight 50) ...")
	var nCanary, nStable int
	elapsed, err := s.waitForRollout(ctx, "Rollout paused at step 3, pods labelled per ReplicaSet", func(ctx context.Context, st rolloutState, pods []podInfo, seen string) (bool, string, error) {
		if st.Phase != "Paused" || !st.Paused || st.StepIndex != 3 || st.StableRS != s.oldHash || st.PodHash != s.newHash {
			return false, seen, nil
		}
		wantCanary, err := s.replicaSetReplicas(ctx, s.newHash)
		if err != nil {
			return false, seen, err
		}
		wantStable, err := s.replicaSetReplicas(ctx, s.oldHash)
		if err != nil {
			return false, seen, err
		}
		seen += fmt.Sprintf("; ReplicaSet replicas: canary %d, stable %d", wantCanary, wantStable)
		counts, settled := countPods(pods)
		nCanary, nStable = counts[[2]string{CanaryValue, s.newHash}], counts[[2]string{StableValue, s.oldHash}]
		return settled && wantCanary > 1 && wantStable > 0 &&
			nCanary == int(wantCanary) && nStable == int(wantStable) && nCanary+nStable == len(pods), seen, nil
	})
	if err != nil {
		return err
	}
	n.Check("paused at step 3 after %s: %d pods role=canary (hash %s) and %d role=stable (hash %s), as their ReplicaSets say",
		elapsed, nCanary, s.newHash, nStable, s.oldHash)
	return s.showPods(ctx, n)
}

func (s *Scenario) stepPromoteToTheEnd(ctx context.Context, n Narrator) error {
	if err := s.promote(ctx, n); err != nil {
		return err
	}
	n.Say("Waiting for the Rollout to finish and be Healthy ...")
	elapsed, err := s.waitForRollout(ctx, "Rollout Healthy with 5 pods role=stable on the new hash", func(ctx context.Context, st rolloutState, pods []podInfo, seen string) (bool, string, error) {
		if st.Phase != "Healthy" || st.Paused || st.StepIndex != 4 || st.StableRS != s.newHash || st.PodHash != s.newHash {
			return false, seen, nil
		}
		counts, settled := countPods(pods)
		return settled && len(pods) == 5 && counts[[2]string{StableValue, s.newHash}] == 5, seen, nil
	})
	if err != nil {
		return err
	}
	n.Check("Healthy after %s: 5 pods role=stable with the new hash %s, none role=canary, none left on %s",
		elapsed, s.newHash, s.oldHash)
	return s.showPods(ctx, n)
}
