// Command noop-webhook is the benchmarks' baseline server (see package noop),
// run as its own process so its RSS can be read from /proc like
// canary-tagger's.
package main

import (
	"flag"
	"fmt"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/canary-tagger/canary-tagger/test/bench/noop"
)

func main() {
	var o noop.Options
	flag.StringVar(&o.Host, "host", "127.0.0.1", "address to listen on")
	flag.IntVar(&o.Port, "port", 9443, "port to listen on")
	flag.StringVar(&o.CertDir, "cert-dir", "", "directory holding tls.crt and tls.key")
	flag.BoolVar(&o.EnableHTTP2, "enable-http2", false, "serve HTTP/2 too")
	flag.BoolVar(&o.StaticPatch, "static-patch", false, "answer /mutate-rollout with the seed Rollout's patch (the floor of a webhook that mutates)")
	flag.Parse()
	if err := noop.Run(ctrl.SetupSignalHandler(), o); err != nil {
		fmt.Fprintln(os.Stderr, "noop-webhook:", err)
		os.Exit(1)
	}
}
