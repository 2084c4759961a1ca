// Package faults runs canary-tagger — the real binary, as a process on
// 127.0.0.1 — through the faults a production webhook meets: its certificate
// replaced under load, SIGTERM under load, and being killed while the
// apiserver sends it a stream of `kubectl apply`. Each test is bounded (the
// three together take well under a minute once the binary is built); the
// 5-minute soak is `make soak`, not here.
package faults

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/canary-tagger/canary-tagger/test/bench"
	"github.com/canary-tagger/canary-tagger/test/internal/harness"
	"github.com/canary-tagger/canary-tagger/webhook/webhooktest"
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
	repo      string
	bodies    []bench.Body
	binDir    string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// setup builds canary-tagger once per test binary and loads the request mix.
func setup(t *testing.T) {
	t.Helper()
	buildOnce.Do(func() {
		if repo, buildErr = harness.RepoRoot(); buildErr != nil {
			return
		}
		if bodies, buildErr = bench.Mix(repo); buildErr != nil {
			return
		}
		if binDir, buildErr = os.MkdirTemp("", "faults-bin-"); buildErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		binary = filepath.Join(binDir, "canary-tagger")
		buildErr = harness.BuildCanaryTagger(ctx, repo, binary)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

// servingSetup makes a CA called name, a fresh directory holding a serving
// certificate from it in dir/certs, and n free ports on 127.0.0.1.
func servingSetup(t *testing.T, name string, n int) (ca *bench.CA, dir, certDir string, ports []int) {
	t.Helper()
	ca, err := bench.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	certDir = filepath.Join(dir, "certs")
	if _, err := ca.WriteServing(certDir); err != nil {
		t.Fatal(err)
	}
	if ports, err = harness.FreePorts(n); err != nil {
		t.Fatal(err)
	}
	return ca, dir, certDir, ports
}

// server starts the binary with a serving certificate from ca in a fresh
// directory and waits until it answers.
func server(t *testing.T, ca *bench.CA, extra ...string) (*bench.Server, string) {
	t.Helper()
	dir := t.TempDir()
	certDir := filepath.Join(dir, "certs")
	if _, err := ca.WriteServing(certDir); err != nil {
		t.Fatal(err)
	}
	s, err := bench.StartCanaryTagger(context.Background(), binary, certDir, filepath.Join(dir, "server.log"), extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop(10 * time.Second)
		if t.Failed() {
			t.Logf("server log (last lines):\n%s", s.Proc.Tail(30))
		}
	})
	if err := s.WaitReady(context.Background(), bench.Load{TLS: bench.ClientTLS(ca)}, &bodies[0], 30*time.Second); err != nil {
		t.Fatal(err)
	}
	return s, certDir
}

func describe(r bench.Result) string {
	return fmt.Sprintf("%d sent, %d ok, %d failed (%v), p99 %s, max %s", r.Sent, r.OK, r.Errors, r.ErrorSamples, r.Percentile(99), r.Max())
}

// waitFor polls cond every 20 ms until it holds, failing the test after within.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := webhooktest.Poll(t.Context(), what, within, 20*time.Millisecond, func(context.Context) (bool, error) {
		return cond(), nil
	}); err != nil {
		t.Fatal(err)
	}
}
