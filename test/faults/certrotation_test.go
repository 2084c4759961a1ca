package faults

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canary-tagger/canary-tagger/test/bench"
)

// TestCertificateReplacedUnderLoad replaces the serving certificate (a new
// key, signed by a new CA) while reviews keep coming, on keep-alive
// connections and on a new connection per review: not one review may fail,
// and new connections must get the new certificate without a restart.
// Two ways of replacing: the way the kubelet updates a Secret volume (a new
// timestamped directory and an atomic rename of the ..data symlink), and
// the two files rewritten in place, one after the other (the key and the
// certificate briefly do not match).
func TestCertificateReplacedUnderLoad(t *testing.T) {
	setup(t)
	for _, mode := range []string{"secret-volume", "in-place"} {
		t.Run(mode, func(t *testing.T) {
			oldCA, err := bench.NewCA("old-ca")
			if err != nil {
				t.Fatal(err)
			}
			newCA, err := bench.NewCA("new-ca")
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			certDir := filepath.Join(dir, "certs")
			if mode == "secret-volume" {
				if err := writeSecretVolume(certDir, oldCA); err != nil {
					t.Fatal(err)
				}
			} else if _, err := oldCA.WriteServing(certDir); err != nil {
				t.Fatal(err)
			}
			s, err := bench.StartCanaryTagger(context.Background(), binary, certDir, filepath.Join(dir, "server.log"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				s.Stop(10 * time.Second)
				if t.Failed() {
					t.Logf("server log:\n%s", s.Proc.Tail(30))
				}
			})
			trust := bench.ClientTLS(oldCA, newCA)
			if err := s.WaitReady(context.Background(), bench.Load{TLS: trust}, &bodies[0], 30*time.Second); err != nil {
				t.Fatal(err)
			}

			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			var answered atomic.Int64
			count := func(bench.Request) { answered.Add(1) }
			loads := []bench.Load{
				{URL: s.URL, TLS: trust, Bodies: bodies, Clients: 4, Rate: 300, Duration: 30 * time.Second, ExpectPatch: true, OnResult: count},
				{URL: s.URL, TLS: trust, Bodies: bodies, Clients: 2, Rate: 60, Duration: 30 * time.Second, ExpectPatch: true, NoKeepAlive: true, OnResult: count},
			}
			// underLoad waits until n more reviews have been answered.
			underLoad := func(n int64, what string) {
				target := answered.Load() + n
				waitFor(t, 20*time.Second, what, func() bool { return answered.Load() >= target })
			}
			results := make([]bench.Result, len(loads))
			var wg sync.WaitGroup
			for i, l := range loads {
				wg.Go(func() { results[i], _ = l.Run(ctx) })
			}

			underLoad(400, "400 reviews under load before the change")
			var newSerial *big.Int
			if mode == "secret-volume" {
				newSerial, err = swapSecretVolume(certDir, newCA)
			} else {
				newSerial, err = rewriteInPlace(certDir, newCA, func() {
					underLoad(50, "50 reviews while key and certificate on disk do not match")
				})
			}
			if err != nil {
				stop()
				wg.Wait()
				t.Fatal(err)
			}
			replaced := time.Now()
			// New connections must see the new certificate (certwatcher:
			// fsnotify, or its 10 s poll at worst).
			var seenAfter time.Duration
			waitFor(t, 20*time.Second, "new connections to get the new certificate", func() bool {
				sn, err := servedSerial(s, trust)
				if err == nil && sn.Cmp(newSerial) == 0 {
					seenAfter = time.Since(replaced)
					return true
				}
				return false
			})
			underLoad(300, "300 more reviews on the new certificate")
			stop()
			wg.Wait()

			r := bench.Merge(results...)
			t.Logf("%s: %s; new certificate served %s after the change", mode, describe(r), seenAfter.Round(time.Millisecond))
			if r.Errors > 0 {
				t.Errorf("%d reviews failed while the certificate was replaced: %v", r.Errors, r.ErrorSamples)
			}
			if r.OK < 500 {
				t.Errorf("only %d reviews answered: not much of a load", r.OK)
			}
			if seenAfter == 0 {
				t.Errorf("new connections still get the old certificate 20 s after it was replaced")
			}
		})
	}
}

// servedSerial opens a new TLS connection and returns the serial number of
// the certificate the server presents.
func servedSerial(s *bench.Server, trust *tls.Config) (*big.Int, error) {
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port), trust)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber, nil
}

// writeSecretVolume lays out certDir as the kubelet does for a Secret
// volume: ..<timestamp>/{tls.crt,tls.key}, ..data → ..<timestamp>, and
// tls.crt → ..data/tls.crt, tls.key → ..data/tls.key.
func writeSecretVolume(certDir string, ca *bench.CA) error {
	if err := os.MkdirAll(certDir, 0o755); err != nil {
		return err
	}
	if _, err := swapSecretVolume(certDir, ca); err != nil {
		return err
	}
	for _, f := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", f), filepath.Join(certDir, f)); err != nil {
			return err
		}
	}
	return nil
}

// swapSecretVolume writes a new timestamped directory and atomically points
// ..data at it, then removes the previous one, as the kubelet's
// AtomicWriter does.
func swapSecretVolume(certDir string, ca *bench.CA) (*big.Int, error) {
	ts := filepath.Join(certDir, fmt.Sprintf("..%s", time.Now().Format("2006_01_02_15_04_05.000000000")))
	sn, err := ca.WriteServing(ts)
	if err != nil {
		return nil, err
	}
	old, _ := os.Readlink(filepath.Join(certDir, "..data"))
	tmp := filepath.Join(certDir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, filepath.Join(certDir, "..data")); err != nil {
		return nil, err
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(certDir, old)); err != nil {
			return nil, err
		}
	}
	return sn, nil
}

// rewriteInPlace truncates and rewrites tls.key, then tls.crt; between
// runs while the two do not match.
func rewriteInPlace(certDir string, ca *bench.CA, between func()) (*big.Int, error) {
	certPEM, keyPEM, sn, err := ca.Serving()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(certDir, "tls.key"), keyPEM, 0o600); err != nil {
		return nil, err
	}
	between()
	if err := os.WriteFile(filepath.Join(certDir, "tls.crt"), certPEM, 0o600); err != nil {
		return nil, err
	}
	return sn, nil
}
