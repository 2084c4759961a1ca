// Package controlplane starts, next to an apiserver that already runs (the
// harness's envtest), the parts of a cluster that make workloads move: the
// kube-controller-manager, the kube-scheduler, kwok with fake nodes (pods are
// scheduled and go Running/Ready without a kubelet) and the Argo Rollouts
// controller. Every binary runs as a child process in its own process group,
// logging to a file, and is killed by Stop.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/canary-tagger/canary-tagger/webhook/webhooktest"
)

// Options says where the binaries are and how to reach the apiserver.
type Options struct {
	// Kubeconfig is an admin kubeconfig file for the running apiserver.
	Kubeconfig string
	// K8sBinDir holds kube-controller-manager, kube-scheduler and kubectl (bin/k8s).
	K8sBinDir string
	// E2EBinDir holds kwok, rollouts-controller and kwok-stages.yaml (bin/e2e).
	E2EBinDir string
	// LogDir receives one <name>.log per process.
	LogDir string
	// ServiceAccountKeyFile is the apiserver's service-account signing key
	// (optional: without it the token controller is off, which kwok pods do not need).
	ServiceAccountKeyFile string
	// RootCAFile is the apiserver's CA (optional; published as kube-root-ca.crt).
	RootCAFile string
	// Nodes is the number of fake nodes (default 3), named kwok-node-0...
	Nodes int
	// Detach leaves the processes running if this program dies without Stop
	// (make demo KEEP=1); otherwise the kernel kills them with it.
	Detach bool
	// Logf reports progress (optional).
	Logf func(format string, args ...any)
}

// ControlPlane is the set of running controllers.
type ControlPlane struct {
	opts  Options
	mu    sync.Mutex
	procs []*Process
	Nodes []string
}

// RequiredBinaries lists the files Start needs, for a helpful error before anything starts.
func RequiredBinaries(k8sBinDir, e2eBinDir string) []string {
	return []string{
		filepath.Join(k8sBinDir, "kube-controller-manager"),
		filepath.Join(k8sBinDir, "kube-scheduler"),
		filepath.Join(k8sBinDir, "kubectl"),
		filepath.Join(e2eBinDir, "kwok"),
		filepath.Join(e2eBinDir, "kwok-stages.yaml"),
		filepath.Join(e2eBinDir, "rollouts-controller"),
		filepath.Join(e2eBinDir, "kubectl-argo-rollouts"),
	}
}

// Missing returns the required files that do not exist.
func Missing(k8sBinDir, e2eBinDir string) []string {
	var missing []string
	for _, f := range RequiredBinaries(k8sBinDir, e2eBinDir) {
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, f)
		}
	}
	return missing
}

// Start launches the controllers and returns once the nodes are Ready and the
// Argo Rollouts controller answers its health check. On error, whatever was
// started is stopped.
func Start(ctx context.Context, opts Options) (cp *ControlPlane, err error) {
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if m := Missing(opts.K8sBinDir, opts.E2EBinDir); len(m) > 0 {
		return nil, fmt.Errorf("missing e2e tools %v: build them with `hack/tools.sh e2e` (make tools)", m)
	}
	cp = &ControlPlane{opts: opts}
	defer func() {
		if err != nil {
			cp.Stop()
		}
	}()
	cfg, err := clientcmd.BuildConfigFromFlags("", opts.Kubeconfig)
	if err != nil {
		return nil, err
	}
	// No client-side rate limit on its own requests (a create per node, a
	// GET per node while waiting for Ready): at client-go's default 5/s,
	// 1,000 nodes (make scale) take minutes and the wait runs out.
	cfg.QPS = -1
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}

	// kube-controller-manager: ReplicaSets, DaemonSets, Deployments, garbage
	// collection, the node lifecycle, service accounts.
	kcm := []string{
		"--kubeconfig=" + opts.Kubeconfig,
		"--leader-elect=false",
		"--controllers=*",
		"--secure-port=0",
		"--use-service-account-credentials=false",
		"--kube-api-qps=100", "--kube-api-burst=200",
	}
	if opts.ServiceAccountKeyFile != "" {
		kcm = append(kcm, "--service-account-private-key-file="+opts.ServiceAccountKeyFile)
	}
	if opts.RootCAFile != "" {
		kcm = append(kcm, "--root-ca-file="+opts.RootCAFile)
	}
	if err := cp.start("kube-controller-manager", filepath.Join(opts.K8sBinDir, "kube-controller-manager"), kcm); err != nil {
		return nil, err
	}
	if err := cp.start("kube-scheduler", filepath.Join(opts.K8sBinDir, "kube-scheduler"), []string{
		"--kubeconfig=" + opts.Kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--kube-api-qps=100", "--kube-api-burst=200",
	}); err != nil {
		return nil, err
	}
	if err := cp.start("kwok", filepath.Join(opts.E2EBinDir, "kwok"), []string{
		"--kubeconfig=" + opts.Kubeconfig,
		"--manage-all-nodes=true",
		"--server-address=",
		"--config=" + filepath.Join(opts.E2EBinDir, "kwok-stages.yaml"),
	}); err != nil {
		return nil, err
	}
	if err := cp.createNodes(ctx, cs); err != nil {
		return nil, err
	}

	// The controller needs all five Argo CRDs (the harness applies them).
	if err := cp.waitArgoCRDs(ctx); err != nil {
		return nil, err
	}
	metricsPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	healthzPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	if err := cp.start("rollouts-controller", filepath.Join(opts.E2EBinDir, "rollouts-controller"), []string{
		"--kubeconfig=" + opts.Kubeconfig,
		"--leader-elect=false",
		"--metricsPort=" + strconv.Itoa(metricsPort),
		"--healthzPort=" + strconv.Itoa(healthzPort),
		"--loglevel=info",
	}); err != nil {
		return nil, err
	}

	start := time.Now()
	if err := cp.waitNodesReady(ctx, cs); err != nil {
		return nil, err
	}
	opts.Logf("kwok: %d nodes Ready (%s)", opts.Nodes, time.Since(start).Round(100*time.Millisecond))
	if err := cp.poll(ctx, 60*time.Second, "rollouts-controller healthz", func(ctx context.Context) (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/healthz", healthzPort), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	}); err != nil {
		return nil, err
	}
	opts.Logf("rollouts-controller: healthy (%s)", time.Since(start).Round(100*time.Millisecond))
	return cp, nil
}

func (cp *ControlPlane) start(name, path string, args []string) error {
	p, err := StartProcess(name, path, args, filepath.Join(cp.opts.LogDir, name+".log"), ProcessOptions{Detach: cp.opts.Detach})
	if err != nil {
		return err
	}
	cp.mu.Lock()
	cp.procs = append(cp.procs, p)
	cp.mu.Unlock()
	cp.opts.Logf("%s: started (pid %d, log %s)", name, p.Pid(), p.LogPath)
	return nil
}

// Processes returns the running child processes.
func (cp *ControlPlane) Processes() []*Process {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return append([]*Process(nil), cp.procs...)
}

// Check returns an error naming the first process that exited unexpectedly.
func (cp *ControlPlane) Check() error {
	var errs []error
	for _, p := range cp.Processes() {
		if err := p.Exited(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Stop stops every process (in reverse order of start) and waits for them.
func (cp *ControlPlane) Stop() {
	procs := cp.Processes()
	var wg sync.WaitGroup
	for i := len(procs) - 1; i >= 0; i-- {
		wg.Add(1)
		go func(p *Process) {
			defer wg.Done()
			p.Stop(5 * time.Second)
		}(procs[i])
	}
	wg.Wait()
}

// poll is webhooktest.Poll every 250ms that gives up at once, with its log
// tail, when a process dies.
func (cp *ControlPlane) poll(ctx context.Context, timeout time.Duration, what string, cond func(context.Context) (bool, error)) error {
	return webhooktest.Poll(ctx, what, timeout, 250*time.Millisecond, func(ctx context.Context) (bool, error) {
		if err := cp.Check(); err != nil {
			return false, webhooktest.StopPolling(err)
		}
		return cond(ctx)
	})
}

func (cp *ControlPlane) createNodes(ctx context.Context, cs kubernetes.Interface) error {
	for i := 0; i < cp.opts.Nodes; i++ {
		name := fmt.Sprintf("kwok-node-%d", i)
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
				Labels: map[string]string{
					"kubernetes.io/os":       "linux",
					"kubernetes.io/arch":     "amd64",
					"kubernetes.io/hostname": name,
					"type":                   "kwok",
				},
			},
			Status: corev1.NodeStatus{
				Capacity: corev1.ResourceList{
					corev1.ResourceCPU:    resource.MustParse("32"),
					corev1.ResourceMemory: resource.MustParse("256Gi"),
					corev1.ResourcePods:   resource.MustParse("110"),
				},
				Allocatable: corev1.ResourceList{
					corev1.ResourceCPU:    resource.MustParse("32"),
					corev1.ResourceMemory: resource.MustParse("256Gi"),
					corev1.ResourcePods:   resource.MustParse("110"),
				},
			},
		}
		if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node %s: %w", name, err)
		}
		cp.Nodes = append(cp.Nodes, name)
	}
	return nil
}

func (cp *ControlPlane) waitNodesReady(ctx context.Context, cs kubernetes.Interface) error {
	return cp.poll(ctx, 60*time.Second, fmt.Sprintf("%d kwok nodes Ready", len(cp.Nodes)), func(ctx context.Context) (bool, error) {
		for _, name := range cp.Nodes {
			n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			ready := false
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready = true
				}
			}
			if !ready {
				return false, nil
			}
		}
		return true, nil
	})
}

// ArgoCRDs are the CRDs the Argo Rollouts controller watches: it does not
// start without all five.
var ArgoCRDs = []string{
	"rollouts.argoproj.io", "analysisruns.argoproj.io", "analysistemplates.argoproj.io",
	"clusteranalysistemplates.argoproj.io", "experiments.argoproj.io",
}

// waitArgoCRDs checks that the five Argo Rollouts CRDs are established.
func (cp *ControlPlane) waitArgoCRDs(ctx context.Context) error {
	args := []string{"--kubeconfig=" + cp.opts.Kubeconfig, "wait", "--for=condition=Established", "--timeout=30s"}
	for _, crd := range ArgoCRDs {
		args = append(args, "crd/"+crd)
	}
	out, err := exec.CommandContext(ctx, filepath.Join(cp.opts.K8sBinDir, "kubectl"), args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("the Argo Rollouts controller needs its five CRDs installed first: %w\n%s", err, out)
	}
	cp.opts.Logf("Argo Rollouts CRDs: all %d established", len(ArgoCRDs))
	return nil
}

// FreePort returns a TCP port that is free on 127.0.0.1 now.
func FreePort() (int, error) { return webhooktest.FreePort() }
