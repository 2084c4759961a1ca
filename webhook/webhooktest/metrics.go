package webhooktest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/rest"
)

// Metrics is one scrape of a Prometheus text endpoint.
type Metrics map[string]*dto.MetricFamily

// ScrapeMetrics GETs url (…/metrics) and parses it.
func ScrapeMetrics(ctx context.Context, url string) (Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", url, err)
	}
	return Metrics(families), nil
}

// Sum adds up the counter (or gauge, or untyped) samples of name whose labels
// include every pair of match. A family that is absent sums to 0.
func (m Metrics) Sum(name string, match map[string]string) float64 {
	f, ok := m[name]
	if !ok {
		return 0
	}
	var sum float64
	for _, s := range f.GetMetric() {
		if !labelsMatch(s.GetLabel(), match) {
			continue
		}
		switch {
		case s.Counter != nil:
			sum += s.GetCounter().GetValue()
		case s.Gauge != nil:
			sum += s.GetGauge().GetValue()
		case s.Untyped != nil:
			sum += s.GetUntyped().GetValue()
		}
	}
	return sum
}

// Has reports whether the family name is exposed at all.
func (m Metrics) Has(name string) bool { _, ok := m[name]; return ok }

// HasSeries reports whether name has a sample whose labels include every
// pair of match (a zero counter counts).
func (m Metrics) HasSeries(name string, match map[string]string) bool {
	for _, s := range m[name].GetMetric() {
		if labelsMatch(s.GetLabel(), match) {
			return true
		}
	}
	return false
}

// Describe lists the samples of name, for failure messages.
func (m Metrics) Describe(name string) string {
	f, ok := m[name]
	if !ok {
		return name + ": absent"
	}
	var lines []string
	for _, s := range f.GetMetric() {
		var ls []string
		for _, l := range s.GetLabel() {
			ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
		}
		v := s.GetCounter().GetValue() + s.GetGauge().GetValue() + s.GetUntyped().GetValue()
		lines = append(lines, fmt.Sprintf("%s{%s} %g", name, strings.Join(ls, ","), v))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func labelsMatch(have []*dto.LabelPair, want map[string]string) bool {
	for k, v := range want {
		found := false
		for _, l := range have {
			if l.GetName() == k && l.GetValue() == v {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// ScrapeAPIServer GETs the apiserver's /metrics through rc and parses only
// the named families: the whole exposition is megabytes, and benchmarks
// scrape it after every create. A family matches by its exact name or as
// the prefix of a histogram's _bucket, _sum and _count lines.
func ScrapeAPIServer(ctx context.Context, rc rest.Interface, families ...string) (Metrics, error) {
	raw, err := rc.Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("apiserver /metrics: %w", err)
	}
	return ParseFamilies(raw, families...)
}

// ParseFamilies parses the named families (as ScrapeAPIServer matches
// them) of a Prometheus text exposition.
func ParseFamilies(raw []byte, families ...string) (Metrics, error) {
	var kept bytes.Buffer
	for line := range bytes.Lines(raw) {
		name := line
		if rest, ok := bytes.CutPrefix(line, []byte("# HELP ")); ok {
			name = rest
		} else if rest, ok := bytes.CutPrefix(line, []byte("# TYPE ")); ok {
			name = rest
		}
		for _, f := range families {
			if bytes.HasPrefix(name, []byte(f)) {
				kept.Write(line)
				break
			}
		}
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	parsed, err := p.TextToMetricFamilies(&kept)
	if err != nil {
		return nil, fmt.Errorf("parsing /metrics: %w", err)
	}
	return Metrics(parsed), nil
}

// LabelsMatch says whether have includes every pair of want.
func LabelsMatch(have []*dto.LabelPair, want map[string]string) bool {
	return labelsMatch(have, want)
}
