package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canary-tagger/canary-tagger/certs"
	"github.com/canary-tagger/canary-tagger/cmd/canary-tagger/internal/doctor"
	"github.com/canary-tagger/canary-tagger/webhook/webhooktest"
)

func TestServeRefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"--label-key=not a key"}, "--label-key"},
		{[]string{"--stable-value=a b"}, "--stable-value"},
		{[]string{"--tag-name=Kube Role"}, "--tag-name"},
		{[]string{"--agent-selector=app in ("}, "--agent-selector"},
		{[]string{"--port=0"}, "--port"},
		{[]string{"--port=70000"}, "--port"},
		{[]string{"--port=https"}, "-port"}, // the flag package's own message
		{[]string{"--cert-name=a/tls.crt"}, "--cert-name"},
		{[]string{"--key-name="}, "--key-name"},
		{[]string{"--cert-dir="}, "--cert-dir"},
		{[]string{"--metrics-bind-address=8080"}, "--metrics-bind-address"},
		{[]string{"--health-probe-bind-address=:http-alt"}, "--health-probe-bind-address"},
		{[]string{"--check-workload-ref=maybe"}, "-check-workload-ref"},
		{[]string{"--zap-log-level=loud"}, "-zap-log-level"},
		{[]string{"--no-such-flag"}, "-no-such-flag"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"--heal-interval=500ms"}, "--heal-interval"},
		{[]string{"--heal=sometimes"}, "-heal"},
		{[]string{"--leader-elect", "--leader-election-namespace=Not_A_Namespace"}, "--leader-election-namespace"},
		{[]string{"--leader-elect"}, "--leader-election-namespace: not set and not running in a pod"},
		{[]string{"--heal=false", "--heal-agent-pods"}, "--heal-agent-pods: needs --heal"},
		{[]string{"--webhook-config-name=Bad Name"}, "--webhook-config-name"},
	} {
		t.Setenv("POD_NAMESPACE", "")
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"serve"}, tc.args...), nil, &stdout, &stderr, noSignals(t))
		if code != 2 {
			t.Errorf("%v: exit %d, want 2", tc.args, code)
		}
		if !strings.Contains(stderr.String(), tc.flag) {
			t.Errorf("%v: stderr does not name %s:\n%s", tc.args, tc.flag, stderr.String())
		}
	}
}

// TestServeRunsAndStops wires the flags through to a real server: it gets
// ready, and a cancelled context (what SIGTERM does) ends it with exit 0.
func TestServeRunsAndStops(t *testing.T) {
	dir := t.TempDir()
	if _, err := certs.WriteSelfSigned(dir, []string{"localhost", "127.0.0.1"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	port, health := freePort(t), freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr bytes.Buffer
	code := make(chan int, 1)
	go func() {
		code <- run([]string{"serve",
			"--host=127.0.0.1", fmt.Sprintf("--port=%d", port), "--cert-dir=" + dir,
			"--metrics-bind-address=0", fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", health),
			"--zap-log-level=error",
		}, nil, &bytes.Buffer{}, &stderr, func() context.Context { return ctx })
	}()

	url := fmt.Sprintf("http://127.0.0.1:%d/readyz", health)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready in time (last error %v)", err)
		}
		select {
		case c := <-code:
			t.Fatalf("serve exited %d before ready: %s", c, stderr.String())
		case <-time.After(20 * time.Millisecond): // poll interval
		}
	}
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit %d: %s", c, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop after cancel")
	}
}

func TestServeFailsWithoutCertificate(t *testing.T) {
	var stderr bytes.Buffer
	code := run([]string{"serve", "--cert-dir=" + filepath.Join(t.TempDir(), "none"),
		fmt.Sprintf("--port=%d", freePort(t)), "--metrics-bind-address=0", "--health-probe-bind-address=0"},
		nil, &bytes.Buffer{}, &stderr, context.Background)
	if code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "tls.crt") {
		t.Errorf("error does not name the missing file: %s", stderr.String())
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	port, err := webhooktest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// doctor reads serve's heal flags from the install's Deployment: the flags
// it knows exist, with the defaults it assumes when they are not given.
func TestDoctorKnowsServeHealFlags(t *testing.T) {
	flags := newServeCommand(context.Background).Flags()
	for name, def := range doctor.ServeFlagDefaults {
		f := flags.Lookup(name)
		if f == nil {
			t.Errorf("serve has no --%s, which doctor reads", name)
			continue
		}
		if f.DefValue != def {
			t.Errorf("serve --%s defaults to %q, doctor assumes %q", name, f.DefValue, def)
		}
	}
}
