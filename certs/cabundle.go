package certs

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	admregv1client "k8s.io/client-go/kubernetes/typed/admissionregistration/v1"
	"k8s.io/client-go/util/cert"
)

// caBundleWriter keeps the caBundle of every webhook of one
// MutatingWebhookConfiguration equal to the CA store's ca.crt.
type caBundleWriter struct {
	configs admregv1client.MutatingWebhookConfigurationInterface
	name    string
	log     logr.Logger
}

// write sets every webhook's caBundle to caPEM if one differs (an update
// conditional on the configuration's resourceVersion) and returns the CAs
// the caBundles now hold.
func (w *caBundleWriter) write(ctx context.Context, caPEM []byte) ([]*x509.Certificate, error) {
	cfg, err := w.configs.Get(ctx, w.name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get MutatingWebhookConfiguration: %w", err)
	}
	if len(cfg.Webhooks) == 0 {
		return nil, fmt.Errorf("MutatingWebhookConfiguration %s has no webhooks", w.name)
	}
	changed := false
	for i := range cfg.Webhooks {
		if cc := &cfg.Webhooks[i].ClientConfig; !bytes.Equal(cc.CABundle, caPEM) {
			cc.CABundle, changed = caPEM, true
		}
	}
	if changed {
		if _, err := w.configs.Update(ctx, cfg, metav1.UpdateOptions{}); err != nil {
			return nil, fmt.Errorf("update caBundle of MutatingWebhookConfiguration: %w", err)
		}
		w.log.Info("self-managed TLS: caBundle written", "webhooks", len(cfg.Webhooks))
	}
	return cert.ParseCertsPEM(caPEM)
}
