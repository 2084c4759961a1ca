package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/canary-tagger/canary-tagger/test/internal/controlplane"
	"github.com/canary-tagger/canary-tagger/test/internal/harness"
)

// BuildNoop builds the no-op webhook (cmd/noop-webhook, test module) into dir
// with the flags of `make build` (CGO off, -trimpath, -s -w), as canary-tagger
// is built.
func BuildNoop(ctx context.Context, repo, dir string) (string, error) {
	out := filepath.Join(dir, "noop-webhook")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "./bench/cmd/noop-webhook")
	cmd.Dir = filepath.Join(repo, "test")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./bench/cmd/noop-webhook: %v\n%s", err, buf.String())
	}
	return out, nil
}

// CanaryTaggerBinary is bin/canary-tagger as `make build` leaves it; it
// says how to get it if it is missing.
func CanaryTaggerBinary(repo string) (string, error) {
	bin := filepath.Join(repo, "bin", "canary-tagger")
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("%s: %w (run `make build`)", bin, err)
	}
	return bin, nil
}

// Server is a webhook server process on loopback.
type Server struct {
	Name string
	URL  string // https://127.0.0.1:PORT
	Port int
	// MetricsAddr is canary-tagger's /metrics host:port ("" for the baseline).
	MetricsAddr string
	HealthAddr  string
	Proc        *controlplane.Process
}

// Pid of the server process.
func (s *Server) Pid() int { return s.Proc.Pid() }

// Stop sends SIGTERM and waits up to grace before SIGKILL.
func (s *Server) Stop(grace time.Duration) { s.Proc.Stop(grace) }

// Kill sends SIGKILL (no graceful shutdown) and waits for the exit.
func (s *Server) Kill() {
	_ = syscall.Kill(s.Pid(), syscall.SIGKILL)
	<-s.Proc.Done()
}

// StartCanaryTagger runs `canary-tagger serve` on loopback with the
// certificate in certDir, production logging (JSON, info) to logPath, and no
// Kubernetes API access (--check-workload-ref=false: the bodies have no
// workloadRef). extra flags are appended.
func StartCanaryTagger(ctx context.Context, bin, certDir, logPath string, extra ...string) (*Server, error) {
	ports, err := harness.FreePorts(3)
	if err != nil {
		return nil, err
	}
	return StartCanaryTaggerOn(bin, ports[0], certDir, logPath, extra...)
}

// StartCanaryTaggerOn is StartCanaryTagger on a given webhook port (to
// restart a server where a webhook configuration expects it).
func StartCanaryTaggerOn(bin string, port int, certDir, logPath string, extra ...string) (*Server, error) {
	ports, err := harness.FreePorts(2)
	if err != nil {
		return nil, err
	}
	ports = append([]int{port}, ports...)
	s := &Server{Name: "canary-tagger", Port: ports[0], URL: fmt.Sprintf("https://127.0.0.1:%d", ports[0]),
		MetricsAddr: "127.0.0.1:" + strconv.Itoa(ports[1]), HealthAddr: "127.0.0.1:" + strconv.Itoa(ports[2])}
	args := append([]string{"serve", "--host=127.0.0.1", "--port=" + strconv.Itoa(s.Port), "--cert-dir=" + certDir,
		"--metrics-bind-address=" + s.MetricsAddr, "--health-probe-bind-address=" + s.HealthAddr,
		"--check-workload-ref=false"}, extra...)
	if s.Proc, err = controlplane.StartProcess(s.Name, bin, args, logPath, controlplane.ProcessOptions{}); err != nil {
		return nil, err
	}
	return s, nil
}

// StartNoop runs the no-op webhook on loopback with the certificate in
// certDir; name tells apart several (e.g. one with --static-patch).
func StartNoop(ctx context.Context, name, bin, certDir, logPath string, extra ...string) (*Server, error) {
	ports, err := harness.FreePorts(1)
	if err != nil {
		return nil, err
	}
	s := &Server{Name: name, Port: ports[0], URL: fmt.Sprintf("https://127.0.0.1:%d", ports[0])}
	args := append([]string{"--host=127.0.0.1", "--port=" + strconv.Itoa(s.Port), "--cert-dir=" + certDir}, extra...)
	if s.Proc, err = controlplane.StartProcess(s.Name, bin, args, logPath, controlplane.ProcessOptions{}); err != nil {
		return nil, err
	}
	return s, nil
}

// WaitReady posts body until the server answers it with a valid review.
func (s *Server) WaitReady(ctx context.Context, cfg Load, body *Body, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg.TLS.Clone()}}
	defer c.CloseIdleConnections()
	var last error
	for {
		select {
		case <-s.Proc.Done():
			return fmt.Errorf("%s exited before it was ready: %v\n%s", s.Name, s.Proc.Exited(), s.Proc.Tail(20))
		default:
		}
		if last = post(c, s.URL+body.Path, body, false); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("%s not ready within %s", s.Name, timeout), last, errors.New(s.Proc.Tail(20)))
		case <-time.After(50 * time.Millisecond):
		}
	}
}
