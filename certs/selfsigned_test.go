package certs

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWriteSelfSigned(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	caPEM, err := WriteSelfSigned(dir, []string{"canary-tagger.ns.svc", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("CA PEM does not parse")
	}
	for _, host := range []string{"canary-tagger.ns.svc", "127.0.0.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: pool}); err != nil {
			t.Errorf("verify for %s: %v", host, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "other.example", Roots: pool}); err == nil {
		t.Error("certificate valid for a host it was not made for")
	}
	if got, _ := os.ReadFile(filepath.Join(dir, CAFile)); string(got) != string(caPEM) {
		t.Error("ca.crt differs from the returned CA")
	}
	if fi, _ := os.Stat(filepath.Join(dir, KeyFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("tls.key mode %v, want 0600", fi.Mode().Perm())
	}
	if leaf.IsCA {
		t.Error("tls.crt is a CA")
	}
	if remaining := time.Until(leaf.NotAfter); remaining > time.Hour || remaining < 50*time.Minute {
		t.Errorf("certificate valid for %s more, want about an hour", remaining)
	}
}

func TestWriteSelfSignedRefusesBadInput(t *testing.T) {
	if _, err := WriteSelfSigned(t.TempDir(), nil, time.Hour); err == nil {
		t.Error("no hosts accepted")
	}
	if _, err := WriteSelfSigned(t.TempDir(), []string{"localhost"}, 0); err == nil {
		t.Error("zero validity accepted")
	}
}
