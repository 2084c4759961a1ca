package webhooktest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestScrapeMetrics(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`# HELP canary_tagger_admission_reviews_total x
# TYPE canary_tagger_admission_reviews_total counter
canary_tagger_admission_reviews_total{outcome="injected",webhook="rollout"} 3
canary_tagger_admission_reviews_total{outcome="present",webhook="rollout"} 2
canary_tagger_admission_reviews_total{outcome="injected",webhook="agent-pod"} 5
`))
	}))
	defer srv.Close()
	m, err := ScrapeMetrics(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		match map[string]string
		want  float64
	}{
		{map[string]string{"webhook": "rollout"}, 5},
		{map[string]string{"webhook": "rollout", "outcome": "injected"}, 3},
		{map[string]string{"webhook": "agent-pod"}, 5},
		{nil, 10},
		{map[string]string{"webhook": "nope"}, 0},
	} {
		if got := m.Sum("canary_tagger_admission_reviews_total", c.match); got != c.want {
			t.Errorf("Sum(%v) = %v, want %v", c.match, got, c.want)
		}
	}
	if m.Sum("absent_metric", nil) != 0 || m.Has("absent_metric") {
		t.Error("an absent family should sum to 0")
	}
	if !m.HasSeries("canary_tagger_admission_reviews_total", map[string]string{"webhook": "agent-pod"}) ||
		m.HasSeries("canary_tagger_admission_reviews_total", map[string]string{"outcome": "present", "webhook": "agent-pod"}) ||
		m.HasSeries("absent_metric", nil) {
		t.Error("HasSeries does not tell present series from absent ones")
	}
}
