package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/rand"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/canary-tagger/canary-tagger/webhook/config"
	"github.com/canary-tagger/canary-tagger/webhook/webhooktest"
)

// Admission is how Rollouts are admitted: the chart value rollouts.admission.
type Admission string

const (
	// AdmissionWebhook: canary-tagger's Rollout webhook.
	AdmissionWebhook Admission = "webhook"
	// AdmissionPolicy: the chart's MutatingAdmissionPolicy and
	// ValidatingAdmissionPolicy; no Rollout webhook.
	AdmissionPolicy Admission = "policy"
)

// The kinds the chart renders for rollouts.admission=policy.
var policyKinds = []string{
	"MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding",
	"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
}

// PolicyRender is the chart rendered with rollouts.admission=policy for one
// mode and the Env's settings, with manifests/' release name and namespace.
type PolicyRender struct {
	Mode Mode
	// Name is the name of the two policies and their bindings.
	Name string
	// Policies is the YAML stream of the policies and bindings, as rendered.
	Policies []byte
	// The policies and bindings, decoded strictly (a field the API type
	// does not have is an error).
	Mutating          *admissionv1.MutatingAdmissionPolicy
	MutatingBinding   *admissionv1.MutatingAdmissionPolicyBinding
	Validating        *admissionv1.ValidatingAdmissionPolicy
	ValidatingBinding *admissionv1.ValidatingAdmissionPolicyBinding
	// WebhookConfiguration is what is left of the webhook configuration:
	// the agent-pod webhook (nil with agentPods.enabled=false).
	WebhookConfiguration *admissionv1.MutatingWebhookConfiguration
	// OwnNamespace is the release namespace, which the bindings exclude.
	OwnNamespace string
}

// ChartSettings are the chart's settings values for rules.
func ChartSettings(rules config.Rules) (map[string]any, error) {
	sel, err := metav1.ParseToLabelSelector(rules.AgentSelector)
	if err != nil {
		return nil, err
	}
	var selector map[string]any
	b, err := json.Marshal(sel)
	if err == nil {
		err = json.Unmarshal(b, &selector)
	}
	if err != nil {
		return nil, err
	}
	r := rules.Rollout
	return map[string]any{
		"labelKey": r.LabelKey, "stableValue": r.StableValue, "canaryValue": r.CanaryValue,
		"blueGreen": r.BlueGreen, "tagName": rules.AgentPod.TagName, "agentSelector": selector,
	}, nil
}

// chartMode is the chart's value for mode.
func chartMode(mode Mode) (string, error) {
	switch mode {
	case ModeClusterWide:
		return "cluster-wide", nil
	case ModeNamespaceOptIn:
		return "opt-in", nil
	}
	return "", fmt.Errorf("unknown mode %q", mode)
}

// RenderPolicy renders the chart (Helm's Go packages, as `helm template`)
// with rollouts.admission=policy, mode and the settings of rules, for
// Kubernetes kubeVersion, and splits the render into the policies and the
// webhook configuration.
func RenderPolicy(repo string, mode Mode, rules config.Rules, agentPods bool, kubeVersion string) (*PolicyRender, error) {
	m, err := chartMode(mode)
	if err != nil {
		return nil, err
	}
	settings, err := ChartSettings(rules)
	if err != nil {
		return nil, err
	}
	manifest, err := RenderChart(repo, ChartRender{
		ReleaseName: ManifestsRelease, Namespace: ManifestsNamespace, KubeVersion: kubeVersion,
		Values: map[string]any{
			"mode": m, "rollouts": map[string]any{"admission": string(AdmissionPolicy)},
			"agentPods": map[string]any{"enabled": agentPods}, "settings": settings,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("rendering the chart with rollouts.admission=policy: %w", err)
	}
	pr := &PolicyRender{Mode: mode, OwnNamespace: ManifestsNamespace}
	dec := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(manifest)))
	for {
		doc, err := dec.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		var tm struct {
			metav1.TypeMeta `json:",inline"`
			Metadata        metav1.ObjectMeta `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, err
		}
		switch {
		case tm.Kind == "MutatingWebhookConfiguration":
			if pr.WebhookConfiguration, err = pickMutatingWebhookConfiguration(doc); err != nil {
				return nil, err
			}
		case slices.Contains(policyKinds, tm.Kind):
			if tm.APIVersion != admissionv1.SchemeGroupVersion.String() {
				return nil, fmt.Errorf("%s %s has apiVersion %s, want %s", tm.Kind, tm.Metadata.Name, tm.APIVersion, admissionv1.SchemeGroupVersion)
			}
			if pr.Name != "" && pr.Name != tm.Metadata.Name {
				return nil, fmt.Errorf("the policies are named %s and %s, want one name", pr.Name, tm.Metadata.Name)
			}
			pr.Name = tm.Metadata.Name
			pr.Policies = append(pr.Policies, "---\n"...)
			pr.Policies = append(pr.Policies, doc...)
			if err := pr.decode(tm.Kind, doc); err != nil {
				return nil, err
			}
		}
	}
	if pr.Mutating == nil || pr.MutatingBinding == nil || pr.Validating == nil || pr.ValidatingBinding == nil {
		return nil, fmt.Errorf("the policy render lacks one of %s", strings.Join(policyKinds, ", "))
	}
	return pr, nil
}

// decode decodes one rendered policy or binding strictly into its field.
func (pr *PolicyRender) decode(kind string, doc []byte) error {
	var dst any
	switch kind {
	case "MutatingAdmissionPolicy":
		pr.Mutating = &admissionv1.MutatingAdmissionPolicy{}
		dst = pr.Mutating
	case "MutatingAdmissionPolicyBinding":
		pr.MutatingBinding = &admissionv1.MutatingAdmissionPolicyBinding{}
		dst = pr.MutatingBinding
	case "ValidatingAdmissionPolicy":
		pr.Validating = &admissionv1.ValidatingAdmissionPolicy{}
		dst = pr.Validating
	case "ValidatingAdmissionPolicyBinding":
		pr.ValidatingBinding = &admissionv1.ValidatingAdmissionPolicyBinding{}
		dst = pr.ValidatingBinding
	}
	if err := yaml.UnmarshalStrict(doc, dst); err != nil {
		return fmt.Errorf("%s: %w", kind, err)
	}
	return nil
}

// Admission is what admits Rollouts now ("" when nothing does).
func (e *Env) Admission() Admission {
	switch {
	case e.policy != nil:
		return AdmissionPolicy
	case e.mode != "":
		return AdmissionWebhook
	}
	return ""
}

// PolicyName is the name of the policies installed last ("" before any).
func (e *Env) PolicyName() string { return e.policyName }

// InstallAdmission makes a admit Rollouts in mode, and only a: the webhook
// configuration of manifests/, or the chart's policy render.
func (e *Env) InstallAdmission(ctx context.Context, a Admission, mode Mode) error {
	switch a {
	case AdmissionWebhook:
		return e.InstallWebhookConfiguration(ctx, mode)
	case AdmissionPolicy:
		return e.InstallPolicy(ctx, mode)
	}
	return fmt.Errorf("unknown admission %q", a)
}

// UninstallAdmission removes whatever admits Rollouts and waits until
// nothing does.
func (e *Env) UninstallAdmission(ctx context.Context) error {
	if e.policy != nil {
		return e.UninstallPolicy(ctx)
	}
	return e.UninstallWebhookConfiguration(ctx)
}

// InstallPolicy installs the chart's render for rollouts.admission=policy:
// it removes the Rollout webhook (the webhook configuration becomes the
// render's, the agent-pod webhook only, pointed at the in-process server),
// applies the policies and bindings with `kubectl apply --server-side`, and
// waits until Rollouts are admitted as mode says and the Rollout webhook is
// no longer called.
func (e *Env) InstallPolicy(ctx context.Context, mode Mode) error {
	kv, err := e.ServerVersion()
	if err != nil {
		return err
	}
	pr, err := RenderPolicy(e.Repo, mode, e.Rules, true, kv)
	if err != nil {
		return err
	}
	if e.policy != nil && e.policy.Name != pr.Name {
		if err := e.UninstallPolicy(ctx); err != nil {
			return err
		}
	}
	if e.Webhook != nil {
		if err := e.installWebhooks(pr.WebhookConfiguration, e.Webhook.Target()); err != nil {
			return fmt.Errorf("installing the agent-pod webhook configuration: %w", err)
		}
	} else if err := e.deleteWebhookConfiguration(ctx); err != nil {
		return err
	}
	e.mode = ""
	if res := e.Kubectl.RunStdin(ctx, bytes.NewReader(pr.Policies), "apply", "--server-side", "--field-manager=canary-tagger-harness", "-f", "-"); !res.OK() {
		return fmt.Errorf("applying the Rollout policies: %s", res)
	}
	e.policy, e.policyName = pr, pr.Name
	e.ownNamespace = pr.OwnNamespace
	if err := e.CreateNamespace(ctx, pr.OwnNamespace, nil); err != nil {
		return err
	}
	e.mode = mode
	if err := e.WaitWebhookConfiguration(ctx, mode); err != nil {
		return fmt.Errorf("rollouts.admission=policy: %w", err)
	}
	if err := e.waitClashWarning(ctx); err != nil {
		return fmt.Errorf("rollouts.admission=policy: %w", err)
	}
	return e.waitRolloutWebhookGone(ctx)
}

// coveredProbeNamespace is a probe namespace the current mode covers.
func (e *Env) coveredProbeNamespace() string {
	if e.mode == ModeNamespaceOptIn {
		return probeEnabledNamespace
	}
	return probeNamespace
}

// waitClashWarning waits until a Rollout whose pod template uses the label
// key gets a warning (the ValidatingAdmissionPolicy is in effect: the
// apiserver learns of it apart from the MutatingAdmissionPolicy).
func (e *Env) waitClashWarning(ctx context.Context) error {
	warned := &warningRecorder{}
	cfg := rest.CopyConfig(e.Config)
	cfg.WarningHandler = warned
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ns := e.coveredProbeNamespace()
	return Eventually(ctx, "waitClashWarning", func(ctx context.Context) (bool, error) {
		r := ProbeRollout(ns, "probe-"+rand.String(5))
		if err := unstructured.SetNestedField(r.Object, "web", "spec", "template", "metadata", "labels", e.Rules.Rollout.LabelKey); err != nil {
			return false, webhooktest.StopPolling(err)
		}
		warned.reset()
		gvr := RolloutGVK.GroupVersion().WithResource("rollouts")
		if _, err := dyn.Resource(gvr).Namespace(ns).Create(ctx, r, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			return false, err
		}
		for _, w := range warned.get() {
			if strings.Contains(w, "ValidatingAdmissionPolicy '"+e.policyName+"'") {
				return true, nil
			}
		}
		return false, fmt.Errorf("a Rollout whose pod template uses %q gets no warning from ValidatingAdmissionPolicy %s yet", e.Rules.Rollout.LabelKey, e.policyName)
	})
}

// warningRecorder keeps the warnings of the last request.
type warningRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

func (w *warningRecorder) reset() { w.mu.Lock(); w.msgs = nil; w.mu.Unlock() }

func (w *warningRecorder) get() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.msgs)
}

// policyChecksMetric is the apiserver's count of a MutatingAdmissionPolicy's
// mutations evaluated, by policy and binding.
const policyChecksMetric = "apiserver_mutating_admission_policy_check_total"

// PolicyEvaluations is how often the apiserver has evaluated the mutation
// of the policy installed last (PolicyName), from its /metrics.
func (e *Env) PolicyEvaluations(ctx context.Context) (float64, error) {
	if e.policyName == "" {
		return 0, errors.New("no policy installed yet")
	}
	m, err := e.APIServerMetrics(ctx, policyChecksMetric)
	if err != nil {
		return 0, err
	}
	return m.Sum(policyChecksMetric, map[string]string{"policy": e.policyName}), nil
}

// APIServerMetrics scrapes the apiserver's /metrics and parses the families
// named (the whole exposition is megabytes).
func (e *Env) APIServerMetrics(ctx context.Context, families ...string) (webhooktest.Metrics, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(e.Config)
	if err != nil {
		return nil, err
	}
	return webhooktest.ScrapeAPIServer(ctx, dc.RESTClient(), families...)
}

// UninstallPolicy deletes the policies and bindings and waits until no
// Rollout is injected. The agent-pod webhook stays.
func (e *Env) UninstallPolicy(ctx context.Context) error {
	if e.policy == nil {
		return nil
	}
	if res := e.Kubectl.RunStdin(ctx, bytes.NewReader(e.policy.Policies), "delete", "--ignore-not-found", "-f", "-"); !res.OK() {
		return fmt.Errorf("deleting the Rollout policies: %s", res)
	}
	e.policy = nil
	e.mode = ""
	return e.WaitWebhookConfiguration(ctx, "")
}

// waitRolloutWebhookGone waits until a Rollout create no longer reaches the
// in-process server's Rollout webhook (the apiserver learns of a changed
// webhook configuration through an informer).
func (e *Env) waitRolloutWebhookGone(ctx context.Context) error {
	if e.Webhook == nil {
		return nil
	}
	ns := e.coveredProbeNamespace()
	return Eventually(ctx, "waitRolloutWebhookGone", func(ctx context.Context) (bool, error) {
		before, err := e.ReviewCount(ctx, WebhookRollout)
		if err != nil {
			return false, err
		}
		if _, err := e.ProbeInjects(ctx, ns); err != nil {
			return false, err
		}
		after, err := e.ReviewCount(ctx, WebhookRollout)
		if err != nil {
			return false, err
		}
		if after != before {
			return false, errors.New("a Rollout create still reaches the Rollout webhook")
		}
		return true, nil
	})
}

// ServerVersion is the apiserver's version (for rendering the chart).
func (e *Env) ServerVersion() (string, error) {
	if e.serverVersion != "" {
		return e.serverVersion, nil
	}
	dc, err := discovery.NewDiscoveryClientForConfig(e.Config)
	if err != nil {
		return "", err
	}
	v, err := dc.ServerVersion()
	if err != nil {
		return "", err
	}
	e.serverVersion = v.GitVersion
	return e.serverVersion, nil
}
