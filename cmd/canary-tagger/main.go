// Command canary-tagger labels Argo Rollouts canary and stable pods and makes
// the Datadog Agent tag them (see docs/contract.md). Subcommands: serve (the admission
// webhook), mutate (the same rules on manifests, offline), doctor (what a
// cluster still lacks, read-only), version.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"

	"sigs.k8s.io/controller-runtime/pkg/manager/signals"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

const usage = `usage: canary-tagger <command> [flags]

commands:
  serve     run the mutating admission webhook server
  mutate    apply the same mutation to YAML/JSON manifests (stdin or -f)
  doctor    list what is not covered yet in a cluster, with the commands that fix it (read-only)
  version   print the version

Run "canary-tagger <command> -h" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, signals.SetupSignalHandler))
}

// run dispatches a subcommand and returns the exit code: 0 ok, 1 failure at
// run time (or mutate --check found changes), 2 bad usage. signalContext is
// called only by serve, once its flags are valid (it may be called once per
// process).
func run(args []string, stdin io.Reader, stdout, stderr io.Writer, signalContext func() context.Context) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return runServe(args[1:], stderr, signalContext)
	case "mutate":
		return runMutate(args[1:], stdin, stdout, stderr)
	case "doctor":
		return runDoctor(context.Background(), args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "canary-tagger %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "canary-tagger: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
