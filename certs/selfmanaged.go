package certs

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
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

// Keys of the Secret (type kubernetes.io/tls) besides tls.crt and tls.key.
const (
	SecretCACert       = "ca.crt" // the signing CA first, then earlier CAs until they expire; what every caBundle holds
	SecretCAPrivateKey = "ca.key" // the signing CA's key
)

const caCommonName = "canary-tagger-self-managed-ca"

// SelfManaged runs TLS for clusters without cert-manager (contract 4): a
// long-lived CA and a serving certificate it signed, both in one Secret; the
// CA in the caBundle of every webhook of the MutatingWebhookConfiguration;
// the certificate in CertDir for controller-runtime's certwatcher, renewed at
// two thirds of its lifetime by the same CA, so that a renewal never touches
// the caBundle. Replicas coordinate through the Secret's resourceVersion only.
// See docs/tls.md.
type SelfManaged struct {
	// Client reads and writes the Secret and the webhook configuration.
	Client kubernetes.Interface

	// Namespace of the Secret and of the Service; SecretName names the Secret.
	Namespace  string
	SecretName string
	// ServiceName is the webhook Service; the certificate covers
	// NAME, NAME.NS, NAME.NS.svc and NAME.NS.svc.<ClusterDomain>.
	ServiceName   string
	ClusterDomain string
	// WebhookConfigName is the MutatingWebhookConfiguration whose webhooks all
	// get the caBundle.
	WebhookConfigName string

	// CertDir, CertName and KeyName are where the webhook server reads its
	// certificate (--cert-dir, --cert-name, --key-name). ca.crt is written too.
	CertDir, CertName, KeyName string

	// Lifetime of the serving certificate (default DefaultCertLifetime);
	// renewed at two thirds.
	Lifetime time.Duration
	// ServingAddr (host:port), when set, is dialled by Ready to check the
	// certificate actually served; otherwise the one in CertDir is checked.
	ServingAddr string
	// SyncInterval is how often the Secret and the caBundles are re-checked
	// (default: Lifetime/30, at most one minute).
	SyncInterval time.Duration
	// BootstrapTimeout bounds Start (default two minutes).
	BootstrapTimeout time.Duration

	Logger logr.Logger
	// Now is the clock of renewals (tests).
	Now func() time.Time

	mu      sync.Mutex
	started bool
	served  *x509.Certificate   // the certificate in CertDir, nil until written
	bundle  []*x509.Certificate // the caBundle of every webhook, as last written or read
	lastErr error
}

// Start validates the settings, makes sure a certificate is in CertDir
// (creating the Secret if needed) and returns; the Secret, the caBundles and
// the files are then kept up to date in the background until ctx ends. Call
// it before starting the webhook server, whose certwatcher needs the files.
func (s *SelfManaged) Start(ctx context.Context) error {
	if err := s.defaults(); err != nil {
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
		if s.servedCert() != nil {
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

// Ready is nil once the certificate being served is trusted by the caBundle
// of every webhook in the configuration (as last read). With ServingAddr it
// checks what the server actually presents, otherwise the file in CertDir.
func (s *SelfManaged) Ready() error {
	if err := s.trusted(s.servedCert()); err != nil || s.ServingAddr == "" {
		if err != nil {
			return fmt.Errorf("self-managed TLS: %w", err)
		}
		return nil
	}
	leaf, err := s.dialServed()
	if err != nil {
		return fmt.Errorf("self-managed TLS: webhook server on %s: %w", s.ServingAddr, err)
	}
	if err := s.trusted(leaf); err != nil {
		return fmt.Errorf("self-managed TLS: served %w", err)
	}
	return nil
}

// WaitTrusted blocks until the certificate in CertDir is trusted by the
// caBundle of every webhook (or ctx ends). `serve` calls it between Start and
// starting the webhook server, so that the server never answers with a
// certificate the apiserver would refuse.
func (s *SelfManaged) WaitTrusted(ctx context.Context) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	var logged time.Time
	for {
		err := s.trusted(s.servedCert())
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

func (s *SelfManaged) servedCert() *x509.Certificate {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served
}

// trusted checks leaf against the caBundle of every webhook, as last read.
func (s *SelfManaged) trusted(leaf *x509.Certificate) error {
	s.mu.Lock()
	bundle, lastErr := s.bundle, s.lastErr
	s.mu.Unlock()
	switch {
	case leaf == nil:
		return errors.New("no certificate yet")
	case bundle == nil && lastErr != nil:
		return fmt.Errorf("caBundle not written yet: %w", lastErr)
	case bundle == nil:
		return errors.New("caBundle not written yet")
	}
	if err := verify(leaf, bundle, s.serverName(), s.Now()); err != nil {
		return fmt.Errorf("certificate not trusted by the caBundle of %s: %w", s.WebhookConfigName, err)
	}
	return nil
}

func (s *SelfManaged) dialServed() (*x509.Certificate, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", s.ServingAddr, &tls.Config{
		ServerName:         s.serverName(),
		InsecureSkipVerify: true, //nolint:gosec // verified by Ready against each caBundle
		MinVersion:         tls.VersionTLS12,
	})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

func (s *SelfManaged) defaults() error {
	if s.Client == nil {
		return errors.New("self-managed TLS: no Kubernetes client")
	}
	for flag, v := range map[string]string{
		"tls-secret": s.SecretName, "service-name": s.ServiceName, "service-namespace": s.Namespace,
		"webhook-config-name": s.WebhookConfigName, "cert-dir": s.CertDir,
	} {
		if v == "" {
			return fmt.Errorf("self-managed TLS: --%s must be set", flag)
		}
	}
	s.CertName = cmp.Or(s.CertName, CertFile)
	s.KeyName = cmp.Or(s.KeyName, KeyFile)
	s.ClusterDomain = cmp.Or(s.ClusterDomain, DefaultClusterDomain)
	s.Lifetime = cmp.Or(s.Lifetime, DefaultCertLifetime)
	if s.Lifetime < MinCertLifetime || s.Lifetime > MaxCertLifetime {
		return fmt.Errorf("self-managed TLS: --cert-lifetime=%s is not between %s and %s", s.Lifetime, MinCertLifetime, MaxCertLifetime)
	}
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
	return nil
}

func (s *SelfManaged) dnsNames() []string {
	n, ns := s.ServiceName, s.Namespace
	return []string{n + "." + ns + ".svc", n, n + "." + ns, n + "." + ns + ".svc." + s.ClusterDomain}
}

// serverName is what the apiserver checks: <service>.<namespace>.svc.
func (s *SelfManaged) serverName() string { return s.dnsNames()[0] }

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

// sync is one round: the Secret (created, or updated with a new serving
// certificate when due), then the caBundles, then the files. It returns when
// to run again.
func (s *SelfManaged) sync(ctx context.Context) (next time.Duration, err error) {
	defer func() {
		s.mu.Lock()
		s.lastErr = err
		s.mu.Unlock()
	}()
	now := s.Now()
	secrets := s.Client.CoreV1().Secrets(s.Namespace)
	sec, err := secrets.Get(ctx, s.SecretName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		sec = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name: s.SecretName, Namespace: s.Namespace,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "canary-tagger"},
			},
			Type: corev1.SecretTypeTLS,
		}
		if sec.Data, _, err = s.desired(nil, now); err != nil {
			return 0, err
		}
		// Of replicas starting together the first create wins; the others
		// use what it wrote.
		created, cerr := secrets.Create(ctx, sec, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(cerr) {
			sec, err = secrets.Get(ctx, s.SecretName, metav1.GetOptions{})
		} else if sec, err = created, cerr; err == nil {
			s.Logger.Info("self-managed TLS: created CA and serving certificate")
		}
	}
	if err != nil {
		return 0, fmt.Errorf("Secret: %w", err)
	}
	want, leaf, err := s.desired(sec.Data, now)
	if err != nil {
		return 0, err
	}
	if !maps.EqualFunc(want, sec.Data, bytes.Equal) {
		sec = sec.DeepCopy()
		sec.Data = want
		// Conditional on the resourceVersion read: of replicas renewing
		// together one wins, the others get a conflict and re-read.
		if sec, err = secrets.Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
			return 0, fmt.Errorf("update Secret: %w", err)
		}
		s.Logger.Info("self-managed TLS: Secret updated", "serial", leaf.SerialNumber.String(), "notAfter", leaf.NotAfter)
	}

	bundle, werr := s.syncWebhooks(ctx, sec.Data[SecretCACert])

	changed, err := writeFiles(s.CertDir, []file{
		{s.KeyName, sec.Data[corev1.TLSPrivateKeyKey], 0o600},
		{s.CertName, sec.Data[corev1.TLSCertKey], 0o644},
		{CAFile, sec.Data[SecretCACert], 0o644},
	})
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", s.CertDir, err)
	}
	if changed {
		s.Logger.Info("self-managed TLS: serving certificate written", "dir", s.CertDir, "serial", leaf.SerialNumber.String(), "notAfter", leaf.NotAfter)
	}
	s.mu.Lock()
	s.served = leaf
	if werr == nil {
		s.bundle = bundle
	}
	s.mu.Unlock()
	if werr != nil {
		return 0, werr
	}
	return max(10*time.Millisecond, min(s.SyncInterval, renewAt(leaf).Sub(now))), nil
}

// desired is the Secret's data as it should be: its CA unless there is none
// usable (then a new one, the earlier ones staying in ca.crt until they
// expire), and its serving certificate unless it is due for renewal.
func (s *SelfManaged) desired(data map[string][]byte, now time.Time) (map[string][]byte, *x509.Certificate, error) {
	bundle, _ := cert.ParseCertsPEM(data[SecretCACert])
	bundle = slices.DeleteFunc(bundle, func(c *x509.Certificate) bool { return !now.Before(c.NotAfter) })
	out := map[string][]byte{SecretCAPrivateKey: data[SecretCAPrivateKey]}

	caKey, err := parseCAKey(bundle, data[SecretCAPrivateKey])
	if err != nil || bundle[0].NotAfter.Before(now.Add(s.Lifetime)) {
		reason := "CA expires within one serving lifetime"
		if err != nil {
			reason = err.Error()
		}
		s.Logger.Info("self-managed TLS: issuing a new CA", "reason", reason)
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		ca, err := cert.NewSelfSignedCACert(cert.Config{CommonName: caCommonName, NotBefore: now.Add(-time.Hour)}, key)
		if err != nil {
			return nil, nil, err
		}
		if out[SecretCAPrivateKey], err = keyutil.MarshalPrivateKeyToPEM(key); err != nil {
			return nil, nil, err
		}
		bundle, caKey = append([]*x509.Certificate{ca}, bundle...), key
	}
	if out[SecretCACert], err = cert.EncodeCertificates(bundle...); err != nil {
		return nil, nil, err
	}

	out[corev1.TLSCertKey], out[corev1.TLSPrivateKeyKey] = data[corev1.TLSCertKey], data[corev1.TLSPrivateKeyKey]
	leaf, err := parsePair(data[corev1.TLSCertKey], data[corev1.TLSPrivateKeyKey])
	if err != nil || !now.Before(renewAt(leaf)) || s.verifyAllNames(leaf, bundle[0], now) != nil {
		if out[corev1.TLSCertKey], out[corev1.TLSPrivateKeyKey], err = s.issue(bundle[0], caKey, now); err != nil {
			return nil, nil, err
		}
		if leaf, err = parsePair(out[corev1.TLSCertKey], out[corev1.TLSPrivateKeyKey]); err != nil {
			return nil, nil, err
		}
	}
	return out, leaf, nil
}

// parseCAKey returns the key of bundle[0], the signing CA.
func parseCAKey(bundle []*x509.Certificate, keyPEM []byte) (crypto.Signer, error) {
	if len(bundle) == 0 || !bundle[0].IsCA {
		return nil, errors.New("no valid CA in the Secret")
	}
	k, err := keyutil.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	pub, _ := bundle[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || pub == nil || !pub.Equal(signer.Public()) {
		return nil, errors.New("CA key does not match the CA")
	}
	return signer, nil
}

// issue signs a serving certificate for the Service's names with the CA.
// client-go has no helper for a CA-signed leaf, hence crypto/x509.
func (s *SelfManaged) issue(ca *x509.Certificate, caKey crypto.Signer, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	names := s.dnsNames()
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: serial.Add(serial, big.NewInt(1)),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		// Backdated for apiservers whose clock lags ours.
		NotBefore:   now.Add(-min(time.Minute, s.Lifetime/10)),
		NotAfter:    now.Add(s.Lifetime),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, key.Public(), caKey)
	if err != nil {
		return nil, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	if certPEM, err = cert.EncodeCertificates(leaf); err != nil {
		return nil, nil, err
	}
	keyPEM, err = keyutil.MarshalPrivateKeyToPEM(key)
	return certPEM, keyPEM, err
}

func (s *SelfManaged) verifyAllNames(leaf, ca *x509.Certificate, now time.Time) error {
	for _, name := range s.dnsNames() {
		if err := verify(leaf, []*x509.Certificate{ca}, name, now); err != nil {
			return err
		}
	}
	return nil
}

// syncWebhooks makes the caBundle of every webhook the Secret's ca.crt and
// returns its CAs.
func (s *SelfManaged) syncWebhooks(ctx context.Context, caPEM []byte) ([]*x509.Certificate, error) {
	mwcs := s.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	cfg, err := mwcs.Get(ctx, s.WebhookConfigName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get MutatingWebhookConfiguration: %w", err)
	}
	if len(cfg.Webhooks) == 0 {
		return nil, fmt.Errorf("MutatingWebhookConfiguration %s has no webhooks", s.WebhookConfigName)
	}
	changed := false
	for i := range cfg.Webhooks {
		if cc := &cfg.Webhooks[i].ClientConfig; !bytes.Equal(cc.CABundle, caPEM) {
			cc.CABundle, changed = caPEM, true
		}
	}
	if changed {
		if _, err := mwcs.Update(ctx, cfg, metav1.UpdateOptions{}); err != nil {
			return nil, fmt.Errorf("update caBundle of MutatingWebhookConfiguration: %w", err)
		}
		s.Logger.Info("self-managed TLS: caBundle written", "webhooks", len(cfg.Webhooks))
	}
	return cert.ParseCertsPEM(caPEM)
}

func parsePair(certPEM, keyPEM []byte) (*x509.Certificate, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(pair.Certificate[0])
}

// verify checks that leaf is valid at now for dnsName under one of cas.
func verify(leaf *x509.Certificate, cas []*x509.Certificate, dnsName string, now time.Time) error {
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots: pool, DNSName: dnsName, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	return err
}

// renewAt is two thirds into the certificate's validity.
func renewAt(c *x509.Certificate) time.Time {
	return c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) * 2 / 3)
}
