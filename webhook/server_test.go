package webhook

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
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/healthz"

	"github.com/canary-tagger/canary-tagger/certs"
	"github.com/canary-tagger/canary-tagger/webhook/webhooktest"
)

// testServer is a Run in progress, over real HTTPS on loopback.
type testServer struct {
	webhook, health, metrics string // base URLs
	addr                     string // webhook host:port
	certDir                  string
	client                   *http.Client // trusts the test CA
	cancel                   context.CancelFunc
	done                     chan error
}

// startServer runs Run with certificates from certs.WriteSelfSigned in a
// temporary directory (unless o has TLSOpts) and free loopback ports.
func startServer(t *testing.T, o Options) *testServer {
	t.Helper()
	s := &testServer{certDir: t.TempDir(), done: make(chan error, 1)}
	caPEM, err := certs.WriteSelfSigned(s.certDir, []string{"localhost", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	s.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	ports := freePorts(t, 3)
	o.Host, o.Port, o.CertDir = "127.0.0.1", ports[0], s.certDir
	o.HealthAddr = fmt.Sprintf("127.0.0.1:%d", ports[1])
	o.MetricsAddr = fmt.Sprintf("127.0.0.1:%d", ports[2])
	s.addr = net.JoinHostPort(o.Host, strconv.Itoa(o.Port))
	s.webhook, s.health, s.metrics = "https://"+s.addr, "http://"+o.HealthAddr, "http://"+o.MetricsAddr

	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.done <- Run(ctx, o) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return s
}

// waitReady polls /readyz until it answers 200.
func (s *testServer) waitReady(t *testing.T) {
	t.Helper()
	eventually(t, 10*time.Second, "/readyz to answer 200", func() bool {
		code, _ := get(s.health + "/readyz")
		return code == http.StatusOK
	}, s.done)
}

func (s *testServer) post(t *testing.T, path, contentType string, body []byte) (int, []byte) {
	t.Helper()
	resp, err := s.client.Post(s.webhook+path, contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func TestServerServesBothWebhooks(t *testing.T) {
	s := startServer(t, testOptions(t, fakeAPIServer(t, nil).URL))
	s.waitReady(t)
	if code, body := get(s.health + "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d %s", code, body)
	}
	for path, body := range map[string][]byte{
		RolloutPath:  readFile(t, filepath.Join(goldenDir, "rollout-seed-create.request.json")),
		AgentPodPath: helmChartReview(t),
	} {
		code, b := s.post(t, path, "application/json", body)
		r := responseOf(t, code, b)
		if !r.Allowed || len(r.Patch) == 0 {
			t.Errorf("%s: allowed=%v patch=%s", path, r.Allowed, r.Patch)
		}
	}
}

// TestServerMalformedBodies records what controller-runtime answers a body
// that is not an AdmissionReview: HTTP 200 with an AdmissionReview whose
// response has allowed=false and status code 400 (contract 7), never a 500.
func TestServerMalformedBodies(t *testing.T) {
	s := startServer(t, testOptions(t, "http://127.0.0.1:1"))
	s.waitReady(t)
	valid := readFile(t, filepath.Join(goldenDir, "rollout-seed-create.request.json"))
	for name, tc := range map[string]struct {
		contentType string
		body        []byte
	}{
		"not JSON":          {"application/json", []byte("this is not JSON")},
		"truncated":         {"application/json", valid[:len(valid)/2]},
		"not a review":      {"application/json", []byte(`{"apiVersion":"v1","kind":"Pod"}`)},
		"empty body":        {"application/json", nil},
		"wrong contentType": {"text/plain", valid},
	} {
		t.Run(name, func(t *testing.T) {
			code, b := s.post(t, RolloutPath, tc.contentType, tc.body)
			r := responseOf(t, code, b)
			if r.Allowed || r.Result == nil || r.Result.Code != http.StatusBadRequest {
				t.Errorf("want allowed=false code=400, got %s", b)
			}
		})
	}
}

func TestServerALPN(t *testing.T) {
	// Two servers in one process: Run keeps no state that prevents it.
	h1 := startServer(t, testOptions(t, "http://127.0.0.1:1"))
	o := testOptions(t, "http://127.0.0.1:1")
	o.EnableHTTP2 = true
	h2 := startServer(t, o)
	h1.waitReady(t)
	h2.waitReady(t)

	both := []string{"h2", "http/1.1"}
	if got := negotiate(t, h1.addr, both); got != "http/1.1" {
		t.Errorf("default server negotiated %q, want http/1.1", got)
	}
	if c, err := tls.Dial("tcp", h1.addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}); err == nil {
		p := c.ConnectionState().NegotiatedProtocol
		c.Close()
		if p == "h2" {
			t.Error("default server negotiated h2 with an h2-only client")
		}
	}
	if got := negotiate(t, h2.addr, both); got != "h2" {
		t.Errorf("--enable-http2 server negotiated %q, want h2", got)
	}

	// And end to end: an HTTP/2-capable client speaks what was negotiated.
	body := readFile(t, filepath.Join(goldenDir, "rollout-seed-create.request.json"))
	for s, major := range map[*testServer]int{h1: 1, h2: 2} {
		tr := s.client.Transport.(*http.Transport).Clone()
		tr.ForceAttemptHTTP2 = true
		resp, err := (&http.Client{Transport: tr}).Post(s.webhook+RolloutPath, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != major {
			t.Errorf("%s: answered over %s, want HTTP/%d", s.addr, resp.Proto, major)
		}
	}
}

func TestServerRefusesTLS11(t *testing.T) {
	s := startServer(t, testOptions(t, "http://127.0.0.1:1"))
	s.waitReady(t)
	c, err := tls.Dial("tcp", s.addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err == nil {
		c.Close()
		t.Fatalf("TLS 1.1 handshake succeeded (version %x)", c.ConnectionState().Version)
	}
	c, err = tls.Dial("tcp", s.addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS 1.2 refused: %v", err)
	}
	c.Close()
}

// TestServerReadiness: /readyz fails until the webhook server completes a
// TLS handshake with a loaded certificate. The certificate comes from
// Options.GetCertificate, which has none at first (as self-managed TLS
// before it has read its Secret).
func TestServerReadiness(t *testing.T) {
	dir := t.TempDir()
	if _, err := certs.WriteSelfSigned(dir, []string{"127.0.0.1"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, certs.CertFile), filepath.Join(dir, certs.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	var cert atomic.Pointer[tls.Certificate]
	o := testOptions(t, "http://127.0.0.1:1")
	o.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		if p := cert.Load(); p != nil {
			return p, nil
		}
		return nil, errors.New("no certificate loaded yet")
	}
	s := startServer(t, o)
	eventually(t, 10*time.Second, "/healthz to answer 200", func() bool {
		code, _ := get(s.health + "/healthz")
		return code == http.StatusOK
	}, s.done)
	for range 3 {
		if code, body := get(s.health + "/readyz"); code == http.StatusOK {
			t.Fatalf("/readyz ok without a certificate: %s", body)
		}
	}
	cert.Store(&pair)
	s.waitReady(t)
}

// TestServerReadyChecks: an extra readiness check (self-managed TLS: the
// caBundle trusts the served certificate) holds /readyz until it passes.
func TestServerReadyChecks(t *testing.T) {
	var trusted atomic.Bool
	o := testOptions(t, "http://127.0.0.1:1")
	o.ReadyChecks = map[string]healthz.Checker{"ca-bundle": func(*http.Request) error {
		if !trusted.Load() {
			return errors.New("caBundle does not trust the served certificate yet")
		}
		return nil
	}}
	s := startServer(t, o)
	eventually(t, 10*time.Second, "the webhook to serve TLS", func() bool {
		c, err := tls.Dial("tcp", s.addr, &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			c.Close()
		}
		return err == nil
	}, s.done)
	if code, body := get(s.health + "/readyz"); code != http.StatusInternalServerError ||
		!strings.Contains(body, "[+]webhook ok") || !strings.Contains(body, "[-]ca-bundle failed") {
		t.Fatalf("/readyz = %d %q while the extra check fails, want 500 naming it", code, body)
	}
	if code, body := get(s.health + "/readyz/ca-bundle"); code != http.StatusInternalServerError || !strings.Contains(body, "caBundle does not trust") {
		t.Fatalf("/readyz/ca-bundle = %d %q, want 500 with the reason", code, body)
	}
	trusted.Store(true)
	s.waitReady(t)
}

func TestServerMetrics(t *testing.T) {
	s := startServer(t, testOptions(t, fakeAPIServer(t, nil).URL))
	s.waitReady(t)
	before := scrape(t, s.metrics)
	for _, c := range []string{"rollout-seed-create", "rollout-update-metadata-present", "rollout-conflict-template",
		"rollout-bluegreen", "rollout-malformed-object", "agent-pod-non-agent", "agent-pod-valuefrom"} {
		s.post(t, pathOf(c), "application/json", readFile(t, filepath.Join(goldenDir, c+".request.json")))
	}
	s.post(t, AgentPodPath, "application/json", helmChartReview(t))
	after := scrape(t, s.metrics)

	// Every series exists from the start (dashboards see zeros, not gaps).
	for _, w := range []string{"rollout", "agent-pod"} {
		for _, o := range []string{"injected", "present", "conflict", "skipped", "error"} {
			if !before.HasSeries(reviewsMetric, map[string]string{"webhook": w, "outcome": o}) {
				t.Errorf("series webhook=%s outcome=%s missing", w, o)
			}
		}
	}
	for _, tc := range []struct {
		metric string
		labels map[string]string
		want   float64
	}{
		{reviewsMetric, map[string]string{"outcome": "injected", "webhook": "rollout"}, 1},
		{reviewsMetric, map[string]string{"outcome": "present", "webhook": "rollout"}, 1},
		{reviewsMetric, map[string]string{"outcome": "conflict", "webhook": "rollout"}, 1},
		{reviewsMetric, map[string]string{"outcome": "skipped", "webhook": "rollout"}, 1},
		{reviewsMetric, map[string]string{"outcome": "error", "webhook": "rollout"}, 1},
		{reviewsMetric, map[string]string{"outcome": "injected", "webhook": "agent-pod"}, 1},
		{reviewsMetric, map[string]string{"outcome": "skipped", "webhook": "agent-pod"}, 2},
		{crRequestsMetric, map[string]string{"code": "200", "webhook": RolloutPath}, 5},
		{crRequestsMetric, map[string]string{"code": "200", "webhook": AgentPodPath}, 3},
	} {
		if got := after.Sum(tc.metric, tc.labels) - before.Sum(tc.metric, tc.labels); got != tc.want {
			t.Errorf("%s%v grew by %v, want %v", tc.metric, tc.labels, got, tc.want)
		}
	}
}

const (
	reviewsMetric    = "canary_tagger_admission_reviews_total"
	crRequestsMetric = "controller_runtime_webhook_requests_total"
)

// TestServerReloadsCertificate: new files in the certificate directory are
// served without a restart (cert-manager renewing the Secret).
func TestServerReloadsCertificate(t *testing.T) {
	s := startServer(t, testOptions(t, "http://127.0.0.1:1"))
	s.waitReady(t)
	first := servedCert(t, s.addr)
	if _, err := certs.WriteSelfSigned(s.certDir, []string{"localhost", "127.0.0.1"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(readFile(t, filepath.Join(s.certDir, certs.CertFile)))
	if bytes.Equal(first, block.Bytes) {
		t.Fatal("new certificate equals the old one")
	}
	// certwatcher reacts to the file events, and polls every 10 s anyway.
	eventually(t, 25*time.Second, "the new certificate to be served", func() bool {
		return bytes.Equal(servedCert(t, s.addr), block.Bytes)
	}, s.done)
}

// TestServerGracefulShutdown: a review in flight when the context is
// cancelled (SIGTERM) still gets its full answer. The review is held inside
// the workloadRef GET by the fake API server until the server has stopped
// accepting connections.
func TestServerGracefulShutdown(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	api := fakeAPIServer(t, func(*http.Request) {
		arrived <- struct{}{}
		<-release
	})
	s := startServer(t, testOptions(t, api.URL))
	s.waitReady(t)

	type answer struct {
		code int
		body []byte
	}
	answers := make(chan answer, 1)
	go func() {
		resp, err := s.client.Post(s.webhook+RolloutPath, "application/json",
			bytes.NewReader(readFile(t, filepath.Join(goldenDir, "rollout-workloadref.request.json"))))
		if err != nil {
			answers <- answer{body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		answers <- answer{resp.StatusCode, b}
	}()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the review never reached the workloadRef GET")
	}

	s.cancel()
	eventually(t, 10*time.Second, "the webhook listener to close", func() bool {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	}, nil)
	select {
	case err := <-s.done:
		t.Fatalf("Run returned (%v) with a review in flight", err)
	default:
	}
	close(release)

	a := <-answers
	r := responseOf(t, a.code, a.body)
	if !r.Allowed || len(r.Patch) == 0 || len(r.Warnings) > 0 {
		t.Errorf("in-flight review: allowed=%v patch=%s warnings=%q", r.Allowed, r.Patch, r.Warnings)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		s.done <- err // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the last review")
	}
}

func TestRunRefusesMissingCertificate(t *testing.T) {
	o := testOptions(t, "http://127.0.0.1:1")
	o.Port, o.CertDir = freePorts(t, 1)[0], filepath.Join(t.TempDir(), "none")
	o.MetricsAddr, o.HealthAddr = "0", "0"
	err := Run(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "tls.crt") {
		t.Errorf("Run without certificate: %v", err)
	}
}

// TestRunFailsOnATakenPort: a probe or metrics port in use ends Run with an
// error naming it, and the webhook server it had started stops with it.
func TestRunFailsOnATakenPort(t *testing.T) {
	for _, tc := range []struct {
		server, want string
		take         func(o *Options, taken string)
	}{
		{"health probes", "health probes on", func(o *Options, taken string) { o.HealthAddr = taken }},
		{"metrics", "metrics server", func(o *Options, taken string) { o.MetricsAddr = taken }},
	} {
		t.Run(tc.server, func(t *testing.T) {
			taken, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer taken.Close()
			dir := t.TempDir()
			if _, err := certs.WriteSelfSigned(dir, []string{"127.0.0.1"}, time.Hour); err != nil {
				t.Fatal(err)
			}
			ports := freePorts(t, 3)
			o := testOptions(t, "http://127.0.0.1:1")
			o.Host, o.Port, o.CertDir = "127.0.0.1", ports[0], dir
			o.HealthAddr, o.MetricsAddr = fmt.Sprintf("127.0.0.1:%d", ports[1]), fmt.Sprintf("127.0.0.1:%d", ports[2])
			tc.take(&o, taken.Addr().String())
			done := make(chan error, 1)
			go func() { done <- Run(context.Background(), o) }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), taken.Addr().String()) {
					t.Errorf("Run: %v, want an error with %q and the address", err, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run still serves with its port taken")
			}
		})
	}
}

func TestRunRefusesUnvalidatedRules(t *testing.T) {
	if err := Run(context.Background(), Options{}); err == nil {
		t.Error("Run accepted empty Rules")
	}
}

// eventually polls cond until it holds or within passes; a value on failed
// (Run returning early) ends the wait at once.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool, failed chan error) {
	t.Helper()
	err := webhooktest.Poll(t.Context(), what, within, 20*time.Millisecond, func(context.Context) (bool, error) {
		if cond() {
			return true, nil
		}
		select {
		case err := <-failed:
			failed <- err // for the cleanup, which waits for Run to return
			return false, webhooktest.StopPolling(fmt.Errorf("Run returned while waiting for %s: %v", what, err))
		default:
			return false, nil
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

func get(url string) (int, string) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func responseOf(t *testing.T, code int, body []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	if code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", code, body)
	}
	var r admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &r); err != nil || r.Response == nil {
		t.Fatalf("not an AdmissionReview response (%v): %s", err, body)
	}
	return r.Response
}

func negotiate(t *testing.T, addr string, protos []string) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: protos})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().NegotiatedProtocol
}

func servedCert(t *testing.T, addr string) []byte {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Raw
}

// scrape reads /metrics into series → value (text format, one sample a line).
func scrape(t *testing.T, base string) webhooktest.Metrics {
	t.Helper()
	m, err := webhooktest.ScrapeMetrics(t.Context(), base+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func pathOf(golden string) string {
	if strings.HasPrefix(golden, "agent-pod-") {
		return AgentPodPath
	}
	return RolloutPath
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports, err := webhooktest.FreePorts(n)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}
