package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// KubectlTimeout bounds one kubectl invocation.
const KubectlTimeout = 60 * time.Second

// Result is what one kubectl run printed and how it exited.
type Result struct {
	Args     []string
	Stdout   string
	Stderr   string
	ExitCode int
	// Err is set when kubectl could not be run at all (not for a non-zero exit).
	Err error
}

// OK reports a zero exit code.
func (r Result) OK() bool { return r.Err == nil && r.ExitCode == 0 }

// String describes the run for test failure messages.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "kubectl %s: exit %d", strings.Join(r.Args, " "), r.ExitCode)
	if r.Err != nil {
		fmt.Fprintf(&b, " (%v)", r.Err)
	}
	if r.Stdout != "" {
		fmt.Fprintf(&b, "\n--- stdout\n%s", r.Stdout)
	}
	if r.Stderr != "" {
		fmt.Fprintf(&b, "\n--- stderr\n%s", r.Stderr)
	}
	return b.String()
}

// Kubectl runs the real kubectl binary against one cluster.
type Kubectl struct {
	// Path of the kubectl binary.
	Path string
	// Kubeconfig file passed as KUBECONFIG.
	Kubeconfig string
	// CacheDir is KUBECACHEDIR: the discovery/HTTP cache, private to this
	// cluster so nothing leaks into or out of ~/.kube.
	CacheDir string
}

// Run runs kubectl with args.
func (k Kubectl) Run(ctx context.Context, args ...string) Result {
	return k.RunStdin(ctx, nil, args...)
}

// RunStdin runs kubectl with args and stdin (e.g. for `-f -`).
func (k Kubectl) RunStdin(ctx context.Context, stdin io.Reader, args ...string) Result {
	ctx, cancel := context.WithTimeout(ctx, KubectlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.Path, args...)
	cmd.Env = append(os.Environ(),
		"KUBECONFIG="+k.Kubeconfig,
		"KUBECACHEDIR="+k.CacheDir,
		"KUBECTL_EXTERNAL_DIFF=", // the default `diff -u -N`
		"NO_COLOR=1",
	)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := Result{Args: args, Stdout: stdout.String(), Stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && ctx.Err() == nil:
		res.ExitCode = exit.ExitCode()
	default:
		res.ExitCode = -1
		res.Err = err
	}
	return res
}
