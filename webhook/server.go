// Package webhook is canary-tagger's admission server (contract 5): the two
// mutating webhooks on controller-runtime's webhook server, health probes and
// Prometheus metrics. The rules themselves live in rollout and agentpod.
package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/canary-tagger/canary-tagger/webhook/config"
)

// Paths of the two webhooks (contract 1).
const (
	RolloutPath  = "/mutate-rollout"
	AgentPodPath = "/mutate-agent-pod"
)

// Options configure Run. Zero values get the defaults noted.
type Options struct {
	// Rules come from config.Flags.Validate.
	Rules config.Rules

	// Host and Port the webhook server binds; Port 0 means 9443.
	Host string
	Port int
	// CertDir holds CertName and KeyName (default tls.crt and tls.key, the
	// layout of a cert-manager Secret); they are reloaded when they change.
	// CertDir defaults to controller-runtime's <tmp>/k8s-webhook-server/serving-certs.
	// Unused when a TLSOpts function sets GetCertificate.
	CertDir, CertName, KeyName string

	// MetricsAddr serves /metrics ("0" disables; default ":8080").
	MetricsAddr string
	// HealthAddr serves /healthz and /readyz ("0" disables; default ":8081").
	HealthAddr string

	// EnableHTTP2 offers h2 in ALPN. Off by default (CVE-2023-44487).
	EnableHTTP2 bool

	// CheckWorkloadRef reads the template of a Rollout's workloadRef (contract
	// 2.2) with a client built on first use from RESTConfig (default
	// controller-runtime's GetConfig: --kubeconfig, KUBECONFIG, in-cluster,
	// ~/.kube/config).
	CheckWorkloadRef bool
	RESTConfig       func() (*rest.Config, error)

	// Logger gets one line per review. Default: discard.
	Logger logr.Logger

	// ReadyChecks must all pass, besides serving TLS, for /readyz to be ok
	// (e.g. self-managed TLS: the caBundle trusts the served certificate).
	ReadyChecks []healthz.Checker

	// TLSOpts are applied after canary-tagger's own TLS settings (TLS >= 1.2,
	// ALPN), e.g. to serve a self-managed certificate with GetCertificate.
	TLSOpts []func(*tls.Config)
}

func (o *Options) complete() error {
	if o.Rules.Rollout.LabelKey == "" || o.Rules.AgentPod.Selector == nil {
		return errors.New("webhook: Options.Rules must come from config.Flags.Validate")
	}
	if o.Port < 0 || o.Port > 65535 {
		return fmt.Errorf("webhook: port %d out of range", o.Port)
	}
	if o.Port == 0 {
		o.Port = 9443
	}
	if o.MetricsAddr == "" {
		o.MetricsAddr = ":8080"
	}
	if o.HealthAddr == "" {
		o.HealthAddr = ":8081"
	}
	return nil
}

// newWebhooks builds the webhooks by path, as Run serves them.
func newWebhooks(o Options) map[string]http.Handler {
	registerMetrics()
	rolloutRec := recorder{webhook: metricRollout, log: o.Logger}
	agentPodRec := recorder{webhook: metricAgentPod, log: o.Logger}
	return map[string]http.Handler{
		RolloutPath: &admission.Webhook{Handler: &rolloutHandler{
			opts: o.Rules.Rollout,
			refs: newWorkloadRefs(o.CheckWorkloadRef, o.RESTConfig),
			rec:  rolloutRec,
		}},
		AgentPodPath: &admission.Webhook{Handler: &agentPodHandler{
			opts: o.Rules.AgentPod,
			rec:  agentPodRec,
		}},
	}
}

// Run serves the webhooks until ctx is done, then lets in-flight reviews
// finish before it returns. It needs no manager and no cluster access.
func Run(ctx context.Context, o Options) error {
	if err := o.complete(); err != nil {
		return err
	}
	ws := crwebhook.NewServer(crwebhook.Options{
		Host: o.Host, Port: o.Port,
		CertDir: o.CertDir, CertName: o.CertName, KeyName: o.KeyName,
		TLSOpts: append([]func(*tls.Config){tlsDefaults(o.EnableHTTP2)}, o.TLSOpts...),
	})
	for path, wh := range newWebhooks(o) {
		ws.Register(path, wh)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var aux auxServers
	defer aux.shutdown()
	if err := aux.start(o.HealthAddr, healthMux(append([]healthz.Checker{ws.StartedChecker()}, o.ReadyChecks...))); err != nil {
		return fmt.Errorf("health probes on %s: %w", o.HealthAddr, err)
	}
	if err := aux.start(o.MetricsAddr, metricsMux()); err != nil {
		return fmt.Errorf("metrics on %s: %w", o.MetricsAddr, err)
	}
	o.Logger.Info("serving", "webhookPort", o.Port, "health", o.HealthAddr, "metrics", o.MetricsAddr,
		"http2", o.EnableHTTP2, "checkWorkloadRef", o.CheckWorkloadRef)

	// controller-runtime's Start shuts its server down gracefully when ctx is
	// done and returns only once in-flight requests are answered.
	done := make(chan error, 1)
	go func() { done <- ws.Start(ctx) }()
	select {
	case err := <-done:
		return err
	case err := <-aux.failed():
		cancel()
		<-done
		return err
	}
}

// tlsDefaults: TLS 1.2 at least, and HTTP/1.1 only unless HTTP/2 is asked
// for (HTTP/2 rapid reset, CVE-2023-44487).
func tlsDefaults(http2 bool) func(*tls.Config) {
	return func(c *tls.Config) {
		c.MinVersion = tls.VersionTLS12
		c.NextProtos = []string{"http/1.1"}
		if http2 {
			c.NextProtos = []string{"h2", "http/1.1"}
		}
	}
}

// healthMux: /healthz is always ok (the process runs); /readyz only once
// the webhook server completes a TLS handshake, i.e. serves a certificate.
func healthMux(ready []healthz.Checker) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		for _, check := range ready {
			if err := check(r); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = w.Write([]byte("ok"))
	})
	return mux
}

func metricsMux() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}))
	return mux
}

// auxServers are the plain-HTTP probe and metrics servers.
type auxServers struct {
	servers []*http.Server
	errc    chan error
}

func (a *auxServers) start(addr string, h http.Handler) error {
	if addr == "0" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if a.errc == nil {
		a.errc = make(chan error, 2)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	a.servers = append(a.servers, srv)
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			a.errc <- fmt.Errorf("%s: %w", addr, err)
		}
	}()
	return nil
}

// failed reports the first server error (never, when none is running).
func (a *auxServers) failed() <-chan error { return a.errc }

func (a *auxServers) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range a.servers {
		_ = s.Shutdown(ctx)
	}
}

var (
	_ admission.Handler = (*rolloutHandler)(nil)
	_ admission.Handler = (*agentPodHandler)(nil)
)
