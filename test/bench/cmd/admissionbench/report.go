package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/canary-tagger/canary-tagger/test/bench"
)

// The target: peak RSS of canary-tagger serving rssRate reviews/s. The
// per-call figure is reported with no target (docs/benchmarks.md says why).
const rssTarget = 40 << 20

type report struct {
	options
	machine                                bench.Machine
	elapsed                                time.Duration
	contenders                             []bench.ContenderResult
	rssCanaryTagger, rssNoop               int64
	throughputNoop, throughputCanaryTagger float64
	loadErrors                             int
	loadErrorSamples                       []string
}

func (r report) contender(key string) bench.ContenderResult {
	for _, c := range r.contenders {
		if c.Key == key {
			return c
		}
	}
	panic("no contender " + key)
}

func (r report) failures() int {
	n := r.loadErrors
	for _, c := range r.contenders {
		n += len(c.Errors)
	}
	return n
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond)) }

func plusMs(d time.Duration) string {
	return fmt.Sprintf("%+.3f", float64(d)/float64(time.Millisecond))
}

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISS"
}

// table is the run's result: the machine, one row per contender, the targets.
func (r report) table() string {
	var b strings.Builder
	m := r.machine
	fmt.Fprintf(&b, "\nmachine: %s, %d cores, %s, %s, load average at start %s; whole run %s\n",
		m.CPU, m.Cores, m.Go, m.Kernel, m.Load, r.elapsed.Round(time.Second))
	base := r.contender("none")
	fmt.Fprintf(&b, "creates: %d per namespace, interleaved (round r: one seed Rollout created in each contender's namespace), after %d untimed rounds; admit step over %d metered rounds\n\n",
		len(base.Latencies), r.warmupRounds, r.meteredRounds)

	b.WriteString("| contender | create: mean / p50 / p99 (ms) | added per create over no webhook: mean / p50 / p99 (ms) | apiserver: per call, mean (ms) | apiserver: admit step, mean (ms) |\n")
	b.WriteString("|---|---:|---:|---:|---:|\n")
	for _, c := range r.contenders {
		abs := ms(c.Mean()) + " / " + ms(c.Percentile(50)) + " / " + ms(c.Percentile(99))
		added := "—"
		if c.Key != "none" {
			added = plusMs(c.Mean()-base.Mean()) + " / " + plusMs(c.Percentile(50)-base.Percentile(50)) + " / " + plusMs(c.Percentile(99)-base.Percentile(99))
		}
		call := "—"
		switch {
		case c.Calls > 0 && c.Webhook != nil:
			call = fmt.Sprintf("%s (webhook, %d calls)", ms(c.CallTime), c.Calls)
		case c.Calls > 0:
			call = fmt.Sprintf("%s (policy mutation, %d evaluations)", ms(c.CallTime), c.Calls)
		}
		step := "—"
		if c.AdmitSamples > 0 {
			step = ms(c.AdmitStep)
			if c.Key != "none" && base.AdmitSamples > 0 {
				step += " (" + plusMs(c.AdmitStep-base.AdmitStep) + ")"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", c.Title, abs, added, call, step)
	}

	ct, floor := r.contender("canary-tagger"), r.contender("noop-patch")
	perCall := ct.CallTime - floor.CallTime
	clientSide := ct.Mean() - floor.Mean()
	b.WriteString("\n| measure | value | target | |\n|---|---:|---|---|\n")
	fmt.Fprintf(&b, "| canary-tagger per call over the no-op webhook answering the same patch (apiserver's webhook duration, mean: %s vs %s ms) | %s ms | reported |  |\n",
		ms(ct.CallTime), ms(floor.CallTime), plusMs(perCall))
	fmt.Fprintf(&b, "| the same, client-side: added per create, mean | %s ms |  |  |\n", plusMs(clientSide))
	fmt.Fprintf(&b, "| canary-tagger RSS serving %.0f reviews/s, peak (no-op webhook: %.1f MiB) | %.1f MiB | ≤ %d MiB | %s |\n",
		r.rssRate, mib(r.rssNoop), mib(r.rssCanaryTagger), rssTarget>>20, verdict(r.rssCanaryTagger > 0 && r.rssCanaryTagger <= rssTarget))
	ratio := 0.0
	if r.throughputNoop > 0 {
		ratio = r.throughputCanaryTagger / r.throughputNoop
	}
	fmt.Fprintf(&b, "| load generator, max rate, %d clients: canary-tagger vs no-op webhook (%.0f vs %.0f reviews/s) | %.2f× |  |  |\n",
		r.clients, r.throughputCanaryTagger, r.throughputNoop, ratio)
	fmt.Fprintf(&b, "| failed creates and reviews | %d |  0 | %s |\n", r.failures(), verdict(r.failures() == 0))

	var samples []string
	for _, c := range r.contenders {
		for _, e := range c.Errors[:min(3, len(c.Errors))] {
			samples = append(samples, c.Key+": "+e)
		}
	}
	samples = append(samples, r.loadErrorSamples[:min(3, len(r.loadErrorSamples))]...)
	if len(samples) > 0 {
		fmt.Fprintf(&b, "\nerrors: %s\n", strings.Join(samples, "; "))
	}
	return b.String()
}

// markdown is the run's section of docs/benchmarks.md: the table, what is
// measured and why. The document's title and the other runs' sections
// (make scale's) are not the run's to write.
func (r report) markdown(table string) string {
	var b strings.Builder
	b.WriteString("Written by `make bench` (`test/bench/cmd/admissionbench --out docs/benchmarks.md`; ")
	b.WriteString("`BENCH_N=...` sets the creates per namespace). Absolute times on a shared 2-core machine are noise; what counts ")
	b.WriteString("are the differences between contenders measured in the same run, interleaved.\n\n")
	b.WriteString("## Latest run\n")
	b.WriteString(table)
	b.WriteString(about)
	return b.String()
}

// writeSection puts the run's section into the Markdown file at path,
// leaving the rest of it (make scale's section) as it is.
func writeSection(path, body string) error {
	return bench.WriteSection(path, "admissionbench", body)
}

const about = `
## What is measured, and why

canary-tagger mutates Rollouts on CREATE and UPDATE (and Datadog Agent pods). Its users feel it as
latency inside the kube-apiserver on a Rollout write, and it sees a few calls a minute, not
thousands a second. So the benchmark times Rollout creates in a real kube-apiserver, and the
targets are per call and memory, not throughput.

- **Where.** One envtest kube-apiserver and etcd (` + "`bin/k8s`" + `, built by ` + "`make tools-k8s`" + `)
  with the Argo Rollouts CRDs of the pinned version, read from the Go module cache
  (` + "`hack/tools.sh crd-dirs`" + `). The servers run on 127.0.0.1 with one throw-away certificate.
- **Contenders**, each in its own namespace, selected by a namespaceSelector so that none sees
  another's Rollouts:
  - **no webhook** — the baseline every "added" column subtracts;
  - **canary-tagger's policies** — the install ` + "`rollouts.admission=policy`" + ` ships: the chart rendered
    (Helm's Go packages) with the default settings and ` + "`agentPods.enabled=false`" + `, its
    MutatingAdmissionPolicy (admissionregistration.k8s.io/v1, GA in Kubernetes 1.36; the Rollout rule
    as a ` + "`JSONPatch`" + ` CEL mutation), ValidatingAdmissionPolicy (the clash warnings) and their bindings,
    created as rendered; opt-in mode, with only this namespace labelled. No network hop: the floor
    of admission mutation, doing all the webhook does but read a workloadRef;
  - **no-op webhook** (` + "`test/bench/cmd/noop-webhook`" + `): a controller-runtime ` + "`webhook.Server`" + ` with
    canary-tagger's TLS settings that allows everything unchanged — the floor of any webhook;
  - **no-op webhook answering canary-tagger's patch** (` + "`--static-patch`" + `): the same server answering
    every Rollout with the two adds canary-tagger returns for the seed, computed once — the floor of
    any webhook that patches, since the apiserver then also applies the patch and decodes and
    defaults the result;
  - **canary-tagger**: ` + "`bin/canary-tagger serve`" + ` as ` + "`make build`" + ` builds it (JSON logs at info, one line
    per review, to a file; ` + "`--check-workload-ref=false`" + `, as the seed has no workloadRef).

  The webhooks are registered as canary-tagger's Rollout webhook is (CREATE and UPDATE, matchPolicy
  Equivalent, timeout 5 s, reinvocation IfNeeded) but with ` + "`failurePolicy: Fail`" + `, so that a failure
  shows as a failed create rather than a fast one. The policies keep their shipped
  ` + "`failurePolicy: Ignore`" + ` and reinvocation IfNeeded; an evaluation the apiserver counts with an error
  counts as a failed create instead.
  Before timing, one Rollout per mutating contender is read back and must carry both labels (and
  the others' must not); the last timed Rollout of each is checked again.
- **How.** The seed Rollout (` + "`test/e2e/testdata/rollout.yaml`" + `, with the last-applied annotation
  ` + "`kubectl apply`" + ` sends) is created one at a time, with no client-side rate limit. Round r creates
  one Rollout in each contender's namespace, starting with a different contender each round, so
  machine noise (other builds on the two cores, etcd syncs, garbage collection) hits all alike.
- **Columns.** *create* is client-side, request to response. *added per create* is that minus the
  no-webhook baseline: what a user writing a Rollout waits for, mean and percentiles. *per call* is
  the apiserver's own mean, over the timed creates, of
  ` + "`apiserver_admission_webhook_admission_duration_seconds`" + ` for a webhook (the call and applying its
  patch) and of ` + "`apiserver_mutating_admission_policy_check_duration_seconds`" + ` for the policy (evaluating
  the CEL expression and applying its patch). *admit step* is
  ` + "`apiserver_admission_step_admission_duration_seconds{type=\"admit\",operation=\"CREATE\"}`" + `, the whole
  mutating phase of the create, with the added part over the baseline in brackets; its labels
  cannot tell namespaces apart, so it comes from extra metered rounds with a metrics scrape after
  every create (a sample counts only if the step saw exactly that create).
- **Targets.** *Per call over the no-op webhook answering the same patch*, reported with no target
  (a +0.1 ms target was withdrawn: run to run on shared cores it moves more than that, and the
  difference is not felt next to the ≈ 1 ms any patching webhook costs): that floor
  is what any patching webhook costs, so canary-tagger minus the floor is what its own code costs per
  call; the apiserver's duration is the measure because it is exact per call, whereas client-side
  means carry the noise of whole creates. The policy's and the plain no-op's figures stand beside it
  with no target: the policy shows what the same mutation costs without a webhook, the plain no-op
  what a webhook costs before it patches anything. *RSS ≤ 40 MiB serving 50 reviews/s*: the memory a
  pod needs, at a rate far above what the webhook sees; read from ` + "`/proc/PID/status`" + ` every 100 ms
  while the load generator sends the whole body mix (below), the peak.
- **Load generator** (` + "`test/bench/cmd/loadbench`" + `), kept as a tool: keep-alive HTTPS clients (HTTP/1.1,
  like the apiserver's webhook client) posting AdmissionReviews built at run time from real shapes —
  the seed Rollout, a Rollout with many unknown fields, agent pods from the three Datadog Helm chart
  renders in ` + "`test/testdata/datadog-helm`" + ` and one shaped like the Datadog Operator's; every answer is
  checked. Its max-rate throughput against the no-op is reported with no target: the webhook never
  sees such rates. ` + "`cd test && go run ./bench/cmd/loadbench`" + ` prints fixed- and max-rate latencies and RSS
  of both servers.
- **Soak** (` + "`make soak`" + `): canary-tagger alone at 500 reviews/s for 5 minutes; RSS sampled every 5 s must
  not grow more than 10 % from the first minute after warm-up to the last; no request may fail.
`
