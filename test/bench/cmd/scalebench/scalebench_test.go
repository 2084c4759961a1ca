package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/canary-tagger/canary-tagger/webhook/webhooktest"
)

func parse(t *testing.T, text string) webhooktest.Metrics {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return webhooktest.Metrics(fams)
}

const durationBefore = `# TYPE apiserver_admission_webhook_admission_duration_seconds histogram
apiserver_admission_webhook_admission_duration_seconds_bucket{name="a",operation="CREATE",rejected="false",type="admit",le="0.005"} 10
apiserver_admission_webhook_admission_duration_seconds_bucket{name="a",operation="CREATE",rejected="false",type="admit",le="0.025"} 10
apiserver_admission_webhook_admission_duration_seconds_bucket{name="a",operation="CREATE",rejected="false",type="admit",le="0.1"} 10
apiserver_admission_webhook_admission_duration_seconds_bucket{name="a",operation="CREATE",rejected="false",type="admit",le="+Inf"} 10
apiserver_admission_webhook_admission_duration_seconds_sum{name="a",operation="CREATE",rejected="false",type="admit"} 0.01
apiserver_admission_webhook_admission_duration_seconds_count{name="a",operation="CREATE",rejected="false",type="admit"} 10
`

// After: 100 more calls of webhook a, 50 up to 5 ms, 40 in (5, 25] ms, 9
// in (25, 100] ms, 1 above; and calls of another webhook that must not count.
const durationAfter = `# TYPE apiserver_admission_webhook_admission_duration_seconds histogram
apiserver_admission_webhook_admission_duration_seconds_bucket{name="a",operation="CREATE",rejected="false",type="admit",le="0.005"} 50
apiserver_admission_webhook_admission_duration_seconds_bucket{name="a",operation="CREATE",rejected="false",type="admit",le="0.025"} 80
apiserver_admission_webhook_admission_duration_seconds_bucket{name="a",operation="CREATE",rejected="false",type="admit",le="0.1"} 89
apiserver_admission_webhook_admission_duration_seconds_bucket{name="a",operation="CREATE",rejected="false",type="admit",le="+Inf"} 90
apiserver_admission_webhook_admission_duration_seconds_sum{name="a",operation="CREATE",rejected="false",type="admit"} 1
apiserver_admission_webhook_admission_duration_seconds_count{name="a",operation="CREATE",rejected="false",type="admit"} 90
apiserver_admission_webhook_admission_duration_seconds_bucket{name="a",operation="UPDATE",rejected="false",type="admit",le="0.005"} 10
apiserver_admission_webhook_admission_duration_seconds_bucket{name="a",operation="UPDATE",rejected="false",type="admit",le="0.025"} 20
apiserver_admission_webhook_admission_duration_seconds_bucket{name="a",operation="UPDATE",rejected="false",type="admit",le="0.1"} 20
apiserver_admission_webhook_admission_duration_seconds_bucket{name="a",operation="UPDATE",rejected="false",type="admit",le="+Inf"} 20
apiserver_admission_webhook_admission_duration_seconds_sum{name="a",operation="UPDATE",rejected="false",type="admit"} 1
apiserver_admission_webhook_admission_duration_seconds_count{name="a",operation="UPDATE",rejected="false",type="admit"} 20
apiserver_admission_webhook_admission_duration_seconds_bucket{name="b",operation="CREATE",rejected="false",type="admit",le="0.005"} 0
apiserver_admission_webhook_admission_duration_seconds_bucket{name="b",operation="CREATE",rejected="false",type="admit",le="0.025"} 0
apiserver_admission_webhook_admission_duration_seconds_bucket{name="b",operation="CREATE",rejected="false",type="admit",le="0.1"} 0
apiserver_admission_webhook_admission_duration_seconds_bucket{name="b",operation="CREATE",rejected="false",type="admit",le="+Inf"} 1000
apiserver_admission_webhook_admission_duration_seconds_sum{name="b",operation="CREATE",rejected="false",type="admit"} 9000
apiserver_admission_webhook_admission_duration_seconds_count{name="b",operation="CREATE",rejected="false",type="admit"} 1000
`

func TestHistogramDifferenceAndQuantiles(t *testing.T) {
	a := map[string]string{"name": "a"}
	h := histogramOf(parse(t, durationAfter), webhookDurationMetric, a).minus(histogramOf(parse(t, durationBefore), webhookDurationMetric, a))
	if h.total != 100 {
		t.Fatalf("total = %g, want 100 (80 creates + 20 updates after, 10 before)", h.total)
	}
	if want := []float64{50, 90, 99}; !equal(h.counts, want) {
		t.Fatalf("cumulative counts %v, want %v", h.counts, want)
	}
	for _, c := range []struct {
		q                   float64
		value, lower, upper float64
	}{
		{0.25, 0.0025, 0, 0.005},                // halfway into the first bucket (0, 5 ms]
		{0.5, 0.005, 0, 0.005},                  // its upper bound
		{0.7, 0.005 + 0.02*20/40, 0.005, 0.025}, // half of the second bucket
		{0.99, 0.1, 0.025, 0.1},                 // the 99th is the last in (25, 100] ms
		{0.999, 0.1, 0.1, math.Inf(+1)},         // beyond the last finite bound
	} {
		e, ok := h.quantile(c.q)
		if !ok || math.Abs(e.value-c.value) > 1e-9 || e.lower != c.lower || e.upper != c.upper {
			t.Errorf("quantile(%g) = %+v, %t; want %g in (%g, %g]", c.q, e, ok, c.value, c.lower, c.upper)
		}
	}
	if _, ok := (histogram{}).quantile(0.5); ok {
		t.Error("an empty histogram has a quantile")
	}
	if got := quantile(h, 0.7); got != "15 ms (5 ms–25 ms)" {
		t.Errorf("shown as %q", got)
	}
	if got := quantile(h, 0.999); got != "> 100 ms" {
		t.Errorf("shown as %q", got)
	}
	sum := h.plus(h)
	if sum.total != 200 || !equal(sum.counts, []float64{100, 180, 198}) {
		t.Errorf("plus: %+v", sum)
	}
	if got := (histogram{}).plus(h); got.total != 100 {
		t.Errorf("empty plus h: %+v", got)
	}
}

func equal(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFitNodes(t *testing.T) {
	const gb = 1 << 30
	if n, why := fitNodes(1000, 24*gb); n != 1000 || why != "" {
		t.Errorf("24 GiB: %d, %q", n, why)
	}
	if n, why := fitNodes(1000, 0); n != 1000 || why != "" {
		t.Errorf("unknown memory: %d, %q", n, why)
	}
	n, why := fitNodes(1000, 4*gb)
	if n >= 1000 || n < 300 || !strings.Contains(why, "4.0 GiB available") {
		t.Errorf("4 GiB: %d, %q", n, why)
	}
	if n, _ := fitNodes(1000, gb); n != 0 {
		t.Errorf("1 GiB: %d nodes", n)
	}
}

func TestCycleOrderAlternatesAfterAWarmUp(t *testing.T) {
	var got []string
	for _, cy := range cycleOrder(2) {
		got = append(got, cy.label())
	}
	want := []string{"with canary-tagger, warm-up", "without canary-tagger", "with canary-tagger", "without canary-tagger", "with canary-tagger"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q", got)
	}
}

func TestRejectedFlag(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "log")
	for _, c := range []struct {
		log, flag, line string
		ok              bool
	}{
		{"canary-tagger serve: unknown flag: --heal-interval\nRun 'canary-tagger serve --help' for usage.\n", "heal-interval",
			"canary-tagger serve: unknown flag: --heal-interval", true},
		{"flag provided but not defined: -heal-interval\nUsage of canary-tagger serve:\n", "heal-interval",
			"flag provided but not defined: -heal-interval", true},
		{"canary-tagger serve: unknown flag: --heal-interval\n", "heal", "", false},
		{`{"level":"error","msg":"listen tcp: address already in use"}` + "\n", "heal-interval", "", false},
	} {
		if err := os.WriteFile(path, []byte(c.log), 0o644); err != nil {
			t.Fatal(err)
		}
		if line, ok := rejectedFlag(path, c.flag); ok != c.ok || line != c.line {
			t.Errorf("--%s in %q: %q, %t; want %q, %t", c.flag, c.log, line, ok, c.line, c.ok)
		}
	}
	if _, ok := rejectedFlag(filepath.Join(dir, "none"), "heal-interval"); ok {
		t.Error("a missing log taken for a rejected flag")
	}
}

func TestHealCounters(t *testing.T) {
	m := parse(t, `# TYPE canary_tagger_heal_passes_total counter
canary_tagger_heal_passes_total{kind="Rollout"} 3
canary_tagger_heal_passes_total{kind="AgentPod"} 7
# TYPE canary_tagger_heal_requests_total counter
canary_tagger_heal_requests_total{verb="list"} 12
canary_tagger_heal_requests_total{verb="patch"} 500
# TYPE canary_tagger_heal_objects_total counter
canary_tagger_heal_objects_total{kind="Rollout",outcome="injected"} 500
canary_tagger_heal_objects_total{kind="Rollout",outcome="conflict"} 0
`)
	if got := healPasses(m); got != 3 {
		t.Errorf("passes = %g, want the Rollout series' 3", got)
	}
	if healRequests(m, "list") != 12 || healRequests(m, "patch") != 500 {
		t.Errorf("requests: %g, %g", healRequests(m, "list"), healRequests(m, "patch"))
	}
	if got := healObjects(m); got != "Rollout/injected 500" {
		t.Errorf("objects = %q", got)
	}
	other := parse(t, "# TYPE canary_tagger_heal_passes_total counter\ncanary_tagger_heal_passes_total{kind=\"x\"} 2\ncanary_tagger_heal_passes_total{kind=\"y\"} 1\n")
	if got := healPasses(other); got != 3 {
		t.Errorf("no Rollout series: passes = %g, want the sum 3", got)
	}
}

func TestGates(t *testing.T) {
	ok := func() *report {
		r := &report{options: options{healInterval: 10 * time.Second, outage: 30 * time.Second}, cluster: clusterInfo{heal: true}}
		r.daemonSet = []cycle{{with: true, checked: count{objects: 10}}, {with: false, checked: count{objects: 10, missing: 0}}}
		r.burst = []cycle{{with: true, checked: count{objects: 10}}}
		heal := healResult{available: true, converged: true, repaired: 12 * time.Second, idleFound: true, idle: idlePass{lists: 2}, peakRSS: 40 << 20}
		r.outage.heal, r.memory.heal = heal, heal
		return r
	}
	if f := ok().failedGates(); len(f) > 0 {
		t.Fatalf("all met, but failed: %v", f)
	}
	for _, c := range []struct {
		name   string
		change func(*report)
		want   string
	}{
		{"a pod missed", func(r *report) { r.daemonSet[0].checked.missing = 1 }, "admitted without"},
		{"a fail-open", func(r *report) { r.burst[0].usage.failOpens = 1 }, "fail-opens"},
		{"a fail-open after the outage", func(r *report) { r.outage.heal.failOpens = 1 }, "fail-opens"},
		{"slow repair", func(r *report) { r.outage.heal.repaired = 41 * time.Second }, "repaired"},
		{"not converged", func(r *report) { r.outage.heal.converged, r.outage.heal.remaining = false, 3 }, "repaired"},
		{"a write when idle", func(r *report) { r.memory.heal.idle.patches = 1 }, "idle"},
		{"no LIST when idle", func(r *report) { r.outage.heal.idle.lists = 0 }, "idle"},
		{"memory", func(r *report) { r.memory.heal.peakRSS = 81 << 20 }, "RSS"},
		{"no healing", func(r *report) { r.cluster.heal = false }, healUnavailable},
	} {
		r := ok()
		c.change(r)
		f := r.failedGates()
		if len(f) == 0 || !strings.Contains(strings.Join(f, "\n"), c.want) {
			t.Errorf("%s: failed gates %q, want one about %q", c.name, f, c.want)
		}
	}
	// Without healing, the missed objects of the cycles still count.
	r := ok()
	r.cluster.heal = false
	if f := r.failedGates(); len(f) != 3 {
		t.Errorf("no healing: %d failed gates (%q), want the 3 heal gates", len(f), f)
	}
}
