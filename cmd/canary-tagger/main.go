// Command canary-tagger labels Argo Rollouts canary and stable pods and makes
// the Datadog Agent tag them (see docs/contract.md). Subcommands: serve (the admission
// webhook), mutate (the same rules on manifests, offline), doctor (what a
// cluster still lacks, read-only), version, and cobra's help and completion.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/manager/signals"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, signals.SetupSignalHandler))
}

// run executes the command line and returns the exit code: 0 ok, 1 failure
// at run time (or mutate --check found changes), 2 bad usage. signalContext
// is called only by serve, once its flags are valid (it may be called once
// per process).
func run(args []string, stdin io.Reader, stdout, stderr io.Writer, signalContext func() context.Context) int {
	versionLine := fmt.Sprintf("canary-tagger %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	var printVersion bool
	root := &cobra.Command{
		Use:   "canary-tagger",
		Short: "Label Argo Rollouts canary and stable pods and make the Datadog Agent tag them",
		Args:  cobra.NoArgs, // and unknown commands
		RunE: func(cmd *cobra.Command, _ []string) error {
			if printVersion {
				fmt.Fprint(cmd.OutOrStdout(), versionLine)
				return nil
			}
			fmt.Fprint(cmd.ErrOrStderr(), cmd.UsageString())
			return exitError{code: 2}
		},
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	// Not cobra's Version: its custom template would link text/template,
	// whose reflection keeps the linker from dropping unused methods (the
	// binary grew by 60%).
	root.Flags().BoolVar(&printVersion, "version", false, "print the version")
	root.AddCommand(
		newServeCommand(signalContext),
		newMutateCommand(),
		newDoctorCommand(),
		&cobra.Command{
			Use: "version", Short: "print the version", Args: noArgs(""),
			Run: func(cmd *cobra.Command, _ []string) { fmt.Fprint(cmd.OutOrStdout(), versionLine) },
		},
	)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)

	cmd, err := root.ExecuteC()
	if err == nil {
		return 0
	}
	var exit exitError
	cobraError := !errors.As(err, &exit) // an unknown command or flag, a bad flag value, an argument
	if cobraError {
		exit = exitError{code: 2, err: err}
	}
	if exit.err != nil {
		for _, line := range strings.Split(exit.err.Error(), "\n") {
			fmt.Fprintf(stderr, "%s: %s\n", cmd.CommandPath(), line)
		}
	}
	if cobraError {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return exit.code
}

// exitError ends a command with an exit code, err printed first if set.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return fmt.Sprintf("exit %d: %v", e.code, e.err) }

// badUsage: exit 2, nothing done (a flag's value refused, a file unreadable).
func badUsage(err error) error { return exitError{code: 2, err: err} }

// failed: exit 1, at run time.
func failed(err error) error { return exitError{code: 1, err: err} }

// noArgs refuses positional arguments, with a hint.
func noArgs(hint string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("unexpected argument %q%s", args[0], hint)
		}
		return nil
	}
}

// goFlags holds the flags of libraries that register on a Go flag.FlagSet
// (controller-runtime's --kubeconfig and --zap-*, config.Flags), for
// pflag's AddGoFlagSet.
func goFlags(register ...func(*flag.FlagSet)) *flag.FlagSet {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	for _, r := range register {
		r(fs)
	}
	return fs
}
