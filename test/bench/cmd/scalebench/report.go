package main

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/canary-tagger/canary-tagger/test/bench"
)

// rssTarget is serve's memory while healing with o.healRollouts Rollouts.
const rssTarget = 80 << 20

// clusterInfo says where the run happened.
type clusterInfo struct {
	machine                 bench.Machine
	memAvailable            int64
	nodes, nodesRequested   int
	nodesWhy                string
	upTook                  time.Duration
	controllerQPS, healInfo string
	binary                  string
	heal                    bool
}

func (c *cluster) describe() clusterInfo {
	return clusterInfo{
		machine: c.machine, memAvailable: c.memAvailable,
		nodes: c.nodes, nodesRequested: c.nodesRequested, nodesWhy: c.nodesWhy, upTook: c.upTook,
		controllerQPS: c.controllerQPS(), healInfo: c.serve.healState(), heal: c.serve.heal, binary: c.binary,
	}
}

type report struct {
	options
	cluster          clusterInfo
	daemonSet, burst []cycle
	outage           outageResult
	memory           memoryResult
	controlPlane     []processMemory
	elapsed          time.Duration
}

// gate is one pass/fail figure. notRun says why it could not be evaluated
// (which fails it too).
type gate struct {
	name, value, target, notRun string
	ok                          bool
}

func (g gate) verdict() string {
	switch {
	case g.notRun != "":
		return "NOT RUN: " + g.notRun
	case g.ok:
		return "ok"
	default:
		return "MISS"
	}
}

func (r *report) gates() []gate {
	var missed int
	var failOpens float64
	for _, cycles := range [][]cycle{r.daemonSet, r.burst} {
		for _, cy := range cycles {
			if cy.with {
				missed += cy.checked.missing
				failOpens += cy.usage.failOpens
			}
		}
	}
	failOpens += r.outage.heal.failOpens + r.memory.heal.failOpens
	gs := []gate{
		{name: "agent pods and Rollouts admitted without canary-tagger's change while it was up (every cycle with it, warm-up included)",
			value: fmt.Sprint(missed), target: "0", ok: missed == 0},
		{name: "apiserver fail-opens of canary-tagger's webhooks while it was up (those cycles, and after serve was ready again)",
			value: fmt.Sprint(failOpens), target: "0", ok: failOpens == 0},
	}
	limit := r.healInterval + 30*time.Second
	h := r.outage.heal
	repair := gate{name: fmt.Sprintf("after a %s outage, every Rollout repaired", r.options.outage),
		target: "≤ " + limit.String() + " (--heal-interval + 30 s)"}
	idle := gate{name: "an idle heal pass (after convergence) writes nothing and LISTs", target: "0 writes"}
	mem := gate{name: fmt.Sprintf("serve's peak RSS while healing with %d Rollouts in the cluster", r.memory.rollouts),
		target: fmt.Sprintf("≤ %d MiB", rssTarget>>20)}
	if !r.cluster.heal {
		repair.notRun, idle.notRun, mem.notRun = healUnavailable, healUnavailable, healUnavailable
		return append(gs, repair, idle, mem)
	}
	repair.value = fmt.Sprintf("%s, %d of %d left", h.repaired.Round(100*time.Millisecond), h.remaining, h.unlabelled)
	repair.ok = h.converged && h.remaining == 0 && h.repaired <= limit

	m := r.memory.heal
	idle.value = fmt.Sprintf("%g and %g writes; %g and %g LIST pages (outage; %d Rollouts)",
		h.idle.patches, m.idle.patches, h.idle.lists, m.idle.lists, r.memory.rollouts)
	idle.ok = h.idleFound && m.idleFound && h.idle.patches == 0 && m.idle.patches == 0 && h.idle.lists > 0 && m.idle.lists > 0
	if !h.idleFound || !m.idleFound {
		idle.value = "no idle pass: healing did not converge"
	}
	mem.value = fmt.Sprintf("%.1f MiB", mib(m.peakRSS))
	mem.ok = m.peakRSS > 0 && m.peakRSS <= rssTarget
	return append(gs, repair, idle, mem)
}

func (r *report) failedGates() []string {
	var failed []string
	for _, g := range r.gates() {
		if g.verdict() != "ok" {
			failed = append(failed, g.name+": "+g.verdict())
		}
	}
	return failed
}

// render is the section of docs/benchmarks.md, also printed.
func (r *report) render() string {
	var b strings.Builder
	ci, m := r.cluster, r.cluster.machine
	b.WriteString("## Scale: kwok nodes, agent pods, Rollout bursts, an outage and healing\n\n")
	fmt.Fprintf(&b, "Written by `make scale` (`test/bench/cmd/scalebench`) on %s; the whole run took %s.\n\n",
		time.Now().UTC().Format("2006-01-02"), r.elapsed.Round(time.Second))
	fmt.Fprintf(&b, "- machine: %s, %d cores, %s, %s, %.1f GiB available at start, load average %s\n",
		m.CPU, m.Cores, m.Go, m.Kernel, gib(ci.memAvailable), m.Load)
	if ci.nodesWhy != "" {
		fmt.Fprintf(&b, "- **%d kwok nodes, not the %d asked for**: %s\n", ci.nodes, ci.nodesRequested, ci.nodesWhy)
	} else {
		fmt.Fprintf(&b, "- %d kwok nodes; control plane up, nodes Ready and canary-tagger registered in %s\n", ci.nodes, ci.upTook.Round(time.Second))
	}
	fmt.Fprintf(&b, "- controllers: kube-controller-manager and kube-scheduler with %s; no Argo Rollouts controller (admission and healing act on the Rollout objects alone)\n", ci.controllerQPS)
	fmt.Fprintf(&b, "- canary-tagger serve: %s, one process on 127.0.0.1, failurePolicy Ignore as installed; healing: %s\n", ci.binary, ci.healInfo)
	if len(r.controlPlane) > 0 {
		var parts []string
		var total int64
		for _, p := range r.controlPlane {
			parts = append(parts, fmt.Sprintf("%s %.2f", p.name, gib(p.peak)))
			total += p.peak
		}
		fmt.Fprintf(&b, "- control plane peak RSS (GiB): %s; together %.1f GiB\n", strings.Join(parts, ", "), gib(total))
	}

	fmt.Fprintf(&b, "\n### With and without canary-tagger\n\n")
	fmt.Fprintf(&b, "Alternating cycles (%d each) after one warm-up cycle with canary-tagger; the means leave the warm-up out.\n\n", r.cycles)
	b.WriteString("| scenario | without canary-tagger: cycles (mean) | with canary-tagger: cycles (mean) | with / without | apiserver's webhook latency p50 / p99 (calls) | admitted without canary-tagger's change | fail-opens | serve peak RSS | serve CPU (per 1,000 reviews) |\n")
	b.WriteString("|---|---|---|---:|---|---:|---:|---:|---|\n")
	r.scenarioRow(&b, fmt.Sprintf("Datadog node-Agent DaemonSet (Helm render): %d agent pods until all Running", ci.nodes), r.daemonSet)
	r.scenarioRow(&b, fmt.Sprintf("%d Rollouts created at once by %d clients, until all answered", r.rollouts, r.clients), r.burst)

	fmt.Fprintf(&b, "\n### The webhook stopped in the middle of a burst of %d Rollouts\n\n", r.outage.rollouts)
	b.WriteString("| measure | value |\n|---|---|\n")
	o := r.outage
	fmt.Fprintf(&b, "| serve killed (SIGKILL) after | %d of %d creates answered |\n", o.killedAfter, o.rollouts)
	fmt.Fprintf(&b, "| down for (at least %s, and until the burst had ended) | %s |\n", r.options.outage, o.outage.Round(100*time.Millisecond))
	fmt.Fprintf(&b, "| Rollouts admitted without their labels (read back; the apiserver's fail-opens) | %d (%g) |\n", o.unlabelled, o.failOpens)
	r.healRows(&b, o.heal)

	fmt.Fprintf(&b, "\n### Healing with %d Rollouts in the cluster\n\n", r.memory.rollouts)
	b.WriteString("| measure | value |\n|---|---|\n")
	fmt.Fprintf(&b, "| Rollouts created while serve was stopped (the outage's %d are there too) | %d |\n", r.outage.rollouts, r.memory.created)
	r.healRows(&b, r.memory.heal)

	b.WriteString("\n### Gates\n\n| gate | value | target | |\n|---|---|---|---|\n")
	for _, g := range r.gates() {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", g.name, g.value, g.target, g.verdict())
	}
	return b.String()
}

func (r *report) scenarioRow(b *strings.Builder, title string, cycles []cycle) {
	var with, without []time.Duration
	var u usage
	var missed int
	var failOpens float64
	var peak int64
	for _, cy := range cycles {
		if cy.with {
			missed += cy.checked.missing
			failOpens += cy.usage.failOpens
			peak = max(peak, cy.usage.peakRSS)
		}
		switch {
		case cy.warmup:
		case cy.with:
			with = append(with, cy.took)
			u = u.plus(cy.usage)
		default:
			without = append(without, cy.took)
		}
	}
	ratio := "—"
	if mw, mo := mean(with), mean(without); mo > 0 {
		ratio = fmt.Sprintf("%.2f", float64(mw)/float64(mo))
	}
	perK := "—"
	if u.reviews > 0 {
		perK = fmt.Sprintf("%.2f s", u.cpu.Seconds()/u.reviews*1000)
	}
	fmt.Fprintf(b, "| %s | %s | %s | %s | %s / %s (%g) | %d | %g | %.1f MiB | %.2f s for %g reviews (%s) |\n",
		title, durations(without), durations(with), ratio,
		quantile(u.latency, 0.50), quantile(u.latency, 0.99), u.latency.total,
		missed, failOpens, mib(peak), u.cpu.Seconds(), u.reviews, perK)
}

func (r *report) healRows(b *strings.Builder, h healResult) {
	if !h.available {
		fmt.Fprintf(b, "| healing | **%s**: %d Rollouts still without their labels at the end |\n", healUnavailable, h.remaining)
		fmt.Fprintf(b, "| serve peak RSS (VmHWM) | %.1f MiB |\n", mib(h.peakRSS))
		return
	}
	repaired := fmt.Sprintf("%s after serve started again", h.repaired.Round(100*time.Millisecond))
	if !h.converged {
		repaired = fmt.Sprintf("NOT repaired within %s: %d left", h.repaired.Round(time.Second), h.remaining)
	}
	fmt.Fprintf(b, "| %d Rollouts without their labels repaired by healing (--heal-interval=%s) | %s |\n", h.unlabelled, r.healInterval, repaired)
	fmt.Fprintf(b, "| heal requests until the pass under way then had ended (passes: %g) | %g LIST pages, %g GETs, %g writes (objects: %s) |\n", h.passes, h.lists, h.gets, h.patches, h.objects)
	if h.idleFound {
		fmt.Fprintf(b, "| the next, idle pass | %g LIST pages, %g GETs, %g writes |\n", h.idle.lists, h.idle.gets, h.idle.patches)
	}
	fmt.Fprintf(b, "| apiserver fail-opens after serve was ready | %g |\n", h.failOpens)
	fmt.Fprintf(b, "| serve peak RSS (VmHWM), CPU | %.1f MiB, %.2f s |\n", mib(h.peakRSS), h.cpu.Seconds())
}

func mean(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}

func durations(ds []time.Duration) string {
	if len(ds) == 0 {
		return "—"
	}
	var parts []string
	for _, d := range ds {
		parts = append(parts, seconds(d))
	}
	return strings.Join(parts, ", ") + " (" + seconds(mean(ds)) + ")"
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

// quantile shows the estimate with its bucket: the buckets are coarse
// (2.5 s to 10 s, say), the interpolated value is only a guess within one.
func quantile(h histogram, q float64) string {
	e, ok := h.quantile(q)
	switch {
	case !ok:
		return "—"
	case math.IsInf(e.upper, +1):
		return "> " + latency(e.lower)
	default:
		return fmt.Sprintf("%s (%s–%s)", latency(e.value), latency(e.lower), latency(e.upper))
	}
}

func latency(s float64) string {
	if s < 1 {
		return fmt.Sprintf("%.0f ms", s*1000)
	}
	return fmt.Sprintf("%.3g s", s)
}

// writeSection puts the report into its section of the Markdown file, with
// how to run it again and what it measures.
func writeSection(path, body string) error {
	return bench.WriteSection(path, "scalebench", body+about)
}

const about = `
### How to run it again

` + "`make scale`" + ` (needs ` + "`make tools-e2e`" + `: kube-apiserver, etcd, the controllers and kwok; about 8 GiB of
memory for 1,000 nodes). It builds canary-tagger, runs every scenario above in one run, prints this
section and writes it here; the rest of this file is left as it is. ` + "`SCALE_FLAGS`" + ` passes flags to
` + "`test/bench/cmd/scalebench`" + `, e.g. ` + "`make scale SCALE_FLAGS='--nodes 100 --rollouts 200 --heal-rollouts 1000'`" + `
for a quick run (` + "`--help`" + ` lists them).

### What is measured, and what is gated

- **Where.** One kube-apiserver and etcd (envtest, ` + "`bin/k8s`" + `) with the Argo Rollouts CRDs of the pinned
  version; kube-controller-manager, kube-scheduler and kwok with fake nodes (` + "`test/internal/controlplane`" + `);
  ` + "`canary-tagger serve`" + ` as a local process, registered through the configuration rendered from
  ` + "`manifests/default`" + ` (both webhooks, failurePolicy Ignore, timeout 5 s).
- **With and without.** "Without" is the same run with the webhook configuration removed (serve keeps
  running). The agent DaemonSet is created whole and timed until every pod is Running (an informer on
  the pods); the Rollouts are created by parallel clients with no client-side rate limit and timed until
  the last create is answered. The ratio is the mean with over the mean without; on two shared cores
  it moves from cycle to cycle by more than the webhook costs, so it is reported, not gated.
- **Latency** is the apiserver's own ` + "`apiserver_admission_webhook_admission_duration_seconds`" + ` for the
  webhook, the difference of its buckets before and after each cycle: each quantile is interpolated
  within its bucket as Prometheus's ` + "`histogram_quantile`" + ` does, and the bucket is shown beside it, since
  the buckets are coarse (5 ms, 25 ms, 100 ms, 500 ms, 1 s, 2.5 s, 10 s, 25 s). A call fails (and is
  counted as a fail-open) at the webhook's 5 s timeout.
- **Missed objects** are read back from the apiserver after each cycle: every pod's env and every
  Rollout, judged by canary-tagger's own rules (the agent-pod rule and the Rollout rule, as the webhook
  runs them): an object the rule would still change was admitted without it.
- **Fail-opens** are the apiserver's ` + "`apiserver_admission_webhook_fail_open_count`" + ` for canary-tagger's two
  webhooks: a call that failed under failurePolicy Ignore, so the object was admitted without it.
- **serve's memory and CPU** are read from ` + "`/proc`" + `: RSS sampled every 100 ms and the process's VmHWM;
  user + system CPU time, divided by the reviews serve counted (` + "`canary_tagger_admission_reviews_total`" + `).
- **Outage.** serve is killed when half the creates of a burst are answered and started again (same port
  and certificate, with ` + "`--heal-interval`" + `) after the outage and the end of the burst. Time to repair
  runs from that start until an informer on the Rollouts sees the last one with its labels; the heal
  figures are serve's ` + "`canary_tagger_heal_requests_total`" + ` (LIST pages, writes), ` + "`canary_tagger_heal_objects_total`" + `
  and ` + "`canary_tagger_heal_passes_total`" + ` until the end of the pass that converged, and for the whole pass after.
- **Healing with many Rollouts.** serve is stopped, the cluster topped up with Rollouts (admitted
  without the webhook), serve started again; its VmHWM covers the whole repair and the idle pass after.
- **Gates** (the run exits non-zero): only what is exact — no object admitted without canary-tagger's
  change and no fail-open while it is up; after the outage every Rollout repaired within one heal interval
  plus 30 s; serve ≤ 80 MiB with the Rollouts of the last scenario; an idle pass makes no write. A binary
  without healing fails the heal gates as "healing not available in this binary".
`
