package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	crconfig "sigs.k8s.io/controller-runtime/pkg/client/config"

	"github.com/canary-tagger/canary-tagger/cmd/canary-tagger/internal/doctor"
	"github.com/canary-tagger/canary-tagger/webhook/config"
)

// newDoctorCommand is `doctor`: flags → doctor.Run → report. Exit 0 when
// nothing needs doing, 1 when something does, 2 on error (bad flags, no
// cluster, a check that could not be made).
func newDoctorCommand() *cobra.Command {
	o := doctor.Options{}
	var rules config.Flags
	var output, kubeContext string
	cmd := &cobra.Command{
		Use:   "doctor [flags]",
		Short: "list what is not covered yet in a cluster, with the commands that fix it (read-only)",
		Args:  noArgs(""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return badUsage(fmt.Errorf("-o=%q: want text or json", output))
			}
			var err error
			if o.Rules, err = rules.Validate(); err != nil {
				return badUsage(err)
			}
			o.AgentSelectorSet = cmd.Flags().Changed("agent-selector")
			cfg, err := crconfig.GetConfigWithContext(kubeContext)
			if err != nil {
				return badUsage(err)
			}
			rep, err := doctor.Run(cmd.Context(), cfg, o)
			if err != nil {
				return badUsage(err)
			}
			write := doctor.WriteText
			if output == "json" {
				write = doctor.WriteJSON
			}
			if err := write(cmd.OutOrStdout(), rep); err != nil {
				return badUsage(err)
			}
			if code := rep.ExitCode(); code != 0 {
				return exitError{code: code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&output, "output", "o", "text", "output: text or json")
	f.StringVarP(&o.Namespace, "namespace", "n", "", "check Rollouts and agent pods in this namespace only (default: all)")
	f.StringVar(&o.WebhookConfiguration, "webhook-configuration", "canary-tagger", "name of canary-tagger's MutatingWebhookConfiguration (the Helm release's full name)")
	f.StringVar(&o.ServingSecret, "serving-secret", "",
		"NAMESPACE/NAME of the Secret with the webhook's serving certificate (default: <webhook-configuration>-webhook-tls or <webhook-configuration>-self-managed-tls in the Service's namespace)")
	f.StringVar(&o.MinArgoRollouts, "min-argo-rollouts", "1.10.0", "oldest Argo Rollouts controller version that is fine")
	f.DurationVar(&o.Timeout, "timeout", 5*time.Second, "TLS handshake timeout with a webhook registered by URL")
	f.StringVar(&kubeContext, "context", "", "kubeconfig context (default: the current one)")
	f.AddGoFlagSet(goFlags(rules.Register, crconfig.RegisterFlags)) // --kubeconfig; in cluster without it
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}
