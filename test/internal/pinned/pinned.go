// Package pinned is the one lookup of the third-party modules whose files the
// tests read in place from the module cache (their CRDs, never copied into the
// repository): which go.mod pins each, where its CRDs are inside it, and the
// environment variable that names a directory to use instead.
// `hack/tools.sh crd-dirs` prints what it finds (cmd/crd-dirs).
package pinned

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"golang.org/x/mod/modfile"
)

// Module is a pinned third-party module and its CRD files.
type Module struct {
	// Path is the module path.
	Path string
	// GoMod is the go.mod that pins its version, relative to the repository.
	GoMod string
	// DirVar names an environment variable that, when set, is the module's
	// directory (no lookup).
	DirVar string
	// CRDs is the glob of its CRD files inside the module.
	CRDs string
}

var (
	// ArgoRollouts: the Rollout, AnalysisTemplate, … CRDs, at the version the
	// controller make e2e runs is built from.
	ArgoRollouts = Module{
		Path:   "github.com/argoproj/argo-rollouts",
		GoMod:  "test/tools/argo/go.mod",
		DirVar: "ARGO_ROLLOUTS_DIR",
		CRDs:   "manifests/crds/*-crd.yaml",
	}
	// CertManager: its CRDs at the version whose API types the tests compile
	// against.
	CertManager = Module{
		Path:   "github.com/cert-manager/cert-manager",
		GoMod:  "test/go.mod",
		DirVar: "CERT_MANAGER_DIR",
		CRDs:   "deploy/crds/*.yaml",
	}
	// DatadogOperator: the DatadogAgent CRDs, at the version of the Operator
	// make e2e runs.
	DatadogOperator = Module{
		Path:   "github.com/DataDog/datadog-operator",
		GoMod:  "test/tools/datadog-operator/go.mod",
		DirVar: "DATADOG_OPERATOR_DIR",
		CRDs:   "config/crd/bases/v1/*.yaml",
	}
)

// All are the pinned modules, in the order crd-dirs prints them.
var All = []Module{ArgoRollouts, CertManager, DatadogOperator}

// Version returns the version m.GoMod requires and the Go toolchain that
// go.mod declares (empty if none).
func (m Module) Version(repo string) (version, toolchain string, err error) {
	gomod := filepath.Join(repo, filepath.FromSlash(m.GoMod))
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
		if r.Mod.Path == m.Path {
			return r.Mod.Version, toolchain, nil
		}
	}
	return "", "", fmt.Errorf("%s does not require %s", gomod, m.Path)
}

// Dir returns $<m.DirVar> if set, else the module's directory in the module
// cache at the pinned version, downloaded if it is not there yet.
//
// One `go mod download -json path@version`, run outside any module, answers
// both cases (`go list -m` has no directory for a module not yet downloaded)
// without loading the pinning module's whole graph. A module whose go.mod
// asks for a newer Go than the local one (argo-rollouts v1.10.x) gets the
// pinning module's toolchain.
func (m Module) Dir(ctx context.Context, repo string) (string, error) {
	if dir := os.Getenv(m.DirVar); dir != "" {
		return dir, nil
	}
	version, toolchain, err := m.Version(repo)
	if err != nil {
		return "", err
	}
	query := m.Path + "@" + version
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", query)
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
		return "", fmt.Errorf("go mod download -json %s: %v; %s", query, errors.Join(runErr, err), stderr.String())
	}
	if info.Error != "" || info.Dir == "" {
		return "", fmt.Errorf("go mod download -json %s: %s %s", query, info.Error, stderr.String())
	}
	return info.Dir, nil
}

// CRDFiles returns the module's CRD files (m.CRDs in Dir), at least one.
func (m Module) CRDFiles(ctx context.Context, repo string) ([]string, error) {
	dir, err := m.Dir(ctx, repo)
	if err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(dir, filepath.FromSlash(m.CRDs)))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no %s under %s (%s)", m.CRDs, dir, m.Path)
	}
	return files, nil
}
