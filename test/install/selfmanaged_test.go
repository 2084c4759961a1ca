package install

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admregv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/canary-tagger/canary-tagger/certs"
	"github.com/canary-tagger/canary-tagger/test/internal/harness"
	"github.com/canary-tagger/canary-tagger/webhook"
	"github.com/canary-tagger/canary-tagger/webhook/agentpod"
	"github.com/canary-tagger/canary-tagger/webhook/config"
	"github.com/canary-tagger/canary-tagger/webhook/webhooktest"
)

// selfManagedInstall is the self-managed install of manifests/self-managed in envtest: its
// Namespace, ServiceAccount and RBAC applied for real; its Service turned into
// an ExternalName Service for localhost, so that the apiserver reaches an
// in-process server by the Service's DNS name (and checks the certificate for
// <service>.<namespace>.svc, as in a cluster); its webhook configuration with
// failurePolicy Fail (a TLS failure fails the request instead of being
// ignored), limited to a namespace of this test.
type selfManagedInstall struct {
	namespace, secret, mwc, service string
	// reviewNS is where the test creates agent pods.
	reviewNS string
	// port is what the webhook configuration calls (the apiserver's instance).
	port int
	// sa is a clientset acting as the Deployment's service account.
	sa kubernetes.Interface
	// conflicts counts 409 answers to the service account's Secret creates.
	conflicts atomic.Int64
	rules     config.Rules
	// mwcObj is the webhook configuration as installed (no caBundle).
	mwcObj *admregv1.MutatingWebhookConfiguration
}

func setupSelfManaged(t *testing.T) *selfManagedInstall {
	t.Helper()
	ctx := t.Context()
	r := render(t, "self-managed")
	dep := only[appsv1.Deployment](t, r, "Deployment")
	args := effectiveArgs(t, dep)
	ns := ensureOwnNamespace(t, r)
	s := &selfManagedInstall{
		namespace: ns.Name,
		secret:    mustArg(t, args, "tls-secret"),
		mwc:       mustArg(t, args, "webhook-config-name"),
		service:   mustArg(t, args, "service-name"),
		reviewNS:  "sm-reviews-" + rand.String(5),
	}
	if got := mustArg(t, args, "service-namespace"); got != s.namespace {
		t.Fatalf("--service-namespace=%s, namespace %s", got, s.namespace)
	}
	var err error
	if s.port, err = webhooktest.FreePort(); err != nil {
		t.Fatal(err)
	}
	if s.rules, err = harness.ServeRules(); err != nil {
		t.Fatal(err)
	}

	// The ServiceAccount and its RBAC, as rendered.
	var rbac []string
	for _, d := range r.docs {
		switch d.Kind {
		case "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding":
			rbac = append(rbac, string(d.Raw))
		}
	}
	if res := env.Kubectl.RunStdin(ctx, strings.NewReader(strings.Join(rbac, "\n---\n")),
		"apply", "--server-side", "--force-conflicts", "--field-manager=canary-tagger-test", "-f", "-"); !res.OK() {
		t.Fatalf("applying the RBAC: %s", res)
	}

	// The Service, as an ExternalName for localhost.
	svc := named[corev1.Service](t, r, "Service", s.service)
	svc.Spec = corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "localhost", Ports: svc.Spec.Ports}
	_ = env.Client.Delete(ctx, svc.DeepCopy())
	if err := harness.Eventually(ctx, "the Service to be created", func(ctx context.Context) (bool, error) {
		err := env.Client.Create(ctx, svc.DeepCopy())
		return err == nil, err
	}); err != nil {
		t.Fatal(err)
	}
	if err := env.CreateNamespace(ctx, s.reviewNS, nil); err != nil {
		t.Fatal(err)
	}

	// The webhook configuration: rendered, no caBundle yet.
	mwc := only[admregv1.MutatingWebhookConfiguration](t, r, "MutatingWebhookConfiguration")
	for i := range mwc.Webhooks {
		w := &mwc.Webhooks[i]
		w.ClientConfig.Service.Port = ptr.To(int32(s.port))
		w.ClientConfig.CABundle = nil
		w.FailurePolicy = ptr.To(admregv1.Fail)
		w.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": s.reviewNS}}
	}
	s.deleteState(t)
	s.mwcObj = mwc.DeepCopy()
	if err := env.Client.Create(ctx, mwc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.deleteState(t) })

	// A client acting as the Deployment's service account.
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + dep.Namespace + ":" + dep.Spec.Template.Spec.ServiceAccountName,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + dep.Namespace, "system:authenticated"},
	}
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			resp, err := rt.RoundTrip(req)
			if err == nil && req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/secrets") && resp.StatusCode == http.StatusConflict {
				s.conflicts.Add(1)
			}
			return resp, err
		})
	}
	if s.sa, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	return s
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// deleteState removes the Secret and the webhook configuration.
func (s *selfManagedInstall) deleteState(t *testing.T) {
	ctx := context.Background()
	for _, o := range []client.Object{
		&admregv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: s.mwc}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: s.secret, Namespace: s.namespace}},
	} {
		if err := env.Client.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting %T %s: %v", o, o.GetName(), err)
		}
		_ = harness.Eventually(ctx, fmt.Sprintf("%T %s to be gone", o, o.GetName()), func(ctx context.Context) (bool, error) {
			err := env.Client.Get(ctx, client.ObjectKeyFromObject(o), o)
			return apierrors.IsNotFound(err), err
		})
	}
}

// instance is one replica: the self-managed TLS and the webhook server
// (webhook.Run, what `serve` runs), on its own ports.
type instance struct {
	name string
	port int
	// healthPort serves /readyz, with the caBundle check `serve` adds.
	healthPort int
	sm         *certs.SelfManaged
	ctx        context.Context
	stop       context.CancelFunc
	// done is closed when the server (if started) has returned.
	done    chan struct{}
	serving bool
	once    sync.Once
}

func (s *selfManagedInstall) newInstance(t *testing.T, name string, port int, lifetime time.Duration) *instance {
	t.Helper()
	dir := t.TempDir()
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	healthPort, err := webhooktest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{name: name, port: port, healthPort: healthPort, done: make(chan struct{})}
	in.ctx, in.stop = context.WithCancel(context.Background())
	t.Cleanup(func() {
		in.stopAndWait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("last lines of %s's log:\n%s", name, tailLines(string(b), 40))
		}
	})
	in.sm = &certs.SelfManaged{
		Client:            s.sa,
		Namespace:         s.namespace,
		SecretName:        s.secret,
		ServiceName:       s.service,
		WebhookConfigName: s.mwc,
		Lifetime:          lifetime,
		SyncInterval:      250 * time.Millisecond,
		Logger:            zap.New(zap.WriteTo(logf), zap.UseDevMode(true)).WithName(name),
	}
	return in
}

// serve runs the webhook server on the self-managed certificate, as `serve`
// wires it: served from memory, not ready until the caBundle trusts it.
func (in *instance) serve(rules config.Rules) {
	in.serving = true
	go func() {
		defer close(in.done)
		_ = webhook.Run(in.ctx, webhook.Options{
			Rules: rules, Host: "127.0.0.1", Port: in.port,
			GetCertificate: in.sm.GetCertificate,
			MetricsAddr:    "0", HealthAddr: in.healthAddr(),
			ReadyChecks: map[string]healthz.Checker{"ca-bundle": func(*http.Request) error { return in.sm.Ready() }},
			Logger:      in.sm.Logger.WithName("server"),
		})
	}()
}

// start is what `serve --self-managed-tls` does: TLS first, then the server.
func (in *instance) start(rules config.Rules) error {
	if err := in.sm.Start(in.ctx); err != nil {
		return fmt.Errorf("%s: %w", in.name, err)
	}
	in.serve(rules)
	return nil
}

func (in *instance) stopAndWait() {
	in.once.Do(func() {
		in.stop()
		if in.serving {
			<-in.done
		}
	})
}

func (in *instance) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(in.port)) }

func (in *instance) healthAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(in.healthPort))
}

// waitReady polls the instance's /readyz: the server answers TLS and the
// caBundle trusts the certificate it serves.
func (in *instance) waitReady(t *testing.T) {
	t.Helper()
	hc := &http.Client{Timeout: time.Second}
	if err := webhooktest.Poll(t.Context(), in.name+" to be ready", 60*time.Second, 50*time.Millisecond, func(ctx context.Context) (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+in.healthAddr()+"/readyz?verbose", nil)
		resp, err := hc.Do(req)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK, fmt.Errorf("/readyz: %s: %s", resp.Status, b)
	}); err != nil {
		t.Fatal(err)
	}
}

// caBundles are the caBundles of the webhook configuration's webhooks.
func (s *selfManagedInstall) caBundles(ctx context.Context) ([][]byte, error) {
	mwc := &admregv1.MutatingWebhookConfiguration{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: s.mwc}, mwc); err != nil {
		return nil, err
	}
	var out [][]byte
	for _, w := range mwc.Webhooks {
		out = append(out, w.ClientConfig.CABundle)
	}
	return out, nil
}

func (s *selfManagedInstall) getSecret(ctx context.Context) (*corev1.Secret, error) {
	sec := &corev1.Secret{}
	err := env.Client.Get(ctx, client.ObjectKey{Namespace: s.namespace, Name: s.secret}, sec)
	return sec, err
}

// agentPod is a Datadog Agent pod of a DaemonSet: the agent webhook handles it.
func agentPod(ns string) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "datadog-agent-",
			Namespace:    ns,
			Labels:       map[string]string{"agent.datadoghq.com/component": "agent"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "DaemonSet", Name: "datadog-agent",
				UID: types.UID("6b1f0c1e-0000-4000-8000-000000000001"), Controller: ptr.To(true),
			}},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "datadog/agent:7"}}},
	}
}

// apiserverReview creates an agent pod (server-side dry-run): the apiserver
// calls the webhook through the Service over TLS, trusting only the caBundle
// and checking <service>.<namespace>.svc; with failurePolicy Fail any TLS
// failure is an error. The pod must come back mutated.
func (s *selfManagedInstall) apiserverReview(ctx context.Context) error {
	pod := agentPod(s.reviewNS)
	if err := env.Client.Create(ctx, pod, client.DryRunAll); err != nil {
		return err
	}
	if pod.Annotations[agentpod.StatusAnnotation] == "" {
		return fmt.Errorf("the pod came back without %s: the webhook was not called", agentpod.StatusAnnotation)
	}
	return nil
}

// directReview posts an AdmissionReview to addr on a new TLS connection,
// trusting only caBundle and checking the name the apiserver checks. It
// returns the certificate served.
func (s *selfManagedInstall) directReview(ctx context.Context, addr string, caBundle []byte) (*x509.Certificate, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caBundle) {
		return nil, errors.New("empty caBundle")
	}
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: s.service + "." + s.namespace + ".svc", MinVersion: tls.VersionTLS12},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	raw, _ := json.Marshal(agentPod(s.reviewNS))
	uid := types.UID(rand.String(10))
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       uid,
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: s.reviewNS, Operation: admissionv1.Create,
			Object: runtime.RawExtension{Raw: raw},
		},
	}
	body, _ := json.Marshal(review)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+webhook.AgentPodPath, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", resp.Status, b)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	if out.Response == nil || out.Response.UID != uid || !out.Response.Allowed || len(out.Response.Patch) == 0 {
		return nil, fmt.Errorf("unexpected review response: %s", b)
	}
	return resp.TLS.PeerCertificates[0], nil
}

func parseCerts(t *testing.T, b []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestSelfManagedBootstrap starts from nothing — no Secret, no webhook
// configuration yet — with the service account's RBAC only (impersonated):
// the Secret is created with a CA and a certificate for the Service's names,
// the certificate GetCertificate serves; the caBundle check fails until the
// configuration exists and gets the CA in both webhooks' caBundle; then the
// server gets ready and reviews succeed over TLS, from the apiserver and from
// a client that trusts only the caBundle.
func TestSelfManagedBootstrap(t *testing.T) {
	ctx := t.Context()
	t0 := time.Now()
	s := setupSelfManaged(t)
	t.Logf("set up in %s", time.Since(t0).Round(time.Millisecond))
	if err := env.Client.Delete(ctx, s.mwcObj.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	in := s.newInstance(t, "replica-0", s.port, 0)
	if err := in.sm.Start(in.ctx); err != nil {
		t.Fatalf("Start without a webhook configuration: %v", err)
	}
	if err := in.sm.Ready(); err == nil || !strings.Contains(err.Error(), "caBundle") {
		t.Errorf("readiness before any caBundle was written: %v", err)
	}
	sec, err := s.getSecret(ctx)
	if err != nil {
		t.Fatalf("no Secret after Start: %v", err)
	}
	if sec.Type != corev1.SecretTypeTLS {
		t.Errorf("Secret type %s, want %s", sec.Type, corev1.SecretTypeTLS)
	}
	for _, k := range []string{"tls.crt", "tls.key", "ca.crt", "ca.key"} {
		if len(sec.Data[k]) == 0 {
			t.Errorf("Secret has no %s", k)
		}
	}
	leaf := parseCerts(t, sec.Data["tls.crt"])[0]
	for _, name := range []string{s.service, s.service + "." + s.namespace, s.service + "." + s.namespace + ".svc", s.service + "." + s.namespace + ".svc.cluster.local"} {
		if err := leaf.VerifyHostname(name); err != nil {
			t.Errorf("certificate does not cover %s: %v", name, err)
		}
	}
	if life := time.Until(leaf.NotAfter); life < certs.DefaultCertLifetime-time.Hour || life > certs.DefaultCertLifetime {
		t.Errorf("certificate valid for %s more, want about %s", life, certs.DefaultCertLifetime)
	}
	if c, err := in.sm.GetCertificate(nil); err != nil || !bytes.Equal(c.Certificate[0], leaf.Raw) {
		t.Errorf("the certificate to serve is not the Secret's (%v)", err)
	}

	// The webhook configuration is installed: the CA goes into both caBundles.
	if err := env.Client.Create(ctx, s.mwcObj.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	if err := harness.Eventually(ctx, "the caBundles to be the Secret's ca.crt", func(ctx context.Context) (bool, error) {
		bundles, err := s.caBundles(ctx)
		if err != nil {
			return false, err
		}
		for i, b := range bundles {
			if !bytes.Equal(b, sec.Data["ca.crt"]) {
				return false, fmt.Errorf("webhook #%d caBundle is not the Secret's ca.crt", i)
			}
		}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("caBundles written %s after the webhook configuration was created", time.Since(t0).Round(time.Millisecond))
	if cas := parseCerts(t, sec.Data["ca.crt"]); len(cas) != 1 {
		t.Errorf("%d CAs after bootstrap, want 1", len(cas))
	} else if life := time.Until(cas[0].NotAfter); life < 9*365*24*time.Hour {
		t.Errorf("CA valid for %s more, want about ten years", life)
	}
	if err := harness.Eventually(ctx, "the caBundle to trust the certificate", func(context.Context) (bool, error) {
		err := in.sm.Ready()
		return err == nil, err
	}); err != nil {
		t.Errorf("the caBundle does not come to trust the certificate: %v", err)
	}

	// The server starts: ready, and reviews succeed.
	t0 = time.Now()
	in.serve(s.rules)
	in.waitReady(t)
	t.Logf("ready %s after the server started", time.Since(t0).Round(time.Millisecond))
	for i := range 5 {
		if err := s.apiserverReview(ctx); err != nil {
			t.Fatalf("apiserver review %d: %v", i, err)
		}
		served, err := s.directReview(ctx, in.addr(), sec.Data["ca.crt"])
		if err != nil {
			t.Fatalf("direct review %d: %v", i, err)
		}
		if !bytes.Equal(served.Raw, leaf.Raw) {
			t.Errorf("served certificate is not the Secret's")
		}
	}

	// A restarted replica reuses the Secret: same certificate, no new CA.
	t0 = time.Now()
	in.stopAndWait()
	t.Logf("server stopped in %s", time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	again := s.newInstance(t, "replica-0-restarted", s.port, 0)
	if err := again.start(s.rules); err != nil {
		t.Fatal(err)
	}
	again.waitReady(t)
	t.Logf("restarted replica ready in %s", time.Since(t0).Round(time.Millisecond))
	after, err := s.getSecret(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(after.Data["ca.crt"], sec.Data["ca.crt"]) || !bytes.Equal(after.Data["tls.crt"], sec.Data["tls.crt"]) {
		t.Errorf("a restart replaced the CA or the certificate")
	}
	if err := s.apiserverReview(ctx); err != nil {
		t.Errorf("apiserver review after restart: %v", err)
	}
}

// TestSelfManagedTwoReplicasStartTogether starts two replicas at the same
// instant against no Secret, several times: every time there is one Secret
// with one CA, both caBundles hold that CA, and both replicas serve the same
// certificate. The losing replica must have hit AlreadyExists at least once
// over the rounds (the race really happened and was resolved by the
// apiserver, not by timing).
func TestSelfManagedTwoReplicasStartTogether(t *testing.T) {
	const rounds = 5
	raced := 0
	for round := range rounds {
		t.Run(fmt.Sprintf("round-%d", round), func(t *testing.T) {
			ctx := t.Context()
			s := setupSelfManaged(t)
			portB, err := webhooktest.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			a := s.newInstance(t, "a", s.port, 0)
			b := s.newInstance(t, "b", portB, 0)
			var wg sync.WaitGroup
			gate := make(chan struct{})
			errs := make(chan error, 2)
			for _, in := range []*instance{a, b} {
				wg.Go(func() {
					<-gate
					errs <- in.start(s.rules)
				})
			}
			close(gate)
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			a.waitReady(t)
			b.waitReady(t)

			var list corev1.SecretList
			if err := env.Client.List(ctx, &list, client.InNamespace(s.namespace)); err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, sec := range list.Items {
				if _, ok := sec.Data["ca.crt"]; ok {
					names = append(names, sec.Name)
				}
			}
			if len(names) != 1 {
				t.Fatalf("Secrets with a CA: %v, want exactly %s", names, s.secret)
			}
			sec, err := s.getSecret(ctx)
			if err != nil {
				t.Fatal(err)
			}
			cas := parseCerts(t, sec.Data["ca.crt"])
			if len(cas) != 1 {
				t.Fatalf("%d CAs in the Secret, want 1", len(cas))
			}
			bundles, err := s.caBundles(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i, cab := range bundles {
				if !bytes.Equal(cab, sec.Data["ca.crt"]) {
					t.Errorf("webhook #%d caBundle is not the Secret's one CA", i)
				}
			}
			var served [][]byte
			for _, in := range []*instance{a, b} {
				c, err := s.directReview(ctx, in.addr(), sec.Data["ca.crt"])
				if err != nil {
					t.Fatalf("review of %s: %v", in.name, err)
				}
				if err := c.CheckSignatureFrom(cas[0]); err != nil {
					t.Errorf("%s serves a certificate not signed by the one CA: %v", in.name, err)
				}
				served = append(served, c.Raw)
			}
			if !bytes.Equal(served[0], served[1]) {
				t.Errorf("the replicas serve different certificates")
			}
			if err := s.apiserverReview(ctx); err != nil {
				t.Errorf("apiserver review: %v", err)
			}
			if c := s.conflicts.Load(); c > 0 {
				t.Logf("%d Secret create(s) lost the race (AlreadyExists) and adopted the winner's", c)
				raced++
			}
		})
	}
	if raced == 0 {
		t.Errorf("in %d rounds the two replicas never raced on creating the Secret", rounds)
	}
}

// TestSelfManagedRotationDropsNothing runs two replicas with a short
// certificate lifetime through two renewals each while the apiserver (through
// the Service, failurePolicy Fail) and a client that trusts only the current
// caBundle (re-read every 250ms, new TLS connection per review, alternating
// between the replicas) send reviews continuously: not one fails, and the
// caBundle never changes (every certificate comes from the one long-lived
// CA). Afterwards both replicas serve the Secret's certificate.
func TestSelfManagedRotationDropsNothing(t *testing.T) {
	const lifetime = 24 * time.Second
	ctx := t.Context()
	s := setupSelfManaged(t)
	portB, err := webhooktest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	a := s.newInstance(t, "a", s.port, lifetime)
	b := s.newInstance(t, "b", portB, lifetime)
	for _, in := range []*instance{a, b} {
		if err := in.start(s.rules); err != nil {
			t.Fatal(err)
		}
	}
	a.waitReady(t)
	b.waitReady(t)

	// The client's view of the caBundle, refreshed like an informer would;
	// bundleChanges counts the times any webhook's caBundle differed from the
	// first one read.
	var bundle atomic.Pointer[[]byte]
	var bundleChanges atomic.Int64
	refresh := func(ctx context.Context) error {
		bs, err := s.caBundles(ctx)
		if err != nil {
			return err
		}
		if first := bundle.Load(); first != nil {
			for _, b := range bs {
				if !bytes.Equal(b, *first) {
					bundleChanges.Add(1)
				}
			}
		}
		bundle.CompareAndSwap(nil, &bs[0])
		return nil
	}
	if err := refresh(ctx); err != nil {
		t.Fatal(err)
	}

	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var (
		wg                   sync.WaitGroup
		apiOK, apiFail       atomic.Int64
		directOK, directFail atomic.Int64
		mu                   sync.Mutex
		errs                 []string
		serials              = map[string]map[string]bool{a.name: {}, b.name: {}}
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(errs) < 10 {
			errs = append(errs, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
		}
	}
	wg.Go(func() {
		tick := time.NewTicker(250 * time.Millisecond) // re-read the caBundle four times a second
		defer tick.Stop()
		for loadCtx.Err() == nil {
			select {
			case <-loadCtx.Done():
				return
			case <-tick.C:
			}
			if err := refresh(loadCtx); err != nil && loadCtx.Err() == nil {
				fail("reading caBundle: %v", err)
			}
		}
	})
	wg.Go(func() {
		for loadCtx.Err() == nil {
			err := s.apiserverReview(loadCtx)
			switch {
			case loadCtx.Err() != nil:
			case err != nil:
				apiFail.Add(1)
				fail("apiserver review: %v", err)
			default:
				apiOK.Add(1)
			}
			select { // pace: about 50 apiserver reviews a second
			case <-loadCtx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	wg.Go(func() {
		for i := 0; loadCtx.Err() == nil; i++ {
			in := []*instance{a, b}[i%2]
			c, err := s.directReview(loadCtx, in.addr(), *bundle.Load())
			switch {
			case loadCtx.Err() != nil:
			case err != nil:
				directFail.Add(1)
				fail("direct review of %s: %v", in.name, err)
			default:
				directOK.Add(1)
				mu.Lock()
				serials[in.name][c.SerialNumber.String()] = true
				mu.Unlock()
			}
			select { // pace: about 50 direct reviews a second
			case <-loadCtx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	})

	// Two renewals: each replica serves three certificates in turn.
	start := time.Now()
	err = webhooktest.Poll(ctx, "each replica to serve three certificates", 4*lifetime, 500*time.Millisecond, func(context.Context) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		na, nb := len(serials[a.name]), len(serials[b.name])
		if na >= 3 && nb >= 3 {
			return true, nil
		}
		return false, fmt.Errorf("certificates served: %s %d, %s %d", a.name, na, b.name, nb)
	})
	stopLoad()
	wg.Wait()
	t.Logf("in %s: apiserver reviews %d ok / %d failed; direct reviews %d ok / %d failed; certificates served: %s %d, %s %d",
		time.Since(start).Round(time.Second), apiOK.Load(), apiFail.Load(), directOK.Load(), directFail.Load(),
		a.name, len(serials[a.name]), b.name, len(serials[b.name]))
	if err != nil {
		t.Errorf("renewals: %v", err)
	}
	if apiFail.Load() > 0 || directFail.Load() > 0 {
		t.Errorf("failed reviews during rotation:\n%s", strings.Join(errs, "\n"))
	}
	if apiOK.Load() < 50 || directOK.Load() < 50 {
		t.Errorf("too few reviews to mean anything")
	}
	if n := bundleChanges.Load(); n > 0 {
		t.Errorf("the caBundle changed %d time(s) during renewals; the CA should outlive them", n)
	}

	// Afterwards: the caBundle is the Secret's one CA, and both replicas end
	// up serving the Secret's certificate.
	if err := webhooktest.Poll(ctx, "the caBundle and both replicas to agree on the Secret", 10*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		sec, err := s.getSecret(ctx)
		if err != nil {
			return false, err
		}
		bundles, err := s.caBundles(ctx)
		if err != nil {
			return false, err
		}
		for i, cab := range bundles {
			if !bytes.Equal(cab, sec.Data["ca.crt"]) || len(parseCerts(t, cab)) != 1 {
				return false, fmt.Errorf("webhook #%d caBundle is not the Secret's one CA", i)
			}
		}
		current := parseCerts(t, sec.Data["tls.crt"])[0]
		for _, in := range []*instance{a, b} {
			c, err := s.directReview(ctx, in.addr(), bundles[0])
			if err != nil {
				return false, err
			}
			if !c.Equal(current) {
				return false, fmt.Errorf("%s does not serve the Secret's certificate yet", in.name)
			}
		}
		return true, nil
	}); err != nil {
		t.Error(err)
	}
}
