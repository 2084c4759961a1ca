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
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/canary-tagger/canary-tagger/test/internal/harness"
	"github.com/canary-tagger/canary-tagger/test/internal/pinned"
)

var env *harness.Env

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	// The control plane only: the tests run their own servers.
	os.Exit(harness.RunMain(m, harness.Options{NoWebhook: true}, func(e *harness.Env) { env = e }))
}

var (
	cmOnce sync.Once
	cmErr  error
)

// installCertManagerCRDs applies cert-manager's CRDs (once per run) and waits
// until they are established.
func installCertManagerCRDs(t *testing.T) {
	t.Helper()
	cmOnce.Do(func() {
		ctx := context.Background()
		files, err := pinned.CertManager.CRDFiles(ctx, env.Repo)
		if err != nil {
			cmErr = err
			return
		}
		args := []string{"apply", "--server-side", "--field-manager=canary-tagger-test"}
		var names []string
		for _, f := range files {
			args = append(args, "-f", f)
			names = append(names, strings.TrimSuffix(filepath.Base(f), ".yaml"))
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
		t.Logf("cert-manager CRDs from %s established", filepath.Dir(files[0]))
	})
	if cmErr != nil {
		t.Fatal(cmErr)
	}
}
