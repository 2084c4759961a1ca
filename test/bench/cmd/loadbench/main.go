// Command loadbench measures canary-tagger against a no-op controller-runtime
// webhook with the same TLS settings, in one run, and prints one table with
// the ratios and the machine it ran on (`make bench`); with --out it also
// writes docs/benchmarks.md. With --soak it runs canary-tagger alone at a
// fixed rate and checks that its RSS stays flat (`make soak`).
//
// Every target is a server this program starts on 127.0.0.1; every run is
// bounded in time and in requests.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/canary-tagger/canary-tagger/test/bench"
)

type options struct {
	out                  string
	clients              int
	rate                 float64
	fixedDur, maxDur     time.Duration
	fixedRounds, rounds  int
	warmup               time.Duration
	apiserver            bool
	apiCreates, perRound int
	goBench              bool
	goBenchTime          string
	soak                 time.Duration
	soakRSSLimit         float64
	keep                 bool
	only                 string
}

func main() {
	var o options
	flag.StringVar(&o.out, "out", "", "write the report (table, machine, Go benchmarks) to this Markdown file")
	flag.IntVar(&o.clients, "clients", 8, "concurrent keep-alive HTTPS clients")
	flag.Float64Var(&o.rate, "rate", 500, "fixed rate, reviews/s")
	flag.DurationVar(&o.fixedDur, "fixed-duration", 8*time.Second, "length of one fixed-rate run")
	flag.IntVar(&o.fixedRounds, "fixed-rounds", 3, "fixed-rate runs per server, alternating")
	flag.DurationVar(&o.maxDur, "max-duration", 4*time.Second, "length of one max-rate run")
	flag.IntVar(&o.rounds, "max-rounds", 3, "max-rate runs per server, alternating")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unrecorded warm-up before each run")
	flag.BoolVar(&o.apiserver, "apiserver", true, "run the in-apiserver benchmark (envtest from bin/k8s; skipped if missing)")
	flag.IntVar(&o.apiCreates, "apiserver-creates", 300, "Rollout creates per namespace in the in-apiserver benchmark")
	flag.IntVar(&o.perRound, "apiserver-round", 10, "creates per namespace per round")
	flag.BoolVar(&o.goBench, "go-bench", true, "also run the Go benchmarks (rules and handler) and include them")
	flag.StringVar(&o.goBenchTime, "go-benchtime", "1s", "-benchtime of the Go benchmarks")
	flag.DurationVar(&o.soak, "soak", 0, "soak mode: canary-tagger alone at --rate for this long; RSS must stay flat")
	flag.Float64Var(&o.soakRSSLimit, "soak-rss-growth", 0.10, "soak: largest allowed RSS growth (last minute vs first minute after warm-up)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (binaries, certificates, server logs)")
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

// setup builds both binaries, writes a certificate and starts both servers.
type setup struct {
	repo, dir  string
	certDir    string
	bins       bench.Binaries
	ca         *bench.CA
	ct, noop   *bench.Server
	bodies     []bench.Body
	loadConfig bench.Load
}

func start(ctx context.Context, o options, withNoop bool) (*setup, func(), error) {
	s := &setup{}
	var err error
	if s.repo, err = bench.RepoRoot(); err != nil {
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
	t0 := time.Now()
	if s.bins, err = bench.Build(ctx, s.repo, s.dir); err != nil {
		return fail(err)
	}
	bins := s.bins
	logf("built canary-tagger and the no-op baseline in %s", time.Since(t0).Round(time.Millisecond))
	if s.ca, err = bench.NewCA("loadbench"); err != nil {
		return fail(err)
	}
	s.certDir = filepath.Join(s.dir, "certs")
	certDir := s.certDir
	if _, err := s.ca.WriteServing(certDir); err != nil {
		return fail(err)
	}
	s.loadConfig = bench.Load{TLS: bench.ClientTLS(s.ca), Bodies: s.bodies, Clients: o.clients}
	if s.ct, err = bench.StartCanaryTagger(ctx, bins.CanaryTagger, certDir, filepath.Join(s.dir, "canary-tagger.log")); err != nil {
		return fail(err)
	}
	if err := s.ct.WaitReady(ctx, s.loadConfig, &s.bodies[0], 30*time.Second); err != nil {
		return fail(err)
	}
	if withNoop {
		if s.noop, err = bench.StartNoop(ctx, bins.Noop, certDir, filepath.Join(s.dir, "noop.log")); err != nil {
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
	// a max-rate run. Rounds alternate which server goes first.
	for round := range o.fixedRounds {
		for i := range servers {
			srv := servers[(i+round)%2]
			r, rss, err := run(srv, o.rate, o.fixedDur)
			if err != nil {
				return err
			}
			runs[srv].fixed = append(runs[srv].fixed, r)
			runs[srv].rssFixed = append(runs[srv].rssFixed, bench.MaxOf(rss))
			logf("%-15s %4.0f/s   round %d: %6d ok, %d errors, %d late, p50 %s p99 %s, RSS ≤ %s",
				srv.Name, o.rate, round+1, r.OK, r.Errors, r.Late, ms(r.Percentile(50)), ms(r.Percentile(99)), mib(bench.MaxOf(rss)))
		}
	}
	for round := range o.rounds {
		for i := range servers {
			srv := servers[(i+round)%2]
			r, rss, err := run(srv, 0, o.maxDur)
			if err != nil {
				return err
			}
			runs[srv].max = append(runs[srv].max, r)
			runs[srv].rssMax = append(runs[srv].rssMax, bench.MaxOf(rss))
			logf("%-15s max rate round %d: %6.0f reviews/s, %d errors, p50 %s p99 %s",
				srv.Name, round+1, r.Throughput(), r.Errors, ms(r.Percentile(50)), ms(r.Percentile(99)))
		}
	}

	var api *bench.APIServerResult
	var apiNote string
	if o.apiserver {
		logf("in-apiserver benchmark: %d creates per namespace", o.apiCreates)
		patch, err := bench.StartNoop(ctx, s.bins.Noop, s.certDir, filepath.Join(s.dir, "static-patch.log"), "--static-patch")
		if err != nil {
			return err
		}
		defer patch.Stop(10 * time.Second)
		if err := patch.WaitReady(ctx, s.loadConfig, &s.bodies[0], 30*time.Second); err != nil {
			return err
		}
		targets := []bench.APITarget{{Key: "canary-tagger", Server: s.ct, Injects: true}, {Key: "noop", Server: s.noop}, {Key: "static-patch", Server: patch, Injects: true}}
		r, err := bench.RunAPIServer(ctx, s.repo, targets, s.ca.CertPEM, o.apiCreates, o.perRound, logf)
		switch {
		case err != nil && strings.Contains(err.Error(), "missing in"):
			apiNote = "skipped: " + err.Error()
			logf("%s", apiNote)
		case err != nil:
			return fmt.Errorf("in-apiserver benchmark: %w", err)
		default:
			api = &r
		}
	}

	var goBench string
	if o.goBench {
		logf("Go benchmarks (-benchtime %s)", o.goBenchTime)
		if goBench, err = runGoBench(ctx, s.repo, o.goBenchTime); err != nil {
			return err
		}
	}

	report := render(o, machine, s.bodies, runs[s.noop], runs[s.ct], api, apiNote, goBench)
	fmt.Print(report.table)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(report.markdown), 0o644); err != nil {
			return err
		}
		logf("wrote %s", o.out)
	}
	if report.errors > 0 {
		return fmt.Errorf("%d failed requests", report.errors)
	}
	return nil
}

func runGoBench(ctx context.Context, repo, benchtime string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", ".", "-benchmem", "-benchtime", benchtime, "-count", "1",
		"./webhook/", "./webhook/rollout/", "./webhook/agentpod/", "./webhook/internal/obj/")
	cmd.Dir = repo
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go test -bench: %v\n%s", err, out.String())
	}
	var keep []string
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "Benchmark") || strings.HasPrefix(line, "pkg:") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n") + "\n", nil
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
