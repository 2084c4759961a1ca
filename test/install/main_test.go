// Package install proves the install of issue 5 on real parts: every kustomize
// entry point under manifests/ renders with the kubectl we build, passes a
// server-side dry-run on an envtest apiserver that has the real cert-manager
// CRDs, runs under the restricted Pod Security Standard, and the self-managed
// TLS mode bootstraps, rotates without a failed review and lets replicas agree
// on one CA.
package install

import (
	"context"
	"fmt"
	"github.com/go-logr/logr"
	"os"
	"os/exec"
	"path/filepath"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"strings"
	"sync"
	"testing"

	"github.com/canary-tagger/canary-tagger/test/internal/harness"
)

var env *harness.Env

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	// The control plane only: the tests run their own servers.
	os.Exit(harness.RunMain(m, harness.Options{NoWebhook: true}, func(e *harness.Env) { env = e }))
}

// CertManagerModule is the module whose deploy/crds hold the CRDs; its version
// is the one test/go.mod requires.
const CertManagerModule = "github.com/cert-manager/cert-manager"

var (
	cmOnce sync.Once
	cmErr  error
)

// certManagerCRDDir is deploy/crds of the cert-manager module test/go.mod
// requires, read in place from the module cache (never copied into the repo).
func certManagerCRDDir(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", CertManagerModule)
	cmd.Dir = filepath.Join(env.Repo, "test")
	out, err := cmd.CombinedOutput()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		// Not downloaded yet: ask for it.
		cmd = exec.CommandContext(ctx, "go", "mod", "download", "-json", CertManagerModule)
		cmd.Dir = filepath.Join(env.Repo, "test")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go mod download %s: %v\n%s", CertManagerModule, err, out)
		}
		out, err = exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", CertManagerModule).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("go list -m %s: %v\n%s", CertManagerModule, err, out)
		}
		dir = strings.TrimSpace(string(out))
	}
	crds := filepath.Join(dir, "deploy", "crds")
	if _, err := os.Stat(filepath.Join(crds, "cert-manager.io_certificates.yaml")); err != nil {
		return "", fmt.Errorf("cert-manager CRDs not found in %s: %w", crds, err)
	}
	return crds, nil
}

// installCertManagerCRDs applies cert-manager's CRDs (once per run) and waits
// until they are established.
func installCertManagerCRDs(t *testing.T) {
	t.Helper()
	cmOnce.Do(func() {
		ctx := context.Background()
		dir, err := certManagerCRDDir(ctx)
		if err != nil {
			cmErr = err
			return
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		args := []string{"apply", "--server-side", "--field-manager=canary-tagger-test"}
		var names []string
		for _, f := range files {
			args = append(args, "-f", f)
			names = append(names, strings.TrimSuffix(filepath.Base(f), ".yaml"))
		}
		if len(files) == 0 {
			cmErr = fmt.Errorf("no CRD files in %s", dir)
			return
		}
		if res := env.Kubectl.Run(ctx, args...); !res.OK() {
			cmErr = fmt.Errorf("applying cert-manager CRDs: %s", res)
			return
		}
		for _, n := range names {
			// File names are <group>_<plural>.yaml; the CRD is <plural>.<group>.
			group, plural, _ := strings.Cut(n, "_")
			if res := env.Kubectl.Run(ctx, "wait", "--for=condition=Established", "--timeout=60s", "crd/"+plural+"."+group); !res.OK() {
				cmErr = fmt.Errorf("waiting for CRD %s.%s: %s", plural, group, res)
				return
			}
		}
		t.Logf("cert-manager CRDs from %s established", dir)
	})
	if cmErr != nil {
		t.Fatal(cmErr)
	}
}
