package certs

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
)

// Defaults and bounds of the self-managed TLS mode (docs/tls.md).
const (
	DefaultCertLifetime  = 90 * 24 * time.Hour
	DefaultClusterDomain = "cluster.local"

	// MinCertLifetime keeps the renewal point clear of the sync loop.
	MinCertLifetime = 15 * time.Second
	// MaxCertLifetime keeps the serving certificate well inside the CA's
	// ten years (client-go's NewSelfSignedCACert), so that the CA is only
	// replaced in its last serving lifetime.
	MaxCertLifetime = 2 * 365 * 24 * time.Hour
)

// SelfManaged runs TLS for clusters without cert-manager (contract 4): the
// CA store (a Secret), the caBundle of every webhook of the
// MutatingWebhookConfiguration, and the serving certificate, served from
// memory through GetCertificate, kept in step by one loop. Replicas
// coordinate through the Secret's resourceVersion only. See docs/tls.md.
// The caller validates the settings (serve does, naming its flags).
type SelfManaged struct {
	// Client reads and writes the Secret and the webhook configuration.
	Client kubernetes.Interface

	// Namespace of the Secret and of the Service; SecretName names the Secret.
	Namespace  string
	SecretName string
	// ServiceName is the webhook Service; the certificate covers
	// NAME, NAME.NS, NAME.NS.svc and NAME.NS.svc.<ClusterDomain>.
	ServiceName   string
	ClusterDomain string // default DefaultClusterDomain
	// WebhookConfigName is the MutatingWebhookConfiguration whose webhooks all
	// get the caBundle.
	WebhookConfigName string

	// Lifetime of the serving certificate (default DefaultCertLifetime);
	// renewed at two thirds.
	Lifetime time.Duration
	// SyncInterval is how often the Secret and the caBundles are re-checked
	// (default: Lifetime/30, at most one minute).
	SyncInterval time.Duration
	// BootstrapTimeout bounds Start (default two minutes).
	BootstrapTimeout time.Duration

	Logger logr.Logger
	// Now is the clock of renewals (tests).
	Now func() time.Time

	authority *authority
	caBundle  *caBundleWriter
	serving   atomic.Pointer[tls.Certificate] // nil until the first sync

	mu      sync.Mutex
	started bool
	bundle  []*x509.Certificate // the caBundle of every webhook, as last written or read
	lastErr error
}

// Start makes sure there is a certificate to serve (creating the Secret if
// needed) and returns; the Secret, the caBundles and the certificate served
// are then kept up to date in the background until ctx ends.
func (s *SelfManaged) Start(ctx context.Context) error {
	if err := s.complete(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("self-managed TLS: already started")
	}
	s.started = true
	s.mu.Unlock()

	bctx, cancel := context.WithTimeout(ctx, s.BootstrapTimeout)
	defer cancel()
	for backoff := 200 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		_, err := s.sync(bctx)
		if s.serving.Load() != nil {
			if err != nil {
				s.Logger.Error(err, "self-managed TLS: certificate in place, webhook configuration not yet updated; retrying in the background")
			}
			break
		}
		s.Logger.Error(err, "self-managed TLS: bootstrap failed, retrying", "backoff", backoff)
		select {
		case <-bctx.Done():
			return fmt.Errorf("self-managed TLS: no certificate after %s: %w", s.BootstrapTimeout, errors.Join(err, bctx.Err()))
		case <-time.After(backoff):
		}
	}
	go s.loop(ctx)
	return nil
}

// GetCertificate is the webhook server's tls.Config.GetCertificate: the
// Secret's serving certificate as last read, so a renewal is served on the
// next handshake.
func (s *SelfManaged) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := s.serving.Load(); c != nil {
		return c, nil
	}
	return nil, errors.New("self-managed TLS: no certificate yet")
}

// Ready is nil once the certificate served is trusted by the caBundle of
// every webhook in the configuration (as last read).
func (s *SelfManaged) Ready() error {
	if err := s.trusted(); err != nil {
		return fmt.Errorf("self-managed TLS: %w", err)
	}
	return nil
}

// WaitTrusted blocks until Ready (or ctx ends). `serve` calls it between
// Start and starting the webhook server, so that the server never answers
// with a certificate the apiserver would refuse.
func (s *SelfManaged) WaitTrusted(ctx context.Context) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	var logged time.Time
	for {
		err := s.trusted()
		if err == nil {
			return nil
		}
		if time.Since(logged) > 30*time.Second {
			s.Logger.Info("self-managed TLS: waiting for the caBundle to trust the certificate before serving", "reason", err.Error())
			logged = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("self-managed TLS: %w (last: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// trusted checks the certificate served against the caBundle of every
// webhook, as last read.
func (s *SelfManaged) trusted() error {
	s.mu.Lock()
	bundle, lastErr := s.bundle, s.lastErr
	s.mu.Unlock()
	serving := s.serving.Load()
	switch {
	case serving == nil:
		return errors.New("no certificate yet")
	case bundle == nil && lastErr != nil:
		return fmt.Errorf("caBundle not written yet: %w", lastErr)
	case bundle == nil:
		return errors.New("caBundle not written yet")
	}
	if err := verify(serving.Leaf, bundle, s.Now(), s.authority.dnsNames[0]); err != nil {
		return fmt.Errorf("certificate not trusted by the caBundle of %s: %w", s.WebhookConfigName, err)
	}
	return nil
}

// complete fills in the defaults and builds the CA store and the caBundle
// writer.
func (s *SelfManaged) complete() error {
	if s.Client == nil || s.Namespace == "" || s.SecretName == "" || s.ServiceName == "" || s.WebhookConfigName == "" {
		return errors.New("self-managed TLS: Client, Namespace, SecretName, ServiceName and WebhookConfigName are required")
	}
	s.ClusterDomain = cmp.Or(s.ClusterDomain, DefaultClusterDomain)
	s.Lifetime = cmp.Or(s.Lifetime, DefaultCertLifetime)
	if s.SyncInterval <= 0 {
		s.SyncInterval = min(time.Minute, s.Lifetime/30)
	}
	if s.BootstrapTimeout <= 0 {
		s.BootstrapTimeout = 2 * time.Minute
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Logger.GetSink() == nil {
		s.Logger = logr.Discard()
	}
	s.Logger = s.Logger.WithValues("secret", s.Namespace+"/"+s.SecretName, "webhookConfiguration", s.WebhookConfigName)
	n, ns := s.ServiceName, s.Namespace
	s.authority = &authority{
		secrets: s.Client.CoreV1().Secrets(ns),
		name:    s.SecretName,
		// The first is what the apiserver checks.
		dnsNames: []string{n + "." + ns + ".svc", n, n + "." + ns, n + "." + ns + ".svc." + s.ClusterDomain},
		lifetime: s.Lifetime,
		log:      s.Logger,
	}
	s.caBundle = &caBundleWriter{
		configs: s.Client.AdmissionregistrationV1().MutatingWebhookConfigurations(),
		name:    s.WebhookConfigName,
		log:     s.Logger,
	}
	return nil
}

func (s *SelfManaged) loop(ctx context.Context) {
	wait, failures := time.Duration(0), 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		next, err := s.sync(ctx)
		switch {
		case err == nil:
			failures, wait = 0, next
		case ctx.Err() != nil:
			return
		case apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err):
			// Another replica wrote first: read again and re-decide.
			s.Logger.V(1).Info("self-managed TLS: concurrent update, re-reading", "reason", err.Error())
			failures++
			wait = time.Duration(min(failures, 5)) * 50 * time.Millisecond
		default:
			failures++
			wait = min(s.SyncInterval, time.Duration(failures)*time.Second)
			s.Logger.Error(err, "self-managed TLS: sync failed", "retryIn", wait)
		}
	}
}

// sync is one round: the Secret, then the caBundles, then the certificate
// served. It returns when to run again.
func (s *SelfManaged) sync(ctx context.Context) (next time.Duration, err error) {
	defer func() {
		s.mu.Lock()
		s.lastErr = err
		s.mu.Unlock()
	}()
	now := s.Now()
	data, pair, err := s.authority.reconcile(ctx, now)
	if err != nil {
		return 0, err
	}
	bundle, werr := s.caBundle.write(ctx, data[SecretCACert])

	if old := s.serving.Load(); old == nil || !bytes.Equal(old.Certificate[0], pair.Certificate[0]) {
		s.serving.Store(pair)
		s.Logger.Info("self-managed TLS: serving certificate", "serial", pair.Leaf.SerialNumber.String(), "notAfter", pair.Leaf.NotAfter)
	}
	if werr != nil {
		return 0, werr
	}
	s.mu.Lock()
	s.bundle = bundle
	s.mu.Unlock()
	return max(10*time.Millisecond, min(s.SyncInterval, renewAt(pair.Leaf).Sub(now))), nil
}
