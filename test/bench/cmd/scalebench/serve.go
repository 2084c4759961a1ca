package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/canary-tagger/canary-tagger/test/bench"
	"github.com/canary-tagger/canary-tagger/test/internal/harness"
	"github.com/canary-tagger/canary-tagger/webhook/webhooktest"
)

// healUnavailable is what every heal figure says when serve has no healing.
const healUnavailable = "healing not available in this binary"

// Heal metrics on serve's /metrics.
const (
	healObjectsMetric  = "canary_tagger_heal_objects_total"  // {kind, outcome}
	healRequestsMetric = "canary_tagger_heal_requests_total" // {verb="list"|"patch"}
	healPassesMetric   = "canary_tagger_heal_passes_total"   // {kind}
)

// serve is `canary-tagger serve` as a child process, always on the same
// webhook port and certificate, so the installed configuration reaches
// every process started in turn.
type serve struct {
	bin, certDir, logDir, kubeconfig string
	caPEM                            []byte
	port                             int
	healInterval                     time.Duration

	// healKnown is set by the first start; heal says whether serve
	// accepted --heal-interval, healRejection what it said if not.
	healKnown, heal bool
	healRejection   string

	srv    *bench.Server
	starts int
}

func (s *serve) healState() string {
	switch {
	case !s.healKnown:
		return "not known yet"
	case s.heal:
		return "present, --heal-interval=" + s.healInterval.String()
	default:
		return healUnavailable + " (serve: " + s.healRejection + ")"
	}
}

// start runs serve and waits until it is ready. The first start passes
// --heal-interval (healing itself is on by default); if serve refuses the
// flag, the binary has no healing: that is recorded and serve runs without it.
func (s *serve) start(ctx context.Context) error {
	tryHeal := !s.healKnown || s.heal
	s.starts++
	logPath := filepath.Join(s.logDir, fmt.Sprintf("canary-tagger-%d.log", s.starts))
	args := []string{"--kubeconfig=" + s.kubeconfig}
	if tryHeal {
		args = append(args, "--heal-interval="+s.healInterval.String())
	}
	srv, err := bench.StartCanaryTaggerOn(s.bin, s.port, s.certDir, logPath, args...)
	if err != nil {
		return err
	}
	if err := waitReady(ctx, srv); err != nil {
		srv.Stop(5 * time.Second)
		if tryHeal && !s.healKnown {
			if line, ok := rejectedFlag(logPath, "heal-interval"); ok {
				s.healKnown, s.heal, s.healRejection = true, false, line
				logf("%s: serve says %q; running it without", healUnavailable, line)
				return s.start(ctx)
			}
		}
		return err
	}
	if tryHeal {
		s.healKnown, s.heal = true, true
	}
	s.srv = srv
	logf("  canary-tagger serve: ready (pid %d, heal: %s, log %s)", srv.Pid(), s.healState(), logPath)
	return nil
}

// rejectedFlag returns the line of a log in which serve refused --name:
// cobra's (pflag's) words, or those of Go's flag package.
func rejectedFlag(logPath, name string) (string, bool) {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return "", false
	}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasSuffix(line, "unknown flag: --"+name) || strings.HasSuffix(line, "flag provided but not defined: -"+name) {
			return line, true
		}
	}
	return "", false
}

func waitReady(ctx context.Context, srv *bench.Server) error {
	url := "http://" + srv.HealthAddr + "/readyz"
	err := webhooktest.Poll(ctx, "serve to be ready", 60*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		if err := srv.Proc.Exited(); err != nil {
			return false, webhooktest.StopPolling(err)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Errorf("%s: %s", url, resp.Status)
	})
	if err != nil {
		return fmt.Errorf("canary-tagger serve not ready: %w", err)
	}
	return nil
}

// kill ends serve at once (SIGKILL), as a crash or a drained node would.
func (s *serve) kill() {
	if s.srv != nil {
		s.srv.Kill()
		s.srv = nil
	}
}

func (s *serve) stop() {
	if s.srv != nil {
		s.srv.Stop(10 * time.Second)
		s.srv = nil
	}
}

func (s *serve) running() bool { return s.srv != nil }

func (s *serve) pid() int {
	if s.srv == nil {
		return 0
	}
	return s.srv.Pid()
}

// exited reports a serve that stopped although it should run.
func (s *serve) exited() error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Proc.Exited()
}

// metrics scrapes serve's /metrics.
func (s *serve) metrics(ctx context.Context) (webhooktest.Metrics, error) {
	if s.srv == nil {
		return nil, errors.New("canary-tagger serve is not running")
	}
	return webhooktest.ScrapeMetrics(ctx, "http://"+s.srv.MetricsAddr+"/metrics")
}

func (s *serve) target() harness.WebhookTarget {
	return harness.WebhookTarget{Host: "127.0.0.1", Port: s.port, CAPEM: s.caPEM, Exited: s.exited}
}
