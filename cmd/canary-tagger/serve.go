package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/rest"
	crconfig "sigs.k8s.io/controller-runtime/pkg/client/config"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/canary-tagger/canary-tagger/webhook"
	"github.com/canary-tagger/canary-tagger/webhook/config"
	"github.com/canary-tagger/canary-tagger/webhook/heal"
)

// newServeCommand is `serve`: flags → webhook.Options → webhook.Run. The
// flags are bound to webhook.DefaultOptions, whose values are their defaults.
func newServeCommand(signalContext func() context.Context) *cobra.Command {
	o := webhook.DefaultOptions()
	var rules config.Flags
	zapOpts := zap.Options{} // production: JSON, info
	var selfManaged selfManagedFlags
	var healing healFlags
	cmd := &cobra.Command{
		Use:   "serve [flags]",
		Short: "run the mutating admission webhook server",
		Args:  noArgs(""),
		RunE: func(cmd *cobra.Command, _ []string) error {
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
				return badUsage(err)
			}
			// The webhook server and the healer log from their own goroutines:
			// one lock around the writer keeps their lines whole.
			zapOpts.DestWriter = zapcore.Lock(zapcore.AddSync(cmd.ErrOrStderr()))
			log := zap.New(zap.UseFlagOptions(&zapOpts))
			logf.SetLogger(log) // controller-runtime's own messages
			o.Logger = log.WithName("canary-tagger")
			o.RESTConfig = func() (*rest.Config, error) { return crconfig.GetConfig() }

			ctx := signalContext()
			// Self-managed TLS: a certificate trusted by the caBundle before
			// the server starts (no-op without --self-managed-tls).
			if err := selfManaged.start(ctx, &o); err != nil {
				return failed(err)
			}
			// The healer never stops the webhook server: heal.Run returns
			// only when ctx is done.
			o.Readiness = &webhook.Readiness{} // the healer restarts Agent pods only while ready
			servers, ctx := errgroup.WithContext(ctx)
			servers.Go(func() error { return webhook.Run(ctx, o) })
			if healing.enabled {
				servers.Go(func() error { return heal.Run(ctx, healing.options(o, selfManaged.webhookConfigName)) })
			}
			if err := servers.Wait(); err != nil {
				return failed(err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Port, "port", o.Port, "port of the webhook server (HTTPS)")
	f.StringVar(&o.Host, "host", o.Host, "address the webhook server binds (default: all)")
	f.StringVar(&o.CertDir, "cert-dir", o.CertDir, "directory with the serving certificate and key; reloaded when they change")
	f.StringVar(&o.CertName, "cert-name", o.CertName, "certificate file in --cert-dir")
	f.StringVar(&o.KeyName, "key-name", o.KeyName, "private key file in --cert-dir")
	f.StringVar(&o.MetricsAddr, "metrics-bind-address", o.MetricsAddr, `address of /metrics (plain HTTP); "0" disables`)
	f.StringVar(&o.HealthAddr, "health-probe-bind-address", o.HealthAddr, `address of /healthz and /readyz (plain HTTP); "0" disables`)
	f.BoolVar(&o.EnableHTTP2, "enable-http2", o.EnableHTTP2, "offer HTTP/2 on the webhook server (off: CVE-2023-44487)")
	f.BoolVar(&o.CheckWorkloadRef, "check-workload-ref", o.CheckWorkloadRef,
		"read the pod template of a Rollout's workloadRef to check for a label clash (needs get on deployments, replicasets, podtemplates)")
	selfManaged.register(f) // --self-managed-tls and its flags (serve_selfmanaged.go)
	f.StringVar(&selfManaged.webhookConfigName, "webhook-config-name", defaultWebhookConfigName,
		"this install's MutatingWebhookConfiguration: its selectors are what healing covers; with --self-managed-tls its webhooks get the caBundle")
	// The rules' flags, --heal and its flags (serve_heal.go), --kubeconfig
	// (for the workloadRef check and healing out of cluster) and --zap-*.
	f.AddGoFlagSet(goFlags(rules.Register, healing.register, crconfig.RegisterFlags, zapOpts.BindFlags))
	return cmd
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
