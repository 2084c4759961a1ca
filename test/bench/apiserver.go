package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/canary-tagger/canary-tagger/test/internal/pinned"
	"github.com/canary-tagger/canary-tagger/webhook/webhooktest"
)

// APIServer is an envtest kube-apiserver and etcd from bin/k8s (or
// $KUBEBUILDER_ASSETS) with the Argo Rollouts CRDs installed.
type APIServer struct {
	Config *rest.Config
	env    *envtest.Environment
}

// StartAPIServer starts the control plane and installs the Argo Rollouts
// CRDs of the version the tools pin, read in place from the module cache.
func StartAPIServer(ctx context.Context, repo string, logf func(string, ...any)) (*APIServer, error) {
	assets, err := assetsDir(repo)
	if err != nil {
		return nil, err
	}
	crds, err := pinned.ArgoRollouts.CRDFiles(ctx, repo)
	if err != nil {
		return nil, err
	}
	// envtest logs through controller-runtime's global logger, which
	// complains on stderr if it is never set.
	ctrllog.SetLogger(logr.Discard())
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		// Two shared cores: the default 20 s is tight while other builds run.
		ControlPlaneStartTimeout: 90 * time.Second,
		ControlPlaneStopTimeout:  30 * time.Second,
		CRDInstallOptions: envtest.CRDInstallOptions{
			Paths: crds, ErrorIfPathMissing: true, MaxTime: time.Minute,
		},
	}
	start := time.Now()
	cfg, err := env.Start()
	if err != nil {
		// Stop whatever did come up (etcd before a failing apiserver).
		return nil, errors.Join(fmt.Errorf("starting envtest from %s: %w", assets, err), env.ControlPlane.Stop())
	}
	logf("kube-apiserver and etcd up, Argo Rollouts CRDs from %s established, in %s", filepath.Dir(crds[0]), time.Since(start).Round(time.Millisecond))
	return &APIServer{Config: cfg, env: env}, nil
}

// Stop stops kube-apiserver and etcd.
func (a *APIServer) Stop() error { return a.env.Stop() }

// assetsDir is $KUBEBUILDER_ASSETS (the Makefile exports bin/k8s) or
// <repo>/bin/k8s, checked to hold kube-apiserver and etcd.
func assetsDir(repo string) (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		dir = filepath.Join(repo, "bin", "k8s")
	}
	var missing []string
	for _, name := range []string{"kube-apiserver", "etcd"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("%s missing in %s: build them with `make tools-k8s`", strings.Join(missing, ", "), dir)
	}
	return dir, nil
}

// The apiserver metrics the benchmark reads.
const (
	// Per webhook (label name); includes applying the returned patch.
	webhookDurationMetric = "apiserver_admission_webhook_admission_duration_seconds"
	// Per policy (label policy), per mutation: evaluating the CEL
	// expression and applying its patch.
	policyDurationMetric = "apiserver_mutating_admission_policy_check_duration_seconds"
	// The whole mutating ("admit") or validating step of a request, by
	// operation only: it cannot tell namespaces apart.
	stepDurationMetric = "apiserver_admission_step_admission_duration_seconds"
)

// metrics is one scrape of the apiserver's /metrics, only the families above.
type metrics map[string]*familyValues

type familyValues struct {
	series []histogramSeries
}

type histogramSeries struct {
	labels map[string]string
	sum    float64
	count  uint64
}

// histogram sums the series of family whose labels include match.
func (m metrics) histogram(family string, match map[string]string) (sum float64, count uint64) {
	f := m[family]
	if f == nil {
		return 0, 0
	}
	for _, s := range f.series {
		ok := true
		for k, v := range match {
			if s.labels[k] != v {
				ok = false
				break
			}
		}
		if ok {
			sum += s.sum
			count += s.count
		}
	}
	return sum, count
}

// scrapeAPIServer reads /metrics through the apiserver client.
func scrapeAPIServer(ctx context.Context, rc rest.Interface) (metrics, error) {
	fams, err := webhooktest.ScrapeAPIServer(ctx, rc, webhookDurationMetric, policyDurationMetric, stepDurationMetric)
	if err != nil {
		return nil, err
	}
	out := metrics{}
	for name, f := range fams {
		v := &familyValues{}
		for _, m := range f.GetMetric() {
			h := m.GetHistogram()
			if h == nil {
				continue
			}
			s := histogramSeries{labels: map[string]string{}, sum: h.GetSampleSum(), count: h.GetSampleCount()}
			for _, l := range m.GetLabel() {
				s.labels[l.GetName()] = l.GetValue()
			}
			v.series = append(v.series, s)
		}
		out[name] = v
	}
	if out[stepDurationMetric] == nil {
		return nil, errors.New("apiserver /metrics has no " + stepDurationMetric)
	}
	return out, nil
}
