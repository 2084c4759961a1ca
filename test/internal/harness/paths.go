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
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/mod/modfile"
)

// Module is the project's Go module path; RepoRoot looks for its go.mod.
const Module = "github.com/canary-tagger/canary-tagger"

// ArgoRolloutsModule is the module whose manifests/crds holds the Rollout CRD.
const ArgoRolloutsModule = "github.com/argoproj/argo-rollouts"

// DatadogOperatorModule is the Datadog Operator's module (its CRDs, and the
// binary make e2e runs).
const DatadogOperatorModule = "github.com/DataDog/datadog-operator"

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

// PinnedVersion returns the version of module required by the tools module
// test/tools/<tools>/go.mod, and the Go toolchain it declares (may be empty).
func PinnedVersion(repo, tools, module string) (version, toolchain string, err error) {
	gomod := filepath.Join(repo, "test", "tools", tools, "go.mod")
	data, err := os.ReadFile(gomod)
	if err != nil {
		return "", "", err
	}
	f, err := modfile.Parse(gomod, data, nil)
	if err != nil {
		return "", "", err
	}
	if f.Toolchain != nil {
		toolchain = f.Toolchain.Name
	}
	for _, r := range f.Require {
		if r.Mod.Path == module {
			return r.Mod.Version, toolchain, nil
		}
	}
	return "", "", fmt.Errorf("%s does not require %s", gomod, module)
}

// ModuleDir downloads (or finds in the module cache) module@version with
// `go mod download -json` and returns its directory. A module whose go.mod
// asks for a newer Go than the local one (argo-rollouts v1.10.x) needs the
// tools module's toolchain: pass it as toolchain (GOTOOLCHAIN).
func ModuleDir(ctx context.Context, module, version, toolchain string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", module+"@"+version)
	// Outside any module, so neither test/go.mod nor GOFLAGS=-mod=... get in the way.
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	if toolchain != "" {
		cmd.Env = append(cmd.Env, "GOTOOLCHAIN="+toolchain)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(stdout.Bytes(), &info); err != nil {
		return "", fmt.Errorf("go mod download -json %s@%s: %v; %s", module, version, errors.Join(runErr, err), stderr.String())
	}
	if info.Error != "" || info.Dir == "" {
		return "", fmt.Errorf("go mod download -json %s@%s: %s %s", module, version, info.Error, stderr.String())
	}
	return info.Dir, nil
}

// ArgoRolloutsCRDFiles returns the CRD files of the Argo Rollouts version
// pinned in test/tools/argo/go.mod, read in place from the module cache.
// $ARGO_ROLLOUTS_DIR (a module directory, as `hack/tools.sh crd-dirs` prints)
// overrides the lookup.
func ArgoRolloutsCRDFiles(ctx context.Context, repo string) ([]string, error) {
	return moduleFiles(ctx, repo, "ARGO_ROLLOUTS_DIR", "argo", ArgoRolloutsModule, "manifests/crds/*-crd.yaml")
}

// DatadogOperatorCRDFiles returns the CRDs of the Datadog Operator version
// pinned in test/tools/datadog-operator/go.mod (config/crd/bases/v1 in its
// module); $DATADOG_OPERATOR_DIR overrides the lookup.
func DatadogOperatorCRDFiles(ctx context.Context, repo string) ([]string, error) {
	return moduleFiles(ctx, repo, "DATADOG_OPERATOR_DIR", "datadog-operator", DatadogOperatorModule, "config/crd/bases/v1/*.yaml")
}

// moduleFiles globs pattern in the module cache directory of module at the
// version tools module test/tools/<tools> pins, or in $<envDir> if set.
func moduleFiles(ctx context.Context, repo, envDir, tools, module, pattern string) ([]string, error) {
	dir := os.Getenv(envDir)
	if dir == "" {
		version, toolchain, err := PinnedVersion(repo, tools, module)
		if err != nil {
			return nil, err
		}
		if dir, err = ModuleDir(ctx, module, version, toolchain); err != nil {
			return nil, err
		}
	}
	files, err := filepath.Glob(filepath.Join(dir, filepath.FromSlash(pattern)))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no %s under %s", pattern, dir)
	}
	return files, nil
}
