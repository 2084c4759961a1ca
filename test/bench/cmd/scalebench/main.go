// Command scalebench is `make scale`: canary-tagger at the scale its users
// run. One kube-apiserver and etcd (envtest), kube-controller-manager,
// kube-scheduler and kwok with --nodes fake nodes (package controlplane),
// and `canary-tagger serve` as a local process registered through the
// MutatingWebhookConfiguration rendered from manifests/ (failurePolicy
// Ignore, as installed). In one run it measures:
//
//   - the Datadog node-Agent DaemonSet of the Helm render: one agent pod per
//     node, time until all are Running, with and without canary-tagger in
//     alternating cycles after a warm-up;
//   - --rollouts Rollouts created at once by --clients parallel clients, the
//     same way;
//   - the webhook stopped for --outage in the middle of such a burst, then
//     started again with --heal-interval: what was admitted unlabelled and
//     how long healing takes to repair it;
//   - serve's memory while healing with --heal-rollouts Rollouts in the cluster.
//
// It prints a report and with --out writes it into its own section of
// docs/benchmarks.md. It exits non-zero when a gate (only exact figures: no
// object missed while canary-tagger is up, no fail-open, repair within one
// heal interval + 30 s, serve's memory, no write in an idle heal pass) fails
// or cannot be evaluated, e.g. because the binary has no healing.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

type options struct {
	out, canaryTagger string
	nodes             int
	cycles            int
	rollouts          int
	clients           int
	outage            time.Duration
	healInterval      time.Duration
	healRollouts      int
	keep              bool
}

func main() {
	var o options
	flag.StringVar(&o.out, "out", "", "also write the report into its section of this Markdown file (docs/benchmarks.md)")
	flag.StringVar(&o.canaryTagger, "canary-tagger", "", "canary-tagger binary (default: built from this repository into the run's temporary directory)")
	flag.IntVar(&o.nodes, "nodes", 1000, "kwok nodes, hence agent pods (fewer if this machine's memory cannot hold them: the report says so)")
	flag.IntVar(&o.cycles, "cycles", 2, "timed cycles with and without canary-tagger each, alternating, after one warm-up cycle")
	flag.IntVar(&o.rollouts, "rollouts", 1000, "Rollouts per burst")
	flag.IntVar(&o.clients, "clients", 20, "parallel clients of a burst")
	flag.DurationVar(&o.outage, "outage", 30*time.Second, "how long the webhook is stopped in the middle of a burst")
	flag.DurationVar(&o.healInterval, "heal-interval", 10*time.Second, "serve's --heal-interval")
	flag.IntVar(&o.healRollouts, "heal-rollouts", 5000, "Rollouts in the cluster while serve's memory is measured")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (process logs)")
	flag.Parse()
	if err := o.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "scalebench:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "scalebench:", err)
		os.Exit(1)
	}
}

func (o options) validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int
	}{{"nodes", o.nodes}, {"cycles", o.cycles}, {"rollouts", o.rollouts}, {"clients", o.clients}} {
		if f.v < 1 {
			errs = append(errs, fmt.Errorf("--%s=%d: must be at least 1", f.name, f.v))
		}
	}
	if o.outage <= 0 || o.healInterval <= 0 {
		errs = append(errs, errors.New("--outage and --heal-interval must be positive"))
	}
	if o.healRollouts < o.rollouts {
		errs = append(errs, fmt.Errorf("--heal-rollouts=%d: must be at least --rollouts=%d (the outage's Rollouts stay)", o.healRollouts, o.rollouts))
	}
	return errors.Join(errs...)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func run(ctx context.Context, o options) (err error) {
	started := time.Now()
	c, err := up(ctx, o)
	if c != nil {
		// Logs are kept when the run broke, not when it measured a miss.
		defer func() { err = errors.Join(err, c.down(o.keep || (err != nil && !errors.As(err, new(gatesNotMet))))) }()
	}
	if err != nil {
		return err
	}
	rep := &report{options: o, cluster: c.describe()}

	if rep.daemonSet, err = c.daemonSetScenario(ctx, o); err != nil {
		return fmt.Errorf("DaemonSet scenario: %w", err)
	}
	if rep.burst, err = c.burstScenario(ctx, o); err != nil {
		return fmt.Errorf("Rollout burst scenario: %w", err)
	}
	if rep.outage, err = c.outageScenario(ctx, o); err != nil {
		return fmt.Errorf("outage scenario: %w", err)
	}
	if rep.memory, err = c.memoryScenario(ctx, o); err != nil {
		return fmt.Errorf("memory scenario: %w", err)
	}
	rep.controlPlane = c.controlPlaneMemory()
	rep.elapsed = time.Since(started)

	out := rep.render()
	fmt.Print(out)
	if o.out != "" {
		if err := writeSection(o.out, out); err != nil {
			return err
		}
		logf("wrote its section of %s", o.out)
	}
	if failed := rep.failedGates(); len(failed) > 0 {
		return gatesNotMet(failed)
	}
	return nil
}

// gatesNotMet is a run that measured everything and missed a target.
type gatesNotMet []string

func (g gatesNotMet) Error() string {
	return fmt.Sprintf("%d gate(s) not met:\n  %s", len(g), strings.Join(g, "\n  "))
}
