package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"

	"k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

// The issuer of the self-managed mode: a CA, and serving certificates it
// signs. Pure functions of their inputs and the clock.

const caCommonName = "canary-tagger-self-managed-ca"

// newCA makes a ten-year CA (client-go's NewSelfSignedCACert) and returns it
// with its key in PEM.
func newCA(now time.Time) (*x509.Certificate, crypto.Signer, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	ca, err := cert.NewSelfSignedCACert(cert.Config{CommonName: caCommonName, NotBefore: now.Add(-time.Hour)}, key)
	if err != nil {
		return nil, nil, nil, err
	}
	keyPEM, err := keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return ca, key, keyPEM, nil
}

// signServing signs a serving certificate for names (names[0] its common
// name) with the CA, valid for lifetime from now. client-go has no helper
// for a CA-signed leaf, hence crypto/x509.
func signServing(ca *x509.Certificate, caKey crypto.Signer, names []string, lifetime time.Duration, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: serial.Add(serial, big.NewInt(1)),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		// Backdated for apiservers whose clock lags ours.
		NotBefore:   now.Add(-min(time.Minute, lifetime/10)),
		NotAfter:    now.Add(lifetime),
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

// parsePair is the certificate and key as the TLS server serves them, its
// Leaf parsed.
func parsePair(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return &pair, nil
}

// verify checks that leaf is valid at now for every one of dnsNames under
// one of cas.
func verify(leaf *x509.Certificate, cas []*x509.Certificate, now time.Time, dnsNames ...string) error {
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	for _, name := range dnsNames {
		if _, err := leaf.Verify(x509.VerifyOptions{
			Roots: pool, DNSName: name, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}); err != nil {
			return err
		}
	}
	return nil
}

// renewAt is two thirds into the certificate's validity.
func renewAt(c *x509.Certificate) time.Time {
	return c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) * 2 / 3)
}
