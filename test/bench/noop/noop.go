// Package noop is the baseline of the benchmarks: a controller-runtime
// webhook.Server with canary-tagger's TLS settings (TLS ≥ 1.2, HTTP/1.1 only
// unless HTTP/2 is asked for, certificates hot-reloaded from a directory) whose
// two webhooks allow everything, unchanged. It is the floor any webhook pays.
package noop

import (
	"context"
	"crypto/tls"

	"gomodules.xyz/jsonpatch/v2"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Options of the no-op server.
type Options struct {
	Host, CertDir string
	Port          int
	EnableHTTP2   bool
	// StaticPatch makes /mutate-rollout answer every review with the patch
	// canary-tagger gives the seed Rollout (two adds), computed once: the
	// floor of a webhook that mutates, i.e. what the apiserver spends
	// applying a patch, without any work in the webhook.
	StaticPatch bool
}

// SeedPatch is canary-tagger's patch for the seed Rollout.
var SeedPatch = []jsonpatch.JsonPatchOperation{
	jsonpatch.NewOperation("add", "/spec/strategy/canary/stableMetadata", map[string]any{"labels": map[string]any{"role": "stable"}}),
	jsonpatch.NewOperation("add", "/spec/strategy/canary/canaryMetadata", map[string]any{"labels": map[string]any{"role": "canary"}}),
}

// Paths the baseline serves: the same as canary-tagger's.
var Paths = []string{"/mutate-rollout", "/mutate-agent-pod"}

// TLSOpts are the TLS settings canary-tagger's server uses (contract 5).
func TLSOpts(enableHTTP2 bool) []func(*tls.Config) {
	return []func(*tls.Config){func(c *tls.Config) {
		c.MinVersion = tls.VersionTLS12
		if !enableHTTP2 {
			c.NextProtos = []string{"http/1.1"}
		}
	}}
}

// Run serves until ctx is done, then shuts down gracefully.
func Run(ctx context.Context, o Options) error {
	srv := webhook.NewServer(webhook.Options{
		Host: o.Host, Port: o.Port, CertDir: o.CertDir,
		TLSOpts: TLSOpts(o.EnableHTTP2),
	})
	allow := &webhook.Admission{Handler: admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		return admission.Allowed("")
	})}
	for _, p := range Paths {
		if p == "/mutate-rollout" && o.StaticPatch {
			srv.Register(p, &webhook.Admission{Handler: admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
				return admission.Patched("", SeedPatch...)
			})})
			continue
		}
		srv.Register(p, allow)
	}
	return srv.Start(ctx)
}
