package main

// Self-managed TLS for `serve` (contract 4, charts/canary-tagger with tls=self-managed):
// the flags, and the step that runs before webhook.Run.

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

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

func (f *selfManagedFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.enabled, "self-managed-tls", false,
		"TLS without cert-manager: a ten-year CA and the serving certificate it signs in --tls-secret, the CA in the caBundle of --webhook-config-name, the certificate renewed into --cert-dir (must be writable)")
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

// start, when --self-managed-tls is on, makes sure a certificate is in
// o.CertDir, keeps it renewed until ctx ends, and returns once the caBundle
// trusts it, so that webhook.Run never serves a certificate the apiserver
// would refuse. It returns the readiness check for /readyz (nil when off).
func (f *selfManagedFlags) start(ctx context.Context, o webhook.Options, log logr.Logger) (func() error, error) {
	if !f.enabled {
		return nil, nil
	}
	cfg, err := o.RESTConfig()
	if err != nil {
		return nil, fmt.Errorf("--self-managed-tls needs the Kubernetes API: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	host := o.Host
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	sm := &certs.SelfManaged{
		Client:            cs,
		Namespace:         f.serviceNamespace,
		SecretName:        f.secret,
		ServiceName:       f.serviceName,
		ClusterDomain:     f.clusterDomain,
		WebhookConfigName: f.webhookConfigName,
		CertDir:           o.CertDir,
		CertName:          o.CertName,
		KeyName:           o.KeyName,
		Lifetime:          f.lifetime,
		ServingAddr:       net.JoinHostPort(host, strconv.Itoa(o.Port)),
		Logger:            log.WithName("self-managed-tls"),
	}
	if err := sm.Start(ctx); err != nil {
		return nil, err
	}
	if err := sm.WaitTrusted(ctx); err != nil {
		return nil, err
	}
	return sm.Ready, nil
}
