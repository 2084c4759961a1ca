package webhook

// BenchmarkHandler measures one admission review through the handlers as Run
// registers them (reading the body and writing the answer included, no
// network, no TLS), next to a no-op handler on controller-runtime's
// admission.Webhook, the baseline of make bench. "zap" runs
// with the production JSON logger writing to io.Discard (one line per
// review); the others discard logs before encoding. Compare runs with benchstat:
//
//	go test -run '^$' -bench BenchmarkHandler -benchmem -count 10 ./webhook > new.txt
//	benchstat old.txt new.txt

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-logr/logr"
	"go.uber.org/zap/zapcore"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

func BenchmarkHandler(b *testing.B) {
	noop := &crwebhook.Admission{Handler: admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		return admission.Allowed("")
	})}
	noopMux := http.NewServeMux()
	noopMux.Handle(RolloutPath, noop)
	noopMux.Handle(AgentPodPath, noop)
	handlers := []struct {
		name string
		h    http.Handler
	}{
		{"noop", noopMux},
		{"canary-tagger", evMux(b, logr.Discard())},
		{"canary-tagger-zap", evMux(b, zap.New(zap.WriteTo(io.Discard), zap.Level(zapcore.InfoLevel)))},
	}
	bodies := []struct {
		name, path string
		obj        func(testing.TB) map[string]any
	}{
		{"rollout-seed", RolloutPath, evSeed},
		{"rollout-unknown-fields", RolloutPath, evUnknownFields},
		{"pod-helm-default", AgentPodPath, func(tb testing.TB) map[string]any { return evHelmPod(tb, "default.yaml") }},
		{"pod-helm-labels-as-tags", AgentPodPath, func(tb testing.TB) map[string]any { return evHelmPod(tb, "pod-labels-as-tags.yaml") }},
		{"pod-operator", AgentPodPath, func(testing.TB) map[string]any { return evOperatorPod() }},
	}
	for _, body := range bodies {
		b.Run(body.name, func(b *testing.B) {
			raw := evReview(b, body.path, body.obj(b))
			for _, h := range handlers {
				b.Run(h.name, func(b *testing.B) {
					if res := evServe(h.h, http.MethodPost, body.path, "application/json", raw); res.resp() == nil || !res.resp().Allowed {
						b.Fatalf("not allowed: %s", res)
					} else if h.name != "noop" && len(res.resp().Patch) == 0 {
						b.Fatalf("no patch: %s", res)
					}
					w := &evDiscardWriter{h: http.Header{}}
					b.SetBytes(int64(len(raw)))
					b.ReportAllocs()
					for b.Loop() {
						req := httptest.NewRequest(http.MethodPost, body.path, bytes.NewReader(raw))
						req.Header.Set("Content-Type", "application/json")
						clear(w.h)
						h.h.ServeHTTP(w, req)
					}
				})
			}
		})
	}
}

// evDiscardWriter is a ResponseWriter that drops the body (a recorder would
// add its own buffering to every iteration).
type evDiscardWriter struct{ h http.Header }

func (w *evDiscardWriter) Header() http.Header         { return w.h }
func (w *evDiscardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *evDiscardWriter) WriteHeader(int)             {}
