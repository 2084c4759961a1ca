package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Load is one load run: Clients keep-alive HTTPS connections (one each, HTTP/1.1,
// like the apiserver's webhook client with HTTP/2 off) posting Bodies round-robin.
type Load struct {
	// URL is https://127.0.0.1:PORT; only loopback targets are accepted.
	URL     string
	TLS     *tls.Config
	Bodies  []Body
	Clients int
	// Rate is the fixed rate in reviews/s; 0 means as fast as the clients go.
	Rate     float64
	Duration time.Duration
	// Warmup runs the same load first, unrecorded.
	Warmup time.Duration
	// MaxRequests bounds the recorded run (0: 10 million).
	MaxRequests int
	// ExpectPatch makes a response without a patch an error for bodies whose
	// Patched is set (canary-tagger); the no-op baseline never patches.
	ExpectPatch bool
	// OnResult, if set, is called after every recorded request.
	OnResult func(r Request)
	// NoKeepAlive makes every request open a new connection (a TLS
	// handshake each time), e.g. to see a rotated certificate at once.
	NoKeepAlive bool
}

// Request is the outcome of one review, for OnResult.
type Request struct {
	Body    *Body
	Start   time.Time
	Latency time.Duration
	Err     error // transport error, non-200 status or invalid review
}

// Result summarises a recorded run.
type Result struct {
	Sent, OK, Errors int
	ErrorSamples     []string
	Elapsed          time.Duration
	// Late counts fixed-rate slots that found every client busy (not sent).
	Late int
	// Latencies are client-side, send to full response read, sorted.
	Latencies []time.Duration
}

// Throughput is the number of good reviews per second.
func (r Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.OK) / r.Elapsed.Seconds()
}

// Percentile returns the q-th percentile (0 < q ≤ 100, nearest rank).
func (r Result) Percentile(q float64) time.Duration {
	n := len(r.Latencies)
	if n == 0 {
		return 0
	}
	i := int(float64(n)*q/100+0.5) - 1
	i = max(0, min(n-1, i))
	return r.Latencies[i]
}

// Max is the largest latency.
func (r Result) Max() time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	return r.Latencies[len(r.Latencies)-1]
}

// Mean latency.
func (r Result) Mean() time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	var s time.Duration
	for _, l := range r.Latencies {
		s += l
	}
	return s / time.Duration(len(r.Latencies))
}

// Merge combines runs (for rounds).
func Merge(rs ...Result) Result {
	var m Result
	for _, r := range rs {
		m.Sent += r.Sent
		m.OK += r.OK
		m.Errors += r.Errors
		m.Late += r.Late
		m.Elapsed += r.Elapsed
		m.Latencies = append(m.Latencies, r.Latencies...)
		if len(m.ErrorSamples) < 5 {
			m.ErrorSamples = append(m.ErrorSamples, r.ErrorSamples...)
		}
	}
	slices.Sort(m.Latencies)
	return m
}

// CheckLoopback refuses any target that is not 127.0.0.1 or ::1.
func CheckLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	ip := net.ParseIP(u.Hostname())
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("load target %q is not a loopback address", raw)
	}
	return nil
}

// Run runs the load: warm-up, then the recorded part.
func (l Load) Run(ctx context.Context) (Result, error) {
	if err := CheckLoopback(l.URL); err != nil {
		return Result{}, err
	}
	if len(l.Bodies) == 0 || l.Clients <= 0 || l.Duration <= 0 {
		return Result{}, errors.New("load: bodies, clients and duration are required")
	}
	clients := make([]*http.Client, l.Clients)
	for i := range clients {
		clients[i] = &http.Client{
			Timeout: 10 * time.Second,
			Transport: &http.Transport{
				TLSClientConfig:     l.TLS.Clone(),
				MaxIdleConnsPerHost: 1,
				MaxConnsPerHost:     1,
				DisableCompression:  true,
				DisableKeepAlives:   l.NoKeepAlive,
				ForceAttemptHTTP2:   false,
				IdleConnTimeout:     90 * time.Second,
			},
		}
	}
	defer func() {
		for _, c := range clients {
			c.CloseIdleConnections()
		}
	}()
	if l.Warmup > 0 {
		w := l
		w.Duration, w.OnResult, w.MaxRequests = l.Warmup, nil, 0
		w.run(ctx, clients, false)
	}
	return l.run(ctx, clients, true), ctx.Err()
}

func (l Load) run(ctx context.Context, clients []*http.Client, record bool) Result {
	ctx, cancel := context.WithTimeout(ctx, l.Duration)
	defer cancel()
	maxReq := l.MaxRequests
	if maxReq <= 0 {
		maxReq = 10_000_000
	}
	var (
		sent    atomic.Int64
		late    atomic.Int64
		mu      sync.Mutex
		lats    []time.Duration
		errs    []string
		nErrors int
		nOK     int
	)
	// Fixed rate: a pacer hands out send slots; a slot that finds every
	// client busy is counted late and dropped (the clients are the bound on
	// concurrency, as the apiserver's would be).
	var slots chan struct{}
	if l.Rate > 0 {
		slots = make(chan struct{}, l.Clients)
		interval := time.Duration(float64(time.Second) / l.Rate)
		go func() {
			next := time.Now()
			for {
				next = next.Add(interval)
				if d := time.Until(next); d > 0 {
					t := time.NewTimer(d)
					select {
					case <-ctx.Done():
						t.Stop()
						return
					case <-t.C:
					}
				} else if ctx.Err() != nil {
					return
				}
				select {
				case slots <- struct{}{}:
				default:
					late.Add(1)
				}
			}
		}()
	}
	start := time.Now()
	var wg sync.WaitGroup
	for ci, c := range clients {
		wg.Go(func() {
			local := make([]time.Duration, 0, 1024)
			var localErrs []string
			localBad, localOK := 0, 0
			defer func() {
				mu.Lock()
				lats = append(lats, local...)
				nErrors += localBad
				nOK += localOK
				for _, e := range localErrs {
					if len(errs) < 5 {
						errs = append(errs, e)
					}
				}
				mu.Unlock()
			}()
			for i := ci; ; i++ {
				if slots != nil {
					select {
					case <-ctx.Done():
						return
					case <-slots:
					}
				} else if ctx.Err() != nil {
					return
				}
				if sent.Add(1) > int64(maxReq) {
					return
				}
				b := &l.Bodies[i%len(l.Bodies)]
				t0 := time.Now()
				raw, err := send(c, l.URL+b.Path, b)
				lat := time.Since(t0) // the answer is read; checking it is not the server's time
				if err == nil {
					err = CheckReview(raw, b, l.ExpectPatch)
				}
				if err != nil && ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
					return
				}
				if !record {
					continue
				}
				if l.OnResult != nil {
					l.OnResult(Request{Body: b, Start: t0, Latency: lat, Err: err})
				}
				if err != nil {
					localBad++
					if len(localErrs) < 5 {
						localErrs = append(localErrs, fmt.Sprintf("%s: %v", b.Name, err))
					}
					continue
				}
				localOK++
				local = append(local, lat)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lats)
	s := int(min(sent.Load(), int64(maxReq)))
	return Result{Sent: s, OK: nOK, Errors: nErrors, ErrorSamples: errs, Elapsed: elapsed, Late: int(late.Load()), Latencies: lats}
}

// reviewResponse is the part of an AdmissionReview response the load checks.
type reviewResponse struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Response   *struct {
		UID     string `json:"uid"`
		Allowed bool   `json:"allowed"`
		Patch   []byte `json:"patch"`
		Result  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"status"`
	} `json:"response"`
}

func post(c *http.Client, url string, b *Body, expectPatch bool) error {
	raw, err := send(c, url, b)
	if err != nil {
		return err
	}
	return CheckReview(raw, b, expectPatch)
}

// send posts b and returns the body of a 200 answer.
func send(c *http.Client, url string, b *Body) ([]byte, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b.JSON))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, body)
	}
	return body, nil
}

// CheckReview validates an AdmissionReview response for body b.
func CheckReview(raw []byte, b *Body, expectPatch bool) error {
	var rr reviewResponse
	if err := json.Unmarshal(raw, &rr); err != nil {
		return fmt.Errorf("response is not an AdmissionReview: %v", err)
	}
	if rr.Response == nil {
		return errors.New("AdmissionReview without response")
	}
	if !rr.Response.Allowed {
		msg := ""
		if rr.Response.Result != nil {
			msg = fmt.Sprintf(" (%d %s)", rr.Response.Result.Code, rr.Response.Result.Message)
		}
		return fmt.Errorf("not allowed%s", msg)
	}
	if expectPatch && b.Patched && len(rr.Response.Patch) == 0 {
		return errors.New("no patch")
	}
	return nil
}

// Alternate calls run for every server, rounds times, starting each round
// with the next server so that drift in the machine's load hits all alike.
func Alternate(servers []*Server, rounds int, run func(round int, s *Server) error) error {
	for round := range rounds {
		for i := range servers {
			if err := run(round, servers[(i+round)%len(servers)]); err != nil {
				return err
			}
		}
	}
	return nil
}
