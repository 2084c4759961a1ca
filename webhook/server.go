// Package webhook is canary-tagger's admission server (contract 5): the two
// mutating webhooks on controller-runtime's webhook server, health probes and
// Prometheus metrics. The rules themselves live in rollout and agentpod.
package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/canary-tagger/canary-tagger/webhook/config"
)

// Paths of the two webhooks (contract 1).
const (
	RolloutPath  = "/mutate-rollout"
	AgentPodPath = "/mutate-agent-pod"
)

// Options configure Run. Start from DefaultOptions: serve's flags are bound
// to its fields, so their defaults live there only.
type Options struct {
	// Rules come from config.Flags.Validate.
	Rules config.Rules

	// Host and Port the webhook server binds (Host empty: all addresses).
	Host string
	Port int
	// CertDir holds CertName and KeyName (the layout of a cert-manager
	// Secret); they are reloaded when they change. Unused with GetCertificate.
	CertDir, CertName, KeyName string
	// GetCertificate, when set, gives the serving certificate on each
	// handshake instead of the files in CertDir (self-managed TLS).
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)

	// MetricsAddr serves /metrics ("0" disables).
	MetricsAddr string
	// HealthAddr serves /healthz and /readyz ("0" disables).
	HealthAddr string

	// EnableHTTP2 offers h2 in ALPN (CVE-2023-44487: off by default).
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
	// /readyz/<name> answers one check with its error.
	ReadyChecks map[string]healthz.Checker
	// Readiness, if set, is given the same checks as /readyz.
	Readiness *Readiness
}

// DefaultOptions are serve's defaults: the webhook on :9443 with tls.crt and
// tls.key from controller-runtime's <tmp>/k8s-webhook-server/serving-certs,
// metrics on :8080, probes on :8081, the workloadRef check on.
func DefaultOptions() Options {
	return Options{
		Port:             crwebhook.DefaultPort,
		CertDir:          filepath.Join(os.TempDir(), "k8s-webhook-server", "serving-certs"),
		CertName:         "tls.crt",
		KeyName:          "tls.key",
		MetricsAddr:      metricsserver.DefaultBindAddress,
		HealthAddr:       ":8081",
		CheckWorkloadRef: true,
	}
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
	if o.Rules.Rollout.LabelKey == "" || o.Rules.AgentPod.Selector == nil {
		return errors.New("webhook: Options.Rules must come from config.Flags.Validate")
	}
	ws := crwebhook.NewServer(crwebhook.Options{
		Host: o.Host, Port: o.Port,
		CertDir: o.CertDir, CertName: o.CertName, KeyName: o.KeyName,
		TLSOpts: []func(*tls.Config){tlsSettings(o.EnableHTTP2, o.GetCertificate)},
	})
	for path, wh := range newWebhooks(o) {
		ws.Register(path, wh)
	}
	metrics, err := metricsserver.NewServer(metricsserver.Options{BindAddress: o.MetricsAddr}, nil, nil)
	if err != nil {
		return err
	}
	ready := map[string]healthz.Checker{"webhook": ws.StartedChecker()}
	maps.Copy(ready, o.ReadyChecks)
	o.Readiness.set(ready)
	health, err := healthServer(o.HealthAddr, ready)
	if err != nil {
		return fmt.Errorf("health probes on %s: %w", o.HealthAddr, err)
	}
	o.Logger.Info("serving", "webhookPort", o.Port, "health", o.HealthAddr, "metrics", o.MetricsAddr,
		"http2", o.EnableHTTP2, "checkWorkloadRef", o.CheckWorkloadRef)

	// Each server shuts down gracefully when ctx is done, or when another
	// fails; controller-runtime's webhook server returns only once in-flight
	// reviews are answered.
	servers, ctx := errgroup.WithContext(ctx)
	servers.Go(func() error { return ws.Start(ctx) })
	if health != nil {
		servers.Go(func() error { return health.Start(ctx) })
	}
	if metrics != nil {
		servers.Go(func() error { return metrics.Start(ctx) })
	}
	return servers.Wait()
}

// tlsSettings: TLS 1.2 at least, and HTTP/1.1 only unless HTTP/2 is asked
// for (HTTP/2 rapid reset, CVE-2023-44487). With getCertificate set,
// controller-runtime starts no certwatcher.
func tlsSettings(http2 bool, getCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)) func(*tls.Config) {
	return func(c *tls.Config) {
		c.MinVersion = tls.VersionTLS12
		c.GetCertificate = getCertificate
		c.NextProtos = []string{"http/1.1"}
		if http2 {
			c.NextProtos = []string{"h2", "http/1.1"}
		}
	}
}

// healthServer serves /healthz (the process runs) and /readyz (the webhook
// server has completed a TLS handshake, and every extra check passes) with
// controller-runtime's healthz handlers, mounted as a manager mounts them.
// Its port is bound here, so a taken port fails Run before anything serves.
// nil when addr is "0".
func healthServer(addr string, ready map[string]healthz.Checker) (*probeServer, error) {
	if addr == "0" {
		return nil, nil
	}
	readyz := &healthz.Handler{Checks: ready}
	mux := http.NewServeMux()
	for endpoint, handler := range map[string]*healthz.Handler{"/readyz": readyz, "/healthz": {}} {
		mux.Handle(endpoint, http.StripPrefix(endpoint, handler))
		mux.Handle(endpoint+"/", http.StripPrefix(endpoint, handler))
	}
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &probeServer{Server: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, listener: listener}, nil
}

type probeServer struct {
	*http.Server
	listener net.Listener
}

// Start serves until ctx is done. Probes need no graceful shutdown.
func (s *probeServer) Start(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { _ = s.Close() })
	defer stop()
	if err := s.Serve(s.listener); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

var (
	_ admission.Handler = (*rolloutHandler)(nil)
	_ admission.Handler = (*agentPodHandler)(nil)
)
