package harness

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/canary-tagger/canary-tagger/certs"
	"github.com/canary-tagger/canary-tagger/webhook"
	"github.com/canary-tagger/canary-tagger/webhook/config"
	"github.com/canary-tagger/canary-tagger/webhook/webhooktest"
)

// WebhookServer is canary-tagger's webhook server (webhook.Run, the code
// `canary-tagger serve` runs) in this process, on loopback. It keeps its
// ports and certificate across Stop/Start, so the registered webhook
// configuration stays valid while the server is down (contract 4 failurePolicy).
type WebhookServer struct {
	Host string
	Port int
	// MetricsAddr and HealthAddr are host:port of /metrics and /healthz, /readyz.
	MetricsAddr string
	HealthAddr  string
	// CertDir holds tls.crt, tls.key and ca.crt from certs.WriteSelfSigned.
	CertDir string
	// CAPEM is the CA the apiserver trusts (the webhook configuration's caBundle).
	CAPEM []byte
	// LogPath receives the server's JSON logs.
	LogPath string

	rules      config.Rules
	restConfig func() (*rest.Config, error)

	mu      sync.Mutex
	cancel  context.CancelFunc
	done    chan struct{}
	runErr  error
	logFile *os.File
}

// NewWebhookServer prepares a server: picks free loopback ports and writes a
// self-signed serving certificate for 127.0.0.1 into dir/certs.
func NewWebhookServer(dir string, rules config.Rules, restConfig func() (*rest.Config, error)) (*WebhookServer, error) {
	ports, err := FreePorts(3)
	if err != nil {
		return nil, err
	}
	s := &WebhookServer{
		Host:        "127.0.0.1",
		Port:        ports[0],
		MetricsAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1])),
		HealthAddr:  net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[2])),
		CertDir:     filepath.Join(dir, "certs"),
		LogPath:     filepath.Join(dir, "webhook.log"),
		rules:       rules,
		restConfig:  restConfig,
	}
	if err := os.MkdirAll(s.CertDir, 0o755); err != nil {
		return nil, err
	}
	s.CAPEM, err = certs.WriteSelfSigned(s.CertDir, []string{"127.0.0.1", "localhost"}, 24*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("writing the webhook's serving certificate: %w", err)
	}
	return s, nil
}

// Addr is host:port of the TLS webhook endpoint.
func (s *WebhookServer) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// MetricsURL is the server's Prometheus endpoint.
func (s *WebhookServer) MetricsURL() string { return "http://" + s.MetricsAddr + "/metrics" }

// Running reports whether the server was started, has not been stopped and
// webhook.Run has not returned on its own.
func (s *WebhookServer) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Start runs the server until Stop, and returns once it answers /readyz and
// completes a TLS handshake with its certificate.
func (s *WebhookServer) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.cancel != nil {
		select {
		case <-s.done: // webhook.Run returned on its own: start afresh
			s.cancel()
			s.logFile.Close()
			s.cancel = nil
		default:
			s.mu.Unlock()
			return errors.New("webhook server already running")
		}
	}
	logFile, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.cancel, s.done, s.runErr, s.logFile = cancel, done, nil, logFile
	s.mu.Unlock()

	opts := webhook.Options{
		Rules:            s.rules,
		Host:             s.Host,
		Port:             s.Port,
		CertDir:          s.CertDir,
		CertName:         "tls.crt",
		KeyName:          "tls.key",
		MetricsAddr:      s.MetricsAddr,
		HealthAddr:       s.HealthAddr,
		CheckWorkloadRef: true,
		RESTConfig:       s.restConfig,
		Logger:           zap.New(zap.WriteTo(logFile)),
	}
	go func() {
		defer close(done)
		err := webhook.Run(runCtx, opts)
		s.mu.Lock()
		s.runErr = err
		s.mu.Unlock()
	}()

	if err := s.waitReady(ctx, done); err != nil {
		_ = s.Stop(context.Background())
		return err
	}
	return nil
}

func (s *WebhookServer) waitReady(ctx context.Context, done <-chan struct{}) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CAPEM) {
		return errors.New("no certificate in the webhook CA")
	}
	client := &http.Client{Timeout: time.Second}
	return Eventually(ctx, "the webhook server to be ready", func(ctx context.Context) (bool, error) {
		select {
		case <-done:
			s.mu.Lock()
			err := s.runErr
			s.mu.Unlock()
			return false, webhooktest.StopPolling(fmt.Errorf("webhook.Run returned before it was ready: %v (log: %s)", err, s.LogPath))
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.HealthAddr+"/readyz", nil)
		resp, err := client.Do(req)
		if err != nil {
			return false, fmt.Errorf("readyz: %w", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, fmt.Errorf("readyz: %s", resp.Status)
		}
		d := &tls.Dialer{Config: &tls.Config{RootCAs: pool, ServerName: s.Host, MinVersion: tls.VersionTLS12}}
		conn, err := d.DialContext(ctx, "tcp", s.Addr())
		if err != nil {
			return false, fmt.Errorf("TLS handshake with %s: %w", s.Addr(), err)
		}
		conn.Close()
		return true, nil
	})
}

// Stop cancels the server's context, waits for webhook.Run to return and for
// its port to refuse connections.
func (s *WebhookServer) Stop(ctx context.Context) error {
	s.mu.Lock()
	cancel, done, logFile := s.cancel, s.done, s.logFile
	s.cancel = nil
	s.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
	case <-time.After(DefaultTimeout):
		return fmt.Errorf("webhook.Run did not return within %s of its context being cancelled", DefaultTimeout)
	}
	if logFile != nil {
		logFile.Close()
	}
	err := Eventually(ctx, "the webhook listener to close", func(ctx context.Context) (bool, error) {
		conn, err := net.DialTimeout("tcp", s.Addr(), time.Second)
		if err != nil {
			return true, nil
		}
		conn.Close()
		return false, fmt.Errorf("%s still accepts connections", s.Addr())
	})
	s.mu.Lock()
	runErr := s.runErr
	s.mu.Unlock()
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return errors.Join(fmt.Errorf("webhook.Run: %w", runErr), err)
	}
	return err
}

// FreePorts returns n distinct TCP ports that are free on 127.0.0.1 now.
func FreePorts(n int) ([]int, error) { return webhooktest.FreePorts(n) }
