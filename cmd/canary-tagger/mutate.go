package main

import (
	"github.com/spf13/cobra"

	"github.com/canary-tagger/canary-tagger/webhook/config"
	"github.com/canary-tagger/canary-tagger/webhook/offline"
)

const mutateHelp = `Applies canary-tagger's mutation to Kubernetes manifests, as the webhook would
at admission: Argo Rollouts with canary steps get the role label in
stableMetadata/canaryMetadata; Datadog Agent DaemonSets (pod template matching
--agent-selector) and agent Pods get the label mapped in
DD_KUBERNETES_POD_LABELS_AS_TAGS; Datadog Operator DatadogAgents
(datadoghq.com/v2alpha1) get it in spec.global.podLabelsAsTags, unless the
Agent would lose a mapping or the Operator would not apply it (the report says
why). Reads YAML or JSON, multi-document, List
kinds included, and writes the same stream to stdout: documents it does not
change are written back byte for byte; changed ones get the JSON Patch
operations the webhook would send and keep their comments and key order
(YAML is re-encoded with a 2-space indent, JSON indented by 2). What changed
or needs a look is reported on stderr.

Reads stdin when no -f is given. As a Helm post-renderer:
  helm install dd datadog/datadog --post-renderer canary-tagger --post-renderer-args mutate

With -w the changed files are written in place instead (like gofmt -w);
files it does not change are not touched. With -R or -w each file stands
alone: a file that does not parse is named on stderr and left out, the
others are processed (and written), and the exit status is 2 at the end.
--check lists on stderr each file that would change.

As a KRM function (kustomize exec transformer, kpt): a config.kubernetes.io/v1
ResourceList on stdin is answered with the ResourceList, its items mutated
and its results saying what the report says; settings may come from the
functionConfig ConfigMap's data (labelKey, stableValue, canaryValue, tagName,
blueGreen, agentSelector), over the flags.

Exit status: 0 done; 1 with --check, some document would be written
differently (--check agrees with what mutate writes), or a KRM
functionConfig is invalid (the items are answered unchanged); 2 error
(bad flag, unreadable file, unparsable document): without -R or -w
nothing is written.`

// newMutateCommand is `mutate` (contract 6): its flags; the run is
// offline.Command's.
func newMutateCommand() *cobra.Command {
	var files []string
	var recursive, check, write bool
	var shared config.Flags // shared with serve
	cmd := &cobra.Command{
		Use:   "mutate [-f FILE|DIR|-]... [-R] [-w | --check] [flags]",
		Short: "apply the same mutation to YAML/JSON manifests (stdin or -f)",
		Long:  mutateHelp,
		Args:  noArgs(" (name files with -f)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			run := offline.Command{Files: files, Recursive: recursive, Check: check, Write: write, Settings: shared}
			if code := run.Run(cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()); code != 0 {
				return exitError{code: code} // offline.Command has said why
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&files, "filename", "f", nil, "manifest `FILE`, directory (its *.yaml, *.yml, *.json files) or - for stdin; repeatable")
	f.BoolVarP(&recursive, "recursive", "R", false, "with -f DIR, also read the files of its subdirectories")
	f.BoolVar(&check, "check", false, "write nothing; list the files that would change on stderr and exit 1 if any (for CI)")
	f.BoolVarP(&write, "write", "w", false, "write the changed files in place (atomically, mode kept) instead of the stream; unchanged files are not touched")
	f.AddGoFlagSet(goFlags(shared.Register))
	return cmd
}
