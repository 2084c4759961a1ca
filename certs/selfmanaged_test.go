package certs

import (
	"bytes"
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	admregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
)

func TestIssueAndVerify(t *testing.T) {
	now := time.Now()
	names := []string{"svc.ns.svc", "svc", "svc.ns", "svc.ns.svc.cluster.local"}
	caPEM, p, err := smIssue(names, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	cas := smParseBundle(caPEM)
	if len(cas) != 1 || !cas[0].IsCA || !smOurs(cas[0]) {
		t.Fatalf("CA: %+v", cas)
	}
	for _, n := range names {
		if err := smVerify(p.leaf, cas, n, now); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	if err := smVerify(p.leaf, cas, "other.ns.svc", now); err == nil {
		t.Errorf("verifies for a name it does not have")
	}
	if err := smVerify(p.leaf, cas, names[0], now.Add(time.Hour+time.Second)); err == nil {
		t.Errorf("verifies after expiry")
	}
	// A second CA does not vouch for the first one's certificate.
	other, _, _ := smIssue(names, time.Hour, now)
	if err := smVerify(p.leaf, smParseBundle(other), names[0], now); err == nil {
		t.Errorf("verifies under a foreign CA")
	}
	if _, err := smParsePair(p.certPEM, p.keyPEM); err != nil {
		t.Error(err)
	}
	renew := smRenewAt(p.leaf)
	if d := renew.Sub(now); d < 35*time.Minute || d > 40*time.Minute {
		t.Errorf("renewal %s after issue, want two thirds of the validity", d)
	}
	// Bundles: newest first, no duplicates.
	b := smEncodeBundle(append(smParseBundle(other), append(cas, cas...)...))
	if n := len(smParseBundle(b)); n != 2 {
		t.Errorf("%d CAs in the bundle, want 2", n)
	}
}

// TestWriteDirReloadsCertwatcher: a new generation in the directory reaches
// controller-runtime's certwatcher (what the webhook server serves) without a
// restart, and the watcher never sees a certificate with another's key.
func TestWriteDirReloadsCertwatcher(t *testing.T) {
	dir := t.TempDir()
	names := []string{"svc.ns.svc"}
	_, p1, _ := smIssue(names, time.Hour, time.Now())
	if changed, err := smWriteDir(dir, map[string][]byte{"tls.crt": p1.certPEM, "tls.key": p1.keyPEM}); err != nil || !changed {
		t.Fatalf("first write: %v %v", changed, err)
	}
	if changed, _ := smWriteDir(dir, map[string][]byte{"tls.crt": p1.certPEM, "tls.key": p1.keyPEM}); changed {
		t.Errorf("rewrote identical content")
	}
	cw, err := certwatcher.New(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = cw.Start(ctx) }()

	// certwatcher has no "watching" signal: write new generations until one
	// is picked up within a second (fsnotify), well before its 10 s poll.
	served := func(leaf []byte) bool {
		c, _ := cw.GetCertificate(nil)
		return c != nil && bytes.Equal(c.Certificate[0], leaf)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var p2 *smPair
	for try := 0; p2 == nil; try++ {
		if try == 20 {
			t.Fatal("certwatcher did not pick up a new certificate within a second, 20 times")
		}
		_, next, _ := smIssue(names, time.Hour, time.Now())
		if _, err := smWriteDir(dir, map[string][]byte{"tls.crt": next.certPEM, "tls.key": next.keyPEM}); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); <-tick.C {
			if served(next.leaf.Raw) {
				p2 = &next
				break
			}
		}
	}
	entries, _ := os.ReadDir(dir)
	var gens int
	for _, e := range entries {
		if e.IsDir() {
			gens++
		}
	}
	if gens != 1 {
		t.Errorf("%d generations left in %s, want 1", gens, dir)
	}
}

// TestRenewalSequence walks a fake clock through one lifetime: renewal is
// staged at two thirds, with the new CA added to every caBundle first; the new
// certificate is served only once its CA has been trusted for PromotionDelay;
// the old CA stays until it expires, then goes.
func TestRenewalSequence(t *testing.T) {
	cs := fake.NewClientset(&admregv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "canary-tagger"},
		Webhooks:   []admregv1.MutatingWebhook{{Name: "a.x.io"}, {Name: "b.x.io"}},
	})
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &SelfManaged{
		Client: cs, Namespace: "canary-tagger", SecretName: "tls", ServiceName: "svc", WebhookConfigName: "canary-tagger",
		CertDir: t.TempDir(), Lifetime: 30 * time.Hour, PromotionDelay: time.Minute,
		Now: func() time.Time { return now },
	}
	if err := s.defaults(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sync := func() (*corev1.Secret, [][]*x509.Certificate) {
		t.Helper()
		if _, err := s.sync(ctx); err != nil {
			t.Fatal(err)
		}
		sec, err := cs.CoreV1().Secrets("canary-tagger").Get(ctx, "tls", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		mwc, _ := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "canary-tagger", metav1.GetOptions{})
		var b [][]*x509.Certificate
		for _, w := range mwc.Webhooks {
			b = append(b, smParseBundle(w.ClientConfig.CABundle))
		}
		return sec, b
	}
	served := func() *x509.Certificate {
		b, _ := os.ReadFile(filepath.Join(s.CertDir, "tls.crt"))
		p, err := smParsePair(b, mustRead(t, filepath.Join(s.CertDir, "tls.key")))
		if err != nil {
			t.Fatal(err)
		}
		return p.leaf
	}

	sec, bundles := sync()
	first := served()
	ca1 := smParseBundle(sec.Data[SecretCAKey])
	if len(ca1) != 1 || len(bundles) != 2 || !smContainsAll(bundles[0], ca1) || !smContainsAll(bundles[1], ca1) {
		t.Fatalf("bootstrap: CAs %d, bundles %v", len(ca1), bundles)
	}
	if err := s.Ready(); err != nil {
		t.Fatalf("not ready after bootstrap: %v", err)
	}

	// Just before two thirds: nothing happens.
	now = smRenewAt(first).Add(-time.Second)
	sec, _ = sync()
	if _, staged := sec.Data[SecretNextCert]; staged {
		t.Fatalf("renewal staged early")
	}
	// At two thirds: staged, both CAs trusted, still serving the first.
	now = smRenewAt(first)
	sec, bundles = sync()
	if _, staged := sec.Data[SecretNextCert]; !staged {
		t.Fatalf("renewal not staged at two thirds")
	}
	both := smParseBundle(sec.Data[SecretCAKey])
	if len(both) != 2 || !smContainsAll(bundles[0], both) || !smContainsAll(bundles[1], both) {
		t.Fatalf("new CA not in every caBundle")
	}
	if !served().Equal(first) {
		t.Fatalf("new certificate served before its CA was trusted for PromotionDelay")
	}
	if sec.Annotations[AnnotationTrusted] == "" {
		t.Fatalf("trusted-since not recorded")
	}
	// Within the delay: still the first.
	now = now.Add(30 * time.Second)
	sync()
	if !served().Equal(first) {
		t.Fatalf("promoted before PromotionDelay")
	}
	// After the delay: the second, old CA still trusted.
	now = now.Add(31 * time.Second)
	sec, bundles = sync()
	second := served()
	if second.Equal(first) {
		t.Fatalf("not promoted after PromotionDelay")
	}
	if _, staged := sec.Data[SecretNextCert]; staged {
		t.Errorf("next.crt left after promotion")
	}
	if !smContainsAll(bundles[0], ca1) {
		t.Errorf("old CA dropped while the old certificate is still valid")
	}
	if err := s.Ready(); err != nil {
		t.Errorf("not ready after promotion: %v", err)
	}
	// After the first CA expired: gone from the Secret and the caBundles.
	now = first.NotAfter.Add(time.Second)
	sec, bundles = sync()
	if smContainsAll(smParseBundle(sec.Data[SecretCAKey]), ca1) || smContainsAll(bundles[0], ca1) || smContainsAll(bundles[1], ca1) {
		t.Errorf("expired CA still trusted")
	}
	if !served().Equal(second) {
		t.Errorf("served certificate changed without a renewal")
	}
}

// TestStaleReplicaNeverRemovesANewCA: a replica that read the Secret before a
// renewal must not take the new CA out of the caBundle.
func TestStaleReplicaNeverRemovesANewCA(t *testing.T) {
	cs := fake.NewClientset(&admregv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "mwc"}, Webhooks: []admregv1.MutatingWebhook{{Name: "a.x.io"}},
	})
	s := &SelfManaged{Client: cs, Namespace: "ns", SecretName: "tls", ServiceName: "svc", WebhookConfigName: "mwc", CertDir: t.TempDir()}
	if err := s.defaults(); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	old, _, _ := smIssue(s.dnsNames(), time.Hour, now)
	newer, _, _ := smIssue(s.dnsNames(), time.Hour, now)
	ctx := context.Background()
	if _, err := s.syncWebhooks(ctx, smParseBundle(append(old, newer...)), now); err != nil {
		t.Fatal(err)
	}
	// The stale view knows only the old CA.
	b, err := s.syncWebhooks(ctx, smParseBundle(old), now)
	if err != nil {
		t.Fatal(err)
	}
	if !smContainsAll(b[0], smParseBundle(newer)) {
		t.Errorf("a stale replica removed the new CA from the caBundle")
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
