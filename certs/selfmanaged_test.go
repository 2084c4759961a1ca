package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	admregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/util/cert"
)

// fakeCluster is a fake clientset holding a webhook configuration with two
// webhooks, and a SelfManaged for it on a clock the test moves.
type fakeCluster struct {
	cs  *fake.Clientset
	sm  *SelfManaged
	now time.Time
}

func newFakeCluster(t *testing.T, objs ...metav1.Object) *fakeCluster {
	t.Helper()
	cs := fake.NewClientset(&admregv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "canary-tagger"},
		Webhooks:   []admregv1.MutatingWebhook{{Name: "a.x.io"}, {Name: "b.x.io"}},
	})
	for _, o := range objs {
		if err := cs.Tracker().Add(o.(*corev1.Secret)); err != nil {
			t.Fatal(err)
		}
	}
	f := &fakeCluster{cs: cs, now: time.Now()}
	f.sm = &SelfManaged{
		Client: cs, Namespace: "canary-tagger", SecretName: "tls", ServiceName: "svc", WebhookConfigName: "canary-tagger",
		Lifetime: 30 * time.Hour,
		Now:      func() time.Time { return f.now },
	}
	if err := f.sm.complete(); err != nil {
		t.Fatal(err)
	}
	return f
}

// sync runs one round and returns the Secret and every webhook's caBundle.
func (f *fakeCluster) sync(t *testing.T) (*corev1.Secret, [][]byte) {
	t.Helper()
	ctx := context.Background()
	if _, err := f.sm.sync(ctx); err != nil {
		t.Fatal(err)
	}
	sec, err := f.cs.CoreV1().Secrets("canary-tagger").Get(ctx, "tls", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mwc, err := f.cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "canary-tagger", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var bundles [][]byte
	for _, w := range mwc.Webhooks {
		bundles = append(bundles, w.ClientConfig.CABundle)
	}
	return sec, bundles
}

// servedLeaf is the certificate GetCertificate serves.
func (f *fakeCluster) servedLeaf(t *testing.T) *x509.Certificate {
	t.Helper()
	c, err := f.sm.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf
}

// caBundleWrites counts the updates of the webhook configuration.
func (f *fakeCluster) caBundleWrites() int {
	n := 0
	for _, a := range f.cs.Actions() {
		if a.GetVerb() == "update" && a.GetResource().Resource == "mutatingwebhookconfigurations" {
			n++
		}
	}
	return n
}

func parseBundle(t *testing.T, b []byte) []*x509.Certificate {
	t.Helper()
	cas, err := cert.ParseCertsPEM(b)
	if err != nil {
		t.Fatal(err)
	}
	return cas
}

// TestRenewalKeepsTheCA walks a fake clock through three serving lifetimes:
// the certificate is renewed at two thirds of each, always by the CA made at
// bootstrap, so the caBundle is written once and never again, and every
// certificate served meanwhile is trusted by it.
func TestRenewalKeepsTheCA(t *testing.T) {
	f := newFakeCluster(t)
	sec, bundles := f.sync(t)
	for _, k := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey, SecretCACert, SecretCAPrivateKey} {
		if len(sec.Data[k]) == 0 {
			t.Fatalf("Secret has no %s", k)
		}
	}
	cas := parseBundle(t, sec.Data[SecretCACert])
	if len(cas) != 1 || !cas[0].IsCA || cas[0].NotAfter.Before(f.now.Add(9*365*24*time.Hour)) {
		t.Fatalf("want one CA valid for about ten years, got %d, first until %s", len(cas), cas[0].NotAfter)
	}
	for i, b := range bundles {
		if !bytes.Equal(b, sec.Data[SecretCACert]) {
			t.Fatalf("webhook #%d caBundle is not the Secret's ca.crt", i)
		}
	}
	if err := f.sm.Ready(); err != nil {
		t.Fatalf("not ready after bootstrap: %v", err)
	}
	if n := f.caBundleWrites(); n != 1 {
		t.Fatalf("%d caBundle writes at bootstrap, want 1", n)
	}

	var served []*x509.Certificate
	served = append(served, f.servedLeaf(t))
	for round := range 3 {
		prev := served[len(served)-1]
		if d := renewAt(prev).Sub(f.now); d < 19*time.Hour || d > 21*time.Hour {
			t.Fatalf("round %d: renewal due in %s, want two thirds of 30h", round, d)
		}
		f.now = renewAt(prev).Add(-time.Second)
		f.sync(t)
		if !f.servedLeaf(t).Equal(prev) {
			t.Fatalf("round %d: renewed before two thirds", round)
		}
		f.now = renewAt(prev)
		sec, bundles = f.sync(t)
		next := f.servedLeaf(t)
		if next.Equal(prev) {
			t.Fatalf("round %d: not renewed at two thirds", round)
		}
		if !bytes.Equal(sec.Data[corev1.TLSCertKey], mustPEM(t, next)) {
			t.Errorf("round %d: served certificate is not the Secret's", round)
		}
		for _, c := range []*x509.Certificate{prev, next} { // a replica still serving prev stays trusted
			for i, b := range bundles {
				if err := verify(c, parseBundle(t, b), f.now, "svc.canary-tagger.svc"); err != nil {
					t.Errorf("round %d: certificate %s not trusted by webhook #%d: %v", round, c.SerialNumber, i, err)
				}
			}
		}
		if err := f.sm.Ready(); err != nil {
			t.Errorf("round %d: not ready after renewal: %v", round, err)
		}
		served = append(served, next)
	}
	if !bytes.Equal(sec.Data[SecretCACert], mustPEM(t, cas[0])) {
		t.Errorf("the CA changed during renewals")
	}
	if n := f.caBundleWrites(); n != 1 {
		t.Errorf("%d caBundle writes over three renewals, want the bootstrap's only", n)
	}
}

// TestNewCAWhenTheKeyIsMissing: a Secret without a usable CA key (the format
// of the previous self-managed mode, or a damaged Secret) gets a new CA; the
// earlier CA stays in ca.crt, and so in the caBundle, until it expires, and
// the certificate is reissued by the new CA.
func TestNewCAWhenTheKeyIsMissing(t *testing.T) {
	// An earlier Secret whose CA key was thrown away, with a CA that expires
	// in two days.
	chain, key, err := cert.GenerateSelfSignedCertKeyWithOptions(cert.SelfSignedCertKeyOptions{
		Host: "svc.canary-tagger.svc", AlternateDNS: []string{"svc", "svc.canary-tagger", "svc.canary-tagger.svc.cluster.local"},
		MaxAge: 48 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	oldCA := parseBundle(t, chain)[1]
	old := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "tls", Namespace: "canary-tagger"},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: chain, corev1.TLSPrivateKeyKey: key, SecretCACert: mustPEM(t, oldCA)},
	}

	f := newFakeCluster(t, old)
	sec, bundles := f.sync(t)
	cas := parseBundle(t, sec.Data[SecretCACert])
	if len(cas) != 2 || cas[0].Equal(oldCA) || !cas[1].Equal(oldCA) {
		t.Fatalf("ca.crt should be the new CA, then the earlier one: %d CAs", len(cas))
	}
	if _, err := parseCAKey(cas, sec.Data[SecretCAPrivateKey]); err != nil {
		t.Fatalf("ca.key is not the new CA's: %v", err)
	}
	leaf := f.servedLeaf(t)
	if err := leaf.CheckSignatureFrom(cas[0]); err != nil {
		t.Errorf("certificate not reissued by the new CA: %v", err)
	}
	for i, b := range bundles {
		if !bytes.Equal(b, sec.Data[SecretCACert]) {
			t.Errorf("webhook #%d caBundle is not the Secret's ca.crt", i)
		}
	}
	// Once the earlier CA has expired it leaves ca.crt and the caBundles.
	f.now = oldCA.NotAfter.Add(time.Second)
	sec, bundles = f.sync(t)
	if cas := parseBundle(t, sec.Data[SecretCACert]); len(cas) != 1 || cas[0].Equal(oldCA) {
		t.Errorf("expired CA still in ca.crt")
	}
	if !bytes.Equal(bundles[0], sec.Data[SecretCACert]) || !bytes.Equal(bundles[1], sec.Data[SecretCACert]) {
		t.Errorf("caBundles do not follow ca.crt")
	}
}

// TestNotReadyUntilTheCABundleTrusts: without a webhook configuration the
// certificate is written (the server can start) but readiness fails, naming
// the caBundle.
func TestNotReadyUntilTheCABundleTrusts(t *testing.T) {
	f := newFakeCluster(t)
	if err := f.cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), "canary-tagger", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.sm.sync(context.Background()); err == nil {
		t.Fatal("sync without a webhook configuration succeeded")
	}
	f.servedLeaf(t) // the server can start
	if err := f.sm.Ready(); err == nil || !bytes.Contains([]byte(err.Error()), []byte("caBundle")) {
		t.Errorf("readiness without a caBundle: %v", err)
	}
}

func mustPEM(t *testing.T, c *x509.Certificate) []byte {
	t.Helper()
	b, err := cert.EncodeCertificates(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRenewalServedOnTheNextHandshake: a TLS server on GetCertificate
// refuses handshakes until the first sync, then presents the Secret's
// certificate, and a renewed one on the next handshake, without a restart.
func TestRenewalServedOnTheNextHandshake(t *testing.T) {
	f := newFakeCluster(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: f.sm.GetCertificate, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	served := func() (*x509.Certificate, error) {
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test compares what is served
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0], nil
	}

	if c, err := served(); err == nil {
		t.Fatalf("handshake before the first sync served %s", c.Subject)
	}
	sec, _ := f.sync(t)
	first, err := served()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustPEM(t, first), sec.Data[corev1.TLSCertKey]) {
		t.Fatalf("served certificate %s is not the Secret's", first.SerialNumber)
	}
	f.now = renewAt(first)
	sec, _ = f.sync(t)
	next, err := served()
	if err != nil {
		t.Fatal(err)
	}
	if next.Equal(first) || !bytes.Equal(mustPEM(t, next), sec.Data[corev1.TLSCertKey]) {
		t.Errorf("after renewal the server presents %s, want the Secret's new certificate", next.SerialNumber)
	}
}

// TestStartNamesMissingSettings: settings the caller did not give are named
// as the library's fields (the flags are serve's business).
func TestStartNamesMissingSettings(t *testing.T) {
	err := (&SelfManaged{Client: fake.NewClientset(), Namespace: "ns"}).Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "SecretName") || strings.Contains(err.Error(), "--") {
		t.Errorf("Start without a Secret name: %v", err)
	}
}
