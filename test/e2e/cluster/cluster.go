// Package cluster brings up everything the seed's scenario runs on, for the
// e2e test and for `make demo` alike: etcd and kube-apiserver (the harness's
// envtest, with the Argo Rollouts CRDs), kube-controller-manager,
// kube-scheduler, kwok with fake nodes and the Argo Rollouts controller
// (package controlplane), the Datadog Operator when the story reaches it,
// and canary-tagger itself as a local process
// (`canary-tagger serve`) registered through the MutatingWebhookConfiguration
// rendered from manifests/.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/canary-tagger/canary-tagger/certs"
	"github.com/canary-tagger/canary-tagger/test/e2e/scenario"
	"github.com/canary-tagger/canary-tagger/test/internal/controlplane"
	"github.com/canary-tagger/canary-tagger/test/internal/harness"
	"github.com/canary-tagger/canary-tagger/test/internal/pinned"
	"github.com/canary-tagger/canary-tagger/webhook/webhooktest"
)

// Options configure Up.
type Options struct {
	// Binary is where `go build` writes canary-tagger (default bin/canary-tagger).
	Binary string
	// LogDir receives one log per process (default: the harness's directory).
	LogDir string
	// Nodes is the number of kwok nodes (default 3).
	Nodes int
	// Detach leaves the processes running if this program exits without
	// Down (make demo KEEP=1).
	Detach bool
	// Logf reports progress (optional).
	Logf func(format string, args ...any)
}

// Cluster is a running cluster with canary-tagger registered.
type Cluster struct {
	Repo        string
	K8sBin      string // bin/k8s
	E2EBin      string // bin/e2e
	FixturesDir string // <repo>/test/testdata/datadog-helm
	RolloutFile string // test/e2e/testdata/rollout.yaml
	LogDir      string

	Env     *harness.Env
	CP      *controlplane.ControlPlane
	Webhook *controlplane.Process
	// Replica is a second canary-tagger serve while StartWebhookReplica
	// has one running (the webhook configuration stays pointed at Webhook).
	Replica *controlplane.Process
	// DatadogOperator runs once StartDatadogOperator has been called;
	// DatadogOperatorMetricsURL is its controller-runtime /metrics.
	DatadogOperator           *controlplane.Process
	DatadogOperatorMetricsURL string
	// WebhookMetricsURL is canary-tagger's /metrics.
	WebhookMetricsURL string

	logf func(string, ...any)
	// How canary-tagger serve was started, for RestartWebhook.
	webhookBinary  string
	webhookCertDir string
	webhookPorts   [3]int // webhook, metrics, health
	detach         bool
}

// HealInterval is serve's --heal-interval here. The default (1m) would make
// the story's heal steps wait minutes for a pass, and their "nothing written
// over three passes" windows last three; 5 s keeps each wait to seconds and
// is still far longer than a pass on this cluster takes.
const HealInterval = 5 * time.Second

// Paths returns the repository root and the tool folders, and an error naming
// what is missing (and how to build it).
func Paths() (repo, k8sBin, e2eBin string, err error) {
	if repo, err = harness.RepoRoot(); err != nil {
		return "", "", "", err
	}
	k8sBin = filepath.Join(repo, "bin", "k8s")
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		k8sBin = d
	}
	e2eBin = filepath.Join(repo, "bin", "e2e")
	return repo, k8sBin, e2eBin, nil
}

// MissingTools lists the tool files that are not built yet.
func MissingTools() ([]string, error) {
	_, k8sBin, e2eBin, err := Paths()
	if err != nil {
		return nil, err
	}
	missing := controlplane.Missing(k8sBin, e2eBin)
	if _, err := os.Stat(filepath.Join(e2eBin, "datadog-operator")); err != nil {
		missing = append(missing, filepath.Join(e2eBin, "datadog-operator"))
	}
	for _, name := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(k8sBin, name)); err != nil {
			missing = append(missing, filepath.Join(k8sBin, name))
		}
	}
	return missing, nil
}

// Up starts everything; on error it stops what it started.
func Up(ctx context.Context, opts Options) (c *Cluster, err error) {
	c = &Cluster{logf: opts.Logf}
	if c.logf == nil {
		c.logf = func(string, ...any) {}
	}
	if c.Repo, c.K8sBin, c.E2EBin, err = Paths(); err != nil {
		return nil, err
	}
	if m, err := MissingTools(); err != nil {
		return nil, err
	} else if len(m) > 0 {
		return nil, fmt.Errorf("e2e tools not built: %s\nbuild them with `make tools` (hack/tools.sh e2e; ≈20 min on a cold 2-core machine, cached in bin/ afterwards)",
			strings.Join(m, ", "))
	}
	c.FixturesDir = filepath.Join(c.Repo, "test", "testdata", "datadog-helm")
	c.RolloutFile = harness.SeedRolloutPath(c.Repo)
	for _, f := range []string{c.FixturesDir, c.RolloutFile} {
		if _, err := os.Stat(f); err != nil {
			return nil, err
		}
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Down())
		}
	}()

	binary := opts.Binary
	if binary == "" {
		binary = filepath.Join(c.Repo, "bin", "canary-tagger")
	}
	start := time.Now()
	if err := harness.BuildCanaryTagger(ctx, c.Repo, binary); err != nil {
		return nil, err
	}
	c.logf("canary-tagger: built %s (%s)", rel(c.Repo, binary), since(start))

	start = time.Now()
	if c.Env, err = harness.Start(ctx, harness.Options{NoWebhook: true}); err != nil {
		return nil, err
	}
	c.logf("etcd + kube-apiserver (envtest) with the Argo Rollouts CRDs: up (%s)", since(start))
	c.LogDir = opts.LogDir
	if c.LogDir == "" {
		c.LogDir = filepath.Join(c.Env.Dir, "logs")
	}

	start = time.Now()
	if c.CP, err = controlplane.Start(ctx, controlplane.Options{
		Kubeconfig:            c.Env.Kubeconfig(),
		K8sBinDir:             c.K8sBin,
		E2EBinDir:             c.E2EBin,
		LogDir:                c.LogDir,
		ServiceAccountKeyFile: c.Env.ServiceAccountKeyFile,
		RootCAFile:            c.Env.CAFile,
		Nodes:                 opts.Nodes,
		Detach:                opts.Detach,
		Logf:                  func(f string, a ...any) { c.logf("  "+f, a...) },
	}); err != nil {
		return nil, err
	}
	c.logf("controllers and %d kwok nodes: up (%s)", len(c.CP.Nodes), since(start))

	start = time.Now()
	if err := c.startWebhook(ctx, binary, opts.Detach); err != nil {
		return nil, err
	}
	c.logf("canary-tagger serve: ready, registered and called by the apiserver (%s)", since(start))
	return c, nil
}

// startWebhook runs `canary-tagger serve` on loopback with a self-signed
// certificate, waits for /readyz, registers the webhook configuration from
// manifests/ pointed at it, and waits until the apiserver calls it.
func (c *Cluster) startWebhook(ctx context.Context, binary string, detach bool) error {
	c.webhookBinary, c.detach = binary, detach
	c.webhookCertDir = filepath.Join(c.Env.Dir, "webhook-certs")
	if err := os.MkdirAll(c.webhookCertDir, 0o755); err != nil {
		return err
	}
	caPEM, err := certs.WriteSelfSigned(c.webhookCertDir, []string{"127.0.0.1", "localhost"}, 7*24*time.Hour)
	if err != nil {
		return err
	}
	for i := range c.webhookPorts {
		if c.webhookPorts[i], err = controlplane.FreePort(); err != nil {
			return err
		}
	}
	c.WebhookMetricsURL = "http://127.0.0.1:" + strconv.Itoa(c.webhookPorts[1]) + "/metrics"
	if c.Webhook, err = c.runServe(ctx, "canary-tagger", c.webhookPorts, nil); err != nil {
		return err
	}

	// The harness renders manifests/ for cluster-wide mode, points the
	// webhooks at this process and waits until the apiserver calls it (an
	// informer picks the configuration up), stopping at once if it exits.
	return c.Env.InstallWebhookConfigurationAt(ctx, harness.ModeClusterWide, harness.WebhookTarget{
		Host:   "127.0.0.1",
		Port:   c.webhookPorts[0],
		CAPEM:  caPEM,
		Exited: func() error { return c.Webhook.Exited() },
	})
}

// runServe starts `canary-tagger serve` with extra flags on ports
// (webhook, metrics, health) and the certificate chosen by startWebhook, logs
// to <name>.log and waits for /readyz.
func (c *Cluster) runServe(ctx context.Context, name string, ports [3]int, extra []string) (*controlplane.Process, error) {
	metrics := "127.0.0.1:" + strconv.Itoa(ports[1])
	health := "127.0.0.1:" + strconv.Itoa(ports[2])
	args := append([]string{
		"serve",
		"--host=127.0.0.1",
		"--port=" + strconv.Itoa(ports[0]),
		"--cert-dir=" + c.webhookCertDir,
		"--metrics-bind-address=" + metrics,
		"--health-probe-bind-address=" + health,
		"--heal-interval=" + HealInterval.String(),
	}, extra...)
	proc, err := controlplane.StartProcess(name, c.webhookBinary, args,
		filepath.Join(c.LogDir, name+".log"), controlplane.ProcessOptions{
			// serve reads workloadRef templates (contract 2.2) and heals
			// Rollouts with this kubeconfig.
			Env:    []string{"KUBECONFIG=" + c.Env.Kubeconfig()},
			Detach: c.detach,
		})
	if err != nil {
		return nil, err
	}
	c.logf("  %s: started (pid %d, https://127.0.0.1:%d, log %s)", name, proc.Pid(), ports[0], proc.LogPath)
	err = webhooktest.Poll(ctx, name+" to be ready", 60*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		if err := proc.Exited(); err != nil {
			return false, webhooktest.StopPolling(err)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+health+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, fmt.Errorf("readyz: %s", resp.Status)
		}
		return true, nil
	})
	if err != nil {
		proc.Stop(10 * time.Second)
		return nil, fmt.Errorf("canary-tagger serve (%s) did not get ready: %w", name, err)
	}
	return proc, nil
}

// RestartWebhook stops canary-tagger and starts it again on the same port
// and certificate, with extra flags (e.g. --canary-value=preview); the
// webhook configuration stays as it is. Its log starts over.
func (c *Cluster) RestartWebhook(ctx context.Context, extra ...string) error {
	if c.Webhook != nil {
		c.Webhook.Stop(10 * time.Second)
	}
	var err error
	c.Webhook, err = c.runServe(ctx, "canary-tagger", c.webhookPorts, extra)
	return err
}

// StopWebhook stops canary-tagger (SIGTERM), as an outage of the webhook
// would: the configuration stays registered and the apiserver fails open
// (failurePolicy Ignore) until RestartWebhook starts it again.
func (c *Cluster) StopWebhook(context.Context) error {
	if c.Webhook != nil {
		c.Webhook.Stop(10 * time.Second)
	}
	return nil
}

// KillWebhook kills canary-tagger (SIGKILL): a crash, with nothing released
// (its heal Lease, if it held one, runs out instead). RestartWebhook
// starts it again.
func (c *Cluster) KillWebhook(context.Context) error {
	if c.Webhook != nil {
		c.Webhook.Kill()
	}
	return nil
}

// StartWebhookReplica starts a second `canary-tagger serve` with extra
// flags on ports of its own and the same certificate, as a second replica
// of the Deployment would run; the webhook configuration stays pointed at
// the first. It returns the replica's /metrics URL.
func (c *Cluster) StartWebhookReplica(ctx context.Context, extra ...string) (string, error) {
	if c.Replica != nil {
		return "", errors.New("a canary-tagger replica is already running")
	}
	var ports [3]int
	for i := range ports {
		var err error
		if ports[i], err = controlplane.FreePort(); err != nil {
			return "", err
		}
	}
	proc, err := c.runServe(ctx, "canary-tagger-replica", ports, extra)
	if err != nil {
		return "", err
	}
	c.Replica = proc
	return "http://127.0.0.1:" + strconv.Itoa(ports[1]) + "/metrics", nil
}

// StopWebhookReplica stops the replica StartWebhookReplica started.
func (c *Cluster) StopWebhookReplica(context.Context) error {
	if c.Replica != nil {
		c.Replica.Stop(10 * time.Second)
		c.Replica = nil
	}
	return nil
}

// StartDatadogOperator installs the Datadog Operator's CRDs (from the module
// cache, at the version test/tools/datadog-operator pins) and starts
// bin/e2e/datadog-operator against the cluster, with nothing that would talk
// to Datadog: its own metrics to Datadog off, and every Datadog URL it could
// call pointed at a closed local port.
func (c *Cluster) StartDatadogOperator(ctx context.Context) error {
	if c.DatadogOperator != nil {
		return nil
	}
	start := time.Now()
	files, err := pinned.DatadogOperator.CRDFiles(ctx, c.Repo)
	if err != nil {
		return err
	}
	if err := c.Env.InstallCRDs(ctx, "Datadog Operator", "datadoghq.com", files); err != nil {
		return err
	}
	metrics, err := controlplane.FreePort()
	if err != nil {
		return err
	}
	closed, err := controlplane.FreePort()
	if err != nil {
		return err
	}
	nowhere := "http://127.0.0.1:" + strconv.Itoa(closed)
	proc, err := controlplane.StartProcess("datadog-operator", filepath.Join(c.E2EBin, "datadog-operator"),
		[]string{"-logEncoder=console"},
		filepath.Join(c.LogDir, "datadog-operator.log"), controlplane.ProcessOptions{
			Env: []string{
				"KUBECONFIG=" + c.Env.Kubeconfig(),
				"DD_LEADER_ELECTION_ENABLED=false",
				"DD_OPERATOR_METRICS_ENABLED=false",
				"DD_METRICS_ADDR=127.0.0.1:" + strconv.Itoa(metrics),
				"DD_URL=" + nowhere,
				"DD_DD_URL=" + nowhere,
			},
			Detach: c.detach,
		})
	if err != nil {
		return err
	}
	c.DatadogOperator = proc
	c.DatadogOperatorMetricsURL = "http://127.0.0.1:" + strconv.Itoa(metrics) + "/metrics"
	c.logf("datadog-operator: started with its CRDs (pid %d, log %s, %s)", proc.Pid(), proc.LogPath, since(start))
	return nil
}

// ControllerNamespace is the namespace the Argo Rollouts controller reads
// its `datadog` Secret from, found as the controller finds it: POD_NAMESPACE
// (the harness starts it with this process's environment), else the service
// account's namespace, else argo-rollouts.
func ControllerNamespace() string {
	if ns, ok := os.LookupEnv("POD_NAMESPACE"); ok {
		return ns
	}
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	return "argo-rollouts"
}

// Health reports a controller or the webhook that died.
func (c *Cluster) Health() error {
	var errs []error
	if c.CP != nil {
		errs = append(errs, c.CP.Check())
	}
	if c.Webhook != nil {
		errs = append(errs, c.Webhook.Exited())
	}
	if c.Replica != nil {
		errs = append(errs, c.Replica.Exited())
	}
	if c.DatadogOperator != nil {
		errs = append(errs, c.DatadogOperator.Exited())
	}
	return errors.Join(errs...)
}

// Processes are the child processes this package started (not envtest's).
func (c *Cluster) Processes() []*controlplane.Process {
	var ps []*controlplane.Process
	if c.CP != nil {
		ps = append(ps, c.CP.Processes()...)
	}
	if c.Webhook != nil {
		ps = append(ps, c.Webhook)
	}
	if c.Replica != nil {
		ps = append(ps, c.Replica)
	}
	if c.DatadogOperator != nil {
		ps = append(ps, c.DatadogOperator)
	}
	return ps
}

// ScenarioEnv is what the scenario needs to run here.
func (c *Cluster) ScenarioEnv() scenario.Env {
	nodes := 0
	if c.CP != nil {
		nodes = len(c.CP.Nodes)
	}
	return scenario.Env{
		Kubeconfig:  c.Env.Kubeconfig(),
		Kubectl:     filepath.Join(c.K8sBin, "kubectl"),
		PluginDir:   c.E2EBin,
		RolloutFile: c.RolloutFile,
		FixturesDir: c.FixturesDir,
		Nodes:       nodes,
		Health:      c.Health,

		AnalysisDir:         filepath.Join(c.Repo, "manifests", "analysis"),
		ControllerNamespace: ControllerNamespace(),
		RestartWebhook:      c.RestartWebhook,
		StopWebhook:         c.StopWebhook,
		KillWebhook:         c.KillWebhook,
		WebhookMetricsURL:   c.WebhookMetricsURL,
		HealInterval:        HealInterval,
		StartWebhookReplica: c.StartWebhookReplica,
		StopWebhookReplica:  c.StopWebhookReplica,
		CanaryTagger:        c.webhookBinary,

		StartDatadogOperator: c.StartDatadogOperator,
		OperatorMetricsURL:   func() string { return c.DatadogOperatorMetricsURL },
		OperatorRendersDir:   filepath.Join(c.Repo, "test", "testdata", "datadog-operator"),
	}
}

// Down stops the controllers, the webhook and the control plane, in that order.
func (c *Cluster) Down() error {
	if c.DatadogOperator != nil {
		c.DatadogOperator.Stop(10 * time.Second)
	}
	if c.CP != nil {
		c.CP.Stop()
	}
	if c.Replica != nil {
		c.Replica.Stop(10 * time.Second)
	}
	if c.Webhook != nil {
		c.Webhook.Stop(10 * time.Second)
	}
	if c.Env != nil {
		return c.Env.Stop()
	}
	return nil
}

func since(t time.Time) time.Duration { return time.Since(t).Round(100 * time.Millisecond) }

func rel(base, path string) string {
	if r, err := filepath.Rel(base, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}
