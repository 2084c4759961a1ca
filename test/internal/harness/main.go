package harness

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RunMain is a TestMain body: it starts one Env for the package, hands it to
// set, runs the tests and stops the Env — also on SIGINT/SIGTERM and shortly
// before `go test -timeout` would panic, so no etcd or kube-apiserver
// outlives the test binary. It returns the exit code for os.Exit.
//
//	func TestMain(m *testing.M) { os.Exit(harness.RunMain(m, harness.Options{}, func(e *harness.Env) { env = e })) }
func RunMain(m *testing.M, opts Options, set func(*Env)) int {
	flag.Parse()
	if testing.Short() {
		fmt.Println("skipping: -short (these tests start a control plane)")
		return 0
	}
	if opts.Logf == nil {
		opts.Logf = func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "harness: "+format+"\n", args...)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	start := time.Now()
	env, err := Start(ctx, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "harness: %v\n", err)
		return 1
	}
	opts.Logf("environment ready in %s", time.Since(start).Round(time.Millisecond))

	var once sync.Once
	stop := func(why string) {
		once.Do(func() {
			if why != "" {
				opts.Logf("%s: stopping the control plane", why)
			}
			if err := env.Stop(); err != nil {
				fmt.Fprintf(os.Stderr, "harness: stopping: %v\n", err)
			}
		})
	}
	defer stop("")

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		if s, ok := <-sigs; ok {
			stop(s.String())
			os.Exit(130)
		}
	}()
	if d := testTimeout(); d > 0 {
		// go test panics at -timeout without running deferred functions:
		// stop the control plane a little before that.
		margin := min(d/10, 30*time.Second)
		t := time.AfterFunc(d-time.Since(start)-margin, func() {
			stop(fmt.Sprintf("-test.timeout %s nearly reached", d))
		})
		defer t.Stop()
	}

	set(env)
	code := m.Run()
	if code != 0 && env.Webhook != nil {
		fmt.Fprintf(os.Stderr, "harness: last lines of the webhook log (KEEP_ENV_DIR=1 keeps %s):\n%s\n",
			env.Dir, tail(env.Webhook.LogPath, 30))
	}
	return code
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func testTimeout() time.Duration {
	f := flag.Lookup("test.timeout")
	if f == nil {
		return 0
	}
	d, _ := f.Value.(flag.Getter).Get().(time.Duration)
	return d
}
