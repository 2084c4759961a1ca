package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/rand"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/canary-tagger/canary-tagger/test/internal/pinned"
	"github.com/canary-tagger/canary-tagger/webhook/config"
	"github.com/canary-tagger/canary-tagger/webhook/webhooktest"
)

// GVKs the suites use.
var (
	RolloutGVK = schema.GroupVersionKind{Group: "argoproj.io", Version: "v1alpha1", Kind: "Rollout"}
	crdGVK     = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}
	mwcGVK     = schema.GroupVersionKind{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "MutatingWebhookConfiguration"}
)

// Namespace labels of contract 1.
const (
	InjectLabel    = "canary-tagger.io/inject"
	InjectEnabled  = "enabled"
	InjectDisabled = "disabled"
)

// Probe namespaces: one unlabelled, one opted in. Server-side dry-run creates
// of a Rollout in them tell which webhook configuration the apiserver is
// using (an unlabelled namespace is injected only in cluster-wide mode).
const (
	probeNamespace        = "canary-tagger-probe"
	probeEnabledNamespace = "canary-tagger-probe-enabled"
)

// Options configure Start. The zero value is the default setup: cluster-wide
// mode, default flags, the webhook running.
type Options struct {
	// Flags are the webhook's shared flags as `serve` takes them (e.g.
	// "--blue-green"); the rest keep their defaults.
	Flags []string
	// Mode is the webhook configuration installed at start (default cluster-wide).
	Mode Mode
	// NoWebhook starts neither the webhook server nor its configuration.
	NoWebhook bool
	// APIServerArgs are added to (or replace) envtest's kube-apiserver flags.
	APIServerArgs map[string][]string
	// AuditLog makes the apiserver log Rollout requests (Env.AuditEvents).
	AuditLog bool
	// Logf reports progress (optional).
	Logf func(format string, args ...any)
}

// Env is a running control plane with canary-tagger registered. Its methods
// that change what is registered or running (Install…, Uninstall…, Webhook
// Start/Stop) change state every test sees: call them from one goroutine and
// restore the default (cluster-wide, server running) when done.
type Env struct {
	// Repo is the repository root; Assets the KUBEBUILDER_ASSETS folder.
	Repo, Assets string
	// Dir is a temporary directory for this Env (kubeconfig, certs, logs).
	Dir string
	// Config is an admin rest.Config; Client a controller-runtime client on it.
	Config *rest.Config
	Client client.Client
	// CAFile is the apiserver's serving CA; ServiceAccountKeyFile its
	// service-account signing key (for a kube-controller-manager).
	CAFile, ServiceAccountKeyFile string
	// Kubectl runs bin/k8s/kubectl against this cluster.
	Kubectl Kubectl
	// Rules are the webhook's validated flags.
	Rules config.Rules
	// Webhook is the in-process webhook server (nil with NoWebhook).
	Webhook *WebhookServer
	// ArgoCRDFiles are the Argo Rollouts CRD files applied at start.
	ArgoCRDFiles []string

	testEnv *envtest.Environment
	logf    func(string, ...any)
	mode    Mode
	// ownNamespace is canary-tagger's namespace per the rendered manifests.
	ownNamespace    string
	probeNamespaces bool
	// policy is the installed policy render (rollouts.admission=policy), if any.
	policy        *PolicyRender
	policyName    string
	serverVersion string
	auditLog      string
}

// Start starts etcd and kube-apiserver from the assets folder, applies the
// Argo Rollouts CRDs server-side, starts the webhook and registers it.
func Start(ctx context.Context, opts Options) (_ *Env, err error) {
	e := &Env{logf: opts.Logf}
	if e.logf == nil {
		e.logf = func(string, ...any) {}
	}
	if e.Repo, err = RepoRoot(); err != nil {
		return nil, err
	}
	if e.Assets, err = AssetsDir(e.Repo); err != nil {
		return nil, err
	}
	if e.Rules, err = ServeRules(opts.Flags...); err != nil {
		return nil, err
	}
	if e.Dir, err = os.MkdirTemp("", "canary-tagger-env-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, e.Stop())
		}
	}()
	setControllerRuntimeLogger(filepath.Join(e.Dir, "controller-runtime.log"))
	e.Kubectl = Kubectl{
		Path:       filepath.Join(e.Assets, "kubectl"),
		Kubeconfig: filepath.Join(e.Dir, "kubeconfig"),
		CacheDir:   filepath.Join(e.Dir, "kube-cache"),
	}

	start := time.Now()
	e.testEnv = &envtest.Environment{
		BinaryAssetsDirectory: e.Assets,
		// Two shared cores: the default 20 s is tight when other builds run.
		ControlPlaneStartTimeout: 90 * time.Second,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	apiServer := e.testEnv.ControlPlane.GetAPIServer()
	if opts.AuditLog {
		var args map[string][]string
		if args, e.auditLog, err = enableAuditLog(e.Dir); err != nil {
			return nil, err
		}
		for k, v := range args {
			apiServer.Configure().Set(k, v...)
		}
	}
	for k, v := range opts.APIServerArgs {
		apiServer.Configure().Set(k, v...)
	}
	if e.Config, err = e.testEnv.Start(); err != nil {
		return nil, fmt.Errorf("starting envtest from %s: %w", e.Assets, err)
	}
	e.logf("control plane up in %s (%s)", time.Since(start).Round(time.Millisecond), e.Config.Host)

	if err := os.WriteFile(e.Kubeconfig(), e.testEnv.KubeConfig, 0o600); err != nil {
		return nil, err
	}
	e.CAFile = filepath.Join(e.Dir, "apiserver-ca.crt")
	if err := os.WriteFile(e.CAFile, apiServer.SecureServing.CA, 0o644); err != nil {
		return nil, err
	}
	e.ServiceAccountKeyFile = filepath.Join(apiServer.CertDir, "sa-signer.key")

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if e.Client, err = client.New(e.Config, client.Options{Scheme: scheme}); err != nil {
		return nil, err
	}

	start = time.Now()
	if err := e.installArgoCRDs(ctx); err != nil {
		return nil, err
	}
	e.logf("Argo Rollouts CRDs established in %s", time.Since(start).Round(time.Millisecond))

	if opts.NoWebhook {
		return e, nil
	}
	start = time.Now()
	cfg := e.Config
	if e.Webhook, err = NewWebhookServer(e.Dir, e.Rules, func() (*rest.Config, error) { return rest.CopyConfig(cfg), nil }); err != nil {
		return nil, err
	}
	if err := e.Webhook.Start(ctx); err != nil {
		return nil, err
	}
	e.logf("webhook serving on %s (metrics %s) in %s", e.Webhook.Addr(), e.Webhook.MetricsURL(), time.Since(start).Round(time.Millisecond))
	mode := opts.Mode
	if mode == "" {
		mode = ModeClusterWide
	}
	start = time.Now()
	if err := e.InstallWebhookConfiguration(ctx, mode); err != nil {
		return nil, err
	}
	e.logf("webhook configuration (%s) in effect in %s", mode, time.Since(start).Round(time.Millisecond))
	return e, nil
}

var crLoggerOnce sync.Once

// setControllerRuntimeLogger gives controller-runtime's global logger (used
// by its webhook server and admission code) a file, once per process;
// otherwise it complains on stderr that it was never set.
func setControllerRuntimeLogger(path string) {
	crLoggerOnce.Do(func() {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			ctrllog.SetLogger(logr.Discard())
			return
		}
		ctrllog.SetLogger(zap.New(zap.WriteTo(f)))
	})
}

// Kubeconfig is the admin kubeconfig file (what Kubectl uses).
func (e *Env) Kubeconfig() string { return e.Kubectl.Kubeconfig }

// Stop stops the webhook and the control plane and removes Dir (set
// KEEP_ENV_DIR=1 to keep logs and certificates).
func (e *Env) Stop() error {
	var errs []error
	if e.Webhook != nil {
		errs = append(errs, e.Webhook.Stop(context.Background()))
	}
	if e.testEnv != nil && e.Config != nil {
		errs = append(errs, e.testEnv.Stop())
	} else if e.testEnv != nil {
		// Start failed half-way: stop whatever did come up.
		errs = append(errs, e.testEnv.ControlPlane.Stop())
	}
	if e.Dir != "" && os.Getenv("KEEP_ENV_DIR") == "" {
		errs = append(errs, os.RemoveAll(e.Dir))
	}
	return errors.Join(errs...)
}

// installArgoCRDs applies the pinned Argo Rollouts CRDs.
func (e *Env) installArgoCRDs(ctx context.Context) error {
	files, err := pinned.ArgoRollouts.CRDFiles(ctx, e.Repo)
	if err != nil {
		return err
	}
	e.ArgoCRDFiles = files
	return e.InstallCRDs(ctx, "Argo Rollouts", "argoproj.io", files)
}

// InstallCRDs applies CRD files with `kubectl apply --server-side` (the
// Rollout CRD is too large for the last-applied annotation of a client-side
// apply) and waits until every CRD of group is established.
func (e *Env) InstallCRDs(ctx context.Context, what, group string, files []string) error {
	e.logf("applying the %s CRDs server-side from %s", what, filepath.Dir(files[0]))
	args := []string{"apply", "--server-side", "--field-manager=canary-tagger-harness"}
	for _, f := range files {
		args = append(args, "-f", f)
	}
	if res := e.Kubectl.Run(ctx, args...); !res.OK() {
		return fmt.Errorf("applying the %s CRDs: %s", what, res)
	}
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(crdGVK.GroupVersion().WithKind("CustomResourceDefinitionList"))
	return Eventually(ctx, "the "+what+" CRDs to be established", func(ctx context.Context) (bool, error) {
		if err := e.Client.List(ctx, list); err != nil {
			return false, err
		}
		var pending []string
		n := 0
		for _, crd := range list.Items {
			if g, _, _ := unstructured.NestedString(crd.Object, "spec", "group"); g != group {
				continue
			}
			n++
			if !conditionTrue(crd.Object, "Established") {
				pending = append(pending, crd.GetName())
			}
		}
		if n < len(files) {
			return false, fmt.Errorf("%d of %d %s CRDs listed", n, len(files), what)
		}
		if len(pending) > 0 {
			return false, fmt.Errorf("not established: %s", strings.Join(pending, ", "))
		}
		return true, nil
	})
}

func conditionTrue(obj map[string]any, typ string) bool {
	conds, _, _ := unstructured.NestedSlice(obj, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == typ && m["status"] == "True" {
			return true
		}
	}
	return false
}

// OwnNamespace is canary-tagger's namespace according to the installed
// configuration (the namespace of the Service its webhooks call).
func (e *Env) OwnNamespace() string { return e.ownNamespace }

// Mode is the installed webhook configuration's mode ("" when uninstalled).
func (e *Env) Mode() Mode { return e.mode }

// WebhookTarget is where the apiserver sends admission reviews: a server on
// Host:Port whose certificate CAPEM signed.
type WebhookTarget struct {
	Host  string
	Port  int
	CAPEM []byte
	// Exited, when set, reports a server that has stopped (a child process
	// such as `canary-tagger serve`): the wait for the configuration then
	// ends at once with its error instead of running into its deadline.
	Exited func() error
}

// Target is the in-process server as a WebhookTarget.
func (s *WebhookServer) Target() WebhookTarget {
	return WebhookTarget{Host: s.Host, Port: s.Port, CAPEM: s.CAPEM}
}

// InstallWebhookConfiguration installs the configuration of mode for the
// in-process server (InstallWebhookConfigurationAt its Target).
func (e *Env) InstallWebhookConfiguration(ctx context.Context, mode Mode) error {
	if e.Webhook == nil {
		return errors.New("no webhook server in this Env (Options.NoWebhook): use InstallWebhookConfigurationAt")
	}
	return e.InstallWebhookConfigurationAt(ctx, mode, e.Webhook.Target())
}

// InstallWebhookConfigurationAt renders the manifests for mode, points the
// webhooks at target with envtest's WebhookInstallOptions (service →
// https://HOST:PORT/path, caBundle = target.CAPEM), creates or replaces the
// configuration, creates canary-tagger's own namespace, and waits until the
// apiserver uses the configuration (which needs the server to answer).
func (e *Env) InstallWebhookConfigurationAt(ctx context.Context, mode Mode, target WebhookTarget) error {
	wc, err := RenderWebhookConfiguration(ctx, e.Kubectl, e.Repo, mode)
	if err != nil {
		return err
	}
	if err := e.UninstallPolicy(ctx); err != nil {
		return err
	}
	if err := e.installWebhooks(wc.Object, target); err != nil {
		return fmt.Errorf("installing the %s webhook configuration: %w", mode, err)
	}
	e.ownNamespace = wc.OwnNamespace
	if err := e.CreateNamespace(ctx, wc.OwnNamespace, nil); err != nil {
		return err
	}
	e.mode = mode
	return e.waitWebhookConfiguration(ctx, mode, target.Exited)
}

// installWebhooks creates or replaces mwc with its webhooks pointed at
// target by envtest's WebhookInstallOptions (service → https://HOST:PORT/path,
// caBundle = target.CAPEM).
func (e *Env) installWebhooks(mwc *admissionv1.MutatingWebhookConfiguration, target WebhookTarget) error {
	install := envtest.WebhookInstallOptions{
		MutatingWebhooks:   []*admissionv1.MutatingWebhookConfiguration{mwc.DeepCopy()},
		LocalServingHost:   target.Host,
		LocalServingPort:   target.Port,
		LocalServingCAData: target.CAPEM,
		MaxTime:            DefaultTimeout,
		PollInterval:       DefaultInterval,
	}
	if err := install.ModifyWebhookDefinitions(); err != nil {
		return err
	}
	// Install skips its own CA and certificate set-up because
	// LocalServingCAData is given: the server keeps its own certificate
	// (certs.WriteSelfSigned).
	return install.Install(e.Config)
}

// UninstallWebhookConfiguration deletes the configuration (and the
// policies, if installed) and waits until the apiserver no longer calls the
// webhook.
func (e *Env) UninstallWebhookConfiguration(ctx context.Context) error {
	if err := e.UninstallPolicy(ctx); err != nil {
		return err
	}
	if err := e.deleteWebhookConfiguration(ctx); err != nil {
		return err
	}
	e.mode = ""
	return e.WaitWebhookConfiguration(ctx, "")
}

// deleteWebhookConfiguration deletes the webhook configuration of manifests/, if there is one.
func (e *Env) deleteWebhookConfiguration(ctx context.Context) error {
	wc, err := RenderWebhookConfiguration(ctx, e.Kubectl, e.Repo, ModeClusterWide)
	if err != nil {
		return err
	}
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(mwcGVK)
	obj.SetName(wc.Object.Name)
	if err := e.Client.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return nil
}

// WaitWebhookConfiguration waits until the apiserver admits Rollouts as the
// configuration of mode says ("" = none installed), by dry-run creates in
// the probe namespaces. The webhook server must be running for a mode to be
// seen.
func (e *Env) WaitWebhookConfiguration(ctx context.Context, mode Mode) error {
	return e.waitWebhookConfiguration(ctx, mode, nil)
}

// waitWebhookConfiguration is WaitWebhookConfiguration that stops as soon as
// exited (optional) reports the server gone.
func (e *Env) waitWebhookConfiguration(ctx context.Context, mode Mode, exited func() error) error {
	want := map[string]bool{} // probe namespace → injected
	switch mode {
	case "":
		want[probeNamespace], want[probeEnabledNamespace] = false, false
	case ModeClusterWide:
		want[probeNamespace] = true
	case ModeNamespaceOptIn:
		want[probeNamespace], want[probeEnabledNamespace] = false, true
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	if err := e.createProbeNamespaces(ctx); err != nil {
		return err
	}
	err := Eventually(ctx, "the probe Rollouts to be injected as the mode says", func(ctx context.Context) (bool, error) {
		if exited != nil {
			if err := exited(); err != nil {
				return false, webhooktest.StopPolling(err)
			}
		}
		for ns, injected := range want {
			got, err := e.ProbeInjects(ctx, ns)
			if err != nil {
				return false, err
			}
			if got != injected {
				return false, fmt.Errorf("a Rollout in namespace %s is injected=%t, want %t", ns, got, injected)
			}
		}
		return true, nil
	})
	if err != nil {
		if mode == "" {
			mode = "none"
		}
		return fmt.Errorf("waiting for webhook configuration %s to take effect: %w", mode, err)
	}
	return nil
}

// WaitWebhookServing waits until a Rollout in a namespace the current mode
// covers is injected: the apiserver reaches the (re)started server.
func (e *Env) WaitWebhookServing(ctx context.Context) error {
	ns := probeNamespace
	if e.mode == ModeNamespaceOptIn {
		ns = probeEnabledNamespace
	}
	if err := e.createProbeNamespaces(ctx); err != nil {
		return err
	}
	return Eventually(ctx, "a Rollout in namespace "+ns+" to be injected", func(ctx context.Context) (bool, error) {
		ok, err := e.ProbeInjects(ctx, ns)
		if err == nil && !ok {
			err = fmt.Errorf("a Rollout in namespace %s is not injected", ns)
		}
		return ok, err
	})
}

func (e *Env) createProbeNamespaces(ctx context.Context) error {
	if e.probeNamespaces {
		return nil
	}
	for ns, labels := range map[string]map[string]string{
		probeNamespace:        nil,
		probeEnabledNamespace: {InjectLabel: InjectEnabled},
	} {
		if err := e.CreateNamespace(ctx, ns, labels); err != nil {
			return err
		}
	}
	e.probeNamespaces = true
	return nil
}

// ProbeInjects dry-run creates a minimal canary Rollout in ns and reports
// whether the apiserver's answer carries the injected stable label.
func (e *Env) ProbeInjects(ctx context.Context, ns string) (bool, error) {
	r := ProbeRollout(ns, "probe-"+rand.String(5))
	if err := e.Client.Create(ctx, r, client.DryRunAll); err != nil {
		return false, err
	}
	v, _, _ := unstructured.NestedString(r.Object, "spec", "strategy", "canary", "stableMetadata", "labels", e.Rules.Rollout.LabelKey)
	return v == e.Rules.Rollout.StableValue, nil
}

// ProbeRollout is a minimal canary Rollout with steps and no metadata.
func ProbeRollout(ns, name string) *unstructured.Unstructured {
	r := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{
			"replicas": int64(1),
			"selector": map[string]any{"matchLabels": map[string]any{"app": name}},
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"app": name}},
				"spec": map[string]any{"containers": []any{
					map[string]any{"name": "app", "image": "argoproj/demo:blue"},
				}},
			},
			"strategy": map[string]any{"canary": map[string]any{"steps": []any{
				map[string]any{"setWeight": int64(20)},
				map[string]any{"pause": map[string]any{}},
			}}},
		},
	}}
	r.SetGroupVersionKind(RolloutGVK)
	r.SetNamespace(ns)
	r.SetName(name)
	return r
}

// CreateNamespace creates ns with labels; an existing one is left as it is.
func (e *Env) CreateNamespace(ctx context.Context, name string, labels map[string]string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := e.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return nil
}

// GetRollout reads a Rollout as stored.
func (e *Env) GetRollout(ctx context.Context, ns, name string) (*unstructured.Unstructured, error) {
	r := &unstructured.Unstructured{}
	r.SetGroupVersionKind(RolloutGVK)
	err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, r)
	return r, err
}

// ReviewCount is the webhook's canary_tagger_admission_reviews_total for
// webhook ("rollout" or "agent-pod"), summed over outcomes.
func (e *Env) ReviewCount(ctx context.Context, webhook string) (float64, error) {
	m, err := e.Metrics(ctx)
	if err != nil {
		return 0, err
	}
	if !m.Has(ReviewsMetric) {
		return 0, fmt.Errorf("%s does not expose %s", e.Webhook.MetricsURL(), ReviewsMetric)
	}
	return m.Sum(ReviewsMetric, map[string]string{"webhook": webhook}), nil
}

// Metrics scrapes the webhook server's /metrics.
func (e *Env) Metrics(ctx context.Context) (webhooktest.Metrics, error) {
	if e.Webhook == nil {
		return nil, errors.New("no webhook server in this Env")
	}
	return webhooktest.ScrapeMetrics(ctx, e.Webhook.MetricsURL())
}
