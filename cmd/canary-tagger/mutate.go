package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/canary-tagger/canary-tagger/webhook/config"
	"github.com/canary-tagger/canary-tagger/webhook/offline"
)

const mutateUsage = `Usage: canary-tagger mutate [-f FILE|DIR|-]... [-R] [--check] [shared flags]

Applies canary-tagger's mutation to Kubernetes manifests, as the webhook would
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
(bad flag, unreadable file, unparsable document): nothing is written.

Flags:
`

// runMutate is the `mutate` subcommand (contract 6). Exit codes: 0 ok, 1 --check
// found changes, 2 error (nothing written).
func runMutate(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mutate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var files fileList
	fs.Var(&files, "f", "manifest `FILE`, directory (its *.yaml, *.yml, *.json files) or - for stdin; repeatable")
	fs.Var(&files, "filename", "same as -f `FILE`")
	recursive := fs.Bool("R", false, "with -f DIR, also read the files of its subdirectories")
	check := fs.Bool("check", false, "write nothing; exit 1 if any document would change (for CI)")
	var shared config.Flags
	shared.Register(fs)
	fs.Usage = func() {
		fmt.Fprint(stderr, mutateUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2 // the flag package has printed the error and the usage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "canary-tagger mutate: unexpected argument %q (name files with -f)\n", fs.Arg(0))
		return 2
	}
	rules, err := shared.Validate()
	if err != nil {
		fmt.Fprintf(stderr, "canary-tagger mutate: %v\n", err)
		return 2
	}
	inputs, err := offline.Read(files, *recursive, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "canary-tagger mutate: %v\n", err)
		return 2
	}
	// Everything is read, parsed and mutated before a byte is written, so an
	// error in the last document leaves stdout empty (contract 7).
	res, err := offline.Process(inputs, offline.Options{Rollout: rules.Rollout, AgentPod: rules.AgentPod})
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stderr, "canary-tagger mutate: %s\n", line)
		}
		return 2
	}
	for _, n := range res.Notes {
		fmt.Fprintln(stderr, n)
	}
	if *check {
		if n := res.Changed(); n > 0 {
			fmt.Fprintf(stderr, "canary-tagger mutate --check: %d of %d documents would change\n", n, len(res.Docs))
			return 1
		}
		return 0
	}
	if _, err := res.WriteTo(stdout); err != nil {
		fmt.Fprintf(stderr, "canary-tagger mutate: writing the output: %v\n", err)
		return 2
	}
	return 0
}

// fileList is a repeatable -f.
type fileList []string

func (f *fileList) String() string { return strings.Join(*f, ",") }

func (f *fileList) Set(v string) error {
	*f = append(*f, v)
	return nil
}
