// Command devcert writes a throw-away CA and serving certificate (client-go's
// self-signed pair, through certs.WriteSelfSigned) for running canary-tagger
// locally (make run). Never for a cluster: use cert-manager or
// serve --self-managed-tls there.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/canary-tagger/canary-tagger/certs"
)

func main() {
	dir := flag.String("dir", "bin/certs", "directory for tls.crt, tls.key and ca.crt")
	hosts := flag.String("hosts", "localhost,127.0.0.1", "comma-separated DNS names and IPs")
	validFor := flag.Duration("valid-for", 7*24*time.Hour, "certificate lifetime")
	flag.Parse()
	if _, err := certs.WriteSelfSigned(*dir, strings.Split(*hosts, ","), *validFor); err != nil {
		fmt.Fprintln(os.Stderr, "devcert:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s/{tls.crt,tls.key,ca.crt} for %s\n", *dir, *hosts)
}
