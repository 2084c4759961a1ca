package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"
)

// smCAPrefix starts the common name of every CA the self-managed mode creates.
// Only CAs named so are kept in a caBundle that is merged (see mergeBundle).
const smCAPrefix = "canary-tagger self-managed CA"

// smPair is a serving certificate (leaf only) and its private key, PEM.
type smPair struct {
	certPEM, keyPEM []byte
	leaf            *x509.Certificate
}

// smIssue creates a fresh CA and a serving certificate for dnsNames signed by
// it. The CA's private key is discarded: each CA signs exactly one leaf, so the
// Secret never holds a key that could mint more certificates.
func smIssue(dnsNames []string, lifetime time.Duration, now time.Time) (caPEM []byte, p smPair, err error) {
	if len(dnsNames) == 0 {
		return nil, smPair{}, errors.New("no DNS names")
	}
	// Backdate a little for clock skew between us and the apiservers; the
	// renewal point (2/3 of NotBefore..NotAfter) moves with it.
	backdate := min(time.Minute, lifetime/10)
	notBefore, notAfter := now.Add(-backdate).UTC(), now.Add(lifetime).UTC()

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, smPair{}, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          smSerial(),
		Subject:               pkix.Name{CommonName: fmt.Sprintf("%s %d", smCAPrefix, now.UnixNano())},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, smPair{}, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, smPair{}, err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, smPair{}, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: smSerial(),
		Subject:      pkix.Name{CommonName: dnsNames[0]},
		DNSNames:     dnsNames,
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, smPair{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, smPair{}, err
	}
	p = smPair{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
	p.leaf, _ = x509.ParseCertificate(leafDER)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), p, nil
}

func smSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n.Add(n, big.NewInt(1))
}

// smParsePair checks that cert and key belong together and returns the leaf.
func smParsePair(certPEM, keyPEM []byte) (smPair, error) {
	if len(certPEM) == 0 || len(keyPEM) == 0 {
		return smPair{}, errors.New("missing certificate or key")
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return smPair{}, err
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return smPair{}, err
	}
	return smPair{certPEM: certPEM, keyPEM: keyPEM, leaf: leaf}, nil
}

// smParseBundle parses every CERTIFICATE block; other blocks and garbage are
// ignored (a caBundle someone else wrote must not stop us).
func smParseBundle(b []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(blk.Bytes); err == nil {
			out = append(out, c)
		}
	}
}

// smEncodeBundle writes CAs as PEM, newest (latest NotAfter) first, without
// duplicates.
func smEncodeBundle(cas []*x509.Certificate) []byte {
	cas = slices.Clone(cas)
	slices.SortStableFunc(cas, func(a, b *x509.Certificate) int { return b.NotAfter.Compare(a.NotAfter) })
	var buf bytes.Buffer
	var seen [][]byte
	for _, c := range cas {
		if slices.ContainsFunc(seen, func(r []byte) bool { return bytes.Equal(r, c.Raw) }) {
			continue
		}
		seen = append(seen, c.Raw)
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return buf.Bytes()
}

// smUnexpired keeps the CAs still valid at now.
func smUnexpired(cas []*x509.Certificate, now time.Time) []*x509.Certificate {
	return slices.DeleteFunc(slices.Clone(cas), func(c *x509.Certificate) bool { return !now.Before(c.NotAfter) })
}

// smContainsAll reports whether every CA of want is in have.
func smContainsAll(have, want []*x509.Certificate) bool {
	for _, w := range want {
		if !slices.ContainsFunc(have, func(h *x509.Certificate) bool { return bytes.Equal(h.Raw, w.Raw) }) {
			return false
		}
	}
	return true
}

// smVerify checks that leaf is valid at now for dnsName under one of cas.
func smVerify(leaf *x509.Certificate, cas []*x509.Certificate, dnsName string, now time.Time) error {
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:       pool,
		DNSName:     dnsName,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	return err
}

// smRenewAt is two thirds into the certificate's validity.
func smRenewAt(c *x509.Certificate) time.Time {
	return c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) * 2 / 3)
}

// smOurs reports whether a CA was made by the self-managed mode.
func smOurs(c *x509.Certificate) bool { return strings.HasPrefix(c.Subject.CommonName, smCAPrefix) }
