package controlplane

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a child process started in its own process group, with stdout and
// stderr going to a log file. Stop signals the whole group, so a binary that
// forks (or a plugin it runs) leaves nothing behind.
type Process struct {
	Name    string
	Path    string
	Args    []string
	LogPath string

	cmd    *exec.Cmd
	logf   *os.File
	done   chan struct{}
	mu     sync.Mutex
	err    error // result of Wait, valid once done is closed
	stopMu sync.Mutex
	stop   bool // Stop was called: an exit is expected
}

// ProcessOptions configures StartProcess.
type ProcessOptions struct {
	// Env is added to the current environment.
	Env []string
	// Dir is the working directory (default: the current one).
	Dir string
	// Detach leaves the process running when this program dies (no
	// parent-death signal). Without it the kernel kills the child with SIGKILL
	// if this program is killed before it can stop it (e.g. `kill -9`).
	Detach bool
}

// StartProcess starts path with args; its output goes to logPath (truncated).
func StartProcess(name, path string, args []string, logPath string, opts ProcessOptions) (*Process, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.Dir = opts.Dir
	cmd.Env = append(os.Environ(), opts.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if !opts.Detach {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, Path: path, Args: args, LogPath: logPath, cmd: cmd, logf: f, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		_ = f.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id (also its process group id).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports an error if the process exited although Stop was not called.
func (p *Process) Exited() error {
	select {
	case <-p.done:
	default:
		return nil
	}
	p.stopMu.Lock()
	stopped := p.stop
	p.stopMu.Unlock()
	if stopped {
		return nil
	}
	p.mu.Lock()
	err := p.err
	p.mu.Unlock()
	if err == nil {
		err = errors.New("exit status 0")
	}
	return fmt.Errorf("%s exited unexpectedly (%v); last lines of %s:\n%s", p.Name, err, p.LogPath, p.Tail(15))
}

// Stop sends SIGTERM to the process group, waits up to grace, then SIGKILLs the
// group. It is safe to call more than once.
func (p *Process) Stop(grace time.Duration) {
	p.stopMu.Lock()
	p.stop = true
	p.stopMu.Unlock()
	pgid := p.cmd.Process.Pid
	select {
	case <-p.done:
		// The leader is gone; members of its group may still be alive.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		return
	default:
	}
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.done
}

// Kill sends SIGKILL to the process group at once and waits for it to
// exit: a crash, with no chance to clean up (e.g. release a Lease). Like
// Stop, it makes the exit expected.
func (p *Process) Kill() {
	p.stopMu.Lock()
	p.stop = true
	p.stopMu.Unlock()
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Tail returns the last n lines of the process log.
func (p *Process) Tail(n int) string { return TailFile(p.LogPath, n) }

// TailFile returns the last n lines of a file (or a note that it cannot be read).
func TailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(bytes.ToValidUTF8(b, []byte("?"))), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}
