// Package certs makes TLS material for the webhook server: a throw-away
// certificate for local runs and tests, and the self-managed TLS mode (a CA
// store in a Secret, its issuer, the caBundle writer, and the certificate
// served from memory).
package certs

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/util/cert"
)

// File names in the layout of a cert-manager (kubernetes.io/tls) Secret.
const (
	CertFile = "tls.crt"
	KeyFile  = "tls.key"
	CAFile   = "ca.crt"
)

// WriteSelfSigned writes a throw-away CA and a serving certificate for hosts
// (DNS names or IP addresses), valid for validFor, into dir as tls.crt,
// tls.key and ca.crt, and returns the CA in PEM for a caBundle or a client's
// trust pool. For `make run`, tests and demos: client-go does not return the
// CA's key, so nothing else can ever be signed with it.
func WriteSelfSigned(dir string, hosts []string, validFor time.Duration) (caPEM []byte, err error) {
	if len(hosts) == 0 {
		return nil, errors.New("certs: no hosts")
	}
	if validFor <= 0 {
		return nil, fmt.Errorf("certs: validity %v must be positive", validFor)
	}
	var ips []net.IP
	var dns []string
	for _, h := range hosts[1:] {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, h)
		}
	}
	chain, keyPEM, err := cert.GenerateSelfSignedCertKeyWithOptions(cert.SelfSignedCertKeyOptions{
		// client-go backdates NotBefore by an hour (clock skew) and counts
		// MaxAge from there.
		Host: hosts[0], AlternateIPs: ips, AlternateDNS: dns, MaxAge: validFor + time.Hour,
	})
	if err != nil {
		return nil, err
	}
	// client-go returns the leaf followed by its CA.
	parsed, err := cert.ParseCertsPEM(chain)
	if err != nil || len(parsed) != 2 {
		return nil, fmt.Errorf("certs: unexpected certificate chain from client-go (%d certificates, %v)", len(parsed), err)
	}
	leafPEM, err := cert.EncodeCertificates(parsed[0])
	if err != nil {
		return nil, err
	}
	if caPEM, err = cert.EncodeCertificates(parsed[1]); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{KeyFile, keyPEM, 0o600}, {CertFile, leafPEM, 0o644}, {CAFile, caPEM, 0o644}} {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return nil, err
		}
	}
	return caPEM, nil
}
