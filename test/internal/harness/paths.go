// Package harness runs canary-tagger against a real control plane: an envtest
// kube-apiserver + etcd built from the pinned sources in bin/k8s, the Argo
// Rollouts CRDs applied server-side from the module cache, the project's own
// webhook server in-process on loopback, and the MutatingWebhookConfiguration
// rendered from manifests/ with its client config rewritten to that server.
// Tests drive it with the real kubectl from bin/k8s.
//
// Everything here polls with a deadline; nothing sleeps to synchronise.
package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/modfile"
)

// Module is the project's Go module path; RepoRoot looks for its go.mod.
const Module = "github.com/canary-tagger/canary-tagger"

// RepoRoot walks up from the working directory to the directory whose go.mod
// declares the project's module.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if modulePath(filepath.Join(dir, "go.mod")) == Module {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod declaring module %s above the working directory", Module)
		}
		dir = parent
	}
}

// SeedRolloutPath is the seed's Rollout (name demo, argoproj/demo:blue,
// canary steps 20/pause/50/pause), the one copy the test module reads:
// <repo>/test/e2e/testdata/rollout.yaml.
func SeedRolloutPath(repo string) string {
	return filepath.Join(repo, "test", "e2e", "testdata", "rollout.yaml")
}

func modulePath(gomod string) string {
	data, err := os.ReadFile(gomod)
	if err != nil {
		return ""
	}
	return modfile.ModulePath(data)
}

// AssetsDir is the KUBEBUILDER_ASSETS folder: $KUBEBUILDER_ASSETS if set,
// else <repo>/bin/k8s. It checks that kube-apiserver, etcd and kubectl are
// there and says how to build them if not.
func AssetsDir(repo string) (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		dir = filepath.Join(repo, "bin", "k8s")
	}
	var missing []string
	for _, name := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("%s missing in %s: build them with `make tools` (hack/tools.sh k8s; ≈5 min cold on 2 cores) or point KUBEBUILDER_ASSETS at a folder holding kube-apiserver, etcd and kubectl",
			strings.Join(missing, ", "), dir)
	}
	return dir, nil
}
