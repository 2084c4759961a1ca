package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Defaults of the self-managed TLS mode.
const (
	DefaultCertLifetime  = 90 * 24 * time.Hour
	DefaultClusterDomain = "cluster.local"

	// MinCertLifetime keeps renewal, propagation and the sync loop apart.
	MinCertLifetime = 15 * time.Second
)

// Keys of the Secret the self-managed mode keeps (type kubernetes.io/tls).
const (
	SecretCAKey       = "ca.crt"   // every CA the webhook configuration should trust, PEM, newest first
	SecretNextCert    = "next.crt" // the next serving certificate, while a renewal is in progress
	SecretNextKey     = "next.key"
	AnnotationTrusted = "canary-tagger.io/next-trusted-since" // when next.crt's CA was seen in every caBundle
)

// SelfManaged runs TLS for clusters without cert-manager (contract 4): it keeps a
// CA and a serving certificate for the Service's DNS names in one Secret,
// writes the CA into the caBundle of every webhook of the
// MutatingWebhookConfiguration, publishes the certificate in CertDir for
// controller-runtime's certwatcher, and renews it two thirds into its
// lifetime.
//
// Several replicas coordinate only through the Secret's resourceVersion: the
// first Create wins and the others read what it wrote; every update is
// conditional, and a conflict means "read again and re-decide".
//
// Renewal never drops a request: a new CA and certificate are first staged in
// the Secret next to the current ones and the new CA is added to every
// caBundle; only once all caBundles have trusted it for PromotionDelay does
// the new certificate become the served one. The old CA stays trusted until it
// expires, so replicas that switch later keep working meanwhile. Each CA signs
// exactly one certificate and its key is thrown away.
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

	// Lifetime of each certificate (and of its CA); renewal at 2/3.
	Lifetime time.Duration
	// ServingAddr (host:port), when set, is dialled by Ready to check the
	// certificate actually served; otherwise the files in CertDir are checked.
	ServingAddr string

	// SyncInterval is how often the Secret and the caBundles are re-checked
	// (default: Lifetime/30, at most one minute).
	SyncInterval time.Duration
	// PromotionDelay is how long a new CA must have been in every caBundle
	// before the certificate it signed is served, so that every apiserver has
	// seen it (default: Lifetime/30, at most 30s).
	PromotionDelay time.Duration
	// BootstrapTimeout bounds Start (default two minutes).
	BootstrapTimeout time.Duration

	Logger logr.Logger
	// Now is the clock (tests).
	Now func() time.Time

	mu       sync.Mutex
	started  bool
	wrote    bool                  // a certificate is in CertDir
	served   *x509.Certificate     // the leaf in CertDir
	bundles  [][]*x509.Certificate // caBundle of each webhook, as last read
	lastErr  error
	resyncCh chan struct{}
}

// Start validates the settings, makes sure a certificate exists and is in
// CertDir (creating the Secret if needed), and returns; the Secret, the
// caBundles and the files are then kept up to date in the background until
// ctx ends. Call it before starting the webhook server, whose certwatcher
// needs the files to exist.
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
	s.resyncCh = make(chan struct{}, 1)
	s.mu.Unlock()

	bctx, cancel := context.WithTimeout(ctx, s.BootstrapTimeout)
	defer cancel()
	backoff := 200 * time.Millisecond
	for {
		_, err := s.sync(bctx)
		s.mu.Lock()
		s.lastErr = err
		s.mu.Unlock()
		if s.hasFiles() {
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
		backoff = min(2*backoff, 5*time.Second)
	}
	go s.loop(ctx)
	return nil
}

// Ready is nil once the certificate being served is trusted by the caBundle
// of every webhook in the configuration (as last read). With ServingAddr it
// checks what the server actually presents, otherwise the files in CertDir.
func (s *SelfManaged) Ready() error {
	if err := s.trustedFiles(); err != nil || s.ServingAddr == "" {
		if err != nil {
			return fmt.Errorf("self-managed TLS: %w", err)
		}
		return nil
	}
	leaf, err := s.dialServed()
	if err != nil {
		return fmt.Errorf("self-managed TLS: webhook server on %s: %w", s.ServingAddr, err)
	}
	s.mu.Lock()
	bundles := s.bundles
	s.mu.Unlock()
	for i, b := range bundles {
		if err := smVerify(leaf, b, s.serverName(), s.Now()); err != nil {
			return fmt.Errorf("self-managed TLS: served certificate not trusted by the caBundle of webhook #%d of %s: %w", i, s.WebhookConfigName, err)
		}
	}
	return nil
}

// WaitTrusted blocks until the certificate in CertDir is trusted by the
// caBundle of every webhook (or ctx ends). `serve` calls it between Start and
// starting the webhook server, so that the server never answers with a
// certificate the apiserver would refuse: until then neither the webhook nor
// the probes answer, and the pod is not ready.
func (s *SelfManaged) WaitTrusted(ctx context.Context) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	logged := time.Time{}
	for {
		err := s.trustedFiles()
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

// trustedFiles checks the certificate in CertDir against the caBundles.
func (s *SelfManaged) trustedFiles() error {
	s.mu.Lock()
	served, bundles, wrote, lastErr := s.served, s.bundles, s.wrote, s.lastErr
	s.mu.Unlock()
	switch {
	case !wrote:
		return errors.New("no certificate yet")
	case bundles == nil && lastErr != nil:
		return fmt.Errorf("caBundle not written yet: %w", lastErr)
	case bundles == nil:
		return errors.New("caBundle not written yet")
	}
	for i, b := range bundles {
		if err := smVerify(served, b, s.serverName(), s.Now()); err != nil {
			return fmt.Errorf("certificate not trusted by the caBundle of webhook #%d of %s: %w", i, s.WebhookConfigName, err)
		}
	}
	return nil
}

// ReadyCheck is Ready with the signature of a controller-runtime
// healthz.Checker, for the manager's readiness endpoint.
func (s *SelfManaged) ReadyCheck(_ *http.Request) error { return s.Ready() }

func (s *SelfManaged) dialServed() (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: 2 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", s.ServingAddr, &tls.Config{
		ServerName:         s.serverName(),
		InsecureSkipVerify: true, //nolint:gosec // verified by Ready against each caBundle
		MinVersion:         tls.VersionTLS12,
	})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	certs := conn.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, errors.New("no certificate presented")
	}
	return certs[0], nil
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
	if s.CertName == "" {
		s.CertName = "tls.crt"
	}
	if s.KeyName == "" {
		s.KeyName = "tls.key"
	}
	if s.ClusterDomain == "" {
		s.ClusterDomain = DefaultClusterDomain
	}
	if s.Lifetime == 0 {
		s.Lifetime = DefaultCertLifetime
	}
	if s.Lifetime < MinCertLifetime {
		return fmt.Errorf("self-managed TLS: --cert-lifetime=%s is shorter than %s", s.Lifetime, MinCertLifetime)
	}
	if s.SyncInterval <= 0 {
		s.SyncInterval = min(time.Minute, s.Lifetime/30)
	}
	if s.PromotionDelay <= 0 {
		s.PromotionDelay = min(30*time.Second, s.Lifetime/30)
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
func (s *SelfManaged) serverName() string { return s.ServiceName + "." + s.Namespace + ".svc" }

func (s *SelfManaged) hasFiles() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wrote
}

func (s *SelfManaged) loop(ctx context.Context) {
	wait := time.Duration(0)
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		case <-s.resyncCh:
		}
		next, err := s.sync(ctx)
		s.mu.Lock()
		s.lastErr = err
		s.mu.Unlock()
		switch {
		case err == nil:
			failures = 0
			wait = next
		case apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err):
			// Another replica moved first: read again now.
			s.Logger.V(1).Info("self-managed TLS: concurrent update, re-reading", "reason", err.Error())
			wait = time.Duration(min(failures, 5)) * 50 * time.Millisecond
			failures++
		default:
			if ctx.Err() != nil {
				return
			}
			failures++
			wait = min(s.SyncInterval, 5*time.Second, time.Duration(failures)*time.Second)
			s.Logger.Error(err, "self-managed TLS: sync failed", "retryIn", wait)
		}
	}
}

// smState is the content of the Secret.
type smState struct {
	current      smPair
	bundle       []*x509.Certificate
	next         *smPair
	trustedSince time.Time
}

func (st smState) nextCA() *x509.Certificate {
	if st.next == nil {
		return nil
	}
	for _, c := range st.bundle {
		if c.CheckSignature(st.next.leaf.SignatureAlgorithm, st.next.leaf.RawTBSCertificate, st.next.leaf.Signature) == nil {
			return c
		}
	}
	return nil
}

func (st smState) write(sec *corev1.Secret) {
	sec.Data = map[string][]byte{
		corev1.TLSCertKey:       st.current.certPEM,
		corev1.TLSPrivateKeyKey: st.current.keyPEM,
		SecretCAKey:             smEncodeBundle(st.bundle),
	}
	if sec.Annotations != nil {
		delete(sec.Annotations, AnnotationTrusted)
	}
	if st.next != nil {
		sec.Data[SecretNextCert] = st.next.certPEM
		sec.Data[SecretNextKey] = st.next.keyPEM
		if !st.trustedSince.IsZero() {
			if sec.Annotations == nil {
				sec.Annotations = map[string]string{}
			}
			sec.Annotations[AnnotationTrusted] = st.trustedSince.UTC().Format(time.RFC3339Nano)
		}
	}
}

// fresh is a new state with a new CA.
func (s *SelfManaged) fresh(now time.Time) (smState, error) {
	caPEM, p, err := smIssue(s.dnsNames(), s.Lifetime, now)
	if err != nil {
		return smState{}, err
	}
	return smState{current: p, bundle: smParseBundle(caPEM)}, nil
}

// read parses the Secret; a current certificate that is unusable (missing,
// not for our names, expired, not signed by a CA of the bundle) is an error.
func (s *SelfManaged) read(sec *corev1.Secret, now time.Time) (smState, error) {
	var st smState
	var err error
	if st.current, err = smParsePair(sec.Data[corev1.TLSCertKey], sec.Data[corev1.TLSPrivateKeyKey]); err != nil {
		return st, err
	}
	st.bundle = smUnexpired(smParseBundle(sec.Data[SecretCAKey]), now)
	for _, name := range s.dnsNames() {
		if err := smVerify(st.current.leaf, st.bundle, name, now); err != nil {
			return st, fmt.Errorf("certificate not valid for %s: %w", name, err)
		}
	}
	if p, err := smParsePair(sec.Data[SecretNextCert], sec.Data[SecretNextKey]); err == nil {
		st.next = &p
		if st.nextCA() == nil || smVerify(p.leaf, st.bundle, s.serverName(), p.leaf.NotBefore.Add(time.Second)) != nil {
			st.next = nil // not ours to promote; it will be re-staged
		} else if t, err := time.Parse(time.RFC3339Nano, sec.Annotations[AnnotationTrusted]); err == nil {
			st.trustedSince = t
		}
	}
	return st, nil
}

// sync is one round: Secret, then caBundles, then promotion, then files. It
// returns when to run again.
func (s *SelfManaged) sync(ctx context.Context) (time.Duration, error) {
	now := s.Now()
	secrets := s.Client.CoreV1().Secrets(s.Namespace)

	sec, err := secrets.Get(ctx, s.SecretName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		st, ferr := s.fresh(now)
		if ferr != nil {
			return 0, ferr
		}
		sec = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name:      s.SecretName,
				Namespace: s.Namespace,
				Labels:    map[string]string{"app.kubernetes.io/managed-by": "canary-tagger"},
			},
			Type: corev1.SecretTypeTLS,
		}
		st.write(sec)
		created, cerr := secrets.Create(ctx, sec, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(cerr) {
			// Another replica won; use what it wrote.
			sec, err = secrets.Get(ctx, s.SecretName, metav1.GetOptions{})
		} else if cerr != nil {
			return 0, fmt.Errorf("create Secret: %w", cerr)
		} else {
			s.Logger.Info("self-managed TLS: created CA and serving certificate", "notAfter", st.current.leaf.NotAfter)
			sec, err = created, nil
		}
	}
	if err != nil {
		return 0, fmt.Errorf("get Secret: %w", err)
	}

	st, rerr := s.read(sec, now)
	if rerr != nil {
		s.Logger.Info("self-managed TLS: Secret holds no usable certificate, issuing a new CA", "reason", rerr.Error())
		if st, err = s.fresh(now); err != nil {
			return 0, err
		}
		if sec, err = s.update(ctx, sec, st); err != nil {
			return 0, err
		}
	} else if orig := smParseBundle(sec.Data[SecretCAKey]); len(orig) != len(st.bundle) {
		// Drop expired CAs.
		if sec, err = s.update(ctx, sec, st); err != nil {
			return 0, err
		}
	}

	// Renew at two thirds: stage a new CA and certificate.
	if st.next == nil && !now.Before(smRenewAt(st.current.leaf)) {
		caPEM, p, err := smIssue(s.dnsNames(), s.Lifetime, now)
		if err != nil {
			return 0, err
		}
		st.next = &p
		st.trustedSince = time.Time{}
		st.bundle = append(smParseBundle(caPEM), st.bundle...)
		if sec, err = s.update(ctx, sec, st); err != nil {
			return 0, err
		}
		s.Logger.Info("self-managed TLS: renewal started, new CA staged", "currentNotAfter", st.current.leaf.NotAfter, "nextNotAfter", p.leaf.NotAfter)
	}

	// Every webhook trusts every CA of the Secret.
	bundles, werr := s.syncWebhooks(ctx, st.bundle, now)

	// Promote the staged certificate once its CA has been trusted long enough.
	if werr == nil && st.next != nil {
		ca := st.nextCA()
		trusted := true
		for _, b := range bundles {
			trusted = trusted && smContainsAll(b, []*x509.Certificate{ca})
		}
		switch {
		case !trusted:
		case st.trustedSince.IsZero():
			st.trustedSince = now
			if sec, err = s.update(ctx, sec, st); err != nil {
				return 0, err
			}
		case !now.Before(st.trustedSince.Add(s.PromotionDelay)):
			st.current, st.next, st.trustedSince = *st.next, nil, time.Time{}
			if sec, err = s.update(ctx, sec, st); err != nil {
				return 0, err
			}
			s.Logger.Info("self-managed TLS: renewed serving certificate", "notAfter", st.current.leaf.NotAfter)
		}
	}

	// Publish the current certificate for the webhook server.
	changed, ferr := smWriteDir(s.CertDir, map[string][]byte{
		s.CertName:  st.current.certPEM,
		s.KeyName:   st.current.keyPEM,
		SecretCAKey: smEncodeBundle(st.bundle),
	})
	if ferr != nil {
		return 0, fmt.Errorf("write %s: %w", s.CertDir, ferr)
	}
	if changed {
		s.Logger.Info("self-managed TLS: serving certificate written", "dir", s.CertDir, "serial", st.current.leaf.SerialNumber.String(), "notAfter", st.current.leaf.NotAfter)
	}
	s.mu.Lock()
	s.wrote, s.served = true, st.current.leaf
	if werr == nil {
		s.bundles = bundles
	}
	s.mu.Unlock()
	if werr != nil {
		return 0, werr
	}

	// Next wake-up: the periodic check, or the next step of a renewal.
	wait := s.SyncInterval
	if st.next == nil {
		wait = min(wait, smRenewAt(st.current.leaf).Sub(now))
	} else if !st.trustedSince.IsZero() {
		wait = min(wait, st.trustedSince.Add(s.PromotionDelay).Sub(now))
	} else {
		wait = min(wait, 100*time.Millisecond)
	}
	return max(wait, 10*time.Millisecond), nil
}

// update writes st into sec, conditional on sec's resourceVersion.
func (s *SelfManaged) update(ctx context.Context, sec *corev1.Secret, st smState) (*corev1.Secret, error) {
	sec = sec.DeepCopy()
	st.write(sec)
	out, err := s.Client.CoreV1().Secrets(s.Namespace).Update(ctx, sec, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("update Secret: %w", err)
	}
	return out, nil
}

// syncWebhooks makes the caBundle of every webhook hold every CA of want. CAs
// of ours already there stay until they expire — a replica with an older view
// of the Secret must never remove a CA another replica has just added — and
// anything else is dropped. It returns each webhook's resulting CAs.
func (s *SelfManaged) syncWebhooks(ctx context.Context, want []*x509.Certificate, now time.Time) ([][]*x509.Certificate, error) {
	mwcs := s.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	cfg, err := mwcs.Get(ctx, s.WebhookConfigName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get MutatingWebhookConfiguration: %w", err)
	}
	if len(cfg.Webhooks) == 0 {
		return nil, fmt.Errorf("MutatingWebhookConfiguration %s has no webhooks", s.WebhookConfigName)
	}
	changed := false
	out := make([][]*x509.Certificate, len(cfg.Webhooks))
	for i := range cfg.Webhooks {
		wh := &cfg.Webhooks[i]
		keep := smUnexpired(smParseBundle(wh.ClientConfig.CABundle), now)
		var merged []*x509.Certificate
		for _, c := range keep {
			if smOurs(c) {
				merged = append(merged, c)
			}
		}
		merged = append(merged, want...)
		b := smEncodeBundle(merged)
		out[i] = smParseBundle(b)
		if string(b) != string(wh.ClientConfig.CABundle) {
			wh.ClientConfig.CABundle = b
			changed = true
		}
	}
	if changed {
		if _, err := mwcs.Update(ctx, cfg, metav1.UpdateOptions{}); err != nil {
			return nil, fmt.Errorf("update caBundle of MutatingWebhookConfiguration: %w", err)
		}
		s.Logger.Info("self-managed TLS: caBundle written", "webhooks", len(cfg.Webhooks), "cas", len(out[0]))
	}
	return out, nil
}
