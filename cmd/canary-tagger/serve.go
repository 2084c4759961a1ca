package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/rest"
	crconfig "sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/canary-tagger/canary-tagger/webhook"
	"github.com/canary-tagger/canary-tagger/webhook/config"
	"github.com/canary-tagger/canary-tagger/webhook/heal"
)

// runServe is the `serve` subcommand: flags → webhook.Options → webhook.Run.
func runServe(args []string, stderr io.Writer, signalContext func() context.Context) int {
	fs := flag.NewFlagSet("canary-tagger serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var rules config.Flags
	rules.Register(fs)
	o := webhook.Options{}
	fs.IntVar(&o.Port, "port", 9443, "port of the webhook server (HTTPS)")
	fs.StringVar(&o.Host, "host", "", "address the webhook server binds (default: all)")
	fs.StringVar(&o.CertDir, "cert-dir", filepath.Join("/tmp", "k8s-webhook-server", "serving-certs"),
		"directory with the serving certificate and key; reloaded when they change")
	fs.StringVar(&o.CertName, "cert-name", "tls.crt", "certificate file in --cert-dir")
	fs.StringVar(&o.KeyName, "key-name", "tls.key", "private key file in --cert-dir")
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8080", `address of /metrics (plain HTTP); "0" disables`)
	fs.StringVar(&o.HealthAddr, "health-probe-bind-address", ":8081", `address of /healthz and /readyz (plain HTTP); "0" disables`)
	fs.BoolVar(&o.EnableHTTP2, "enable-http2", false, "offer HTTP/2 on the webhook server (off: CVE-2023-44487)")
	fs.BoolVar(&o.CheckWorkloadRef, "check-workload-ref", true,
		"read the pod template of a Rollout's workloadRef to check for a label clash (needs get on deployments, replicasets, podtemplates)")
	crconfig.RegisterFlags(fs) // --kubeconfig, for the workloadRef check out of cluster
	zapOpts := zap.Options{}   // production: JSON, info
	zapOpts.BindFlags(fs)
	var selfManaged selfManagedFlags // --self-managed-tls and its flags (serve_selfmanaged.go)
	selfManaged.register(fs)
	fs.StringVar(&selfManaged.webhookConfigName, "webhook-config-name", defaultWebhookConfigName,
		"this install's MutatingWebhookConfiguration: its selectors are what healing covers; with --self-managed-tls its webhooks get the caBundle")
	var healing healFlags // --heal and its flags (serve_heal.go)
	healing.register(fs)

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2 // flag has printed the error and the usage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "canary-tagger serve: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return 2
	}
	var err error
	if o.Rules, err = rules.Validate(); err == nil {
		err = validateServe(o)
	}
	if err == nil {
		err = selfManaged.validate()
	}
	if err == nil {
		err = healing.validate()
	}
	if err != nil {
		fmt.Fprintf(stderr, "canary-tagger serve: %v\n", err)
		return 2
	}

	zapOpts.DestWriter = stderr
	log := zap.New(zap.UseFlagOptions(&zapOpts))
	logf.SetLogger(log) // controller-runtime's own messages
	o.Logger = log.WithName("canary-tagger")
	o.RESTConfig = func() (*rest.Config, error) { return crconfig.GetConfig() }

	ctx := signalContext()
	// Self-managed TLS: certificate in --cert-dir and trusted by the caBundle
	// before the server starts (no-op without --self-managed-tls).
	ready, err := selfManaged.start(ctx, o, o.Logger)
	if err != nil {
		fmt.Fprintf(stderr, "canary-tagger serve: %v\n", err)
		return 1
	}
	if ready != nil {
		// Not ready while the caBundle does not trust the served certificate.
		o.ReadyChecks = map[string]healthz.Checker{"ca-bundle": func(*http.Request) error { return ready() }}
	}
	// The webhook server and the healer end together; the healer never ends
	// on its own (it retries what fails).
	servers, ctx := errgroup.WithContext(ctx)
	servers.Go(func() error { return webhook.Run(ctx, o) })
	if healing.enabled {
		servers.Go(func() error { return heal.Run(ctx, healing.options(o, selfManaged.webhookConfigName)) })
	}
	if err := servers.Wait(); err != nil {
		fmt.Fprintf(stderr, "canary-tagger serve: %v\n", err)
		return 1
	}
	return 0
}

// validateServe refuses values that would only fail later, naming the flag.
func validateServe(o webhook.Options) error {
	if o.Port < 1 || o.Port > 65535 {
		return fmt.Errorf("--port=%d: must be between 1 and 65535", o.Port)
	}
	if o.CertDir == "" {
		return errors.New("--cert-dir: must not be empty")
	}
	for name, v := range map[string]string{"cert-name": o.CertName, "key-name": o.KeyName} {
		if v == "" || strings.ContainsRune(v, '/') {
			return fmt.Errorf("--%s=%q: must be a file name in --cert-dir", name, v)
		}
	}
	for name, v := range map[string]string{"metrics-bind-address": o.MetricsAddr, "health-probe-bind-address": o.HealthAddr} {
		if v == "0" {
			continue
		}
		if _, port, err := net.SplitHostPort(v); err != nil {
			return fmt.Errorf("--%s=%q: %v (want host:port, :port or 0)", name, v, err)
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			return fmt.Errorf("--%s=%q: bad port", name, v)
		}
	}
	return nil
}
