// Command admissionbench is `make bench`: what canary-tagger costs the people
// who write Rollouts. In one envtest kube-apiserver it times creates of the
// seed Rollout in one namespace per contender (no webhook, canary-tagger's
// admission policies as the chart renders them, the no-op webhook, the no-op
// webhook answering canary-tagger's patch, canary-tagger), interleaved round
// by round. Then it
// reads canary-tagger's RSS at 50 reviews/s and, with no target, the load
// generator's throughput against the no-op. It prints one report and with
// --out writes it into its own section of docs/benchmarks.md (the rest of
// the file, make scale's section included, is left as it is).
//
// canary-tagger is bin/canary-tagger (`make build`), run as `serve` on
// 127.0.0.1; nothing of the root module is imported.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/canary-tagger/canary-tagger/test/bench"
	"github.com/canary-tagger/canary-tagger/test/internal/harness"
)

type options struct {
	out, canaryTagger                   string
	rounds, warmupRounds, meteredRounds int
	rssRate                             float64
	rssDuration                         time.Duration
	clients, throughputRounds           int
	throughputDuration                  time.Duration
	keep                                bool
}

func main() {
	var o options
	flag.StringVar(&o.out, "out", "", "also write the report into its section of this Markdown file (docs/benchmarks.md)")
	flag.StringVar(&o.canaryTagger, "canary-tagger", "", "canary-tagger binary (default: <repo>/bin/canary-tagger, from `make build`)")
	flag.IntVar(&o.rounds, "n", 1600, "timed creates per namespace (rounds of one create per contender)")
	flag.IntVar(&o.warmupRounds, "warmup-rounds", 20, "untimed rounds first")
	flag.IntVar(&o.meteredRounds, "metered-rounds", 100, "rounds after the timed ones with a metrics scrape after every create (admit step per contender)")
	flag.Float64Var(&o.rssRate, "rss-rate", 50, "reviews/s for the RSS measurement")
	flag.DurationVar(&o.rssDuration, "rss-duration", 15*time.Second, "length of the RSS measurement per server")
	flag.IntVar(&o.clients, "clients", 8, "keep-alive HTTPS clients of the load generator")
	flag.IntVar(&o.throughputRounds, "throughput-rounds", 2, "max-rate runs per server, alternating")
	flag.DurationVar(&o.throughputDuration, "throughput-duration", 3*time.Second, "length of one max-rate run")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (certificates, server logs)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "admissionbench:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func run(ctx context.Context, o options) (err error) {
	started := time.Now()
	machine := bench.ThisMachine()
	repo, err := harness.RepoRoot()
	if err != nil {
		return err
	}
	if o.canaryTagger == "" {
		if o.canaryTagger, err = bench.CanaryTaggerBinary(repo); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp("", "admissionbench-")
	if err != nil {
		return err
	}
	var servers []*bench.Server
	defer func() {
		for _, s := range servers {
			s.Stop(10 * time.Second)
		}
		if o.keep || err != nil {
			logf("kept %s (server logs)", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()

	noopBin, err := bench.BuildNoop(ctx, repo, dir)
	if err != nil {
		return err
	}
	ca, err := bench.NewCA("admissionbench")
	if err != nil {
		return err
	}
	certDir := filepath.Join(dir, "certs")
	if _, err := ca.WriteServing(certDir); err != nil {
		return err
	}
	bodies, err := bench.Mix(repo)
	if err != nil {
		return err
	}
	load := bench.Load{TLS: bench.ClientTLS(ca), Bodies: bodies, Clients: o.clients}

	ct, err := bench.StartCanaryTagger(ctx, o.canaryTagger, certDir, filepath.Join(dir, "canary-tagger.log"))
	if err != nil {
		return err
	}
	servers = append(servers, ct)
	noop, err := bench.StartNoop(ctx, "no-op webhook", noopBin, certDir, filepath.Join(dir, "noop.log"))
	if err != nil {
		return err
	}
	servers = append(servers, noop)
	noopPatch, err := bench.StartNoop(ctx, "no-op webhook with the seed's patch", noopBin, certDir, filepath.Join(dir, "noop-patch.log"), "--static-patch")
	if err != nil {
		return err
	}
	servers = append(servers, noopPatch)
	for _, s := range servers {
		if err := s.WaitReady(ctx, load, &bodies[0], 30*time.Second); err != nil {
			return err
		}
	}

	api, err := bench.StartAPIServer(ctx, repo, logf)
	if err != nil {
		return err
	}
	// canary-tagger's policy install as shipped: the chart rendered with
	// rollouts.admission=policy and the default settings, opt-in so that it
	// selects only its own namespace.
	policy, err := bench.ShippedPolicy(repo, api)
	if err != nil {
		api.Stop()
		return err
	}
	creates := bench.Creates{
		Contenders: []bench.Contender{
			{Key: "none", Title: "no webhook (baseline)"},
			{Key: "policy", Title: "canary-tagger's policies (rollouts.admission=policy, in the apiserver)", Policy: policy, Mutates: true},
			{Key: "noop", Title: "no-op webhook (controller-runtime, patches nothing)", Webhook: noop},
			{Key: "noop-patch", Title: "no-op webhook answering canary-tagger's patch", Webhook: noopPatch, Mutates: true},
			{Key: "canary-tagger", Title: "canary-tagger", Webhook: ct, Mutates: true},
		},
		CAPEM:  ca.CertPEM,
		Rounds: o.rounds, WarmupRounds: o.warmupRounds, MeteredRounds: o.meteredRounds,
		Logf: logf,
	}
	logf("in-apiserver creates: %d contenders × %d timed creates, interleaved", len(creates.Contenders), o.rounds)
	results, err := creates.Run(ctx, api, repo)
	if stopErr := api.Stop(); err == nil && stopErr != nil {
		err = stopErr
	}
	if err != nil {
		return fmt.Errorf("in-apiserver benchmark: %w", err)
	}
	for _, s := range servers {
		if err := s.Proc.Exited(); err != nil {
			return fmt.Errorf("%s exited: %w\n%s", s.Name, err, s.Proc.Tail(20))
		}
	}

	// RSS at the rate the target names, the whole body mix, sampled every
	// 100 ms; the no-op beside it for the floor of a controller-runtime server.
	rss := map[*bench.Server]int64{}
	loadErrors := 0
	var loadErrorSamples []string
	for _, s := range []*bench.Server{ct, noop} {
		l := load
		l.URL, l.Rate, l.Duration, l.Warmup, l.ExpectPatch = s.URL, o.rssRate, o.rssDuration, time.Second, s == ct
		sampler := bench.SampleRSS(s.Pid(), 100*time.Millisecond)
		r, err := l.Run(ctx)
		rss[s] = bench.MaxOf(sampler.Stop())
		if err != nil {
			return err
		}
		loadErrors += r.Errors
		loadErrorSamples = append(loadErrorSamples, r.ErrorSamples...)
		logf("%s at %.0f reviews/s: %d ok, %d failed, peak RSS %.1f MiB", s.Name, o.rssRate, r.OK, r.Errors, mib(rss[s]))
	}

	// The load generator's throughput ratio: no target, for the record.
	maxRate := map[*bench.Server][]bench.Result{}
	if err := bench.Alternate([]*bench.Server{noop, ct}, o.throughputRounds, func(round int, s *bench.Server) error {
		l := load
		l.URL, l.Duration, l.Warmup, l.ExpectPatch = s.URL, o.throughputDuration, time.Second, s == ct
		r, err := l.Run(ctx)
		if err != nil {
			return err
		}
		maxRate[s] = append(maxRate[s], r)
		loadErrors += r.Errors
		loadErrorSamples = append(loadErrorSamples, r.ErrorSamples...)
		logf("%s at max rate, round %d: %.0f reviews/s", s.Name, round+1, r.Throughput())
		return nil
	}); err != nil {
		return err
	}
	for _, s := range servers {
		if err := s.Proc.Exited(); err != nil {
			return fmt.Errorf("%s exited: %w\n%s", s.Name, err, s.Proc.Tail(20))
		}
	}

	rep := report{
		options: o, machine: machine, elapsed: time.Since(started), contenders: results,
		rssCanaryTagger: rss[ct], rssNoop: rss[noop],
		throughputNoop:         bench.Merge(maxRate[noop]...).Throughput(),
		throughputCanaryTagger: bench.Merge(maxRate[ct]...).Throughput(),
		loadErrors:             loadErrors, loadErrorSamples: loadErrorSamples,
	}
	table := rep.table()
	fmt.Print(table)
	if o.out != "" {
		if err := writeSection(o.out, rep.markdown(table)); err != nil {
			return err
		}
		logf("wrote %s", o.out)
	}
	if n := rep.failures(); n > 0 {
		return errors.New(fmt.Sprint(n, " failed creates or reviews"))
	}
	return nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
