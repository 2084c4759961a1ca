package faults

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/canary-tagger/canary-tagger/test/bench"
)

// TestSIGTERMUnderLoad sends SIGTERM to `canary-tagger serve` while reviews
// keep coming, with some reviews caught half-sent at that moment. Every
// review in flight must be answered in full, no answer may be an error or
// cut short, and the process must exit 0. (Reviews that arrive after the
// signal find the port closed: the apiserver then applies failurePolicy.)
func TestSIGTERMUnderLoad(t *testing.T) {
	setup(t)
	ca, dir, certDir, ports := servingSetup(t, "sigterm", 3)
	logPath := filepath.Join(dir, "server.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(binary, "serve", "--host=127.0.0.1", "--port="+strconv.Itoa(ports[0]), "--cert-dir="+certDir,
		"--metrics-bind-address=127.0.0.1:"+strconv.Itoa(ports[1]), "--health-probe-bind-address=127.0.0.1:"+strconv.Itoa(ports[2]),
		"--check-workload-ref=false")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("server log:\n%s", tail(string(b), 30))
		}
	})
	url := fmt.Sprintf("https://127.0.0.1:%d", ports[0])
	trust := bench.ClientTLS(ca)
	s := &bench.Server{Name: "canary-tagger", URL: url, Port: ports[0]}
	if err := waitServing(s, trust, exited); err != nil {
		t.Fatal(err)
	}

	// Sustained load on keep-alive connections.
	var (
		mu       sync.Mutex
		requests []bench.Request
	)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	load := bench.Load{URL: url, TLS: trust, Bodies: bodies, Clients: 8, Rate: 400, Duration: 20 * time.Second, ExpectPatch: true,
		OnResult: func(r bench.Request) { mu.Lock(); requests = append(requests, r); mu.Unlock() }}
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = load.Run(ctx) })
	waitFor(t, 20*time.Second, "the load to be under way (300 reviews answered)", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(requests) >= 300
	})

	// Reviews in flight for sure: headers and half of the body sent.
	const halfSent = 5
	var inflight []*halfRequest
	for i := range halfSent {
		h, err := startHalf(s, trust, &bodies[i%len(bodies)])
		if err != nil {
			t.Fatalf("half-sent review %d: %v", i, err)
		}
		inflight = append(inflight, h)
	}
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[1])
	waitFor(t, 10*time.Second, "the half-sent reviews to be in the server's handlers", func() bool {
		return inFlight(metricsURL) >= halfSent
	})

	signalled := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Shutting down: the listener is closed, the in-flight reviews are waited for.
	waitFor(t, 10*time.Second, "the server to stop accepting connections", func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0]), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	for i, h := range inflight {
		if err := h.finish(); err != nil {
			t.Errorf("review in flight at SIGTERM (%s): %v", h.body.Name, err)
		} else {
			t.Logf("review %d in flight at SIGTERM answered in full", i)
		}
	}
	// The load keeps running until the process has exited, so it also meets
	// the closed port.
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v, want exit 0", err)
		} else {
			t.Logf("exited 0, %s after SIGTERM", time.Since(signalled).Round(time.Millisecond))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("still running 20 s after SIGTERM")
	}
	stop()
	wg.Wait()

	// Every answer that came was complete and valid; requests that failed
	// without an answer had not reached the server before it stopped
	// accepting (sent after the signal, or on a keep-alive connection the
	// server was closing as idle).
	var before, beforeOK, after, refused int
	const margin = 50 * time.Millisecond
	for _, r := range requests {
		answered := r.Err == nil || strings.HasPrefix(r.Err.Error(), "HTTP ") || strings.Contains(r.Err.Error(), "AdmissionReview") ||
			strings.Contains(r.Err.Error(), "not allowed") || strings.Contains(r.Err.Error(), "no patch")
		if answered && r.Err != nil {
			t.Errorf("a review got a bad answer during shutdown: %v", r.Err)
		}
		switch {
		case r.Start.Before(signalled.Add(-margin)):
			before++
			if r.Err == nil {
				beforeOK++
			} else if !answered {
				t.Errorf("a review sent %s before SIGTERM failed: %v", signalled.Sub(r.Start).Round(time.Millisecond), r.Err)
			}
		default:
			after++
			if r.Err != nil && !answered {
				refused++
			}
		}
	}
	t.Logf("load: %d reviews sent before SIGTERM (%d answered), %d around or after it (%d found the server gone)", before, beforeOK, after, refused)
	if before < 200 {
		t.Errorf("only %d reviews before SIGTERM: not much of a load", before)
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0]), time.Second); err == nil {
		c.Close()
		t.Error("the port still accepts connections after exit")
	}
}

// halfRequest is a review whose headers and first half were sent.
type halfRequest struct {
	conn *tls.Conn
	body *bench.Body
	rest []byte
}

func startHalf(s *bench.Server, trust *tls.Config, b *bench.Body) (*halfRequest, error) {
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port), trust)
	if err != nil {
		return nil, err
	}
	half := len(b.JSON) / 2
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: %d\r\n\r\n", b.Path, len(b.JSON))
	if _, err := conn.Write(append([]byte(head), b.JSON[:half]...)); err != nil {
		conn.Close()
		return nil, err
	}
	return &halfRequest{conn: conn, body: b, rest: b.JSON[half:]}, nil
}

func (h *halfRequest) finish() error {
	defer h.conn.Close()
	_ = h.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := h.conn.Write(h.rest); err != nil {
		return fmt.Errorf("sending the rest of the body: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(h.conn), nil)
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("answer cut short: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, raw)
	}
	return bench.CheckReview(raw, h.body, true)
}

func waitServing(s *bench.Server, trust *tls.Config, exited <-chan error) error {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: trust}}
	defer c.CloseIdleConnections()
	b := &bodies[0]
	var last error
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		select {
		case err := <-exited:
			return fmt.Errorf("server exited before serving: %v", err)
		case <-tick.C:
		}
		resp, err := c.Post(s.URL+b.Path, "application/json", bytes.NewReader(b.JSON))
		if err != nil {
			last = err
			continue
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if last = bench.CheckReview(raw, b, true); last == nil {
			return nil
		}
	}
	return errors.Join(errors.New("not serving within 30 s"), last)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// inFlight sums controller-runtime's in-flight webhook request gauge.
func inFlight(metricsURL string) float64 {
	resp, err := http.Get(metricsURL)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "controller_runtime_webhook_requests_in_flight") {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
				sum += v
			}
		}
	}
	return sum
}
