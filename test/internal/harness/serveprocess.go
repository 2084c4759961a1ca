package harness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/canary-tagger/canary-tagger/webhook/webhooktest"
)

// BuildCanaryTagger builds ./cmd/canary-tagger of the repository into out
// as `make build` does (static, -trimpath, -s -w): the tests run the binary
// that ships.
func BuildCanaryTagger(ctx context.Context, repo, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "./cmd/canary-tagger")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/canary-tagger: %v\n%s", err, b)
	}
	return nil
}

// WriteServiceAccountKubeconfig writes to path a copy of the Env's admin
// kubeconfig that impersonates system:serviceaccount:<namespace>:<name>, so
// a process using it has exactly the RBAC the install grants its pods.
func (e *Env) WriteServiceAccountKubeconfig(path, namespace, name string) error {
	kc, err := clientcmd.LoadFromFile(e.Kubeconfig())
	if err != nil {
		return err
	}
	for _, ai := range kc.AuthInfos {
		ai.Impersonate = "system:serviceaccount:" + namespace + ":" + name
		ai.ImpersonateGroups = []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"}
	}
	return clientcmd.WriteToFile(*kc, path)
}

// ServeProcess is a `canary-tagger` child process with its output in LogPath.
type ServeProcess struct {
	LogPath string
	// HealthAddr is host:port of its /readyz (from --health-probe-bind-address).
	HealthAddr string

	cmd    *exec.Cmd
	exited chan struct{}
	mu     sync.Mutex
	err    error
}

// StartServeProcess runs bin with args, its stdout and stderr in logPath.
func StartServeProcess(bin string, args []string, healthAddr, logPath string, env ...string) (*ServeProcess, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &ServeProcess{LogPath: logPath, HealthAddr: healthAddr, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.Env = append(os.Environ(), env...)
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() {
		err := p.cmd.Wait()
		logf.Close()
		p.mu.Lock()
		p.err = fmt.Errorf("canary-tagger exited: %v", err)
		p.mu.Unlock()
		close(p.exited)
	}()
	return p, nil
}

// Exited is nil while the process runs, else why it stopped.
func (p *ServeProcess) Exited() error {
	select {
	case <-p.exited:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.err
	default:
		return nil
	}
}

// WaitReady polls /readyz until it answers 200, the process exits or timeout passes.
func (p *ServeProcess) WaitReady(ctx context.Context, timeout time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	return webhooktest.Poll(ctx, "serve's /readyz to answer 200", timeout, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		if err := p.Exited(); err != nil {
			return false, webhooktest.StopPolling(err)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.HealthAddr+"/readyz", nil)
		resp, err := hc.Do(req)
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Errorf("/readyz: %s", resp.Status)
	})
}

// Stop sends SIGTERM and waits up to 30 s, then kills the process.
func (p *ServeProcess) Stop() error {
	if p.Exited() != nil {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return errors.New("canary-tagger still running 30s after SIGTERM: killed")
	}
}
