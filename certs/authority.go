package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/util/cert"
)

// Keys of the Secret (type kubernetes.io/tls) besides tls.crt and tls.key.
const (
	SecretCACert       = "ca.crt" // the signing CA first, then earlier CAs until they expire; what every caBundle holds
	SecretCAPrivateKey = "ca.key" // the signing CA's key
)

// authority is the CA store: the CA and the serving certificate it signed,
// both in one Secret that every replica reads and writes, conditional on its
// resourceVersion.
type authority struct {
	secrets  corev1client.SecretInterface
	name     string
	dnsNames []string // dnsNames[0] is the name the apiserver checks
	lifetime time.Duration
	log      logr.Logger
}

// reconcile reads the Secret, creates it or brings it up to date (a new CA
// when there is no usable one, a new serving certificate when due) and
// returns its data and the serving pair in it.
func (a *authority) reconcile(ctx context.Context, now time.Time) (map[string][]byte, *tls.Certificate, error) {
	sec, err := a.secrets.Get(ctx, a.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		sec = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name: a.name, Labels: map[string]string{"app.kubernetes.io/managed-by": "canary-tagger"},
			},
			Type: corev1.SecretTypeTLS,
		}
		if sec.Data, _, err = a.desired(nil, now); err != nil {
			return nil, nil, err
		}
		// Of replicas starting together the first create wins; the others
		// use what it wrote.
		created, cerr := a.secrets.Create(ctx, sec, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(cerr) {
			sec, err = a.secrets.Get(ctx, a.name, metav1.GetOptions{})
		} else if sec, err = created, cerr; err == nil {
			a.log.Info("self-managed TLS: created CA and serving certificate")
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("Secret: %w", err)
	}
	want, pair, err := a.desired(sec.Data, now)
	if err != nil {
		return nil, nil, err
	}
	if !maps.EqualFunc(want, sec.Data, bytes.Equal) {
		sec = sec.DeepCopy()
		sec.Data = want
		// Conditional on the resourceVersion read: of replicas renewing
		// together one wins, the others get a conflict and re-read.
		if _, err = a.secrets.Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
			return nil, nil, fmt.Errorf("update Secret: %w", err)
		}
		a.log.Info("self-managed TLS: Secret updated", "serial", pair.Leaf.SerialNumber.String(), "notAfter", pair.Leaf.NotAfter)
	}
	return want, pair, nil
}

// desired is the Secret's data as it should be: its CA unless there is none
// usable (then a new one, the earlier ones staying in ca.crt until they
// expire), and its serving certificate unless it is due for renewal.
func (a *authority) desired(data map[string][]byte, now time.Time) (map[string][]byte, *tls.Certificate, error) {
	bundle, _ := cert.ParseCertsPEM(data[SecretCACert])
	bundle = slices.DeleteFunc(bundle, func(c *x509.Certificate) bool { return !now.Before(c.NotAfter) })
	out := map[string][]byte{SecretCAPrivateKey: data[SecretCAPrivateKey]}

	caKey, err := parseCAKey(bundle, data[SecretCAPrivateKey])
	if err != nil || bundle[0].NotAfter.Before(now.Add(a.lifetime)) {
		reason := "CA expires within one serving lifetime"
		if err != nil {
			reason = err.Error()
		}
		a.log.Info("self-managed TLS: issuing a new CA", "reason", reason)
		ca, key, keyPEM, err := newCA(now)
		if err != nil {
			return nil, nil, err
		}
		bundle, caKey, out[SecretCAPrivateKey] = append([]*x509.Certificate{ca}, bundle...), key, keyPEM
	}
	if out[SecretCACert], err = cert.EncodeCertificates(bundle...); err != nil {
		return nil, nil, err
	}

	out[corev1.TLSCertKey], out[corev1.TLSPrivateKeyKey] = data[corev1.TLSCertKey], data[corev1.TLSPrivateKeyKey]
	pair, err := parsePair(data[corev1.TLSCertKey], data[corev1.TLSPrivateKeyKey])
	if err != nil || !now.Before(renewAt(pair.Leaf)) || verify(pair.Leaf, bundle[:1], now, a.dnsNames...) != nil {
		if out[corev1.TLSCertKey], out[corev1.TLSPrivateKeyKey], err = signServing(bundle[0], caKey, a.dnsNames, a.lifetime, now); err != nil {
			return nil, nil, err
		}
		if pair, err = parsePair(out[corev1.TLSCertKey], out[corev1.TLSPrivateKeyKey]); err != nil {
			return nil, nil, err
		}
	}
	return out, pair, nil
}
