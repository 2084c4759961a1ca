package main

import (
	"bufio"
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

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/canary-tagger/canary-tagger/certs"
	"github.com/canary-tagger/canary-tagger/test/bench"
	"github.com/canary-tagger/canary-tagger/test/internal/controlplane"
	"github.com/canary-tagger/canary-tagger/test/internal/harness"
	"github.com/canary-tagger/canary-tagger/webhook/config"
)

// cluster is the running control plane with canary-tagger registered.
type cluster struct {
	repo, dir string
	env       *harness.Env
	cp        *controlplane.ControlPlane
	cs        kubernetes.Interface
	dyn       dynamic.Interface
	rules     config.Rules
	serve     *serve
	// binary says which canary-tagger runs.
	binary string
	// webhookInstalled says whether the configuration is in effect now.
	webhookInstalled bool

	machine        bench.Machine
	memAvailable   int64
	nodes          int
	nodesRequested int
	nodesWhy       string
	upTook         time.Duration
}

// Memory the control plane needs, measured on this project's machine: about
// 6.5 GiB for 1,000 kwok nodes with one agent pod each (apiserver, etcd,
// controllers, kwok), so 6.5 MiB a node, plus room for this program, serve
// and the Rollouts.
const (
	memPerNode  = 6.5 * (1 << 20)
	memHeadroom = 1.5 * (1 << 30)
)

// fitNodes returns how many nodes this machine's available memory holds, at
// most want, and why fewer ("" when all fit).
func fitNodes(want int, available int64) (int, string) {
	if available <= 0 {
		return want, ""
	}
	need := int64(memHeadroom + float64(want)*memPerNode)
	if need <= available {
		return want, ""
	}
	fit := int((float64(available) - memHeadroom) / memPerNode)
	return max(fit, 0), fmt.Sprintf("%d nodes need about %.1f GiB (%.1f MiB a node + %.1f GiB headroom) and this machine has %.1f GiB available",
		want, gib(need), memPerNode/(1<<20), memHeadroom/(1<<30), gib(available))
}

// memAvailable is MemAvailable from /proc/meminfo, in bytes (0 if unknown).
func memAvailable() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "MemAvailable:"); ok {
			fs := strings.Fields(v)
			if len(fs) == 2 && fs[1] == "kB" {
				n, _ := strconv.ParseInt(fs[0], 10, 64)
				return n << 10
			}
		}
	}
	return 0
}

// up starts everything; the cluster it returns (possibly half-started, with
// an error) must be taken down.
func up(ctx context.Context, o options) (*cluster, error) {
	start := time.Now()
	c := &cluster{machine: bench.ThisMachine(), memAvailable: memAvailable(), nodesRequested: o.nodes}
	var err error
	if c.repo, err = harness.RepoRoot(); err != nil {
		return nil, err
	}
	k8sBin := filepath.Join(c.repo, "bin", "k8s")
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		k8sBin = d
	}
	e2eBin := filepath.Join(c.repo, "bin", "e2e")
	if m := controlplane.Missing(k8sBin, e2eBin); len(m) > 0 {
		return nil, fmt.Errorf("tools not built: %s (make tools-e2e)", strings.Join(m, ", "))
	}
	c.nodes, c.nodesWhy = fitNodes(o.nodes, c.memAvailable)
	if c.nodes < 1 {
		return nil, fmt.Errorf("no node fits: %s", c.nodesWhy)
	}
	if c.nodesWhy != "" {
		logf("running %d of the %d nodes asked for: %s", c.nodes, o.nodes, c.nodesWhy)
	}
	if c.dir, err = os.MkdirTemp("", "scalebench-"); err != nil {
		return nil, err
	}

	bin := o.canaryTagger
	if bin == "" {
		bin = filepath.Join(c.dir, "canary-tagger")
		if err := harness.BuildCanaryTagger(ctx, c.repo, bin); err != nil {
			return c, err
		}
		logf("canary-tagger: built %s", bin)
		c.binary = "built from this repository"
	} else if rel, err := filepath.Rel(c.repo, bin); err == nil && !strings.HasPrefix(rel, "..") {
		c.binary = rel // the report is committed: no machine's paths in it
	} else {
		c.binary = bin
	}
	if out, err := exec.CommandContext(ctx, bin, "version").Output(); err == nil {
		c.binary += " (" + strings.TrimSpace(string(out)) + ")"
	}

	if c.env, err = harness.Start(ctx, harness.Options{NoWebhook: true, Logf: func(f string, a ...any) { logf("  "+f, a...) }}); err != nil {
		return c, err
	}
	c.rules = c.env.Rules
	if c.cs, err = kubernetes.NewForConfig(c.env.Config); err != nil {
		return c, err
	}
	if c.dyn, err = dynamic.NewForConfig(unthrottled(c.env.Config)); err != nil {
		return c, err
	}
	logDir := filepath.Join(c.dir, "logs")
	if c.cp, err = controlplane.Start(ctx, controlplane.Options{
		Kubeconfig: c.env.Kubeconfig(), K8sBinDir: k8sBin, E2EBinDir: e2eBin, LogDir: logDir,
		ServiceAccountKeyFile: c.env.ServiceAccountKeyFile, RootCAFile: c.env.CAFile,
		Nodes: c.nodes,
		Logf:  func(f string, a ...any) { logf("  "+f, a...) },
	}); err != nil {
		return c, err
	}
	// No Argo Rollouts controller: admission and healing act on the
	// Rollout objects alone, and a controller would add thousands of
	// ReplicaSets and pods to what is measured.
	for _, p := range c.cp.Processes() {
		if p.Name == "rollouts-controller" {
			p.Stop(10 * time.Second)
		}
	}

	certDir := filepath.Join(c.dir, "certs")
	caPEM, err := certs.WriteSelfSigned(certDir, []string{"127.0.0.1", "localhost"}, 7*24*time.Hour)
	if err != nil {
		return c, err
	}
	port, err := controlplane.FreePort()
	if err != nil {
		return c, err
	}
	c.serve = &serve{bin: bin, certDir: certDir, caPEM: caPEM, port: port, logDir: logDir,
		kubeconfig: c.env.Kubeconfig(), healInterval: o.healInterval}
	if err := c.serve.start(ctx); err != nil {
		return c, err
	}
	if err := c.setWebhook(ctx, true); err != nil {
		return c, err
	}
	c.upTook = time.Since(start)
	logf("up: %d kwok nodes, serve registered (heal: %s), in %s", c.nodes, c.serve.healState(), c.upTook.Round(time.Second))
	return c, nil
}

// setWebhook installs or removes the webhook configuration and waits until
// the apiserver acts on it.
func (c *cluster) setWebhook(ctx context.Context, installed bool) error {
	if c.webhookInstalled == installed {
		return nil
	}
	var err error
	if installed {
		err = c.env.InstallWebhookConfigurationAt(ctx, harness.ModeClusterWide, c.serve.target())
	} else {
		err = c.env.UninstallWebhookConfiguration(ctx)
	}
	if err != nil {
		return err
	}
	c.webhookInstalled = installed
	return nil
}

// health reports a controller or serve that died.
func (c *cluster) health() error {
	return errors.Join(c.cp.Check(), c.serve.exited())
}

func (c *cluster) down(keep bool) error {
	var errs []error
	if c.serve != nil {
		c.serve.stop()
	}
	if c.cp != nil {
		c.cp.Stop()
	}
	if c.env != nil {
		if keep {
			os.Setenv("KEEP_ENV_DIR", "1")
			logf("kept %s (kube-apiserver and etcd)", c.env.Dir)
		}
		errs = append(errs, c.env.Stop())
	}
	if c.dir != "" {
		if keep {
			logf("kept %s (process logs)", c.dir)
		} else {
			errs = append(errs, os.RemoveAll(c.dir))
		}
	}
	return errors.Join(errs...)
}

// controllerQPS is the client rate limit the kube-controller-manager runs
// with, as its command line says.
func (c *cluster) controllerQPS() string {
	for _, p := range c.cp.Processes() {
		if p.Name != "kube-controller-manager" {
			continue
		}
		var flags []string
		for _, a := range p.Args {
			if strings.HasPrefix(a, "--kube-api-qps=") || strings.HasPrefix(a, "--kube-api-burst=") {
				flags = append(flags, a)
			}
		}
		if len(flags) == 0 {
			return "its default --kube-api-qps and --kube-api-burst"
		}
		return strings.Join(flags, " ")
	}
	return "unknown"
}

// processMemory is one process's peak resident memory.
type processMemory struct {
	name string
	peak int64
}

// controlPlaneMemory is the peak RSS (VmHWM) of every process this program
// started but serve: etcd, kube-apiserver, the controllers, kwok.
func (c *cluster) controlPlaneMemory() []processMemory {
	self := os.Getpid()
	var out []processMemory
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || pid == c.serve.pid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid != self {
			continue
		}
		// The command's name, whole (the kernel's is cut at 15 characters).
		name := s[open+1 : end]
		if argv, err := os.ReadFile(filepath.Join(d, "cmdline")); err == nil {
			if arg0, _, _ := strings.Cut(string(argv), "\x00"); arg0 != "" {
				name = filepath.Base(arg0)
			}
		}
		if m, err := bench.ReadMem(pid); err == nil {
			out = append(out, processMemory{name: name, peak: m.HWM})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].peak > out[j].peak })
	return out
}

func gib(b int64) float64 { return float64(b) / (1 << 30) }
func mib(b int64) float64 { return float64(b) / (1 << 20) }
