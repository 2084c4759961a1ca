// Command profileserver runs canary-tagger's server (webhook.Run, configured
// as `canary-tagger serve` configures it: production JSON logs, info level)
// in this process on 127.0.0.1, puts the benchmark's load on it and writes a
// CPU (and heap) profile, so `go tool pprof` shows where a review's time goes.
// The load generator's own functions are in the profile too (package bench,
// net/http client); look at the server side (webhook, controller-runtime).
//
//	cd test && go run ./bench/cmd/profileserver --cpuprofile /tmp/cpu.pprof --only rollout-seed
//	go tool pprof -top -cum /tmp/cpu.pprof
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/canary-tagger/canary-tagger/test/bench"
	"github.com/canary-tagger/canary-tagger/webhook"
	"github.com/canary-tagger/canary-tagger/webhook/config"
)

func main() {
	cpu := flag.String("cpuprofile", "cpu.pprof", "CPU profile output")
	heap := flag.String("memprofile", "", "heap profile output (allocations)")
	only := flag.String("only", "", "comma-separated body names (default: the whole mix)")
	d := flag.Duration("duration", 10*time.Second, "load duration")
	clients := flag.Int("clients", 8, "clients")
	rate := flag.Float64("rate", 0, "fixed rate (0: max rate)")
	noLogs := flag.Bool("no-logs", false, "discard logs before encoding (logr.Discard) instead of production JSON to a file")
	flag.Parse()
	if err := run(*cpu, *heap, *only, *d, *clients, *rate, *noLogs); err != nil {
		fmt.Fprintln(os.Stderr, "profileserver:", err)
		os.Exit(1)
	}
}

func run(cpu, heap, only string, d time.Duration, clients int, rate float64, noLogs bool) error {
	repo, err := bench.RepoRoot()
	if err != nil {
		return err
	}
	bodies, err := bench.Mix(repo)
	if err != nil {
		return err
	}
	if only != "" {
		bodies = slices.DeleteFunc(bodies, func(b bench.Body) bool { return !slices.Contains(strings.Split(only, ","), b.Name) })
	}
	dir, err := os.MkdirTemp("", "profileserver-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ca, err := bench.NewCA("profileserver")
	if err != nil {
		return err
	}
	if _, err := ca.WriteServing(dir); err != nil {
		return err
	}
	ports, err := bench.FreePorts(1)
	if err != nil {
		return err
	}
	f := config.Flags{LabelKey: config.DefaultLabelKey, StableValue: config.DefaultStableValue, CanaryValue: config.DefaultCanaryValue,
		TagName: config.DefaultTagName, AgentSelector: config.DefaultAgentSelector}
	rules, err := f.Validate()
	if err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	log := logr.Discard()
	if !noLogs {
		zo := zap.Options{DestWriter: logFile} // what serve does: production JSON, info
		log = zap.New(zap.UseFlagOptions(&zo))
	}
	logf.SetLogger(log)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- webhook.Run(ctx, webhook.Options{Rules: rules, Host: "127.0.0.1", Port: ports[0], CertDir: dir,
			CertName: "tls.crt", KeyName: "tls.key", MetricsAddr: "0", HealthAddr: "0", Logger: log.WithName("canary-tagger")})
	}()
	l := bench.Load{URL: fmt.Sprintf("https://127.0.0.1:%d", ports[0]), TLS: bench.ClientTLS(ca), Bodies: bodies,
		Clients: clients, Rate: rate, Duration: 2 * time.Second, ExpectPatch: true}
	for i := 0; ; i++ { // wait until it serves
		if _, err := (bench.Load{URL: l.URL, TLS: l.TLS, Bodies: bodies[:1], Clients: 1, Duration: 100 * time.Millisecond}).Run(ctx); err == nil {
			break
		}
		if i > 100 {
			return fmt.Errorf("server not serving")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := l.Run(ctx); err != nil { // warm-up
		return err
	}
	pf, err := os.Create(cpu)
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(pf); err != nil {
		return err
	}
	l.Duration = d
	r, err := l.Run(ctx)
	pprof.StopCPUProfile()
	pf.Close()
	if err != nil {
		return err
	}
	fmt.Printf("%d ok, %d errors, %.0f reviews/s, p50 %s p99 %s; CPU profile in %s\n", r.OK, r.Errors, r.Throughput(), r.Percentile(50), r.Percentile(99), cpu)
	if heap != "" {
		hf, err := os.Create(heap)
		if err != nil {
			return err
		}
		defer hf.Close()
		if err := pprof.Lookup("allocs").WriteTo(hf, 0); err != nil {
			return err
		}
	}
	cancel()
	<-done
	return nil
}
