package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/canary-tagger/canary-tagger/webhook/config"
	"github.com/canary-tagger/canary-tagger/webhook/offline"
)

const mutateHelp = `Applies canary-tagger's mutation to Kubernetes manifests, as the webhook would
at admission: Argo Rollouts with canary steps get the role label in
stableMetadata/canaryMetadata; Datadog Agent DaemonSets (pod template matching
--agent-selector) and agent Pods get the label mapped in
DD_KUBERNETES_POD_LABELS_AS_TAGS. Reads YAML or JSON, multi-document, List
kinds included, and writes the same stream to stdout: documents it does not
change are written back byte for byte; changed ones get the JSON Patch
operations the webhook would send and keep their comments and key order
(YAML is re-encoded with a 2-space indent, JSON indented by 2). What changed
or needs a look is reported on stderr.

Reads stdin when no -f is given. As a Helm post-renderer:
  helm install dd datadog/datadog --post-renderer canary-tagger --post-renderer-args mutate

Exit status: 0 done; 1 with --check, some document would be written
differently (--check agrees with what mutate writes); 2 error
(bad flag, unreadable file, unparsable document): nothing is written.`

// newMutateCommand is `mutate` (contract 6).
func newMutateCommand() *cobra.Command {
	var files []string
	var recursive, check bool
	var shared config.Flags // shared with serve
	cmd := &cobra.Command{
		Use:   "mutate [-f FILE|DIR|-]... [-R] [--check] [flags]",
		Short: "apply the same mutation to YAML/JSON manifests (stdin or -f)",
		Long:  mutateHelp,
		Args:  noArgs(" (name files with -f)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			rules, err := shared.Validate()
			if err != nil {
				return badUsage(err)
			}
			inputs, err := offline.Read(files, recursive, cmd.InOrStdin())
			if err != nil {
				return badUsage(err)
			}
			// Everything is read, parsed and mutated before a byte is
			// written, so an error in the last document leaves stdout empty
			// (contract 7).
			res, err := offline.Process(inputs, offline.Options{Rollout: rules.Rollout, AgentPod: rules.AgentPod})
			if err != nil {
				return badUsage(err)
			}
			for _, n := range res.Notes {
				fmt.Fprintln(cmd.ErrOrStderr(), n)
			}
			if check {
				if n := res.Changed(); n > 0 {
					return exitError{code: 1, err: fmt.Errorf("--check: %d of %d documents would change", n, len(res.Docs))}
				}
				return nil
			}
			if _, err := res.WriteTo(cmd.OutOrStdout()); err != nil {
				return badUsage(fmt.Errorf("writing the output: %w", err))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&files, "filename", "f", nil, "manifest `FILE`, directory (its *.yaml, *.yml, *.json files) or - for stdin; repeatable")
	f.BoolVarP(&recursive, "recursive", "R", false, "with -f DIR, also read the files of its subdirectories")
	f.BoolVar(&check, "check", false, "write nothing; exit 1 if any document would change (for CI)")
	f.AddGoFlagSet(goFlags(shared.Register))
	return cmd
}
