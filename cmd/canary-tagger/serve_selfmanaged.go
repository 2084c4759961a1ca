package main

// Self-managed TLS for `serve` (contract 4, charts/canary-tagger with tls=self-managed):
// the flags, and the step that runs before webhook.Run.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/healthz"

	"github.com/canary-tagger/canary-tagger/certs"
	"github.com/canary-tagger/canary-tagger/webhook"
)

// Defaults: the names manifests/ uses.
const (
	defaultTLSSecret         = "canary-tagger-self-managed-tls"
	defaultWebhookConfigName = "canary-tagger"
	defaultServiceName       = "canary-tagger-webhook"
	serviceAccountNamespace  = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
)

type selfManagedFlags struct {
	enabled           bool
	secret            string
	webhookConfigName string
	serviceName       string
	serviceNamespace  string
	clusterDomain     string
	lifetime          time.Duration
}

func (f *selfManagedFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&f.enabled, "self-managed-tls", false,
		"TLS without cert-manager: a ten-year CA and the serving certificate it signs in --tls-secret, the CA in the caBundle of --webhook-config-name, the certificate renewed and served from memory (--cert-dir unused)")
	fs.StringVar(&f.secret, "tls-secret", defaultTLSSecret, "self-managed TLS: Secret (in --service-namespace) holding the CA, its key and the certificate")
	fs.StringVar(&f.serviceName, "service-name", defaultServiceName, "self-managed TLS: the webhook Service; the certificate is for its DNS names")
	fs.StringVar(&f.serviceNamespace, "service-namespace", "", "self-managed TLS: namespace of the Service and the Secret (default: the pod's namespace)")
	fs.StringVar(&f.clusterDomain, "cluster-domain", certs.DefaultClusterDomain, "self-managed TLS: cluster DNS domain, for <service>.<namespace>.svc.<domain>")
	fs.DurationVar(&f.lifetime, "cert-lifetime", certs.DefaultCertLifetime, "self-managed TLS: lifetime of the serving certificate, renewed at two thirds by the same CA")
}

// validate names the flag at fault. It runs whether or not the mode is on, so
// a typo is caught before it matters.
func (f *selfManagedFlags) validate() error {
	if f.serviceNamespace == "" && f.enabled {
		b, err := os.ReadFile(serviceAccountNamespace)
		if err != nil {
			return fmt.Errorf("--service-namespace: not set and not running in a pod (%v)", err)
		}
		f.serviceNamespace = strings.TrimSpace(string(b))
	}
	checks := []struct {
		flag, value string
		check       func(string) []string
	}{
		{"tls-secret", f.secret, validation.IsDNS1123Subdomain},
		{"webhook-config-name", f.webhookConfigName, validation.IsDNS1123Subdomain},
		{"service-name", f.serviceName, validation.IsDNS1035Label},
		{"cluster-domain", f.clusterDomain, validation.IsDNS1123Subdomain},
	}
	if f.serviceNamespace != "" {
		checks = append(checks, struct {
			flag, value string
			check       func(string) []string
		}{"service-namespace", f.serviceNamespace, validation.IsDNS1123Label})
	}
	for _, c := range checks {
		if errs := c.check(c.value); len(errs) > 0 {
			return fmt.Errorf("--%s=%q: %s", c.flag, c.value, strings.Join(errs, "; "))
		}
	}
	if f.lifetime < certs.MinCertLifetime || f.lifetime > certs.MaxCertLifetime {
		return fmt.Errorf("--cert-lifetime=%s: must be between %s and %s", f.lifetime, certs.MinCertLifetime, certs.MaxCertLifetime)
	}
	return nil
}

// start, when --self-managed-tls is on, makes sure there is a certificate to
// serve, keeps it renewed until ctx ends, and returns once the caBundle
// trusts it, so that webhook.Run never serves a certificate the apiserver
// would refuse: o is then served from memory, and not ready while the
// caBundle does not trust what it serves.
func (f *selfManagedFlags) start(ctx context.Context, o *webhook.Options) error {
	if !f.enabled {
		return nil
	}
	cfg, err := o.RESTConfig()
	if err != nil {
		return fmt.Errorf("--self-managed-tls needs the Kubernetes API: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	sm := &certs.SelfManaged{
		Client:            cs,
		Namespace:         f.serviceNamespace,
		SecretName:        f.secret,
		ServiceName:       f.serviceName,
		ClusterDomain:     f.clusterDomain,
		WebhookConfigName: f.webhookConfigName,
		Lifetime:          f.lifetime,
		Logger:            o.Logger.WithName("self-managed-tls"),
	}
	if err := sm.Start(ctx); err != nil {
		return err
	}
	if err := sm.WaitTrusted(ctx); err != nil {
		return err
	}
	o.GetCertificate = sm.GetCertificate
	o.ReadyChecks = map[string]healthz.Checker{"ca-bundle": func(*http.Request) error { return sm.Ready() }}
	return nil
}
