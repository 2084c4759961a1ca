package install

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	admregv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/canary-tagger/canary-tagger/test/internal/harness"
	"github.com/canary-tagger/canary-tagger/webhook/webhooktest"
)

// TestSelfManagedServeBinary runs the real binary as the self-managed
// Deployment runs it — the rendered container args of manifests/self-managed,
// only the ports and the certificate directory changed for this machine —
// with a kubeconfig that acts as the Deployment's service account. With no
// webhook configuration yet, it serves nothing (not ready); once the
// configuration exists, /readyz turns 200 and the apiserver's reviews
// succeed; SIGTERM stops it cleanly.
func TestSelfManagedServeBinary(t *testing.T) {
	ctx := t.Context()
	s := setupSelfManaged(t)
	if err := env.Client.Delete(ctx, &admregv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: s.mwc}}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "canary-tagger")
	if err := harness.BuildCanaryTagger(ctx, env.Repo, bin); err != nil {
		t.Fatal(err)
	}

	// A kubeconfig acting as system:serviceaccount:<ns>:<sa>.
	r := render(t, "self-managed")
	dep := only[appsv1.Deployment](t, r, "Deployment")
	kc, err := clientcmd.LoadFromFile(env.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, ai := range kc.AuthInfos {
		ai.Impersonate = "system:serviceaccount:" + dep.Namespace + ":" + dep.Spec.Template.Spec.ServiceAccountName
		ai.ImpersonateGroups = []string{"system:serviceaccounts", "system:serviceaccounts:" + dep.Namespace, "system:authenticated"}
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		t.Fatal(err)
	}

	health, err := webhooktest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	metrics, err := webhooktest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, a := range effectiveArgs(t, dep) {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		switch name {
		case "port":
			a = "--port=" + strconv.Itoa(s.port)
		case "cert-dir":
			a = "--cert-dir=" + filepath.Join(dir, "tls")
		case "metrics-bind-address":
			a = "--metrics-bind-address=127.0.0.1:" + strconv.Itoa(metrics)
		case "health-probe-bind-address":
			a = "--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(health)
		}
		args = append(args, a)
	}
	args = append(args, "--host=127.0.0.1", "--kubeconfig="+kubeconfig)
	t.Logf("canary-tagger %s", strings.Join(args, " "))

	logPath := filepath.Join(dir, "log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("serve log:\n%s", tailLines(string(b), 40))
		}
	}()

	readyz := func(ctx context.Context) (int, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(health)+"/readyz", nil)
		resp, err := (&http.Client{Timeout: time.Second}).Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}

	// No webhook configuration: the Secret is made, but nothing is served.
	if err := harness.Eventually(ctx, "the Secret", func(ctx context.Context) (bool, error) {
		_, err := s.getSecret(ctx)
		return err == nil, err
	}); err != nil {
		t.Fatal(err)
	}
	// Wait until the server says it is holding back for the caBundle, then
	// check it really is: not ready, port closed.
	if err := harness.Eventually(ctx, "the server to say it waits for the caBundle", func(context.Context) (bool, error) {
		b, err := os.ReadFile(logPath)
		return err == nil && strings.Contains(string(b), "waiting for the caBundle to trust the certificate"), nil
	}); err != nil {
		t.Fatal(err)
	}
	if code, err := readyz(ctx); err == nil && code == http.StatusOK {
		t.Fatalf("ready without a caBundle")
	}
	if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), time.Second); err == nil {
		c.Close()
		t.Errorf("the webhook port accepts connections before the caBundle trusts the certificate")
	}

	// The configuration is installed: ready, and reviews pass.
	if err := env.Client.Create(ctx, s.mwcObj.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := webhooktest.Poll(ctx, "serve to be ready", 60*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		select {
		case err := <-exited:
			return false, webhooktest.StopPolling(fmt.Errorf("serve exited: %v", err))
		default:
		}
		code, err := readyz(ctx)
		if err != nil {
			return false, err
		}
		return code == http.StatusOK, fmt.Errorf("/readyz: %d", code)
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("ready %s after the webhook configuration was created", time.Since(start).Round(time.Millisecond))
	for i := range 3 {
		if err := s.apiserverReview(ctx); err != nil {
			t.Fatalf("apiserver review %d: %v", i, err)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("serve exited with %v after SIGTERM", err)
		}
		exited <- err // for the cleanup
	case <-time.After(30 * time.Second):
		t.Errorf("serve still running 30s after SIGTERM")
	}
}
