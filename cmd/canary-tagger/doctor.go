package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	crconfig "sigs.k8s.io/controller-runtime/pkg/client/config"

	"github.com/canary-tagger/canary-tagger/cmd/canary-tagger/internal/doctor"
	"github.com/canary-tagger/canary-tagger/webhook/config"
)

// runDoctor is the `doctor` subcommand: flags → doctor.Run → report. Exit 0
// when nothing needs doing, 1 when something does, 2 on error (bad flags, no
// cluster, a check that could not be made).
func runDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("canary-tagger doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var rules config.Flags
	rules.Register(fs)
	o := doctor.Options{}
	var output, kubeContext string
	fs.StringVar(&output, "o", "text", "output: text or json")
	fs.StringVar(&o.Namespace, "n", "", "check Rollouts and agent pods in this namespace only (default: all)")
	fs.StringVar(&o.Namespace, "namespace", "", "same as -n")
	fs.StringVar(&o.WebhookConfiguration, "webhook-configuration", "canary-tagger", "name of canary-tagger's MutatingWebhookConfiguration (the Helm release's full name)")
	fs.StringVar(&o.ServingSecret, "serving-secret", "",
		"NAMESPACE/NAME of the Secret with the webhook's serving certificate (default: <webhook-configuration>-webhook-tls or <webhook-configuration>-self-managed-tls in the Service's namespace)")
	fs.StringVar(&o.MinArgoRollouts, "min-argo-rollouts", "1.10.0", "oldest Argo Rollouts controller version that is fine")
	fs.DurationVar(&o.Timeout, "timeout", 5*time.Second, "TLS handshake timeout with a webhook registered by URL")
	fs.StringVar(&kubeContext, "context", "", "kubeconfig context (default: the current one)")
	crconfig.RegisterFlags(fs) // --kubeconfig; in cluster without it
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "canary-tagger doctor: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return 2
	}
	if output != "text" && output != "json" {
		fmt.Fprintf(stderr, "canary-tagger doctor: -o=%q: want text or json\n", output)
		return 2
	}
	var err error
	if o.Rules, err = rules.Validate(); err != nil {
		fmt.Fprintf(stderr, "canary-tagger doctor: %v\n", err)
		return 2
	}
	fs.Visit(func(f *flag.Flag) { o.AgentSelectorSet = o.AgentSelectorSet || f.Name == "agent-selector" })

	cfg, err := crconfig.GetConfigWithContext(kubeContext)
	if err != nil {
		fmt.Fprintf(stderr, "canary-tagger doctor: %v\n", err)
		return 2
	}
	rep, err := doctor.Run(ctx, cfg, o)
	if err != nil {
		fmt.Fprintf(stderr, "canary-tagger doctor: %v\n", err)
		return 2
	}
	write := doctor.WriteText
	if output == "json" {
		write = doctor.WriteJSON
	}
	if err := write(stdout, rep); err != nil {
		fmt.Fprintf(stderr, "canary-tagger doctor: %v\n", err)
		return 2
	}
	return rep.ExitCode()
}
