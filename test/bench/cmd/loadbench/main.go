// Command loadbench is the load generator as a tool: it puts keep-alive HTTPS
// load (the body mix of package bench) on `canary-tagger serve` and on the
// no-op controller-runtime webhook in alternating rounds, and prints
// fixed-rate and max-rate latencies, throughput and RSS side by side, with no
// targets (`make bench` is what users feel: cmd/admissionbench). With --soak
// it runs canary-tagger alone at a fixed rate and checks that its RSS stays
// flat (`make soak`).
//
// canary-tagger is bin/canary-tagger (`make build`). Every target is a server
// this program starts on 127.0.0.1; every run is bounded in time and in
// requests.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/canary-tagger/canary-tagger/test/bench"
	"github.com/canary-tagger/canary-tagger/test/internal/harness"
)

type options struct {
	canaryTagger        string
	clients             int
	rate                float64
	fixedDur, maxDur    time.Duration
	fixedRounds, rounds int
	warmup              time.Duration
	soak                time.Duration
	soakRSSLimit        float64
	keep                bool
	only                string
}

func main() {
	var o options
	flag.StringVar(&o.canaryTagger, "canary-tagger", "", "canary-tagger binary (default: <repo>/bin/canary-tagger, from `make build`)")
	flag.IntVar(&o.clients, "clients", 8, "concurrent keep-alive HTTPS clients")
	flag.Float64Var(&o.rate, "rate", 500, "fixed rate, reviews/s")
	flag.DurationVar(&o.fixedDur, "fixed-duration", 8*time.Second, "length of one fixed-rate run")
	flag.IntVar(&o.fixedRounds, "fixed-rounds", 3, "fixed-rate runs per server, alternating")
	flag.DurationVar(&o.maxDur, "max-duration", 4*time.Second, "length of one max-rate run")
	flag.IntVar(&o.rounds, "max-rounds", 3, "max-rate runs per server, alternating")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unrecorded warm-up before each run")
	flag.DurationVar(&o.soak, "soak", 0, "soak mode: canary-tagger alone at --rate for this long; RSS must stay flat")
	flag.Float64Var(&o.soakRSSLimit, "soak-rss-growth", 0.10, "soak: largest allowed RSS growth (last minute vs first minute after warm-up)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (no-op binary, certificates, server logs)")
	flag.StringVar(&o.only, "only", "", "comma-separated body names to send (default: the whole mix), e.g. rollout-seed")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if o.soak > 0 {
		err = soak(ctx, o)
	} else {
		err = benchmark(ctx, o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// setup writes a certificate and starts canary-tagger and, if asked, the
// no-op webhook (built here).
type setup struct {
	repo, dir  string
	certDir    string
	ca         *bench.CA
	ct, noop   *bench.Server
	bodies     []bench.Body
	loadConfig bench.Load
}

func start(ctx context.Context, o options, withNoop bool) (*setup, func(), error) {
	s := &setup{}
	var err error
	if s.repo, err = harness.RepoRoot(); err != nil {
		return nil, nil, err
	}
	if s.dir, err = os.MkdirTemp("", "loadbench-"); err != nil {
		return nil, nil, err
	}
	cleanup := func() {
		if s.ct != nil {
			s.ct.Stop(10 * time.Second)
		}
		if s.noop != nil {
			s.noop.Stop(10 * time.Second)
		}
		if o.keep {
			logf("kept %s", s.dir)
		} else {
			os.RemoveAll(s.dir)
		}
	}
	fail := func(err error) (*setup, func(), error) { cleanup(); return nil, nil, err }

	if s.bodies, err = bench.Mix(s.repo); err != nil {
		return fail(err)
	}
	if o.only != "" {
		var keep []bench.Body
		for _, b := range s.bodies {
			if slices.Contains(strings.Split(o.only, ","), b.Name) {
				keep = append(keep, b)
			}
		}
		if len(keep) == 0 {
			return fail(fmt.Errorf("--only=%s matches no body", o.only))
		}
		s.bodies = keep
	}
	bin := o.canaryTagger
	if bin == "" {
		if bin, err = bench.CanaryTaggerBinary(s.repo); err != nil {
			return fail(err)
		}
	}
	if s.ca, err = bench.NewCA("loadbench"); err != nil {
		return fail(err)
	}
	s.certDir = filepath.Join(s.dir, "certs")
	certDir := s.certDir
	if _, err := s.ca.WriteServing(certDir); err != nil {
		return fail(err)
	}
	s.loadConfig = bench.Load{TLS: bench.ClientTLS(s.ca), Bodies: s.bodies, Clients: o.clients}
	if s.ct, err = bench.StartCanaryTagger(ctx, bin, certDir, filepath.Join(s.dir, "canary-tagger.log")); err != nil {
		return fail(err)
	}
	if err := s.ct.WaitReady(ctx, s.loadConfig, &s.bodies[0], 30*time.Second); err != nil {
		return fail(err)
	}
	if withNoop {
		noopBin, err := bench.BuildNoop(ctx, s.repo, s.dir)
		if err != nil {
			return fail(err)
		}
		if s.noop, err = bench.StartNoop(ctx, "no-op webhook", noopBin, certDir, filepath.Join(s.dir, "noop.log")); err != nil {
			return fail(err)
		}
		if err := s.noop.WaitReady(ctx, s.loadConfig, &s.bodies[0], 30*time.Second); err != nil {
			return fail(err)
		}
	}
	return s, cleanup, nil
}

type serverRuns struct {
	fixed, max []bench.Result
	rssFixed   []int64 // peak RSS of each fixed-rate run
	rssMax     []int64 // peak RSS of each max-rate run
}

func benchmark(ctx context.Context, o options) error {
	machine := bench.ThisMachine()
	s, cleanup, err := start(ctx, o, true)
	if err != nil {
		return err
	}
	defer cleanup()
	bodyNames := make([]string, len(s.bodies))
	for i, b := range s.bodies {
		bodyNames[i] = fmt.Sprintf("%s (%.1f KiB)", b.Name, float64(len(b.JSON))/1024)
	}
	logf("bodies: %s", strings.Join(bodyNames, ", "))

	servers := []*bench.Server{s.noop, s.ct}
	runs := map[*bench.Server]*serverRuns{s.noop: {}, s.ct: {}}
	run := func(srv *bench.Server, rate float64, d time.Duration) (bench.Result, []int64, error) {
		l := s.loadConfig
		l.URL, l.Rate, l.Duration, l.Warmup = srv.URL, rate, d, o.warmup
		l.ExpectPatch = srv == s.ct
		sampler := bench.SampleRSS(srv.Pid(), 100*time.Millisecond)
		r, err := l.Run(ctx)
		samples := sampler.Stop()
		if err != nil {
			return r, samples, err
		}
		if exitErr := srv.Proc.Exited(); exitErr != nil {
			return r, samples, exitErr
		}
		return r, samples, nil
	}
	// Fixed rate first, so that the RSS it sees is not the high-water mark of
	// a max-rate run.
	if err := bench.Alternate(servers, o.fixedRounds, func(round int, srv *bench.Server) error {
		r, rss, err := run(srv, o.rate, o.fixedDur)
		if err != nil {
			return err
		}
		runs[srv].fixed = append(runs[srv].fixed, r)
		runs[srv].rssFixed = append(runs[srv].rssFixed, bench.MaxOf(rss))
		logf("%-15s %4.0f/s   round %d: %6d ok, %d errors, %d late, p50 %s p99 %s, RSS ≤ %s",
			srv.Name, o.rate, round+1, r.OK, r.Errors, r.Late, ms(r.Percentile(50)), ms(r.Percentile(99)), mib(bench.MaxOf(rss)))
		return nil
	}); err != nil {
		return err
	}
	if err := bench.Alternate(servers, o.rounds, func(round int, srv *bench.Server) error {
		r, rss, err := run(srv, 0, o.maxDur)
		if err != nil {
			return err
		}
		runs[srv].max = append(runs[srv].max, r)
		runs[srv].rssMax = append(runs[srv].rssMax, bench.MaxOf(rss))
		logf("%-15s max rate round %d: %6.0f reviews/s, %d errors, p50 %s p99 %s",
			srv.Name, round+1, r.Throughput(), r.Errors, ms(r.Percentile(50)), ms(r.Percentile(99)))
		return nil
	}); err != nil {
		return err
	}

	fmt.Printf("\nmachine: %s, %d cores, %s, %s, load average at start %s\n", machine.CPU, machine.Cores, machine.Go, machine.Kernel, machine.Load)
	fmt.Printf("load: %d keep-alive HTTPS clients (HTTP/1.1), %s round-robin; fixed rate %d × %s per server, max rate %d × %s, alternating; warm-up %s each\n\n",
		o.clients, strings.Join(bodyNames, ", "), o.fixedRounds, o.fixedDur, o.rounds, o.maxDur, o.warmup)
	failed := printTable(o, runs[s.noop], runs[s.ct])
	if failed > 0 {
		return fmt.Errorf("%d failed requests", failed)
	}
	return nil
}

// printTable prints both servers side by side, canary-tagger against the
// no-op; no targets. It returns the number of failed requests.
func printTable(o options, base, ct *serverRuns) int {
	bf, cf := bench.Merge(base.fixed...), bench.Merge(ct.fixed...)
	bm, cm := bench.Merge(base.max...), bench.Merge(ct.max...)
	diff := func(a, b time.Duration) string {
		return fmt.Sprintf("%+.3f ms", float64(a-b)/float64(time.Millisecond))
	}
	fmt.Println("| measure | no-op webhook | canary-tagger | canary-tagger vs no-op |")
	fmt.Println("|---|---:|---:|---:|")
	row := func(measure, base, ct, cmp string) { fmt.Printf("| %s | %s | %s | %s |\n", measure, base, ct, cmp) }
	row(fmt.Sprintf("max rate, %d clients: throughput (reviews/s)", o.clients), fmt.Sprintf("%.0f", bm.Throughput()), fmt.Sprintf("%.0f", cm.Throughput()),
		fmt.Sprintf("%.2f×", cm.Throughput()/bm.Throughput()))
	for _, q := range []float64{50, 99} {
		row(fmt.Sprintf("max rate: p%.0f latency", q), ms(bm.Percentile(q)), ms(cm.Percentile(q)), diff(cm.Percentile(q), bm.Percentile(q)))
	}
	for _, q := range []float64{50, 95, 99} {
		row(fmt.Sprintf("%.0f/s: p%.0f latency", o.rate, q), ms(bf.Percentile(q)), ms(cf.Percentile(q)), diff(cf.Percentile(q), bf.Percentile(q)))
	}
	row(fmt.Sprintf("%.0f/s: max latency", o.rate), ms(bf.Max()), ms(cf.Max()), diff(cf.Max(), bf.Max()))
	row(fmt.Sprintf("%.0f/s: slots missed (all clients busy)", o.rate), fmt.Sprint(bf.Late), fmt.Sprint(cf.Late), "")
	row(fmt.Sprintf("%.0f/s: RSS, median of the runs' peaks", o.rate), mib(median(base.rssFixed)), mib(median(ct.rssFixed)), "")
	row("max rate: RSS, median of the runs' peaks", mib(median(base.rssMax)), mib(median(ct.rssMax)), "")
	row("failed requests (all runs)", fmt.Sprint(bf.Errors+bm.Errors), fmt.Sprint(cf.Errors+cm.Errors), "")
	samples := append(append(append(bf.ErrorSamples, bm.ErrorSamples...), cf.ErrorSamples...), cm.ErrorSamples...)
	if len(samples) > 0 {
		fmt.Printf("\nerrors: %s\n", strings.Join(samples, "; "))
	}
	return bf.Errors + bm.Errors + cf.Errors + cm.Errors
}

func median(xs []int64) int64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// soak runs canary-tagger alone at a fixed rate and samples its RSS.
func soak(ctx context.Context, o options) error {
	s, cleanup, err := start(ctx, o, false)
	if err != nil {
		return err
	}
	defer cleanup()
	warm := min(time.Minute, o.soak/5)
	logf("soak: %s at %.0f reviews/s, %d clients; RSS sampled every 5 s; warm-up %s", o.soak, o.rate, o.clients, warm)
	l := s.loadConfig
	l.URL, l.Rate, l.Duration, l.ExpectPatch = s.ct.URL, o.rate, o.soak, true
	l.MaxRequests = int(o.rate*o.soak.Seconds()) + 1
	type sample struct {
		at  time.Duration
		rss int64
	}
	var samples []sample
	t0 := time.Now()
	done := make(chan struct{})
	var sampling sync.WaitGroup
	sampling.Add(1)
	go func() {
		defer sampling.Done()
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if m, err := bench.ReadMem(s.ct.Pid()); err == nil {
					samples = append(samples, sample{time.Since(t0), m.RSS})
					if len(samples)%6 == 0 {
						logf("soak %s: RSS %s", time.Since(t0).Round(time.Second), mib(m.RSS))
					}
				}
			}
		}
	}()
	r, err := l.Run(ctx)
	close(done)
	sampling.Wait()
	if err != nil {
		return err
	}
	if err := s.ct.Proc.Exited(); err != nil {
		return err
	}
	var first, last []int64
	window := min(time.Minute, o.soak/5)
	for _, smp := range samples {
		if smp.at >= warm && smp.at < warm+window {
			first = append(first, smp.rss)
		}
		if smp.at >= o.soak-window {
			last = append(last, smp.rss)
		}
	}
	if len(first) == 0 || len(last) == 0 {
		return errors.New("soak too short to compare RSS windows (use at least 1m)")
	}
	a, b := mean(first), mean(last)
	growth := b/a - 1
	fmt.Printf("soak %s at %.0f/s: %d ok, %d errors, %d late; p50 %s p99 %s max %s\n", o.soak, o.rate, r.OK, r.Errors, r.Late,
		ms(r.Percentile(50)), ms(r.Percentile(99)), ms(r.Max()))
	fmt.Printf("RSS: first %s after warm-up %s, last %s %s, growth %+.1f%% (limit %+.0f%%); min %s max %s over the run\n",
		window, mib(int64(a)), window, mib(int64(b)), growth*100, o.soakRSSLimit*100, mib(minOf(samples, func(s sample) int64 { return s.rss })), mib(maxOf(samples, func(s sample) int64 { return s.rss })))
	var errs []error
	if r.Errors > 0 {
		errs = append(errs, fmt.Errorf("%d failed requests: %s", r.Errors, strings.Join(r.ErrorSamples, "; ")))
	}
	if growth > o.soakRSSLimit {
		errs = append(errs, fmt.Errorf("RSS grew %.1f%%, more than %.0f%%", growth*100, o.soakRSSLimit*100))
	}
	return errors.Join(errs...)
}

func mean(xs []int64) float64 {
	var s float64
	for _, x := range xs {
		s += float64(x)
	}
	return s / float64(len(xs))
}

func minOf[T any](xs []T, f func(T) int64) int64 {
	m := int64(-1)
	for _, x := range xs {
		if v := f(x); m < 0 || v < m {
			m = v
		}
	}
	return m
}

func maxOf[T any](xs []T, f func(T) int64) int64 {
	var m int64
	for _, x := range xs {
		m = max(m, f(x))
	}
	return m
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
