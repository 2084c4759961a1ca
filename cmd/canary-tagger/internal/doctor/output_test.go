package doctor

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/report.golden.*")

// goldenReport has a finding of every status and shape: an object or none, a
// reason, items (more than the text report lists for a non-action), fixes,
// a fix that is a comment first (healing repairs it: wait, or run …).
func goldenReport() Report {
	var many []string
	for _, c := range "abcdefghijkl" {
		many = append(many, "ns-"+string(c))
	}
	rep := Report{Cluster: "https://127.0.0.1:6443", WebhookConfiguration: "canary-tagger", Findings: []Finding{
		{Category: Webhook, Status: OK, Object: "mutatingwebhookconfiguration/canary-tagger rollouts.canary-tagger.io", Message: "caBundle set and trusted"},
		{Category: Namespaces, Status: Info, Object: "webhook/rollouts.canary-tagger.io", Message: "cluster-wide mode: 12 of 20 namespaces are not covered", Items: many,
			Fix: []string{"kubectl label namespace NAMESPACE canary-tagger.io/inject-"}},
		{Category: Heal, Status: OK, Object: "deployment/canary-tagger/canary-tagger", Message: "healing on, every 1m, leader canary-tagger-7d9f-x2k4p"},
		{Category: Rollout, Status: Action, Object: "rollout/shop/old", Message: "canary Rollout without the label; healing repairs this within 1m",
			Fix: []string{"# wait: healing repairs this within 1m (serve's --heal-interval); or, now:", "kubectl -n shop annotate rollout old canary-tagger.io/reapplied-at=2026-11-28T19.42.38Z --overwrite"}},
		{Category: Rollout, Status: Action, Object: "rollout/shop/demo", Message: "skipped by the webhook because of a conflict", Reason: "label key in spec.selector: \"role\"",
			Fix: []string{"# remove it", "kubectl -n shop annotate rollout demo canary-tagger.io/inject=false"}},
		{Category: AgentPod, Status: Action, Object: "daemonset/shop/dd-agent", Message: "1 Datadog Agent pod(s) started without it", Items: many,
			Fix: []string{"kubectl -n shop rollout restart daemonset/dd-agent"}},
		{Category: ArgoRollouts, Status: Error, Message: "listing Deployments: forbidden"},
	}}
	rep.Summary = Summary{OK: 2, Action: 3, Info: 1, Error: 1}
	return rep
}

// TestReportGolden: the text and JSON reports, byte for byte
// (testdata/report.golden.txt and .json; -update rewrites them).
func TestReportGolden(t *testing.T) {
	for _, tc := range []struct {
		file  string
		write func(*bytes.Buffer, Report) error
	}{
		{"report.golden.txt", func(b *bytes.Buffer, r Report) error { return WriteText(b, r) }},
		{"report.golden.json", func(b *bytes.Buffer, r Report) error { return WriteJSON(b, r) }},
	} {
		var b bytes.Buffer
		if err := tc.write(&b, goldenReport()); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", tc.file)
		if *update {
			if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if b.String() != string(want) {
			t.Errorf("%s differs (go test -run TestReportGolden -update rewrites it):\n--- got\n%s\n--- want\n%s", path, b.String(), want)
		}
	}
}

// An empty report is an empty JSON list of findings, not null.
func TestReportJSONWithoutFindings(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, Report{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b.Bytes(), []byte(`"findings": []`)) {
		t.Errorf("JSON report without findings:\n%s\nwant \"findings\": []", b.String())
	}
}
